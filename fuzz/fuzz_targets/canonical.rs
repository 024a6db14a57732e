//! Any decodable routing header, device record or receipt has canonical bytes, without panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use valise_proto::{canonical, v1};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = v1::RoutingHeader::decode(data) {
        let _ = canonical::routing_header(&h);
    }
    if let Ok(r) = v1::DeviceRecord::decode(data) {
        let _ = canonical::device_record(&r);
    }
    if let Ok(r) = v1::Receipt::decode(data) {
        let _ = canonical::receipt(&r);
    }
});
