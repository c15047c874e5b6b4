//! Bad bundles give typed errors, never panics: truncated, wrong magic, missing tensors,
//! wrong shapes, other architectures, newer format versions, flipped bytes.

mod common;

use cairn::model::gguf::write_bundle;
use cairn::{Encoder, Error, Quant, Role};
use common::{tensor, tensors_for, tiny_bundle, tiny_config, tokenizer_json};

#[test]
fn tiny_bundle_loads_and_applies_prompts() {
    let bytes = tiny_bundle();
    let enc = Encoder::from_bytes(&bytes).unwrap();
    assert_eq!(enc.dim(), 32);
    assert_eq!(enc.prompt(Role::Query), "query: ");
    // The prompt is part of the tokenized input: [CLS] query : hello [SEP].
    assert_eq!(enc.token_count("hello", Role::Query).unwrap(), 5);
    let q = enc.embed(&["hello world"], Role::Query).unwrap();
    let d = enc.embed(&["hello world"], Role::Document).unwrap();
    assert_ne!(q, d, "query and document prompts must differ in effect");
    // Writing is deterministic.
    assert_eq!(bytes, tiny_bundle());
}

#[test]
fn truncated_bundles_are_refused() {
    let bytes = tiny_bundle();
    let step = (bytes.len() / 97).max(1);
    for cut in (0..bytes.len()).step_by(step).chain([bytes.len() - 1]) {
        match Encoder::from_bytes(&bytes[..cut]) {
            Err(Error::NotABundle(_)) | Err(Error::CorruptBundle(_)) => {}
            Err(other) => panic!("cut at {cut}: unexpected error kind {other}"),
            Ok(_) => panic!("cut at {cut}: a truncated bundle loaded"),
        }
    }
}

#[test]
fn wrong_magic_is_refused() {
    let mut bytes = tiny_bundle();
    bytes[..4].copy_from_slice(b"CAIR");
    let err = Encoder::from_bytes(&bytes).err().expect("must fail");
    assert!(matches!(err, Error::NotABundle(_)), "{err}");
    let err = Encoder::from_bytes(b"<!DOCTYPE html><html>404</html>")
        .err()
        .expect("must fail");
    assert!(matches!(err, Error::NotABundle(_)), "{err}");
}

#[test]
fn flipped_weight_byte_is_detected_by_checksum() {
    let mut bytes = tiny_bundle();
    let n = bytes.len();
    bytes[n - 100] ^= 0x55;
    let err = Encoder::from_bytes(&bytes).err().expect("must fail");
    assert!(
        matches!(err, Error::CorruptBundle(ref m) if m.contains("checksum")),
        "{err}"
    );
}

#[test]
fn missing_tensor_is_refused() {
    let cfg = tiny_config();
    let mut tensors = tensors_for(&cfg);
    tensors.retain(|(n, _)| n != "blk.1.ffn_down.weight");
    let bytes = write_bundle(&cfg, &tokenizer_json(), Quant::Q8_0, &tensors).unwrap();
    let err = Encoder::from_bytes(&bytes).err().expect("must fail");
    assert!(
        matches!(err, Error::MissingTensor(ref n) if n == "blk.1.ffn_down.weight"),
        "{err}"
    );
}

#[test]
fn wrong_shape_is_refused() {
    let cfg = tiny_config();
    let mut tensors = tensors_for(&cfg);
    for (name, t) in tensors.iter_mut() {
        if name == "blk.0.attn_q.weight" {
            *t = tensor(&[64, 32], 1);
        }
    }
    let bytes = write_bundle(&cfg, &tokenizer_json(), Quant::Q8_0, &tensors).unwrap();
    let err = Encoder::from_bytes(&bytes).err().expect("must fail");
    match err {
        Error::WrongShape {
            name,
            expected,
            found,
        } => {
            assert_eq!(name, "blk.0.attn_q.weight");
            assert_eq!(expected, vec![32, 32]);
            assert_eq!(found, vec![64, 32]);
        }
        other => panic!("unexpected {other}"),
    }
}

/// Rewrites one metadata string value in place (same length) to forge variants.
fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let pos = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present");
    bytes[pos..pos + from.len()].copy_from_slice(to);
}

#[test]
fn other_architecture_is_refused() {
    let mut bytes = tiny_bundle();
    patch(
        &mut bytes,
        b"\x04\0\0\0\0\0\0\0bert",
        b"\x04\0\0\0\0\0\0\0gpt2",
    );
    let err = Encoder::from_bytes(&bytes).err().expect("must fail");
    assert!(
        matches!(err, Error::UnsupportedBundle(ref m) if m.contains("gpt2")),
        "{err}"
    );
}

#[test]
fn newer_format_version_is_refused_with_its_number() {
    let mut bytes = tiny_bundle();
    // cairn.format_version is a u32 (type 4) with value 2.
    let key = b"cairn.format_version\x04\0\0\0\x02\0\0\0";
    patch(&mut bytes, key, b"cairn.format_version\x04\0\0\0\x09\0\0\0");
    let err = Encoder::from_bytes(&bytes).err().expect("must fail");
    assert!(
        matches!(err, Error::UnsupportedBundle(ref m) if m.contains("version 9")),
        "{err}"
    );
}

#[test]
fn random_byte_flips_never_panic() {
    let bytes = tiny_bundle();
    let mut state = 0x2545F4914F6CDD1Du64;
    for _ in 0..300 {
        let mut b = bytes.clone();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = (state % b.len() as u64) as usize;
            b[i] ^= (state >> 32) as u8 | 1;
        }
        // Must return (Ok or a typed Err), never panic.
        let _ = Encoder::from_bytes(&b).map(|e| e.embed(&["x"], Role::Query));
    }
}

/// Found by the `bundle_reader` fuzzer, each made the `tokenizers` crate panic (an `expect`
/// or an unchecked map lookup) where an error was due: a tokenizer JSON broken inside its
/// decoder section, and a post-processor template naming a special token it does not define.
#[test]
fn fuzz_regressions_are_errors() {
    for name in [
        "bundle-tokenizer-decoder-json.gguf",
        "bundle-template-special-token.gguf",
        "bundle-template-no-single.gguf",
    ] {
        let path = format!(
            "{}/tests/fixtures/regressions/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(path).unwrap();
        match Encoder::from_bytes(&bytes) {
            Err(err) => assert!(matches!(err, Error::Tokenizer(_)), "{name}: {err}"),
            Ok(enc) => {
                let _ = enc.embed(&["a query"], Role::Query);
            }
        }
    }
}

/// A Precompiled (SentencePiece) normalizer whose character map is garbage also panics inside
/// `tokenizers`; Cairn refuses the normalizer by name first.
#[test]
fn precompiled_normalizer_is_refused_not_a_panic() {
    let mut tok: serde_json::Value = serde_json::from_str(&tokenizer_json()).unwrap();
    tok["normalizer"] = serde_json::json!({
        "type": "Sequence",
        "normalizers": [{ "type": "Precompiled", "precompiled_charsmap": "!!not base64!!" }]
    });
    let err = cairn::model::parse_tokenizer(&tok.to_string()).unwrap_err();
    assert!(err.to_string().contains("Precompiled"), "{err}");
    let err =
        cairn::model::parse_tokenizer("{\"decoder\": {\"type\": \"WordPiece\",,}}").unwrap_err();
    assert!(matches!(err, Error::Tokenizer(_)), "{err}");
}

/// A position table whose size wraps a 32-bit `usize` (`tests/common/wrap.rs`) is refused by
/// the configuration check, here as in wasm32 (`tests/wasm_parity.rs`); one declared longer
/// than the file holds is refused before candle reads it.
#[test]
fn tables_that_wrap_32_bits_or_overrun_the_file_are_refused() {
    use common::wrap::{with_position_rows, WRAP_ROWS};
    let micro = common::micro_bundle();
    assert_eq!(
        with_position_rows(&micro, 32),
        micro,
        "the patch is a no-op at 32 rows"
    );
    match Encoder::from_bytes(&with_position_rows(&micro, WRAP_ROWS)) {
        Err(Error::UnsupportedBundle(m)) => assert!(m.contains("position table"), "{m}"),
        Err(other) => panic!("unexpected error kind: {other}"),
        Ok(_) => panic!("a position table of {WRAP_ROWS} rows loaded"),
    }
    match Encoder::from_bytes(&with_position_rows(&micro, 65_536)) {
        Err(Error::CorruptBundle(m)) => assert!(m.contains("past the end"), "{m}"),
        Err(other) => panic!("unexpected error kind: {other}"),
        Ok(_) => panic!("a position table longer than the file loaded"),
    }
}
