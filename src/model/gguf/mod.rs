//! The model bundle: one GGUF file holding weights, tokenizer and configuration.
//!
//! Tensor names and the `bert.*` metadata keys follow llama.cpp's conventions for the `bert`
//! architecture, so other GGUF tools can read the weights. The tokenizer is stored whole under
//! the GGUF spec's `tokenizer.huggingface.json` key. Cairn's own keys live under `cairn.*`:
//! the bundle format version, the sentence-transformers settings llama.cpp has no key for
//! (prompts, maximum sequence length, normalisation) and a SHA-256 of the tensor data, which
//! is checked on load and serves as the model's fingerprint.
//!
//! One file per job: [`layout`] (versions, keys, names, shapes, configuration metadata),
//! [`quant`] (the quantization recipe), [`reader`], [`writer`] and [`vocab`] (the tokenizer's
//! vocabulary as lines). Everything is re-exported here, so callers name `gguf::read_bundle`.

pub mod layout;
pub mod quant;
pub mod reader;
pub mod vocab;
pub mod writer;

pub use crate::digest::hex;
pub use layout::{
    config_from_metadata, config_to_metadata, expected_tensors, flat_table_rows, is_flat_table,
    keys, names, BUNDLE_FORMAT_VERSION, MIN_BUNDLE_FORMAT_VERSION,
};
pub use quant::{widen_q5_0, Quant};
pub use reader::{read_bundle, Bundle};
pub use vocab::{join_vocab, split_vocab};
pub use writer::write_bundle;
