//! The entry manifest of a deployed index folder: names the content-hashed index and model
//! files, so a page (or `cairn search`) needs only the folder's URL.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest's file name inside an index folder.
pub const MANIFEST_NAME: &str = "cairn-entry.json";
/// Version of the manifest's own layout.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// File name of the index, e.g. `index.0123abcd4567ef89.cidx`.
    pub index: String,
    pub index_bytes: u64,
    /// File name of the model bundle, e.g. `model.0123abcd4567ef89.gguf`.
    pub model: String,
    pub model_bytes: u64,
    pub model_fingerprint: String,
    pub model_name: String,
    /// The bundle's quantization (`q8_0`, `q4_0`, ...).
    #[serde(default)]
    pub model_quant: String,
    pub passages: usize,
    pub dim: usize,
}

/// `stem.<first 16 hex digits of SHA-256>.ext`: a new build gets new names, so caches
/// keyed by name never serve stale files.
pub fn hashed_name(stem: &str, ext: &str, bytes: &[u8]) -> String {
    let h = crate::model::gguf::hex(&Sha256::digest(bytes));
    format!("{stem}.{}.{ext}", &h[..16])
}
