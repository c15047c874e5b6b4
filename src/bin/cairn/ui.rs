//! The browser UI that `cairn index` writes beside an index: the element and its worker
//! under fixed names (a page links to them), the engine under content-hashed names that the
//! manifest records. A `cairn` built with the `ui` feature (`make install`) carries these
//! files in its binary; `--ui DIR` takes them from a `pkg/` folder instead.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cairn::index::manifest::{hashed_name, EngineFiles};

/// The element, the worker and the optional service worker: entry points, so their names do
/// not change.
const ENTRY_FILES: [&str; 3] = ["cairn-search.js", "cairn-worker.js", "cairn-sw.js"];
/// The engine: (file in `pkg/`, stem and extension of its hashed name in the output).
const ENGINE_JS: (&str, &str, &str) = ("cairn.js", "cairn", "js");
const ENGINE_WASM: (&str, &str, &str) = ("cairn_bg.wasm", "cairn_bg", "wasm");
const ENGINE_RELAXED: (&str, &str, &str) = ("cairn_relaxed_bg.wasm", "cairn_relaxed_bg", "wasm");
/// The keyword engine (no encoder): a sharded index's first answers.
const KEYWORD_JS: (&str, &str, &str) = ("cairn_keyword.js", "cairn_keyword", "js");
const KEYWORD_WASM: (&str, &str, &str) = ("cairn_keyword_bg.wasm", "cairn_keyword_bg", "wasm");

/// Where the UI's files come from.
pub enum UiSource {
    /// The files this binary carries (`make install`).
    Embedded,
    /// A folder holding them (`pkg/` after `make wasm`).
    Dir(PathBuf),
}

#[cfg(feature = "ui")]
macro_rules! pkg_file {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/pkg/", $name)) as &[u8],
        )
    };
}

/// The files this binary carries, or `None` when it was built without them.
#[cfg(feature = "ui")]
fn embedded() -> Option<&'static [(&'static str, &'static [u8])]> {
    Some(&[
        pkg_file!("cairn-search.js"),
        pkg_file!("cairn-worker.js"),
        pkg_file!("cairn-sw.js"),
        pkg_file!("cairn.js"),
        pkg_file!("cairn_bg.wasm"),
        pkg_file!("cairn_relaxed_bg.wasm"),
        pkg_file!("cairn_keyword.js"),
        pkg_file!("cairn_keyword_bg.wasm"),
    ])
}

#[cfg(not(feature = "ui"))]
fn embedded() -> Option<&'static [(&'static str, &'static [u8])]> {
    None
}

/// The UI `cairn index` writes by default: the one it carries, if any.
pub fn default_source() -> Option<UiSource> {
    embedded().map(|_| UiSource::Embedded)
}

/// What `cairn --version` says of the engine it carries.
pub fn describe() -> String {
    match embedded() {
        Some(files) => {
            let wasm = files.iter().find(|(n, _)| *n == ENGINE_WASM.0);
            let name = wasm.map(|(_, b)| hashed_name(ENGINE_WASM.1, ENGINE_WASM.2, b));
            format!(
                "carries the browser UI and engine {}",
                name.unwrap_or_default()
            )
        }
        None => "carries no browser UI (install with `make install`, or pass --ui pkg/)".into(),
    }
}

impl UiSource {
    fn read(&self, name: &str) -> Result<Cow<'static, [u8]>> {
        match self {
            UiSource::Embedded => embedded()
                .and_then(|files| files.iter().find(|(n, _)| *n == name))
                .map(|(_, b)| Cow::Borrowed(*b))
                .with_context(|| format!("this cairn does not carry {name}")),
            UiSource::Dir(dir) => {
                let path = dir.join(name);
                std::fs::read(&path).map(Cow::Owned).with_context(|| {
                    format!("reading {} (build the UI with `make wasm`)", path.display())
                })
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            UiSource::Embedded => "the UI this cairn carries".into(),
            UiSource::Dir(d) => format!("the UI from {}", d.display()),
        }
    }
}

/// Is `name` a file of the UI as an earlier build wrote it (hashed or not)?
fn is_ui_file(name: &str) -> bool {
    let hashed = |stem: &str, ext: &str| {
        name.strip_prefix(stem)
            .and_then(|r| r.strip_prefix('.'))
            .and_then(|r| r.strip_suffix(ext))
            .and_then(|r| r.strip_suffix('.'))
            .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    [
        ENGINE_JS,
        ENGINE_WASM,
        ENGINE_RELAXED,
        KEYWORD_JS,
        KEYWORD_WASM,
    ]
    .iter()
    .any(|(plain, stem, ext)| name == *plain || hashed(stem, ext))
}

/// Writes the UI into `out`, removing the engine files of earlier builds, and returns the
/// engine's names for the manifest. Every file is read before anything is written, and the
/// entry files are written last, renamed into place, so a page never loads a worker that
/// names an engine not yet written.
pub fn write(out: &Path, source: &UiSource) -> Result<EngineFiles> {
    let read = |(file, stem, ext): (&str, &str, &str)| -> Result<(String, Cow<'static, [u8]>)> {
        let bytes = source.read(file)?;
        Ok((hashed_name(stem, ext, &bytes), bytes))
    };
    let mut engine = vec![read(ENGINE_JS)?, read(ENGINE_WASM)?, read(ENGINE_RELAXED)?];
    // The keyword engine: a `pkg/` built before it has none, and the worker then starts a
    // sharded index on the full engine.
    let keyword = match (read(KEYWORD_JS), read(KEYWORD_WASM)) {
        (Ok(js), Ok(wasm)) => Some((js, wasm)),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!(
                "note: {} has no keyword engine ({e:#}); a sharded index will start on the \
                 full engine (rebuild the UI with `make wasm`)",
                source.describe()
            );
            None
        }
    };
    let keyword_names = keyword
        .as_ref()
        .map(|(js, wasm)| (js.0.clone(), wasm.0.clone()));
    if let Some((js, wasm)) = keyword {
        engine.extend([js, wasm]);
    }
    let entries = ENTRY_FILES.map(|name| source.read(name).map(|b| (name, b)));
    let entries = entries.into_iter().collect::<Result<Vec<_>>>()?;
    for (name, bytes) in &engine {
        std::fs::write(out.join(name), bytes)?;
    }
    for entry in std::fs::read_dir(out)? {
        let p = entry?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if is_ui_file(name) && !engine.iter().any(|(w, _)| w == name) {
            std::fs::remove_file(&p)?;
        }
    }
    for (name, bytes) in entries {
        let tmp = out.join(format!("{name}.tmp"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, out.join(name))?;
    }
    let mut names = engine.into_iter().map(|(name, _)| name);
    let (js, wasm, relaxed) = (
        names.next().unwrap_or_default(),
        names.next().unwrap_or_default(),
        names.next(),
    );
    eprintln!("wrote {} (engine {js})", source.describe());
    Ok(EngineFiles {
        js,
        wasm,
        relaxed_wasm: relaxed,
        keyword_js: keyword_names.as_ref().map(|k| k.0.clone()),
        keyword_wasm: keyword_names.map(|k| k.1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_engine_files_of_earlier_builds() {
        for name in [
            "cairn.js",
            "cairn_bg.wasm",
            "cairn_relaxed_bg.wasm",
            "cairn.0123456789abcdef.js",
            "cairn_bg.0123456789abcdef.wasm",
            "cairn_relaxed_bg.0123456789abcdef.wasm",
            "cairn_keyword.0123456789abcdef.js",
            "cairn_keyword_bg.0123456789abcdef.wasm",
        ] {
            assert!(is_ui_file(name), "{name}");
        }
        for name in [
            "cairn-search.js",
            "cairn-worker.js",
            "cairn-sw.js",
            "cairn-entry.json",
            "cairn.notahexhash0000.js",
            "cairn.0123.js",
            "index.0123456789abcdef.cidx",
            "model.0123456789abcdef.gguf",
            "mycairn.js",
        ] {
            assert!(!is_ui_file(name), "{name}");
        }
    }

    #[test]
    fn writes_hashed_engine_files_and_removes_older_ones() {
        let dir = std::env::temp_dir().join(format!("cairn-ui-test-{}", std::process::id()));
        let (pkg, out) = (dir.join("pkg"), dir.join("out"));
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        for (name, body) in [
            ("cairn-search.js", "element"),
            ("cairn-worker.js", "worker"),
            ("cairn-sw.js", "service worker"),
            ("cairn.js", "glue"),
            ("cairn_bg.wasm", "simd128"),
            ("cairn_relaxed_bg.wasm", "relaxed"),
            ("cairn_keyword.js", "keyword glue"),
            ("cairn_keyword_bg.wasm", "keyword"),
        ] {
            std::fs::write(pkg.join(name), body).unwrap();
        }
        // Left by earlier builds: an unhashed engine (`--ui` before layout 2) and an older
        // hashed one; and a file of the site's own that must stay.
        for stale in ["cairn.js", "cairn_bg.ffffffffffffffff.wasm", "robots.txt"] {
            std::fs::write(out.join(stale), "old").unwrap();
        }
        let files = write(&out, &UiSource::Dir(pkg.clone())).unwrap();
        assert_eq!(files.js, hashed_name("cairn", "js", b"glue"));
        assert_eq!(files.wasm, hashed_name("cairn_bg", "wasm", b"simd128"));
        assert_eq!(
            files.keyword_wasm.as_deref(),
            Some(hashed_name("cairn_keyword_bg", "wasm", b"keyword").as_str())
        );
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut want = vec![
            files.js.clone(),
            files.wasm.clone(),
            files.relaxed_wasm.clone().unwrap(),
            files.keyword_js.clone().unwrap(),
            files.keyword_wasm.clone().unwrap(),
            "cairn-search.js".into(),
            "cairn-sw.js".into(),
            "cairn-worker.js".into(),
            "robots.txt".into(),
        ];
        want.sort();
        assert_eq!(names, want);
        assert_eq!(
            std::fs::read(out.join("cairn-worker.js")).unwrap(),
            b"worker"
        );

        // A `pkg/` built before the keyword engine: written without it, the manifest says so.
        let older = dir.join("older");
        std::fs::create_dir_all(&older).unwrap();
        for name in [
            "cairn-search.js",
            "cairn-worker.js",
            "cairn-sw.js",
            "cairn.js",
        ] {
            std::fs::copy(pkg.join(name), older.join(name)).unwrap();
        }
        std::fs::copy(pkg.join("cairn_bg.wasm"), older.join("cairn_bg.wasm")).unwrap();
        std::fs::copy(
            pkg.join("cairn_relaxed_bg.wasm"),
            older.join("cairn_relaxed_bg.wasm"),
        )
        .unwrap();
        let out2 = dir.join("out2");
        std::fs::create_dir_all(&out2).unwrap();
        let without = write(&out2, &UiSource::Dir(older)).unwrap();
        assert_eq!((without.keyword_js, without.keyword_wasm), (None, None));
        assert_eq!(without.js, files.js);
        assert!(out2.join(without.relaxed_wasm.unwrap()).exists());

        // A folder without the engine: a named error, and nothing written or removed.
        std::fs::remove_file(pkg.join("cairn_bg.wasm")).unwrap();
        std::fs::write(pkg.join("cairn.js"), "new glue").unwrap();
        let e = write(&out, &UiSource::Dir(pkg)).unwrap_err();
        assert!(format!("{e:#}").contains("cairn_bg.wasm"), "{e:#}");
        let after = std::fs::read_dir(&out).unwrap().count();
        assert_eq!(after, names.len());
        assert!(out.join(&files.js).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
