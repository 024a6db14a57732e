//! Bytes from a QUIC stream, in two pieces, through the frame decoder. Must never panic, and
//! never buffer a frame over the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use valise_proto::framing::FrameDecoder;
use valise_proto::v1::{ClientFrame, NodeFrame};

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut client = FrameDecoder::new(MAX);
    let mut node = FrameDecoder::new(MAX);
    for piece in [&data[..split], &data[split..]] {
        client.push(piece);
        node.push(piece);
        while let Ok(Some(_)) = client.next_frame::<ClientFrame>() {}
        while let Ok(Some(_)) = node.next_frame::<NodeFrame>() {}
    }
    let _ = client.finish();
});
