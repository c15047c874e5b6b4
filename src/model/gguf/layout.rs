//! What a bundle holds: its format versions, metadata keys and tensor names (llama.cpp's
//! conventions for `bert`, Cairn's own under `cairn.*`), the tensors the encoder needs and
//! their shapes, and the configuration's metadata in both directions.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};

use crate::model::config::{Activation, ModelConfig, Pooling};
use crate::{Error, Result};

/// The bundle format versions this build writes and reads (defined with the checksums every
/// build reads, the keyword engine's included). Version 2 added the flat word-embedding
/// table ([`flat_table_rows`]) and the tokenizer's vocabulary as lines
/// ([`split_vocab`](super::vocab::split_vocab)).
pub use crate::digest::{BUNDLE_FORMAT_VERSION, MIN_BUNDLE_FORMAT_VERSION};

/// Metadata keys. The `general.*`, `bert.*` and `tokenizer.*` ones are llama.cpp's.
pub mod keys {
    pub const ARCHITECTURE: &str = "general.architecture";
    pub const NAME: &str = "general.name";
    pub const FILE_TYPE: &str = "general.file_type";
    pub const CONTEXT_LENGTH: &str = "bert.context_length";
    pub const EMBEDDING_LENGTH: &str = "bert.embedding_length";
    pub const FEED_FORWARD_LENGTH: &str = "bert.feed_forward_length";
    pub const BLOCK_COUNT: &str = "bert.block_count";
    pub const HEAD_COUNT: &str = "bert.attention.head_count";
    pub const LAYER_NORM_EPS: &str = "bert.attention.layer_norm_epsilon";
    pub const CAUSAL: &str = "bert.attention.causal";
    pub const POOLING_TYPE: &str = "bert.pooling_type";
    pub const TOKENIZER_MODEL: &str = "tokenizer.ggml.model";
    pub const TOKENIZER_HF_JSON: &str = "tokenizer.huggingface.json";
    pub const CLS_TOKEN_ID: &str = "tokenizer.ggml.cls_token_id";
    pub const SEP_TOKEN_ID: &str = "tokenizer.ggml.seperator_token_id";
    pub const PAD_TOKEN_ID: &str = "tokenizer.ggml.padding_token_id";
    pub const FORMAT_VERSION: &str = "cairn.format_version";
    pub const VOCAB_SIZE: &str = "cairn.vocab_size";
    pub const TYPE_VOCAB_SIZE: &str = "cairn.type_vocab_size";
    pub const ACTIVATION: &str = "cairn.hidden_act";
    pub const MAX_SEQ_LENGTH: &str = "cairn.max_seq_length";
    pub const NORMALIZE: &str = "cairn.normalize";
    pub const QUERY_PROMPT: &str = "cairn.prompt.query";
    pub const DOCUMENT_PROMPT: &str = "cairn.prompt.document";
    pub const QUANT: &str = "cairn.quant";
    /// Version 2: the tokenizer.json without its WordPiece vocabulary ...
    pub const TOKENIZER_JSON_NO_VOCAB: &str = "cairn.tokenizer.json";
    /// ... and the vocabulary, one token per line in id order (half the bytes of JSON).
    pub const TOKENIZER_VOCAB: &str = "cairn.tokenizer.vocab";
    pub const WEIGHTS_SHA256: &str = "cairn.weights_sha256";
}

/// llama.cpp's tensor names for BERT.
pub mod names {
    pub const TOKEN_EMBD: &str = "token_embd.weight";
    pub const POSITION_EMBD: &str = "position_embd.weight";
    pub const TOKEN_TYPES: &str = "token_types.weight";
    pub const TOKEN_EMBD_NORM: &str = "token_embd_norm";

    /// Name of a tensor in block `layer`: `blk.{layer}.{part}.{kind}`.
    pub fn blk(layer: usize, part: &str, kind: &str) -> String {
        format!("blk.{layer}.{part}.{kind}")
    }

    pub const ATTN_Q: &str = "attn_q";
    pub const ATTN_K: &str = "attn_k";
    pub const ATTN_V: &str = "attn_v";
    pub const ATTN_OUT: &str = "attn_output";
    pub const ATTN_OUT_NORM: &str = "attn_output_norm";
    pub const FFN_UP: &str = "ffn_up";
    pub const FFN_DOWN: &str = "ffn_down";
    pub const LAYER_OUT_NORM: &str = "layer_output_norm";
}

/// Rows of the word-embedding table stored *flat* as `dtype`, or `None` when it is stored as
/// an ordinary `vocab x hidden` matrix.
///
/// k-quants pack 256 values a block, and most encoders' rows (MiniLM's 384) are not a multiple
/// of 256, so no matrix of theirs can be a k-quant. The word-embedding table is only ever
/// looked up, never multiplied, so its rows need not align with blocks: stored flat, its
/// `vocab * hidden` values run on in 256-value rows (the last one zero-padded), and a row of
/// the table is read from the one to three blocks it spans. Bundle format version 2 and later.
pub fn flat_table_rows(vocab: usize, hidden: usize, dtype: GgmlDType) -> Option<usize> {
    let block = dtype.block_size();
    (block > 32 && !hidden.is_multiple_of(block)).then(|| (vocab * hidden).div_ceil(block))
}

/// Whether `t` is a word-embedding table stored flat (see [`flat_table_rows`]).
pub fn is_flat_table(cfg: &ModelConfig, t: &QTensor) -> bool {
    flat_table_rows(cfg.vocab_size, cfg.hidden_size, t.dtype())
        .is_some_and(|rows| t.shape().dims() == [rows, t.dtype().block_size()])
}

/// The names and shapes (in candle's row-major order) of every tensor the encoder needs.
pub fn expected_tensors(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    use names::*;
    let h = cfg.hidden_size;
    let i = cfg.intermediate_size;
    let mut out = vec![
        (TOKEN_EMBD.to_string(), vec![cfg.vocab_size, h]),
        (
            POSITION_EMBD.to_string(),
            vec![cfg.max_position_embeddings, h],
        ),
        (TOKEN_TYPES.to_string(), vec![cfg.type_vocab_size, h]),
        (format!("{TOKEN_EMBD_NORM}.weight"), vec![h]),
        (format!("{TOKEN_EMBD_NORM}.bias"), vec![h]),
    ];
    for l in 0..cfg.num_layers {
        for (part, rows, cols) in [
            (ATTN_Q, h, h),
            (ATTN_K, h, h),
            (ATTN_V, h, h),
            (ATTN_OUT, h, h),
            (FFN_UP, i, h),
            (FFN_DOWN, h, i),
        ] {
            out.push((blk(l, part, "weight"), vec![rows, cols]));
            out.push((blk(l, part, "bias"), vec![rows]));
        }
        for part in [ATTN_OUT_NORM, LAYER_OUT_NORM] {
            out.push((blk(l, part, "weight"), vec![h]));
            out.push((blk(l, part, "bias"), vec![h]));
        }
    }
    out
}

pub(super) fn meta<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<&'a Value> {
    md.get(key).ok_or_else(|| Error::Metadata {
        key: key.to_string(),
        problem: "missing".to_string(),
    })
}

pub(super) fn meta_err(key: &str, e: impl std::fmt::Display) -> Error {
    Error::Metadata {
        key: key.to_string(),
        problem: e.to_string(),
    }
}

pub(super) fn meta_usize(md: &HashMap<String, Value>, key: &str) -> Result<usize> {
    let v = meta(md, key)?;
    let n = match v {
        Value::U64(x) => *x,
        other => other.to_u32().map_err(|e| meta_err(key, e))? as u64,
    };
    usize::try_from(n).map_err(|e| meta_err(key, e))
}

pub(super) fn meta_string(md: &HashMap<String, Value>, key: &str) -> Result<String> {
    meta(md, key)?
        .to_string()
        .cloned()
        .map_err(|e| meta_err(key, e))
}

pub(super) fn meta_string_or(
    md: &HashMap<String, Value>,
    key: &str,
    default: &str,
) -> Result<String> {
    match md.get(key) {
        None => Ok(default.to_string()),
        Some(v) => v.to_string().cloned().map_err(|e| meta_err(key, e)),
    }
}

/// Reads the configuration out of bundle metadata.
pub fn config_from_metadata(md: &HashMap<String, Value>) -> Result<ModelConfig> {
    let act_name = meta_string_or(md, keys::ACTIVATION, "gelu")?;
    let activation = Activation::from_hf(&act_name)
        .ok_or_else(|| meta_err(keys::ACTIVATION, format!("unknown activation `{act_name}`")))?;
    let pool_id = meta(md, keys::POOLING_TYPE)?
        .to_u32()
        .map_err(|e| meta_err(keys::POOLING_TYPE, e))?;
    let pooling = Pooling::from_gguf_id(pool_id).ok_or_else(|| {
        meta_err(
            keys::POOLING_TYPE,
            format!("pooling type {pool_id} is not supported (mean = 1, cls = 2)"),
        )
    })?;
    let eps = meta(md, keys::LAYER_NORM_EPS)?
        .to_f32()
        .map_err(|e| meta_err(keys::LAYER_NORM_EPS, e))? as f64;
    let normalize = match md.get(keys::NORMALIZE) {
        None => true,
        Some(v) => v.to_bool().map_err(|e| meta_err(keys::NORMALIZE, e))?,
    };
    let context = meta_usize(md, keys::CONTEXT_LENGTH)?;
    let max_seq_length = match md.get(keys::MAX_SEQ_LENGTH) {
        None => context,
        Some(_) => meta_usize(md, keys::MAX_SEQ_LENGTH)?,
    };
    let cfg = ModelConfig {
        name: meta_string_or(md, keys::NAME, "unnamed")?,
        vocab_size: meta_usize(md, keys::VOCAB_SIZE)?,
        hidden_size: meta_usize(md, keys::EMBEDDING_LENGTH)?,
        num_layers: meta_usize(md, keys::BLOCK_COUNT)?,
        num_heads: meta_usize(md, keys::HEAD_COUNT)?,
        intermediate_size: meta_usize(md, keys::FEED_FORWARD_LENGTH)?,
        max_position_embeddings: context,
        type_vocab_size: meta_usize(md, keys::TYPE_VOCAB_SIZE)?,
        layer_norm_eps: eps,
        activation,
        pooling,
        normalize,
        max_seq_length,
        query_prompt: meta_string_or(md, keys::QUERY_PROMPT, "")?,
        document_prompt: meta_string_or(md, keys::DOCUMENT_PROMPT, "")?,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// Metadata for a configuration, in the order it is written.
pub fn config_to_metadata(cfg: &ModelConfig) -> Vec<(&'static str, Value)> {
    let u = |x: usize| Value::U32(x as u32);
    vec![
        (keys::ARCHITECTURE, Value::String("bert".into())),
        (keys::NAME, Value::String(cfg.name.clone())),
        (keys::FORMAT_VERSION, Value::U32(BUNDLE_FORMAT_VERSION)),
        (keys::CONTEXT_LENGTH, u(cfg.max_position_embeddings)),
        (keys::EMBEDDING_LENGTH, u(cfg.hidden_size)),
        (keys::FEED_FORWARD_LENGTH, u(cfg.intermediate_size)),
        (keys::BLOCK_COUNT, u(cfg.num_layers)),
        (keys::HEAD_COUNT, u(cfg.num_heads)),
        (keys::LAYER_NORM_EPS, Value::F32(cfg.layer_norm_eps as f32)),
        (keys::CAUSAL, Value::Bool(false)),
        (keys::POOLING_TYPE, Value::U32(cfg.pooling.gguf_id())),
        (keys::VOCAB_SIZE, u(cfg.vocab_size)),
        (keys::TYPE_VOCAB_SIZE, u(cfg.type_vocab_size)),
        (
            keys::ACTIVATION,
            Value::String(cfg.activation.name().into()),
        ),
        (keys::MAX_SEQ_LENGTH, u(cfg.max_seq_length)),
        (keys::NORMALIZE, Value::Bool(cfg.normalize)),
        (keys::QUERY_PROMPT, Value::String(cfg.query_prompt.clone())),
        (
            keys::DOCUMENT_PROMPT,
            Value::String(cfg.document_prompt.clone()),
        ),
    ]
}
