//! The entry manifest of a deployed index folder: names the content-hashed index and model
//! files, so a page (or `cairn search`) needs only the folder's URL, and records the format
//! versions of those files and the `cairn` that wrote them. [`Manifest::parse`] is the one
//! reader (the CLI, the benchmarks and, through the wasm engine, the browser worker).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The manifest's file name inside an index folder.
pub const MANIFEST_NAME: &str = "cairn-entry.json";
/// Version of the manifest's own layout. 2 added `engine`.
pub const MANIFEST_VERSION: u32 = 2;
/// The oldest layout this build still reads.
pub const MIN_MANIFEST_VERSION: u32 = 1;

/// The engine files of a folder that carries the browser UI, content-hashed like the index
/// and the model: the worker loads the engine the manifest names, so a browser holding an
/// older engine in its HTTP cache never runs it against a newer index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineFiles {
    /// The engine's JavaScript glue, e.g. `cairn.0123abcd4567ef89.js`.
    pub js: String,
    /// The SIMD128 build, e.g. `cairn_bg.0123abcd4567ef89.wasm`.
    pub wasm: String,
    /// The relaxed-SIMD build (absent: the worker uses `wasm` everywhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relaxed_wasm: Option<String>,
    /// The keyword engine's glue, e.g. `cairn_keyword.0123abcd4567ef89.js` (absent: the
    /// worker starts with the full engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyword_js: Option<String>,
    /// The keyword engine's wasm, e.g. `cairn_keyword_bg.0123abcd4567ef89.wasm`: the
    /// index, keyword and vector ranking without the encoder, which answers a sharded
    /// index's first queries while the full engine and the model load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyword_wasm: Option<String>,
}

impl EngineFiles {
    /// Every file it names.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        [
            Some(&self.js),
            Some(&self.wasm),
            self.relaxed_wasm.as_ref(),
            self.keyword_js.as_ref(),
            self.keyword_wasm.as_ref(),
        ]
        .into_iter()
        .flatten()
    }
}

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
    /// Format version of the index file. 0 in manifests written before it was recorded.
    #[serde(default)]
    pub index_format: u32,
    /// Format version of the model bundle (0: not recorded).
    #[serde(default)]
    pub bundle_format: u32,
    /// The program that wrote the folder, e.g. `cairn 0.1.0` (empty: not recorded).
    #[serde(default)]
    pub writer: String,
    /// The engine files beside the index, when the folder carries the UI (layout 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineFiles>,
}

impl Manifest {
    /// Parses a manifest and checks that this build can use what it names: its own layout
    /// version, and the index and bundle format versions where recorded. The errors name
    /// both versions and say what to do.
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        // The layout version first, so a newer manifest is named as such even when its
        // other fields changed shape.
        #[derive(Deserialize)]
        struct Version {
            version: Option<u32>,
        }
        let json = |e| Error::Json {
            what: MANIFEST_NAME.into(),
            source: e,
        };
        let v: Version = serde_json::from_slice(bytes).map_err(json)?;
        match v.version {
            Some(v) if (MIN_MANIFEST_VERSION..=MANIFEST_VERSION).contains(&v) => {}
            Some(found) => {
                return Err(Error::UnsupportedManifest(format!(
                    "{MANIFEST_NAME} has layout version {found}; this Cairn reads versions \
                     {MIN_MANIFEST_VERSION} to {MANIFEST_VERSION} (was the folder written by \
                     a newer `cairn index`?)"
                )))
            }
            None => {
                return Err(Error::UnsupportedManifest(format!(
                    "{MANIFEST_NAME} has no version: not a Cairn index folder's manifest"
                )))
            }
        }
        let m: Manifest = serde_json::from_slice(bytes).map_err(json)?;
        use crate::index::format::{FORMAT_VERSION, MIN_FORMAT_VERSION};
        if m.index_format != 0 && !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&m.index_format) {
            return Err(Error::UnsupportedIndexVersion {
                found: m.index_format,
                min: MIN_FORMAT_VERSION,
                max: FORMAT_VERSION,
            });
        }
        use crate::digest::{BUNDLE_FORMAT_VERSION, MIN_BUNDLE_FORMAT_VERSION};
        if m.bundle_format != 0
            && !(MIN_BUNDLE_FORMAT_VERSION..=BUNDLE_FORMAT_VERSION).contains(&m.bundle_format)
        {
            return Err(Error::UnsupportedManifest(format!(
                "{MANIFEST_NAME} names a model bundle of format version {}; this Cairn reads \
                 versions {MIN_BUNDLE_FORMAT_VERSION} to {BUNDLE_FORMAT_VERSION}",
                m.bundle_format
            )));
        }
        if m.index.is_empty() || m.model.is_empty() {
            return Err(Error::UnsupportedManifest(format!(
                "{MANIFEST_NAME} does not name an index and a model"
            )));
        }
        // Every file it names lies in the folder itself: a name, not a path or a URL.
        let engine = m.engine.iter().flat_map(EngineFiles::names);
        for name in [&m.index, &m.model].into_iter().chain(engine) {
            if !is_plain_name(name) {
                return Err(Error::UnsupportedManifest(format!(
                    "{MANIFEST_NAME} names {name:?}, which is not a file name in its folder"
                )));
            }
        }
        Ok(m)
    }

    /// Reads and checks the manifest of the index folder `dir` ([`Manifest::parse`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read(dir: &std::path::Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_NAME);
        let bytes = std::fs::read(&path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "reading {} (build one with `cairn index`): {e}",
                    path.display()
                ),
            )
        })?;
        Manifest::parse(&bytes)
    }

    /// What the writer records of itself.
    pub fn writer_name() -> String {
        format!("cairn {}", env!("CARGO_PKG_VERSION"))
    }
}

/// A file name inside the folder: no separators, no `..`, no scheme, nothing to escape.
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// `stem.<first 16 hex digits of SHA-256>.ext`: a new build gets new names, so caches
/// keyed by name never serve stale files.
pub fn hashed_name(stem: &str, ext: &str, bytes: &[u8]) -> String {
    let h = crate::digest::hex(&Sha256::digest(bytes));
    format!("{stem}.{}.{ext}", &h[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> serde_json::Value {
        serde_json::json!({
            "version": 1, "index": "index.0123456789abcdef.cidx", "index_bytes": 10,
            "model": "model.0123456789abcdef.gguf", "model_bytes": 20,
            "model_fingerprint": "ab", "model_name": "m", "model_quant": "q8_0",
            "passages": 3, "dim": 384, "index_format": 1, "bundle_format": 2,
            "writer": "cairn 0.1.0",
            "engine": {"js": "cairn.0123456789abcdef.js", "wasm": "cairn_bg.0123456789abcdef.wasm",
                       "relaxed_wasm": "cairn_relaxed_bg.0123456789abcdef.wasm",
                       "keyword_js": "cairn_keyword.0123456789abcdef.js",
                       "keyword_wasm": "cairn_keyword_bg.0123456789abcdef.wasm"}
        })
    }

    fn parse(v: &serde_json::Value) -> Result<Manifest> {
        Manifest::parse(v.to_string().as_bytes())
    }

    #[test]
    fn reads_what_it_writes_and_older_manifests() {
        let m = parse(&sample()).unwrap();
        assert_eq!((m.index_format, m.bundle_format, m.passages), (1, 2, 3));
        let engine = m.engine.as_ref().unwrap();
        assert_eq!(engine.js, "cairn.0123456789abcdef.js");
        assert_eq!(engine.names().count(), 5, "{engine:?}");
        // Written before the keyword engine: the worker starts with the full engine.
        let mut older = sample();
        for key in ["keyword_js", "keyword_wasm"] {
            older["engine"].as_object_mut().unwrap().remove(key);
        }
        assert_eq!(parse(&older).unwrap().engine.unwrap().keyword_js, None);
        let again: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(again, sample());
        // Layout 1, written before the versions and the engine were recorded: still read.
        let mut old = sample();
        old["version"] = 1.into();
        for key in [
            "index_format",
            "bundle_format",
            "writer",
            "model_quant",
            "engine",
        ] {
            old.as_object_mut().unwrap().remove(key);
        }
        let m = parse(&old).unwrap();
        assert_eq!((m.index_format, &m.engine), (0, &None));
        // A folder without the UI does not name an engine, and says nothing about one.
        let written = serde_json::to_string(&m).unwrap();
        assert!(!written.contains("engine"), "{written}");
    }

    #[test]
    fn newer_or_foreign_manifests_are_named_errors() {
        let mut newer = sample();
        newer["version"] = 3.into();
        newer["index"] = serde_json::json!({"shards": []});
        let e = parse(&newer).unwrap_err().to_string();
        assert!(
            e.contains("layout version 3") && e.contains("reads versions 1 to 2"),
            "{e}"
        );

        // Names that would reach outside the folder.
        for bad in [
            "../cairn.js",
            "https://evil.example/x.js",
            "/abs.js",
            "a/b.js",
            "",
        ] {
            for key in ["js", "keyword_js", "keyword_wasm"] {
                let mut m = sample();
                m["engine"][key] = bad.into();
                let e = parse(&m).unwrap_err().to_string();
                assert!(e.contains("not a file name"), "{key} = {bad}: {e}");
            }
        }
        let mut m = sample();
        m["index"] = "../index.cidx".into();
        assert!(parse(&m).is_err());

        let mut index = sample();
        index["index_format"] = 9.into();
        let e = parse(&index).unwrap_err().to_string();
        assert!(e.contains("index format version 9"), "{e}");

        let mut bundle = sample();
        bundle["bundle_format"] = 7.into();
        let e = parse(&bundle).unwrap_err().to_string();
        assert!(e.contains("format version 7"), "{e}");

        let e = Manifest::parse(b"<html>404</html>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid JSON"), "{e}");
        let e = Manifest::parse(b"{\"name\": 1}").unwrap_err().to_string();
        assert!(e.contains("no version"), "{e}");
        let mut empty = sample();
        empty["model"] = "".into();
        assert!(parse(&empty).is_err());
    }
}
