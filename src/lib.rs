//! Cairn: semantic search that runs in the visitor's browser.
//!
//! The crate is one library used on both sides of a deployment: the native indexer (the
//! `cairn` command line, behind the `cli` feature) and the browser engine (compiled to
//! WebAssembly). Both embed text with the same [`Encoder`], so the vectors a browser makes
//! for a query live in the same space as the vectors the indexer made for the pages.
//!
//! See `ARCHITECTURE.md` for a walk from a corpus file to a search result.

pub mod error;
pub mod model;

#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, Result};
pub use model::{Encoder, ModelConfig, Pooling, Quant, Role};
