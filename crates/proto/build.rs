//! Generates the `valise.v1` prost types from `proto/` with protox, so no `protoc` is needed.

use std::path::PathBuf;

const FILES: [&str; 9] = [
    "admin.proto",
    "audit.proto",
    "envelope.proto",
    "cable.proto",
    "directory.proto",
    "receipt.proto",
    "relay.proto",
    "link.proto",
    "evidence.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files: Vec<PathBuf> = FILES
        .iter()
        .map(|f| root.join("valise/v1").join(f))
        .collect();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    // protox::compile keeps source info, which is what carries the .proto comments into the
    // generated Rust doc comments.
    let descriptors = protox::compile(&files, [&root])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
