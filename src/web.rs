//! The only `#[wasm_bindgen]` code: a thin boundary of bytes in, results out.
//!
//! Every fallible call returns `Result<_, JsError>`, so bad input becomes a JavaScript
//! exception with a readable message instead of a trapped module.

use wasm_bindgen::prelude::*;

use crate::{Encoder, Role};

/// A sentence encoder for JavaScript: construct from the bundle's bytes, embed text.
#[wasm_bindgen(js_name = Encoder)]
pub struct WasmEncoder {
    inner: Encoder,
}

#[wasm_bindgen(js_class = Encoder)]
impl WasmEncoder {
    /// Loads a model bundle (the bytes of a `.gguf` file made by `cairn model convert`).
    #[wasm_bindgen(constructor)]
    pub fn new(bundle: &[u8]) -> Result<WasmEncoder, JsError> {
        let inner = Encoder::from_bytes(bundle).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Self { inner })
    }

    /// Embeds one text as a query (`role = "query"`) or a document (`"document"`); returns a
    /// unit-length `Float32Array`.
    pub fn embed(&self, text: &str, role: &str) -> Result<Vec<f32>, JsError> {
        let role: Role = role
            .parse()
            .map_err(|e: crate::Error| JsError::new(&e.to_string()))?;
        let mut v = self
            .inner
            .embed(&[text], role)
            .map_err(|e| JsError::new(&e.to_string()))?;
        v.pop()
            .ok_or_else(|| JsError::new("the encoder returned no vector"))
    }

    /// Length of the vectors.
    #[wasm_bindgen(getter)]
    pub fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// SHA-256 of the bundle's weights.
    #[wasm_bindgen(getter)]
    pub fn fingerprint(&self) -> String {
        self.inner.fingerprint().to_string()
    }

    /// The quantization of the bundle (`q8_0`, `q4_0`, ...).
    #[wasm_bindgen(getter)]
    pub fn quant(&self) -> String {
        self.inner.quant().to_string()
    }
}
