//! The model bundle: one GGUF file holding weights, tokenizer and configuration.
//!
//! Tensor names and the `bert.*` metadata keys follow llama.cpp's conventions for the `bert`
//! architecture, so other GGUF tools can read the weights. The tokenizer is stored whole under
//! the GGUF spec's `tokenizer.huggingface.json` key. Cairn's own keys live under `cairn.*`:
//! the bundle format version, the sentence-transformers settings llama.cpp has no key for
//! (prompts, maximum sequence length, normalisation) and a SHA-256 of the tensor data, which
//! is checked on load and serves as the model's fingerprint.

use std::collections::HashMap;
use std::io::Cursor;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;
use sha2::{Digest, Sha256};

use super::config::{Activation, ModelConfig, Pooling};
use crate::{Error, Result};

/// The newest bundle format version this build writes and reads. Version 2 added the flat
/// word-embedding table ([`flat_table_rows`]) and the tokenizer's vocabulary as lines
/// ([`split_vocab`]).
pub const BUNDLE_FORMAT_VERSION: u32 = 2;
/// The oldest bundle format version this build reads.
pub const MIN_BUNDLE_FORMAT_VERSION: u32 = 1;

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

/// Weight storage types a bundle can be converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quant {
    F32,
    F16,
    Q8_0,
    Q5_0,
    Q5_1,
    Q4_0,
    Q4_1,
    /// k-quants work on 256-wide super-blocks: tensors whose rows are not a multiple of 256
    /// (most of MiniLM, whose rows are 384 wide) fall back to the nearest 32-block type.
    Q6K,
    Q5K,
    Q4K,
    /// 3.4 bits a weight. Useful for the word-embedding table, stored flat
    /// ([`flat_table_rows`]); matrices fall back to `q4_0`.
    Q3K,
    /// The small bundle's mix (about 4.5 bits a weight on average): the word-embedding table
    /// as `q3_k` (stored flat), every encoder weight matrix as `q5_0`, the position and
    /// token-type tables as `q8_0` (see `convert::default_quant`). As a single tensor's type
    /// it means `q5_0`.
    Q4Mix,
}

impl Quant {
    pub const ALL: [Quant; 12] = [
        Quant::F32,
        Quant::F16,
        Quant::Q8_0,
        Quant::Q5_0,
        Quant::Q5_1,
        Quant::Q4_0,
        Quant::Q4_1,
        Quant::Q6K,
        Quant::Q5K,
        Quant::Q4K,
        Quant::Q3K,
        Quant::Q4Mix,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Quant::F32 => "f32",
            Quant::F16 => "f16",
            Quant::Q8_0 => "q8_0",
            Quant::Q5_0 => "q5_0",
            Quant::Q5_1 => "q5_1",
            Quant::Q4_0 => "q4_0",
            Quant::Q4_1 => "q4_1",
            Quant::Q6K => "q6_k",
            Quant::Q5K => "q5_k",
            Quant::Q4K => "q4_k",
            Quant::Q3K => "q3_k",
            Quant::Q4Mix => "q4_mix",
        }
    }

    /// The storage type for a weight matrix whose rows are `row_len` wide.
    pub fn dtype_for_row(self, row_len: usize) -> GgmlDType {
        let (preferred, fallback) = match self {
            Quant::F32 => (GgmlDType::F32, GgmlDType::F32),
            Quant::F16 => (GgmlDType::F16, GgmlDType::F16),
            Quant::Q8_0 => (GgmlDType::Q8_0, GgmlDType::F16),
            Quant::Q5_0 => (GgmlDType::Q5_0, GgmlDType::F16),
            Quant::Q5_1 => (GgmlDType::Q5_1, GgmlDType::F16),
            Quant::Q4_0 => (GgmlDType::Q4_0, GgmlDType::F16),
            Quant::Q4_1 => (GgmlDType::Q4_1, GgmlDType::F16),
            Quant::Q6K => (GgmlDType::Q6K, GgmlDType::Q8_0),
            Quant::Q5K => (GgmlDType::Q5K, GgmlDType::Q5_0),
            Quant::Q4K => (GgmlDType::Q4K, GgmlDType::Q4_0),
            Quant::Q3K => (GgmlDType::Q3K, GgmlDType::Q4_0),
            Quant::Q4Mix => (GgmlDType::Q5_0, GgmlDType::F16),
        };
        if row_len.is_multiple_of(preferred.block_size()) {
            preferred
        } else if row_len.is_multiple_of(fallback.block_size()) {
            fallback
        } else {
            GgmlDType::F16
        }
    }

    /// llama.cpp's `general.file_type` number for the mostly-this-type file.
    pub fn llama_file_type(self) -> u32 {
        match self {
            Quant::F32 => 0,
            Quant::F16 => 1,
            Quant::Q4_0 => 2,
            Quant::Q4_1 => 3,
            Quant::Q8_0 => 7,
            // Most weight matrices are q5_0.
            Quant::Q5_0 | Quant::Q4Mix => 8,
            Quant::Q5_1 => 9,
            Quant::Q4K => 15,
            Quant::Q3K => 12,
            Quant::Q5K => 17,
            Quant::Q6K => 18,
        }
    }
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

/// A `Q5_0` matrix rewritten as `Q8_0` with exactly the same values: a `Q5_0` level
/// (-16..=15 times the block's f16 scale) is a `Q8_0` level with the same scale. The encoder
/// does this on load, so `Q5_0` weights (small on the wire) run in the `Q8_0` kernels that
/// have SIMD versions (candle's `Q5_0` dot product is scalar) and give the same products.
pub fn widen_q5_0(t: &QTensor) -> Result<QTensor> {
    const Q5_0_BYTES: usize = 22;
    let data = t.data()?;
    let blocks = t.shape().elem_count() / 32;
    if t.dtype() != GgmlDType::Q5_0 || data.len() != blocks * Q5_0_BYTES {
        return Err(Error::CorruptBundle(format!(
            "expected {} bytes of Q5_0 blocks, found {} bytes of {:?}",
            blocks * Q5_0_BYTES,
            data.len(),
            t.dtype()
        )));
    }
    let mut out = Vec::with_capacity(blocks * 34);
    for block in data.chunks_exact(Q5_0_BYTES) {
        // f16 scale, the 32 fifth bits, 16 bytes of low nibbles (value j low, j + 16 high).
        out.extend_from_slice(&block[..2]);
        let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
        let qs = &block[6..];
        for j in 0..32 {
            let nibble = if j < 16 { qs[j] & 0xF } else { qs[j - 16] >> 4 };
            let level = (nibble | (((qh >> j) & 1) as u8) << 4) as i8 - 16;
            out.push(level as u8);
        }
    }
    let storage = candle_core::quantized::QStorage::from_data(
        std::borrow::Cow::Owned(out),
        &Device::Cpu,
        GgmlDType::Q8_0,
    )?;
    Ok(QTensor::new(storage, t.shape().clone())?)
}

/// Whether `t` is a word-embedding table stored flat (see [`flat_table_rows`]).
pub fn is_flat_table(cfg: &ModelConfig, t: &QTensor) -> bool {
    flat_table_rows(cfg.vocab_size, cfg.hidden_size, t.dtype())
        .is_some_and(|rows| t.shape().dims() == [rows, t.dtype().block_size()])
}

impl std::str::FromStr for Quant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.to_ascii_lowercase().replace('-', "_");
        let norm = match norm.as_str() {
            "q4k" | "q4_k_m" | "q4_k_s" => "q4_k".to_string(),
            "q5k" | "q5_k_m" | "q5_k_s" => "q5_k".to_string(),
            "q6k" => "q6_k".to_string(),
            "q3k" | "q3_k_m" | "q3_k_s" => "q3_k".to_string(),
            _ => norm,
        };
        Quant::ALL
            .into_iter()
            .find(|q| q.name() == norm)
            .ok_or_else(|| {
                let known: Vec<&str> = Quant::ALL.iter().map(|q| q.name()).collect();
                Error::InvalidArgument(format!(
                    "unknown quantization `{s}`; choose one of {}",
                    known.join(", ")
                ))
            })
    }
}

impl std::fmt::Display for Quant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed and validated bundle: configuration, tokenizer and weights.
pub struct Bundle {
    pub config: ModelConfig,
    pub tokenizer_json: String,
    /// Name of the quantization the bundle was converted with (`q8_0`, ...).
    pub quant: String,
    /// SHA-256 of the tensor data, hex: identifies the weights.
    pub fingerprint: String,
    /// The bundle's `cairn.format_version`.
    pub format_version: u32,
    pub tensors: HashMap<String, QTensor>,
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

fn meta<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<&'a Value> {
    md.get(key).ok_or_else(|| Error::Metadata {
        key: key.to_string(),
        problem: "missing".to_string(),
    })
}

fn meta_err(key: &str, e: impl std::fmt::Display) -> Error {
    Error::Metadata {
        key: key.to_string(),
        problem: e.to_string(),
    }
}

fn meta_usize(md: &HashMap<String, Value>, key: &str) -> Result<usize> {
    let v = meta(md, key)?;
    let n = match v {
        Value::U64(x) => *x,
        other => other.to_u32().map_err(|e| meta_err(key, e))? as u64,
    };
    usize::try_from(n).map_err(|e| meta_err(key, e))
}

fn meta_string(md: &HashMap<String, Value>, key: &str) -> Result<String> {
    meta(md, key)?
        .to_string()
        .cloned()
        .map_err(|e| meta_err(key, e))
}

fn meta_string_or(md: &HashMap<String, Value>, key: &str, default: &str) -> Result<String> {
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

/// The GGUF magic, little-endian "GGUF".
const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// Parses and validates a bundle. Every problem is a typed [`Error`]; nothing here panics on
/// hostile input: shapes are checked against the configuration before any tensor is read.
pub fn read_bundle(bytes: &[u8]) -> Result<Bundle> {
    if bytes.len() < 8 {
        return Err(Error::NotABundle(format!(
            "only {} bytes; a GGUF file starts with an 8-byte header",
            bytes.len()
        )));
    }
    if &bytes[..4] != GGUF_MAGIC {
        return Err(Error::NotABundle(format!(
            "wrong magic {:02x?} (expected \"GGUF\"); is this the index file or a download error page?",
            &bytes[..4]
        )));
    }
    check_alignment(bytes)?;
    let mut cursor = Cursor::new(bytes);
    let content = gguf_file::Content::read(&mut cursor)
        .map_err(|e| Error::CorruptBundle(format!("GGUF header: {e}")))?;
    let md = &content.metadata;

    let arch = meta_string(md, keys::ARCHITECTURE)?;
    if arch != "bert" {
        return Err(Error::UnsupportedBundle(format!(
            "architecture `{arch}`; Cairn runs BERT-family encoders (`bert`)"
        )));
    }
    let version =
        match md.get(keys::FORMAT_VERSION) {
            None => return Err(Error::UnsupportedBundle(
                "no `cairn.format_version`: this GGUF was not written by `cairn model convert` \
                 (it lacks the tokenizer and pooling settings Cairn needs)"
                    .into(),
            )),
            Some(v) => v.to_u32().map_err(|e| meta_err(keys::FORMAT_VERSION, e))?,
        };
    if !(MIN_BUNDLE_FORMAT_VERSION..=BUNDLE_FORMAT_VERSION).contains(&version) {
        return Err(Error::UnsupportedBundle(format!(
            "bundle format version {version}; this build of Cairn reads versions \
             {MIN_BUNDLE_FORMAT_VERSION} to {BUNDLE_FORMAT_VERSION}"
        )));
    }
    let config = config_from_metadata(md)?;
    let tokenizer_json = match (md.get(keys::TOKENIZER_HF_JSON), version) {
        (None, 2..) if md.contains_key(keys::TOKENIZER_VOCAB) => join_vocab(
            &meta_string(md, keys::TOKENIZER_JSON_NO_VOCAB)?,
            &meta_string(md, keys::TOKENIZER_VOCAB)?,
        )?,
        _ => meta_string(md, keys::TOKENIZER_HF_JSON)?,
    };
    let quant = meta_string_or(md, keys::QUANT, "unknown")?;
    let fingerprint = meta_string(md, keys::WEIGHTS_SHA256)?;

    let data_start = usize::try_from(content.tensor_data_offset)
        .ok()
        .filter(|&o| o <= bytes.len())
        .ok_or_else(|| {
            Error::CorruptBundle("tensor data starts past the end of the file".into())
        })?;
    let actual = hex(&Sha256::digest(&bytes[data_start..]));
    if actual != fingerprint {
        return Err(Error::CorruptBundle(format!(
            "weights checksum mismatch (recorded {}, computed {}): the file was cut short or altered",
            short(&fingerprint),
            short(&actual)
        )));
    }

    let mut tensors = HashMap::new();
    for (name, shape) in expected_tensors(&config) {
        let info = content
            .tensor_infos
            .get(&name)
            .ok_or_else(|| Error::MissingTensor(name.clone()))?;
        let flat = name == names::TOKEN_EMBD
            && version >= 2
            && flat_table_rows(config.vocab_size, config.hidden_size, info.ggml_dtype)
                .is_some_and(|rows| info.shape.dims() == [rows, info.ggml_dtype.block_size()]);
        if info.shape.dims() != shape.as_slice() && !flat {
            return Err(Error::WrongShape {
                name,
                expected: shape,
                found: info.shape.dims().to_vec(),
            });
        }
        let row = *info.shape.dims().last().unwrap_or(&1);
        if !row.is_multiple_of(info.ggml_dtype.block_size()) {
            return Err(Error::CorruptBundle(format!(
                "tensor `{name}` rows of {row} do not fit {:?} blocks",
                info.ggml_dtype
            )));
        }
        // The tensor's bytes, in checked 64-bit arithmetic, must lie inside the file before
        // candle reads it: candle multiplies the shape in `usize`, which can wrap on wasm32
        // and leave a tensor with less storage than its shape.
        let bytes_needed = info
            .shape
            .dims()
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .map(|n| n / info.ggml_dtype.block_size() as u64)
            .and_then(|blocks| blocks.checked_mul(info.ggml_dtype.type_size() as u64));
        let end = bytes_needed
            .and_then(|b| b.checked_add(info.offset))
            .and_then(|b| b.checked_add(content.tensor_data_offset));
        if end.is_none_or(|e| e > bytes.len() as u64) {
            return Err(Error::CorruptBundle(format!(
                "tensor `{name}` ({:?} {:?}) runs past the end of the file",
                info.ggml_dtype,
                info.shape.dims()
            )));
        }
        let t = info
            .read(&mut cursor, content.tensor_data_offset, &Device::Cpu)
            .map_err(|e| Error::CorruptBundle(format!("tensor `{name}`: {e}")))?;
        tensors.insert(name, t);
    }
    Ok(Bundle {
        config,
        tokenizer_json,
        quant,
        fingerprint,
        format_version: version,
        tensors,
    })
}

/// Walks the GGUF header's metadata to check `general.alignment` before candle's reader sees
/// it: candle divides by it, so a forged 0 would panic (a trapped module in the browser).
/// Everything else in the header candle bounds-checks itself.
fn check_alignment(bytes: &[u8]) -> Result<()> {
    struct Reader<'a> {
        b: &'a [u8],
        at: usize,
        wide: bool,
    }
    let bad = |what: &str| Error::CorruptBundle(format!("GGUF header: {what}"));
    impl Reader<'_> {
        fn take(&mut self, n: u64) -> Option<&[u8]> {
            let n = usize::try_from(n).ok()?;
            let end = self.at.checked_add(n)?;
            let out = self.b.get(self.at..end)?;
            self.at = end;
            Some(out)
        }
        fn u32(&mut self) -> Option<u32> {
            Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
        }
        fn u64(&mut self) -> Option<u64> {
            Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
        }
        /// A count or string length: u32 in GGUF v1, u64 later.
        fn len(&mut self) -> Option<u64> {
            if self.wide {
                self.u64()
            } else {
                self.u32().map(u64::from)
            }
        }
        fn string(&mut self) -> Option<&[u8]> {
            let n = self.len()?;
            self.take(n)
        }
        /// Skips a value of `ty`, returning it as an integer when it is one.
        fn value(&mut self, ty: u32, depth: u32) -> Option<Option<u64>> {
            let fixed = |r: &mut Self, n: u64| {
                r.take(n).map(|b| {
                    let mut a = [0u8; 8];
                    a[..b.len()].copy_from_slice(b);
                    Some(u64::from_le_bytes(a))
                })
            };
            match ty {
                0 | 1 | 7 => fixed(self, 1),
                2 | 3 => fixed(self, 2),
                4 | 5 => fixed(self, 4),
                6 => self.take(4).map(|_| None),
                10 | 11 => fixed(self, 8),
                12 => self.take(8).map(|_| None),
                8 => self.string().map(|_| None),
                9 if depth < 4 => {
                    let elem = self.u32()?;
                    let n = self.len()?;
                    if n > (self.b.len() - self.at) as u64 {
                        return None;
                    }
                    for _ in 0..n {
                        self.value(elem, depth + 1)?;
                    }
                    Some(None)
                }
                _ => None,
            }
        }
    }
    let version = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let mut r = Reader {
        b: bytes,
        at: 8,
        wide: version >= 2,
    };
    let _tensors = r.len().ok_or_else(|| bad("truncated"))?;
    let kvs = r.len().ok_or_else(|| bad("truncated"))?;
    for _ in 0..kvs {
        let key = r
            .string()
            .ok_or_else(|| bad("truncated metadata"))?
            .to_vec();
        let ty = r.u32().ok_or_else(|| bad("truncated metadata"))?;
        let v = r.value(ty, 0).ok_or_else(|| bad("malformed metadata"))?;
        if key == b"general.alignment" {
            match v {
                Some(a) if a.is_power_of_two() && a <= 1 << 16 => {}
                _ => {
                    return Err(bad(
                        "`general.alignment` must be a power of two up to 65536",
                    ))
                }
            }
        }
    }
    Ok(())
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A WordPiece tokenizer.json split into the JSON without its vocabulary and the vocabulary
/// as lines (token `i` on line `i`), which is half the bytes of the JSON map (MiniLM: 0.23 MB
/// saved). `None` when the split would not be exact: another model type, ids that are not
/// `0..n`, or a token with a line break.
pub fn split_vocab(tokenizer_json: &str) -> Result<Option<(String, String)>> {
    let mut tok: serde_json::Value =
        serde_json::from_str(tokenizer_json).map_err(|source| Error::Json {
            what: "tokenizer.json".into(),
            source,
        })?;
    let model = &mut tok["model"];
    if model["type"] != "WordPiece" {
        return Ok(None);
    }
    let Some(vocab) = model["vocab"].as_object() else {
        return Ok(None);
    };
    let mut lines = vec![None; vocab.len()];
    for (token, id) in vocab {
        let slot = id
            .as_u64()
            .and_then(|id| usize::try_from(id).ok())
            .and_then(|id| lines.get_mut(id));
        match slot {
            Some(slot @ None) if !token.contains(['\n', '\r']) => *slot = Some(token.as_str()),
            _ => return Ok(None),
        }
    }
    let Some(lines) = lines.into_iter().collect::<Option<Vec<&str>>>() else {
        return Ok(None);
    };
    let vocab = lines.join("\n");
    model["vocab"] = serde_json::Value::Object(Default::default());
    Ok(Some((tok.to_string(), vocab)))
}

/// The inverse of [`split_vocab`].
pub fn join_vocab(json: &str, vocab: &str) -> Result<String> {
    let bad = |what: String| Error::CorruptBundle(format!("tokenizer: {what}"));
    let mut tok: serde_json::Value =
        serde_json::from_str(json).map_err(|e| bad(format!("JSON does not parse: {e}")))?;
    let map: serde_json::Map<String, serde_json::Value> = vocab
        .split('\n')
        .enumerate()
        .map(|(id, token)| (token.to_string(), id.into()))
        .collect();
    if map.len() != vocab.split('\n').count() {
        return Err(bad("the vocabulary repeats a token".into()));
    }
    match tok.get_mut("model") {
        Some(model) if model.is_object() => model["vocab"] = serde_json::Value::Object(map),
        _ => return Err(bad("no model section".into())),
    }
    Ok(tok.to_string())
}

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
    let tok = super::parse_tokenizer(tokenizer_json)?;
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
