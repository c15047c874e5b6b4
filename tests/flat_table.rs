//! The flat word-embedding table (bundle format version 2): a k-quant table whose rows
//! straddle 256-value blocks reads exactly as its dequantized values, and is refused where
//! it does not belong.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use cairn::model::gguf::{
    flat_table_rows, join_vocab, names, read_bundle, split_vocab, write_bundle,
};
use cairn::{Encoder, Error, Quant, Role};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use common::{tensors_for, tiny_config, tokenizer_json};

/// The tiny model twice: its word-embedding table as a flat `Q3_K` table, and as an f32
/// matrix holding exactly the values the flat one decodes to.
fn flat_and_plain() -> (Vec<u8>, Vec<u8>) {
    let cfg = tiny_config();
    let (vocab, hidden) = (cfg.vocab_size, cfg.hidden_size);
    let rows = flat_table_rows(vocab, hidden, GgmlDType::Q3K).expect("32 is not a multiple of 256");
    assert_eq!(rows, (vocab * hidden).div_ceil(256));
    let mut values: Vec<f32> = (0..rows * 256)
        .map(|i| ((i * 7919 % 2003) as f32 / 2003.0 - 0.5) * 0.3)
        .collect();
    values[vocab * hidden..].iter_mut().for_each(|v| *v = 0.0);
    let flat = Tensor::from_vec(values, (rows, 256), &Device::Cpu).unwrap();
    let flat = QTensor::quantize(&flat, GgmlDType::Q3K).unwrap();
    let decoded: Vec<f32> = flat
        .dequantize(&Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let plain = Tensor::from_vec(
        decoded[..vocab * hidden].to_vec(),
        (vocab, hidden),
        &Device::Cpu,
    )
    .unwrap();
    let plain = QTensor::quantize(&plain, GgmlDType::F32).unwrap();
    let with = |table: QTensor| {
        let mut tensors = tensors_for(&cfg);
        for (name, t) in tensors.iter_mut() {
            if name == names::TOKEN_EMBD {
                *t = QTensor::new(
                    candle_core::quantized::QStorage::from_data(
                        table.data().unwrap(),
                        &Device::Cpu,
                        table.dtype(),
                    )
                    .unwrap(),
                    table.shape().clone(),
                )
                .unwrap();
            }
        }
        write_bundle(&cfg, &tokenizer_json(), Quant::Q8_0, &tensors).unwrap()
    };
    (with(flat), with(plain))
}

#[test]
fn flat_table_reads_as_its_values() {
    let (flat, plain) = flat_and_plain();
    assert!(flat.len() < plain.len());
    let b = read_bundle(&flat).unwrap();
    assert_eq!(b.tensors[names::TOKEN_EMBD].dtype(), GgmlDType::Q3K);
    let (f, p) = (
        Encoder::from_bytes(&flat).unwrap(),
        Encoder::from_bytes(&plain).unwrap(),
    );
    // Rows at block starts, across block edges and the last row (next to the padding).
    let texts = [
        "",
        "hello world",
        "the quick brown fox jumps over the lazy dog ##s",
        "zürich 東京 résumé",
        "[unused0] [SEP] [PAD]",
    ];
    for role in [Role::Query, Role::Document] {
        assert_eq!(
            f.embed(&texts, role).unwrap(),
            p.embed(&texts, role).unwrap()
        );
    }
}

fn version(bytes: &[u8]) -> u32 {
    let key = b"cairn.format_version\x04\0\0\0";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

#[test]
fn bundles_carry_the_lowest_version_that_reads_them() {
    let (flat, plain) = flat_and_plain();
    // Version 2: a flat table, or the vocabulary stored as lines (any WordPiece tokenizer).
    assert_eq!(version(&flat), 2);
    assert_eq!(version(&plain), 2);
    // A vocabulary that cannot be stored as lines stays whole, and the bundle at version 1.
    let mut tok: serde_json::Value = serde_json::from_str(&tokenizer_json()).unwrap();
    let vocab = tok["model"]["vocab"].as_object_mut().unwrap();
    let id = vocab.remove("[unused7]").unwrap();
    vocab.insert("two\nlines".into(), id);
    let tok = tok.to_string();
    assert!(split_vocab(&tok).unwrap().is_none());
    let cfg = tiny_config();
    let old = write_bundle(&cfg, &tok, Quant::Q8_0, &tensors_for(&cfg)).unwrap();
    assert_eq!(version(&old), 1);
    let enc = Encoder::from_bytes(&old).unwrap();
    assert_eq!(enc.token_count("hello", Role::Query).unwrap(), 5);
}

/// The vocabulary as lines reads back to the same tokenizer, and the bundle is smaller by
/// about half the JSON vocabulary.
#[test]
fn vocabulary_lines_round_trip() {
    let json = tokenizer_json();
    let (rest, lines) = split_vocab(&json)
        .unwrap()
        .expect("a WordPiece tokenizer splits");
    assert_eq!(lines.lines().count(), 30522);
    let back: serde_json::Value =
        serde_json::from_str(&join_vocab(&rest, &lines).unwrap()).unwrap();
    let orig: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(back, orig);
    let b = read_bundle(&common::tiny_bundle()).unwrap();
    let read: serde_json::Value = serde_json::from_str(&b.tokenizer_json).unwrap();
    assert_eq!(read, orig);
    // Hostile variants are errors, not panics.
    assert!(join_vocab(&rest, "a\nb\na").is_err(), "a repeated token");
    assert!(join_vocab("[1, 2]", &lines).is_err(), "no model section");
    assert!(join_vocab("{", &lines).is_err(), "broken JSON");
}

#[test]
fn flat_table_in_a_version_1_bundle_is_refused() {
    // Forged as version 1 (with the vocabulary kept whole, as version 1 stores it).
    let mut tok: serde_json::Value = serde_json::from_str(&tokenizer_json()).unwrap();
    let vocab = tok["model"]["vocab"].as_object_mut().unwrap();
    let id = vocab.remove("[unused7]").unwrap();
    vocab.insert("two\nlines".into(), id);
    let b = read_bundle(&flat_and_plain().0).unwrap();
    let tensors: Vec<_> = cairn::model::gguf::expected_tensors(&b.config)
        .into_iter()
        .map(|(name, _)| {
            let t = &b.tensors[&name];
            let storage = candle_core::quantized::QStorage::from_data(
                t.data().unwrap(),
                &Device::Cpu,
                t.dtype(),
            )
            .unwrap();
            (name, QTensor::new(storage, t.shape().clone()).unwrap())
        })
        .collect();
    let mut flat = write_bundle(&b.config, &tok.to_string(), Quant::Q8_0, &tensors).unwrap();
    let key = b"cairn.format_version\x04\0\0\0\x02\0\0\0";
    let at = flat.windows(key.len()).position(|w| w == key).unwrap();
    flat[at + key.len() - 4] = 1;
    let err = Encoder::from_bytes(&flat).err().expect("must fail");
    assert!(
        matches!(err, Error::WrongShape { ref name, .. } if name == names::TOKEN_EMBD),
        "{err}"
    );
}

#[test]
fn flat_table_bundles_never_panic_when_cut() {
    let (flat, _) = flat_and_plain();
    let step = (flat.len() / 61).max(1);
    for cut in (0..flat.len()).step_by(step) {
        assert!(
            Encoder::from_bytes(&flat[..cut]).is_err(),
            "cut at {cut} loaded"
        );
    }
}
