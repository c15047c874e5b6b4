//! The encoder: text in, unit vector out, the same natively and in the browser.

pub mod bert;
pub mod config;
#[cfg(not(target_arch = "wasm32"))]
pub mod convert;
pub mod gguf;
#[cfg(not(target_arch = "wasm32"))]
pub mod onnx;
pub mod pool;
#[cfg(not(target_arch = "wasm32"))]
pub mod quantize;

use candle_core::{Device, Tensor};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

pub use config::{Activation, ModelConfig, Pooling};
pub use gguf::{Quant, BUNDLE_FORMAT_VERSION};

use crate::{Error, Result};

/// Which side of a search a text is on: models such as e5 and bge prefix them differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Query,
    Document,
}

impl std::str::FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "query" => Ok(Role::Query),
            "document" | "doc" | "passage" => Ok(Role::Document),
            _ => Err(Error::InvalidArgument(format!(
                "unknown role `{s}`; use `query` or `document`"
            ))),
        }
    }
}

/// Texts per forward pass: large enough to keep the matmuls busy, small enough that a batch
/// of 256-token passages stays within a browser tab's memory.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// A sentence encoder loaded from a model bundle.
pub struct Encoder {
    config: ModelConfig,
    tokenizer: Tokenizer,
    /// The same tokenizer without truncation, built on the first [`Encoder::token_count`]:
    /// counting must see a whole long section, or splitting it could never trigger.
    counter: std::sync::OnceLock<Tokenizer>,
    model: bert::Bert,
    quant: String,
    fingerprint: String,
    /// The bundle's format version.
    bundle_format: u32,
    device: Device,
}

impl Encoder {
    /// Loads a bundle written by `cairn model convert`. The bytes are validated (magic,
    /// version, checksum, every tensor's presence and shape) before use.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_bundle(gguf::read_bundle(bytes)?)
    }

    /// Builds the encoder from a bundle already read and checked by [`gguf::read_bundle`]
    /// (its tensors are consumed; [`gguf::Bundle::duplicate`] first to keep them for a GPU
    /// upload without reading the bytes again).
    pub fn from_bundle(bundle: gguf::Bundle) -> Result<Self> {
        Self::load(bundle, None)
    }

    /// Like [`Encoder::from_bytes`], but every linear layer records the mean square of its
    /// inputs per column into `stats` (a calibration run for quantization).
    pub fn with_activation_stats(bytes: &[u8], stats: bert::ActivationStats) -> Result<Self> {
        Self::load(gguf::read_bundle(bytes)?, Some(stats))
    }

    fn load(bundle: gguf::Bundle, stats: Option<bert::ActivationStats>) -> Result<Self> {
        let tokenizer = build_tokenizer(&bundle.tokenizer_json, &bundle.config)?;
        let mut weights = bert::Weights::new(bundle.tensors);
        if let Some(stats) = stats {
            weights = weights.with_stats(stats);
        }
        let model = bert::Bert::load(&mut weights, &bundle.config)?;
        Ok(Self {
            config: bundle.config,
            tokenizer,
            counter: std::sync::OnceLock::new(),
            model,
            quant: bundle.quant,
            fingerprint: bundle.fingerprint,
            bundle_format: bundle.format_version,
            device: Device::Cpu,
        })
    }

    /// Times `candidates` on this model's first layer with 32 rows, three timed runs each
    /// after 40 ms of warm-up ([`crate::kernels::fastest`]): those this build can run,
    /// fastest first, each with its time in milliseconds from `clock`. Empty for a model the int8 kernels do not run.
    /// The browser engine calls it at load to choose between its two relaxed-SIMD kernels.
    pub fn time_kernels(
        &self,
        candidates: &[crate::kernels::Kernel],
        clock: &dyn Fn() -> f64,
    ) -> Vec<(crate::kernels::Kernel, f64)> {
        match self.model.first_packed() {
            Some(ws) => crate::kernels::fastest(candidates, &ws, 32, 3, 40.0, clock),
            None => Vec::new(),
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Length of the vectors this encoder returns.
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// The quantization the bundle was converted with (`q8_0`, `q4_0`, ...).
    pub fn quant(&self) -> &str {
        &self.quant
    }

    /// The format version of the bundle this encoder was loaded from.
    pub fn bundle_format(&self) -> u32 {
        self.bundle_format
    }

    /// SHA-256 of the bundle's weights (hex). An index records it to refuse other models.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The prompt put before texts of this role.
    pub fn prompt(&self, role: Role) -> &str {
        match role {
            Role::Query => &self.config.query_prompt,
            Role::Document => &self.config.document_prompt,
        }
    }

    /// `text` as the model reads it in `role`: the role's prompt, then the text. The one
    /// place a prompt is applied (embedding, tokenizing for other backends, counting).
    fn with_prompt(&self, text: &str, role: Role) -> String {
        format!("{}{text}", self.prompt(role))
    }

    /// Number of tokens `text` becomes for this role before truncation (the prompt and
    /// special tokens included), so it can exceed the model's `max_seq_length`: what the
    /// ingest's splitting asks to cut long sections within the budget. The model itself
    /// reads at most `max_seq_length` of them ([`Encoder::tokenize`]).
    pub fn token_count(&self, text: &str, role: Role) -> Result<usize> {
        let input = self.with_prompt(text, role);
        let counter = match self.counter.get() {
            Some(c) => c,
            None => {
                let mut c = self.tokenizer.clone();
                c.with_truncation(None)
                    .map_err(|e| Error::Tokenizer(format!("cannot unset truncation: {e}")))?;
                self.counter.get_or_init(|| c)
            }
        };
        let enc = counter
            .encode(input, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().len())
    }

    /// Embeds one search query: cut to [`crate::search::MAX_QUERY_BYTES`] as the search
    /// cuts it, then embedded as [`Role::Query`]. What the CLI, the browser engine and the
    /// GPU path's CPU fallback all call.
    pub fn embed_query(&self, query: &str) -> Result<Vec<f32>> {
        self.embed_queries(&[query])?
            .pop()
            .ok_or_else(|| Error::InvalidArgument("the encoder returned no vector".into()))
    }

    /// [`Encoder::embed_query`] of several queries, in batches (`cairn eval`).
    pub fn embed_queries(&self, queries: &[&str]) -> Result<Vec<Vec<f32>>> {
        let cut: Vec<&str> = queries
            .iter()
            .map(|q| crate::search::truncate_query(q))
            .collect();
        self.embed(&cut, Role::Query)
    }

    /// Embeds `texts` as `role`, returning one L2-normalised vector per text, in order.
    ///
    /// Texts are sorted by length and run in batches of [`DEFAULT_BATCH_SIZE`], each padded
    /// to its longest member, so short texts do not pay for long ones.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S], role: Role) -> Result<Vec<Vec<f32>>> {
        self.embed_batched(texts, role, DEFAULT_BATCH_SIZE)
    }

    /// [`Encoder::embed`] with an explicit batch size.
    pub fn embed_batched<S: AsRef<str>>(
        &self,
        texts: &[S],
        role: Role,
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let batch_size = batch_size.max(1);
        let inputs: Vec<String> = texts
            .iter()
            .map(|t| self.with_prompt(t.as_ref(), role))
            .collect();
        // Sort by character length: a cheap proxy for token length.
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(inputs[i].len()));
        let mut out = vec![Vec::new(); inputs.len()];
        for chunk in order.chunks(batch_size) {
            let batch: Vec<&str> = chunk.iter().map(|&i| inputs[i].as_str()).collect();
            let vectors = self.embed_one_batch(&batch)?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// Tokenizes one batch as the model sees it: the role's prompt applied, truncated at the
    /// model's maximum, padded to the batch's longest text. Other backends (the GPU path)
    /// start from this, so every backend sees the same tokens.
    pub fn tokenize(&self, texts: &[&str], role: Role) -> Result<TokenBatch> {
        let inputs: Vec<String> = texts.iter().map(|t| self.with_prompt(t, role)).collect();
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        self.tokenize_inputs(&refs)
    }

    fn tokenize_inputs(&self, batch: &[&str]) -> Result<TokenBatch> {
        let encodings = self
            .tokenizer
            .encode_batch(batch.to_vec(), true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let seq = encodings.first().map(|e| e.len()).unwrap_or(0);
        let n = encodings.len();
        let mut ids = Vec::with_capacity(n * seq);
        let mut type_ids = Vec::with_capacity(n * seq);
        let mut mask = Vec::with_capacity(n * seq);
        for e in &encodings {
            if e.len() != seq {
                return Err(Error::Tokenizer(
                    "batch padding produced ragged rows".into(),
                ));
            }
            ids.extend(
                e.get_ids()
                    .iter()
                    .map(|&id| id.min(self.config.vocab_size as u32 - 1)),
            );
            type_ids.extend(
                e.get_type_ids()
                    .iter()
                    .map(|&t| t.min(self.config.type_vocab_size as u32 - 1)),
            );
            mask.extend_from_slice(e.get_attention_mask());
        }
        Ok(TokenBatch {
            batch: n,
            seq,
            ids,
            type_ids,
            mask,
        })
    }

    fn embed_one_batch(&self, batch: &[&str]) -> Result<Vec<Vec<f32>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let t = self.tokenize_inputs(batch)?;
        let (n, seq) = (t.batch, t.seq);
        let ids = Tensor::from_vec(t.ids, (n, seq), &self.device)?;
        let types = Tensor::from_vec(t.type_ids, (n, seq), &self.device)?;
        let mask = Tensor::from_vec(t.mask, (n, seq), &self.device)?;
        let hidden = self.model.forward(&ids, &types, &mask)?;
        let pooled = pool::pool(&hidden, &mask, self.config.pooling)?;
        Ok(pooled.to_vec2::<f32>()?)
    }
}

/// A tokenized batch: `batch x seq` row-major token ids, token-type ids and attention mask
/// (1 for real tokens, 0 for padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    pub batch: usize,
    pub seq: usize,
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    pub mask: Vec<u32>,
}

/// Parses a `tokenizer.json`, the one way every caller does. The `tokenizers` crate panics
/// (`expect`) on some malformed input instead of returning an error: on JSON that is not
/// well formed inside its decoder section, and on a `Precompiled` normalizer whose character
/// map does not parse (both found by the `bundle_reader` fuzzer). In wasm a panic traps the
/// module, so the text is checked first: it must be well-formed JSON, and SentencePiece's
/// `Precompiled` normalizer (never used by the BERT family Cairn runs) is refused.
pub fn parse_tokenizer(json: &str) -> Result<Tokenizer> {
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| Error::Tokenizer(format!("the tokenizer is not valid JSON: {e}")))?;
    fn has_type(v: &serde_json::Value, ty: &str) -> bool {
        match v {
            serde_json::Value::Object(m) => {
                m.get("type").and_then(|t| t.as_str()) == Some(ty)
                    || m.values().any(|x| has_type(x, ty))
            }
            serde_json::Value::Array(a) => a.iter().any(|x| has_type(x, ty)),
            _ => false,
        }
    }
    if has_type(&value["normalizer"], "Precompiled") {
        return Err(Error::Tokenizer(
            "the tokenizer uses SentencePiece's Precompiled normalizer, which Cairn does not \
             support (it runs BERT-family WordPiece tokenizers)"
                .into(),
        ));
    }
    check_templates(&value["post_processor"])?;
    json.parse()
        .map_err(|e| Error::Tokenizer(format!("cannot load tokenizer: {e}")))
}

/// `tokenizers` loads a `TemplateProcessing` post-processor without the checks its builder
/// makes, then panics while encoding when a template names a special token it does not
/// define, or puts the second sequence in the single-text template (found by the fuzzer).
fn check_templates(v: &serde_json::Value) -> Result<()> {
    use serde_json::Value;
    let bad = |why: String| {
        Err(Error::Tokenizer(format!(
            "the tokenizer's post-processor {why}"
        )))
    };
    match v {
        Value::Array(items) => items.iter().try_for_each(check_templates),
        Value::Object(m) => {
            if m.get("type").and_then(Value::as_str) == Some("TemplateProcessing") {
                let specials = m.get("special_tokens").and_then(Value::as_object);
                for (name, template) in [("single", m.get("single")), ("pair", m.get("pair"))] {
                    for piece in template
                        .and_then(Value::as_array)
                        .map(Vec::as_slice)
                        .unwrap_or(&[])
                    {
                        if let Some(tok) = piece.get("SpecialToken") {
                            let id = tok.get("id").and_then(Value::as_str).unwrap_or("");
                            let known = specials.and_then(|s| s.get(id)).is_some_and(|t| {
                                let ids = t.get("ids").and_then(Value::as_array);
                                let toks = t.get("tokens").and_then(Value::as_array);
                                matches!((ids, toks), (Some(a), Some(b)) if a.len() == b.len())
                            });
                            if !known {
                                return bad(format!(
                                    "uses special token {id:?}, which it does not define"
                                ));
                            }
                        }
                        if name == "single"
                            && piece
                                .get("Sequence")
                                .and_then(|s| s.get("id"))
                                .and_then(Value::as_str)
                                == Some("B")
                        {
                            return bad("puts a second sequence in the single-text template".into());
                        }
                    }
                }
            }
            m.values().try_for_each(check_templates)
        }
        _ => Ok(()),
    }
}

/// Loads the bundle's tokenizer and sets the padding and truncation Cairn needs: pad to the
/// longest text in a batch (not to a fixed length, as some exported tokenizers do) and
/// truncate at the model's maximum sequence length, as sentence-transformers does.
pub fn build_tokenizer(json: &str, cfg: &ModelConfig) -> Result<Tokenizer> {
    let mut tok = parse_tokenizer(json)?;
    let pad_id = tok.token_to_id("[PAD]").unwrap_or(0);
    let pad_token = tok
        .id_to_token(pad_id)
        .unwrap_or_else(|| "[PAD]".to_string());
    tok.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        pad_id,
        pad_token,
        ..Default::default()
    }));
    tok.with_truncation(Some(TruncationParams {
        max_length: cfg.max_seq_length,
        ..Default::default()
    }))
    .map_err(|e| Error::Tokenizer(format!("cannot set truncation: {e}")))?;
    Ok(tok)
}
