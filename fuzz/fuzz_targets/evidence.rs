//! An evidence bundle handed to a third party: decoding and verifying it must never panic,
//! whatever the file holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = valise_client::evidence::decode(data) else { return };
    let report = valise_client::evidence::verify(&bundle, "00");
    let _ = report.verified();
});
