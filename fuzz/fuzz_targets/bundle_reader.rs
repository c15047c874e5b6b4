//! The model bundle reader (GGUF header, metadata, tokenizer, tensors) on arbitrary bytes.
//! Seeds are tiny but complete bundles (see fuzz/README.md), so mutations reach the metadata
//! and tensor checks, not only the magic number.
#![no_main]
use cairn::{Encoder, Role};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(enc) = Encoder::from_bytes(data) {
        // A bundle that loads must embed (or refuse with an error), never panic.
        let _ = enc.embed(&["a short query"], Role::Query);
    }
});
