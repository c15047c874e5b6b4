//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod wrap;

use std::path::PathBuf;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use cairn::model::gguf::{expected_tensors, write_bundle};
use cairn::model::{Activation, ModelConfig, Pooling};
use cairn::Quant;

/// The folder with the converted bundles (`make model` fills it).
pub fn model_dir() -> PathBuf {
    std::env::var_os("CAIRN_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"))
}

/// Reads a file under the model folder, failing with instructions when it is absent: these
/// tests never skip silently.
pub fn read_model_file(name: &str) -> Vec<u8> {
    let path = model_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); run `make model` first to fetch and convert the default model",
            path.display()
        )
    })
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

/// A tiny BERT (hidden 32, two layers) with the real tokenizer: fast to load, for tests of
/// file handling.
pub fn tiny_config() -> ModelConfig {
    ModelConfig {
        name: "tiny-test-bert".into(),
        vocab_size: 30522,
        hidden_size: 32,
        num_layers: 2,
        num_heads: 4,
        intermediate_size: 64,
        max_position_embeddings: 64,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        activation: Activation::Gelu,
        pooling: Pooling::Mean,
        normalize: true,
        max_seq_length: 64,
        query_prompt: "query: ".into(),
        document_prompt: "passage: ".into(),
    }
}

/// The real tokenizer (`make model` fetches it; compiled into the wasm tests, which have no
/// files).
pub fn tokenizer_json() -> String {
    #[cfg(target_arch = "wasm32")]
    return include_str!("../../models/src/all-MiniLM-L6-v2/tokenizer.json").to_string();
    #[cfg(not(target_arch = "wasm32"))]
    String::from_utf8(read_model_file("src/all-MiniLM-L6-v2/tokenizer.json")).unwrap()
}

/// Deterministic small weights of the given shape (the same on 32-bit targets: u64 sums).
pub fn tensor(shape: &[usize], seed: usize) -> QTensor {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|i| (((i as u64 * 7919 + seed as u64 * 104729) % 1000) as f32 / 1000.0 - 0.5) * 0.2)
        .collect();
    let t = Tensor::from_vec(data, shape, &Device::Cpu).unwrap();
    let dtype = if shape.len() == 2 {
        GgmlDType::Q8_0
    } else {
        GgmlDType::F32
    };
    QTensor::quantize(&t, dtype).unwrap()
}

pub fn tensors_for(cfg: &ModelConfig) -> Vec<(String, QTensor)> {
    expected_tensors(cfg)
        .into_iter()
        .enumerate()
        .map(|(i, (name, shape))| (name, tensor(&shape, i)))
        .collect()
}

pub fn tiny_bundle() -> Vec<u8> {
    let cfg = tiny_config();
    write_bundle(&cfg, &tokenizer_json(), Quant::Q8_0, &tensors_for(&cfg)).unwrap()
}

/// The real tokenizer cut to a vocabulary of a few hundred entries (special tokens, single
/// characters, their `##` continuations and some short words), renumbered from 0: the same
/// normalizer, pre-tokenizer and post-processor, at a few kilobytes.
pub fn micro_tokenizer_json() -> (String, usize) {
    use serde_json::{json, Map, Value};
    let mut tok: Value = serde_json::from_str(&tokenizer_json()).unwrap();
    let vocab = tok["model"]["vocab"].as_object().unwrap().clone();
    let mut by_id: Vec<(&String, u64)> = vocab
        .iter()
        .map(|(k, v)| (k, v.as_u64().unwrap()))
        .collect();
    by_id.sort_by_key(|&(_, id)| id);
    let keep = |t: &str| {
        t.starts_with('[') && t.ends_with(']') && !t.starts_with("[unused")
            || t.chars().count() == 1 && t.is_ascii()
            || t.starts_with("##") && t.chars().count() == 3 && t.is_ascii()
            || matches!(
                t,
                "the" | "rust" | "share" | "data" | "between" | "threads" | "box" | "query"
            )
    };
    let mut new_vocab = Map::new();
    let mut remap = std::collections::HashMap::new();
    for (t, old) in by_id {
        if keep(t) {
            remap.insert(old, new_vocab.len() as u64);
            new_vocab.insert(t.clone(), json!(new_vocab.len()));
        }
    }
    let n = new_vocab.len();
    tok["model"]["vocab"] = Value::Object(new_vocab);
    for t in tok["added_tokens"].as_array_mut().unwrap() {
        let old = t["id"].as_u64().unwrap();
        t["id"] = json!(remap[&old]);
    }
    if let Some(special) = tok["post_processor"]["special_tokens"].as_object_mut() {
        for v in special.values_mut() {
            for id in v["ids"].as_array_mut().unwrap() {
                *id = json!(remap[&id.as_u64().unwrap()]);
            }
        }
    }
    tok["padding"] = Value::Null;
    tok["truncation"] = Value::Null;
    (serde_json::to_string(&tok).unwrap(), n)
}

/// A BERT of hidden size 32, one layer, with [`micro_tokenizer_json`]: a complete, valid
/// bundle of about 40 KB (the frozen compatibility fixture and the bundle fuzzer's seed).
pub fn micro_bundle() -> Vec<u8> {
    let (tok, vocab) = micro_tokenizer_json();
    let cfg = ModelConfig {
        name: "micro-test-bert".into(),
        vocab_size: vocab,
        hidden_size: 32,
        num_layers: 1,
        num_heads: 2,
        intermediate_size: 64,
        max_position_embeddings: 32,
        max_seq_length: 32,
        ..tiny_config()
    };
    write_bundle(&cfg, &tok, Quant::Q8_0, &tensors_for(&cfg)).unwrap()
}
