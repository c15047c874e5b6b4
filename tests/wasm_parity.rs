//! The parity fixture compiled to wasm32 and run in headless Chromium
//! (`wasm-bindgen-test`): browser vectors against sentence-transformers' reference and
//! against the native build's vectors for the same bundle.
//!
//! The bundles and the native vectors are baked in at compile time; `make test` makes them
//! before building this test.
#![cfg(target_arch = "wasm32")]

use cairn::{Encoder, Role};
use serde::Deserialize;
use wasm_bindgen_test::*;

#[path = "common/wrap.rs"]
mod wrap;

// In a dedicated worker, as the engine runs in production: long synchronous work there
// does not freeze the page the test driver polls.
wasm_bindgen_test_configure!(run_in_dedicated_worker);

#[derive(Deserialize)]
struct Sentences {
    sentences: Vec<String>,
}

#[derive(Deserialize)]
struct Reference {
    embeddings: Vec<Vec<f32>>,
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

fn check(bundle: &[u8], native_jsonl: &str, threshold: f32) {
    let s: Sentences =
        serde_json::from_str(include_str!("fixtures/parity/sentences.json")).unwrap();
    let r: Reference =
        serde_json::from_str(include_str!("fixtures/parity/reference.json")).unwrap();
    let native: Vec<Vec<f32>> = native_jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(native.len(), s.sentences.len());
    let enc = Encoder::from_bytes(bundle).expect("bundle loads in the browser");
    let browser = enc.embed(&s.sentences, Role::Query).unwrap();
    let mut sum = 0.0;
    let mut report = Vec::new();
    for i in 0..s.sentences.len() {
        let vs_reference = cosine(&browser[i], &r.embeddings[i]);
        assert!(
            vs_reference >= threshold,
            "sentence {i}: browser vs sentence-transformers cosine {vs_reference}"
        );
        // The same int8 kernels' arithmetic on both sides (`cairn_kernels`: exact integer
        // sums, then the same float operations in the same order), so the linear layers
        // agree bit for bit; what differs is the rest of the forward pass (exp, erf and the
        // sums of candle's softmax and layer norm in wasm against x86), and through it, now
        // and then, one activation's 8-bit rounding.
        let vs_native = cosine(&browser[i], &native[i]);
        sum += vs_native;
        report.push(format!("{vs_native:.6}"));
        assert!(
            vs_native >= 0.9999,
            "sentence {i}: browser vs native cosine {vs_native} (all: {report:?})"
        );
    }
    let mean = sum / s.sentences.len() as f32;
    assert!(
        mean >= 0.99995,
        "mean browser vs native cosine {mean} (all: {report:?})"
    );
    wasm_bindgen_test::console_log!("browser vs native cosines: {report:?}");
}

#[wasm_bindgen_test]
fn q8_0_in_browser_matches_reference_and_native() {
    check(
        include_bytes!("../models/all-minilm-l6-v2-q8_0.gguf"),
        include_str!("../models/parity-native-q8_0.jsonl"),
        0.995,
    );
}

#[wasm_bindgen_test]
fn four_bit_in_browser_matches_reference_and_native() {
    check(
        include_bytes!("../models/all-minilm-l6-v2-q4_0.gguf"),
        include_str!("../models/parity-native-q4_0.jsonl"),
        0.94, // the native floor; see tests/parity.rs
    );
}

#[wasm_bindgen_test]
fn small_bundle_in_browser_matches_reference_and_native() {
    check(
        include_bytes!("../models/all-minilm-l6-v2-q4_mix.gguf"),
        include_str!("../models/parity-native-q4_mix.jsonl"),
        0.98,
    );
}

#[wasm_bindgen_test]
fn corrupt_bundle_is_an_error_in_the_browser() {
    let bytes = include_bytes!("../models/all-minilm-l6-v2-q4_0.gguf");
    assert!(Encoder::from_bytes(&bytes[..bytes.len() / 2]).is_err());
    assert!(Encoder::from_bytes(b"not a model").is_err());
}

/// The bundle forged so that its position table's size wraps a 32-bit `usize`
/// (`tests/common/wrap.rs`): a typed error in wasm32, where the wrap would otherwise happen,
/// not a trapped module; likewise a table declared longer than the file.
#[wasm_bindgen_test]
fn bundle_whose_sizes_wrap_32_bits_is_an_error_not_a_trap() {
    let micro = include_bytes!("fixtures/compat/bundle-v1.gguf");
    assert!(Encoder::from_bytes(micro).is_ok());
    for rows in [wrap::WRAP_ROWS, 65_536] {
        let forged = wrap::with_position_rows(micro, rows);
        match Encoder::from_bytes(&forged) {
            Err(e) => assert!(
                e.to_string().contains("position table") || e.to_string().contains("past the end"),
                "{rows} rows: {e}"
            ),
            Ok(_) => panic!("a bundle declaring {rows} positions loaded"),
        }
    }
}
