//! The ingest module's side of the boundary (feature `ingest`, built as `cairn_ingest`
//! without the encoder): files' bytes in, one index file out. The page's worker reads each
//! dropped file, hands its bytes to [`IndexBuilder::add_file`] (the CLI's readers, see
//! [`crate::ingest::file`]), embeds the texts the builder names with the full engine, and
//! hands the vectors back to [`IndexBuilder::build`], which runs the CLI's index writer.

use std::cell::RefCell;
use std::collections::HashSet;

use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::js_err;
use crate::index::{build_index, Passage};
use crate::ingest::{passages_from_file, EmbedPlan, FileKind, MAX_FILE_BYTES};

/// Passages read from files so far, and what the model is to embed of them.
#[wasm_bindgen]
#[derive(Default)]
pub struct IndexBuilder {
    passages: Vec<Passage>,
    plan: EmbedPlan,
    ids: HashSet<String>,
}

/// What reading one file gave, for the page's list of files.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileNote {
    name: String,
    /// `indexed` or `skipped`.
    status: &'static str,
    kind: Option<FileKind>,
    passages: usize,
    /// Texts to embed (more than passages where a section is longer than the model reads).
    texts: usize,
    /// Invalid UTF-8 sequences replaced by U+FFFD.
    replaced: usize,
    /// Why it was skipped, or what was cleaned; empty when there is nothing to say.
    message: String,
}

#[wasm_bindgen]
impl IndexBuilder {
    #[wasm_bindgen(constructor)]
    pub fn new() -> IndexBuilder {
        IndexBuilder::default()
    }

    /// The largest file `addFile` reads (bytes): check `File.size` before reading one.
    #[wasm_bindgen(js_name = maxFileBytes)]
    pub fn max_file_bytes() -> f64 {
        MAX_FILE_BYTES as f64
    }

    /// Reads one file (its path as the page knows it, and its bytes) and keeps its passages.
    /// `budget` is the model's token budget, `overlap` the tokens parts of a long section
    /// share, `count(text)` the model's token count (the engine's `tokenCount`). Returns
    /// `{ name, status: "indexed" | "skipped", kind, passages, texts, replaced, message }`;
    /// a bad file is a note, never an exception (an exception means `count` failed).
    #[wasm_bindgen(js_name = addFile)]
    pub fn add_file(
        &mut self,
        name: &str,
        bytes: &[u8],
        budget: usize,
        overlap: usize,
        count: &js_sys::Function,
    ) -> Result<JsValue, JsError> {
        let mut note = FileNote {
            name: name.to_string(),
            status: "skipped",
            kind: FileKind::from_name(name),
            passages: 0,
            texts: 0,
            replaced: 0,
            message: String::new(),
        };
        let read = match passages_from_file(name, bytes) {
            Ok(r) => r,
            Err(why) => {
                note.message = why.to_string();
                return to_js(&note);
            }
        };
        if let Some(dup) = read.passages.iter().find(|p| self.ids.contains(&p.id)) {
            note.message = format!(
                "its passage {:?} repeats one read before (the same file twice, or records \
                 with the same `_id`)",
                dup.id
            );
            return to_js(&note);
        }
        let failed: RefCell<Option<String>> = RefCell::new(None);
        let counted = |t: &str| -> usize {
            match count.call1(&JsValue::NULL, &JsValue::from_str(t)) {
                Ok(v) => match v.as_f64() {
                    Some(n) if n >= 0.0 => n as usize,
                    _ => {
                        failed.replace(Some("count returned no number".into()));
                        usize::MAX
                    }
                },
                Err(e) => {
                    let msg = e
                        .dyn_ref::<js_sys::Error>()
                        .map(|e| String::from(e.message()))
                        .unwrap_or_else(|| "count failed".into());
                    failed.replace(Some(msg));
                    usize::MAX
                }
            }
        };
        let plan = read.kind.plan(&read.passages, budget, overlap, &counted);
        if let Some(msg) = failed.into_inner() {
            return Err(JsError::new(&format!("counting tokens of {name}: {msg}")));
        }
        note.status = "indexed";
        note.kind = Some(read.kind);
        note.passages = read.passages.len();
        note.texts = plan.texts.len();
        note.replaced = read.replaced;
        if read.replaced > 0 {
            note.message = format!(
                "cleaned: {} invalid UTF-8 sequence{} replaced",
                read.replaced,
                if read.replaced == 1 { "" } else { "s" }
            );
        }
        self.ids.extend(read.passages.iter().map(|p| p.id.clone()));
        self.passages.extend(read.passages);
        self.plan.append(plan);
        to_js(&note)
    }

    /// Passages kept so far.
    #[wasm_bindgen(getter)]
    pub fn passages(&self) -> usize {
        self.passages.len()
    }

    /// Texts to embed so far (a long section gives several).
    #[wasm_bindgen(getter, js_name = textCount)]
    pub fn text_count(&self) -> usize {
        self.plan.texts.len()
    }

    /// The texts to embed from `from` to `to` (end excluded, clamped to the count), each as
    /// a document.
    pub fn texts(&self, from: usize, to: usize) -> Vec<String> {
        let n = self.plan.texts.len();
        let (from, to) = (from.min(n), to.min(n));
        self.plan.texts[from..to.max(from)].to_vec()
    }

    /// Writes the index: `vectors` holds one unit vector of `dim` values per text, in the
    /// order of `texts`; a section in parts gets their mean. `fingerprint` and `modelName`
    /// are the model's (the engine's `modelInfo`), which the index records. Returns the
    /// index file's bytes, the format `cairn index` writes.
    pub fn build(
        &self,
        vectors: &[f32],
        dim: usize,
        fingerprint: &str,
        model_name: &str,
    ) -> Result<Vec<u8>, JsError> {
        if self.passages.is_empty() {
            return Err(JsError::new(
                "no passages to index: add a file with text first",
            ));
        }
        let texts = self.plan.texts.len();
        if dim == 0 || texts.checked_mul(dim) != Some(vectors.len()) {
            return Err(JsError::new(&format!(
                "{} values for {texts} texts of {dim} dimensions",
                vectors.len()
            )));
        }
        let per_text: Vec<Vec<f32>> = vectors.chunks(dim).map(<[f32]>::to_vec).collect();
        let joined = self.plan.join(per_text).map_err(js_err)?;
        build_index(&self.passages, &joined, fingerprint, model_name).map_err(js_err)
    }
}

fn to_js<T: Serialize>(v: &T) -> Result<JsValue, JsError> {
    let ser = serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true);
    Ok(v.serialize(&ser)?)
}
