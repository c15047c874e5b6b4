//! The ONNX reader of `cairn model convert` (protobuf decoding, the graph walk that names
//! weights, dequantization) on arbitrary bytes: a typed error or weights, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cairn::model::onnx::read_weights(data);
});
