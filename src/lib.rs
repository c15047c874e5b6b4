//! Cairn: semantic search that runs in the visitor's browser.
//!
//! The crate is one library used on both sides of a deployment: the native indexer (the
//! `cairn` command line, behind the `cli` feature) and the browser engine (compiled to
//! WebAssembly). Both embed text with the same [`Encoder`], so the vectors a browser makes
//! for a query live in the same space as the vectors the indexer made for the pages.
//!
//! See `ARCHITECTURE.md` for a walk from a corpus file to a search result.

pub mod clock;
pub mod digest;
pub mod error;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod index;
#[cfg(feature = "ingest")]
pub mod ingest;
#[cfg(feature = "encoder")]
pub mod model;
pub mod search;

#[cfg(target_arch = "wasm32")]
pub mod web;

pub use cairn_kernels as kernels;
pub use error::{Error, Result};
pub use index::{Index, Passage};
#[cfg(feature = "encoder")]
pub use model::{Encoder, ModelConfig, Pooling, Quant, Role};
pub use search::{Hit, Mode, Searcher, Why};
