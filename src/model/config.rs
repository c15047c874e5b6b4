//! BERT hyper-parameters, pooling and prompts: everything the encoder needs besides weights.
//!
//! In a bundle these live as GGUF metadata (see [`super::gguf`]); at conversion time they are
//! read from a sentence-transformers folder.

use serde::{Deserialize, Serialize};

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Average of the token vectors under the attention mask.
    Mean,
    /// The vector of the first (`[CLS]`) token.
    Cls,
    /// Element-wise maximum over the tokens under the attention mask.
    Max,
}

impl Pooling {
    /// llama.cpp's `LLAMA_POOLING_TYPE_*` number, as stored in `bert.pooling_type`.
    /// llama.cpp has no max pooling; Cairn records it as 101 (outside llama.cpp's range).
    pub fn gguf_id(self) -> u32 {
        match self {
            Pooling::Mean => 1,
            Pooling::Cls => 2,
            Pooling::Max => 101,
        }
    }

    pub fn from_gguf_id(id: u32) -> Option<Self> {
        match id {
            1 => Some(Pooling::Mean),
            2 => Some(Pooling::Cls),
            101 => Some(Pooling::Max),
            _ => None,
        }
    }
}

impl std::str::FromStr for Pooling {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            "max" => Ok(Pooling::Max),
            _ => Err(crate::Error::InvalidArgument(format!(
                "unknown pooling `{s}`; use mean, cls or max"
            ))),
        }
    }
}

/// The activation of the feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// Exact GELU (`erf`), Hugging Face's `gelu`.
    Gelu,
    /// The tanh approximation, `gelu_new` / `gelu_pytorch_tanh`.
    GeluTanh,
    Relu,
}

impl Activation {
    pub fn from_hf(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_pytorch_tanh",
            Activation::Relu => "relu",
        }
    }
}

/// Everything about a BERT-family sentence encoder except its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// A human-readable name (`sentence-transformers/all-MiniLM-L6-v2`).
    pub name: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    /// Rows of the position-embedding table (BERT's `max_position_embeddings`).
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub activation: Activation,
    pub pooling: Pooling,
    /// Whether the source model ends in a `Normalize` module. Cairn's encoder always returns
    /// unit vectors (search scores are dot products); the flag is kept for fidelity.
    pub normalize: bool,
    /// Inputs are truncated to this many tokens, special tokens included.
    pub max_seq_length: usize,
    /// Text put before a query (`"query: "` for e5, an instruction for bge), maybe empty.
    pub query_prompt: String,
    /// Text put before a document, maybe empty.
    pub document_prompt: String,
}

/// Longest position table a bundle may declare (BERT's is 512; long-context encoders 8,192).
pub const MAX_POSITIONS: usize = 1 << 16;
/// Most values one tensor of a bundle may hold: 2^28 (1 GiB in f32), far above any sentence
/// encoder's tables, and small enough that its size in bytes fits a 32-bit `usize`.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 28;

impl ModelConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads.max(1)
    }

    /// Checks internal consistency, so that a corrupt bundle fails here and not in a kernel.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |what: &str| Err(crate::Error::UnsupportedBundle(what.to_string()));
        if self.hidden_size == 0 || self.num_heads == 0 || self.num_layers == 0 {
            return bad("hidden size, head count and layer count must be positive");
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return bad("hidden size is not a multiple of the head count");
        }
        if self.hidden_size > 8192 || self.intermediate_size > 65536 || self.num_layers > 128 {
            return bad("model dimensions are implausibly large for a sentence encoder");
        }
        if self.vocab_size == 0 || self.vocab_size > 1_000_000 {
            return bad("vocabulary size out of range");
        }
        if self.max_seq_length < 2 || self.max_seq_length > self.max_position_embeddings {
            return bad("max sequence length must be between 2 and the position-table size");
        }
        if self.type_vocab_size == 0 || self.type_vocab_size > 16 {
            return bad("token-type vocabulary size out of range");
        }
        if self.max_position_embeddings > MAX_POSITIONS {
            return bad("position table implausibly long for a sentence encoder");
        }
        // Every table's element count, in checked arithmetic, under a bound that keeps its
        // bytes addressable with a 32-bit `usize` (wasm32): a product that wraps there would
        // let a crafted bundle read past a tensor's storage.
        let h = self.hidden_size;
        for (rows, what) in [
            (self.vocab_size, "word-embedding table"),
            (self.max_position_embeddings, "position table"),
            (self.type_vocab_size, "token-type table"),
            (self.intermediate_size, "feed-forward matrix"),
        ] {
            if rows.checked_mul(h).is_none_or(|n| n > MAX_TENSOR_ELEMENTS) {
                return bad(&format!("{what} of {rows} x {h} values is too large"));
            }
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps < 1.0) {
            return bad("layer-norm epsilon out of range");
        }
        Ok(())
    }
}
