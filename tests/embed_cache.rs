//! The embedding cache (`cairn index --cache`): a rebuild after editing one page embeds only
//! that page's passages and writes the same index bytes as a clean build; a damaged or
//! foreign cache file is never trusted.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn::index::cache::{EmbeddingCache, Mismatch};
use cairn::Role;

fn cairn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Runs `cairn index` over `site` into `out`; returns (index bytes, stderr).
fn index(site: &Path, out: &Path, cache: Option<&Path>) -> (Vec<u8>, String) {
    let model = common::model_dir().join("all-minilm-l6-v2-q4_mix.gguf");
    let mut cmd = cairn();
    cmd.arg("index")
        .arg("--model")
        .arg(&model)
        .arg("--site")
        .arg(site)
        .arg("--out")
        .arg(out);
    match cache {
        Some(c) => cmd.arg("--cache").arg(c),
        None => cmd.arg("--no-cache"),
    };
    let o = cmd.output().expect("cairn runs");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "cairn index failed: {err}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("cairn-entry.json")).unwrap()).unwrap();
    let bytes = std::fs::read(out.join(m["index"].as_str().unwrap())).unwrap();
    (bytes, err)
}

/// (embedded, total) from `cairn index`'s "embedding N of M texts" line.
fn embedded(stderr: &str) -> (usize, usize) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("embedding "))
        .unwrap_or_else(|| panic!("no embedding line in {stderr}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    (w[1].parse().unwrap(), w[3].parse().unwrap())
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cairn-cache-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_rebuild_embeds_only_the_changed_page_and_writes_the_same_bytes() {
    let dir = temp("rebuild");
    let site = dir.join("site");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/site"),
        &site,
    );
    let cache = dir.join("embeddings.cemb");

    // First build: everything embedded, the cache written.
    let (first, err) = index(&site, &dir.join("a"), Some(&cache));
    let (n, total) = embedded(&err);
    assert_eq!(n, total, "a cold cache embeds every passage: {err}");
    assert!(total >= 5, "{err}");
    let (clean, _) = index(&site, &dir.join("clean"), None);
    assert_eq!(first, clean, "the cached build and a clean build differ");

    // The same site again: nothing to embed.
    let (again, err) = index(&site, &dir.join("b"), Some(&cache));
    assert_eq!(embedded(&err), (0, total), "{err}");
    assert_eq!(again, clean);

    // Edit one page (two sections: the title's and the heading's): only those re-embedded,
    // and the bytes are a clean build's.
    let page = site.join("guide/boxes.html");
    let html = std::fs::read_to_string(&page).unwrap();
    std::fs::write(
        &page,
        html.replace("store data on the heap", "keep values on the heap"),
    )
    .unwrap();
    let (edited, err) = index(&site, &dir.join("c"), Some(&cache));
    let (n, total2) = embedded(&err);
    assert_eq!(total2, total);
    assert!(
        (1..=2).contains(&n),
        "editing one section of one page re-embedded {n} passages: {err}"
    );
    let (clean2, _) = index(&site, &dir.join("clean2"), None);
    assert_eq!(
        edited, clean2,
        "the incremental build and a clean build differ"
    );
    assert_ne!(edited, clean);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_or_foreign_cache_is_never_trusted() {
    let mut c = EmbeddingCache::new("model-a", "cpu", 3);
    c.insert(Role::Document, "hello", vec![1.0, 2.0, 3.0])
        .unwrap();
    c.insert(Role::Query, "hello", vec![4.0, 5.0, 6.0]).unwrap();
    assert!(c.insert(Role::Document, "x", vec![1.0]).is_err());
    let bytes = c.to_bytes();
    let back = EmbeddingCache::from_bytes(&bytes, "model-a", "cpu")
        .unwrap()
        .unwrap();
    assert_eq!(
        back.get(Role::Document, "hello"),
        Some(&[1.0, 2.0, 3.0][..])
    );
    assert_eq!(back.get(Role::Query, "hello"), Some(&[4.0, 5.0, 6.0][..]));
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(
        EmbeddingCache::from_bytes(&bytes, "model-b", "cpu")
            .unwrap()
            .unwrap_err(),
        Mismatch::Model("model-a".into())
    );
    assert_eq!(
        EmbeddingCache::from_bytes(&bytes, "model-a", "gpu: x")
            .unwrap()
            .unwrap_err(),
        Mismatch::Backend("cpu".into())
    );
    // Every truncation and every single-bit flip is an error, never a panic or a silent load.
    for len in 0..bytes.len() {
        assert!(EmbeddingCache::from_bytes(&bytes[..len], "model-a", "cpu").is_err());
    }
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 1;
        assert!(
            !matches!(EmbeddingCache::from_bytes(&b, "model-a", "cpu"), Ok(Ok(_))),
            "flipped byte {i} loaded"
        );
    }
}

#[test]
fn a_corrupt_cache_file_is_reported_and_the_build_goes_on() {
    let dir = temp("corrupt");
    let site = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/site");
    let cache = dir.join("embeddings.cemb");
    std::fs::write(&cache, b"CAIRNEMB garbage").unwrap();
    let (bytes, err) = index(&site, &dir.join("out"), Some(&cache));
    assert!(err.contains("embedding every passage"), "{err}");
    let (n, total) = embedded(&err);
    assert_eq!(n, total);
    let (clean, _) = index(&site, &dir.join("clean"), None);
    assert_eq!(bytes, clean);
    // And the file was replaced by a good one.
    let (_, err) = index(&site, &dir.join("again"), Some(&cache));
    assert_eq!(embedded(&err).0, 0, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
