//! Writing a bundle: configuration, tokenizer and tensors into one GGUF file, with the lowest
//! format version that can read it and the weights' fingerprint.

use std::io::Cursor;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::QTensor;
use sha2::{Digest, Sha256};

use super::layout::{config_to_metadata, is_flat_table, keys, names};
use super::quant::Quant;
use super::vocab::split_vocab;
use crate::digest::hex;
use crate::model::config::ModelConfig;
use crate::Result;

/// Writes a bundle. `tensors` must be in the order they should appear; the output is
/// deterministic for the same inputs.
pub fn write_bundle(
    cfg: &ModelConfig,
    tokenizer_json: &str,
    quant: Quant,
    tensors: &[(String, QTensor)],
) -> Result<Vec<u8>> {
    // The tensor data region is each tensor's bytes padded to 32 (candle's writer and the GGUF
    // default alignment): hash it the same way to get the fingerprint before writing.
    let mut hasher = Sha256::new();
    for (_, t) in tensors {
        let data = t.data()?;
        hasher.update(&data);
        let pad = (32 - data.len() % 32) % 32;
        hasher.update(vec![0u8; pad]);
    }
    let fingerprint = hex(&hasher.finalize());

    let mut md = config_to_metadata(cfg);
    // The lowest version that can read the file, so older readers keep reading what they can.
    let flat = tensors
        .iter()
        .any(|(n, t)| n == names::TOKEN_EMBD && is_flat_table(cfg, t));
    let split = split_vocab(tokenizer_json)?;
    let version = if flat || split.is_some() { 2 } else { 1 };
    for (key, value) in md.iter_mut() {
        if *key == keys::FORMAT_VERSION {
            *value = Value::U32(version);
        }
    }
    md.push((keys::FILE_TYPE, Value::U32(quant.llama_file_type())));
    md.push((keys::QUANT, Value::String(quant.name().into())));
    md.push((keys::TOKENIZER_MODEL, Value::String("bert".into())));
    match split {
        Some((json, vocab)) => {
            md.push((keys::TOKENIZER_JSON_NO_VOCAB, Value::String(json)));
            md.push((keys::TOKENIZER_VOCAB, Value::String(vocab)));
        }
        None => md.push((
            keys::TOKENIZER_HF_JSON,
            Value::String(tokenizer_json.into()),
        )),
    }
    md.push((keys::WEIGHTS_SHA256, Value::String(fingerprint)));
    let tok = crate::model::parse_tokenizer(tokenizer_json)?;
    for (key, tokname) in [
        (keys::CLS_TOKEN_ID, "[CLS]"),
        (keys::SEP_TOKEN_ID, "[SEP]"),
        (keys::PAD_TOKEN_ID, "[PAD]"),
    ] {
        if let Some(id) = tok.token_to_id(tokname) {
            md.push((key, Value::U32(id)));
        }
    }
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &md_refs, &t_refs)?;
    Ok(out.into_inner())
}
