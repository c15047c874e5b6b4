//! Compatibility: files written by this release stay loadable by every later one.
//!
//! `tests/fixtures/compat/` holds one frozen file per format version, named after its own
//! format: `bundle-vN.gguf` (bundle format N: `bundle-v1.gguf` is the micro BERT of
//! `common::micro_bundle`, `bundle-v2.gguf` the same with a flat `q3_k` word-embedding table,
//! with the query vectors it gave in `vectors-bundle-v2.json`) and `index-vN.cairn` (index
//! format N, an index of the fixture site) with what searching it gave when it was frozen
//! (`expected-index-vN.json`); from version 2 (the sharded index) `index-vN/` is a folder,
//! its meta file `meta.cidx` beside its parts. An index is searched with the frozen bundle that has its model
//! fingerprint (`index-v1.cairn` with `bundle-v1.gguf`), so the two series never collide.
//! Never regenerate a frozen version: when a format changes, freeze the new version beside the
//! old ones (`CAIRN_FREEZE=1 cargo test --features cli --test compat -- --ignored freeze`)
//! and keep the old files loading.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::PathBuf;

use cairn::index::format::ONE_FILE_VERSION;
use cairn::index::sharded::ShardedIndex;
use cairn::index::{Index, FORMAT_VERSION};
use cairn::model::BUNDLE_FORMAT_VERSION;
use cairn::search::Source;
use cairn::{Encoder, Error, Mode, Role, Searcher};
use serde_json::{json, Value};

const QUERIES: [&str; 4] = [
    "how do I share data between threads",
    "box smart pointer",
    "<script>alert(1)</script>",
    "",
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compat")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("tests/fixtures/compat/{name}: {e}"))
}

/// What the frozen files answer: per query, the passage ids of the hybrid and keyword top 5.
fn answers(enc: &Encoder, index: &dyn Source) -> Value {
    let s = Searcher::new(index);
    let mut out = serde_json::Map::new();
    for q in QUERIES {
        let v = enc.embed(&[q], Role::Query).unwrap().remove(0);
        let ids = |mode| -> Vec<String> {
            s.search(Some(&v), q, 5, mode)
                .unwrap()
                .into_iter()
                .map(|h| h.id)
                .collect()
        };
        out.insert(
            q.to_string(),
            json!({ "hybrid": ids(Mode::Hybrid), "lexical": ids(Mode::Lexical) }),
        );
    }
    Value::Object(out)
}

/// The frozen index of format version `v`: one file up to version 1, then a folder with the
/// meta file and every part.
fn frozen_index(v: u32) -> Box<dyn Source> {
    if v == ONE_FILE_VERSION {
        return Box::new(Index::from_bytes(read(&format!("index-v{v}.cairn"))).unwrap());
    }
    let folder = format!("index-v{v}");
    let mut s = ShardedIndex::from_meta(read(&format!("{folder}/meta.cidx"))).unwrap();
    for name in s.files().iter().map(|f| f.to_string()).collect::<Vec<_>>() {
        s.add_part(&name, read(&format!("{folder}/{name}")))
            .unwrap();
    }
    Box::new(s)
}

/// The frozen bundle `index` was built with: the fixture `.gguf` with its model fingerprint.
fn model_of(index: &dyn Source) -> Encoder {
    let want = &index.meta().model_fingerprint;
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".gguf"))
        .collect();
    names.sort();
    for name in &names {
        let enc = Encoder::from_bytes(&read(name)).unwrap();
        if enc.fingerprint() == want.as_str() {
            return enc;
        }
    }
    panic!("no frozen bundle among {names:?} has the index's model fingerprint {want}");
}

/// Every index format version this release must read: 1 up to the current one.
#[test]
fn frozen_versions_still_load_and_answer_the_same() {
    for v in 1..=FORMAT_VERSION {
        let exists = dir().join(format!("index-v{v}.cairn")).exists()
            || dir().join(format!("index-v{v}/meta.cidx")).exists();
        assert!(
            exists,
            "no frozen fixture for index format version {v}: freeze one (see this file's header)"
        );
        let idx = frozen_index(v);
        let enc = model_of(&*idx);
        assert_eq!(idx.meta().model_fingerprint, enc.fingerprint());
        assert!(
            idx.meta().passages >= 5,
            "frozen index has {} passages",
            idx.meta().passages
        );
        let expected: Value =
            serde_json::from_slice(&read(&format!("expected-index-v{v}.json"))).unwrap();
        let got = answers(&enc, &*idx);
        for q in QUERIES {
            let (g, e) = (&got[q], &expected[q]);
            // Keyword answers are exact: BM25's arithmetic has not changed.
            assert_eq!(
                g["lexical"], e["lexical"],
                "format version {v}, query {q:?}: keyword answers differ"
            );
            // Hybrid answers: the same five passages, the first three in the same order.
            // Frozen when the dense scan multiplied a float query; it now rounds the query
            // to int8 blocks (as the kernels do), which moves scores by about 1e-3 and may
            // swap the micro model's near-tied tail (it did: ranks 4 and 5 of one query).
            let ids = |v: &Value| -> Vec<String> {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let (mut gs, mut es) = (ids(&g["hybrid"]), ids(&e["hybrid"]));
            if q.trim().is_empty() {
                // Frozen when a blank query was embedded and ranked by meaning; since the
                // one fallback rule (`Mode::runs_as`) it has nothing to embed and answers
                // from keywords in every mode: nothing.
                assert!(gs.is_empty(), "a blank query answered {gs:?}");
                continue;
            }
            assert_eq!(es.len(), 5, "frozen answers for {q:?}");
            assert_eq!(
                gs[..3],
                es[..3],
                "format version {v}, query {q:?}: hybrid top 3 differ"
            );
            gs.sort();
            es.sort();
            assert_eq!(
                gs, es,
                "format version {v}, query {q:?}: hybrid top 5 differ"
            );
        }
    }
}

/// Bundle versions after the first (the index format did not change with them): each frozen
/// bundle still loads and gives the query vectors it gave when it was frozen.
#[test]
fn frozen_bundle_versions_still_embed_the_same() {
    for v in 2..=BUNDLE_FORMAT_VERSION {
        let enc = Encoder::from_bytes(&read(&format!("bundle-v{v}.gguf"))).unwrap();
        let expected: Vec<Vec<f32>> =
            serde_json::from_slice(&read(&format!("vectors-bundle-v{v}.json"))).unwrap();
        let got = enc.embed(&QUERIES, Role::Query).unwrap();
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            let diff = g
                .iter()
                .zip(e)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            // Frozen under candle's kernel (activation scales rounded to f16); Cairn's int8
            // kernels keep them in f32 and use their own exp and erf, which moved these unit
            // vectors by at most 2.6e-5 per value. A format problem moves them by far more.
            let cos: f32 = g.iter().zip(e).map(|(a, b)| a * b).sum();
            assert!(
                diff < 1e-4 && cos > 0.99999,
                "bundle version {v} embeds differently (max diff {diff}, cosine {cos})"
            );
        }
    }
}

/// Freezes the current bundle version (for versions after 1). Run by hand when the bundle
/// format version changes.
#[test]
#[ignore]
fn freeze_bundle() {
    use cairn::model::gguf::{expected_tensors, flat_table_rows, names, read_bundle, write_bundle};
    use candle_core::quantized::{GgmlDType, QStorage, QTensor};
    use candle_core::{Device, Tensor};
    if std::env::var_os("CAIRN_FREEZE").is_none() || BUNDLE_FORMAT_VERSION < 2 {
        return;
    }
    let v = BUNDLE_FORMAT_VERSION;
    let b = read_bundle(&common::micro_bundle()).unwrap();
    let (vocab, hidden) = (b.config.vocab_size, b.config.hidden_size);
    let mut tensors = Vec::new();
    for (name, _) in expected_tensors(&b.config) {
        let t = &b.tensors[&name];
        let t = if name == names::TOKEN_EMBD {
            let rows = flat_table_rows(vocab, hidden, GgmlDType::Q3K).unwrap();
            let mut values: Vec<f32> = t
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            values.resize(rows * 256, 0.0);
            let flat = Tensor::from_vec(values, (rows, 256), &Device::Cpu).unwrap();
            QTensor::quantize(&flat, GgmlDType::Q3K).unwrap()
        } else {
            let storage = QStorage::from_data(t.data().unwrap(), &Device::Cpu, t.dtype()).unwrap();
            QTensor::new(storage, t.shape().clone()).unwrap()
        };
        tensors.push((name, t));
    }
    let bundle = write_bundle(&b.config, &b.tokenizer_json, cairn::Quant::Q4Mix, &tensors).unwrap();
    let name = format!("bundle-v{v}.gguf");
    assert!(
        !dir().join(&name).exists(),
        "{name} is frozen: never overwrite it"
    );
    let enc = Encoder::from_bytes(&bundle).unwrap();
    let vectors = enc.embed(&QUERIES, Role::Query).unwrap();
    std::fs::write(dir().join(name), bundle).unwrap();
    std::fs::write(
        dir().join(format!("vectors-bundle-v{v}.json")),
        serde_json::to_string(&vectors).unwrap() + "\n",
    )
    .unwrap();
}

/// The frozen index names the model that made it; a real model is refused with both
/// fingerprints in the message.
#[test]
fn frozen_index_refuses_another_model() {
    let idx = Index::from_bytes(read("index-v1.cairn")).unwrap();
    let other = Encoder::from_bytes(&common::tiny_bundle()).unwrap();
    let err = idx.check_model(other.fingerprint()).unwrap_err();
    assert!(matches!(err, Error::ModelMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&other.fingerprint()[..8]), "{msg}");
    assert!(msg.contains(&idx.meta().model_fingerprint[..8]), "{msg}");
}

/// A file from a future release is refused with the version it carries.
#[test]
fn future_versions_are_refused_by_name() {
    let mut bytes = read("index-v1.cairn");
    bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let Err(err) = Index::from_bytes(bytes) else {
        panic!("an index of version {} loaded", FORMAT_VERSION + 1)
    };
    assert!(
        matches!(err, Error::UnsupportedIndexVersion { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&(FORMAT_VERSION + 1).to_string()), "{msg}");
}

/// Writes the current version's fixtures. Run by hand when a format version changes.
#[cfg(feature = "ingest")]
#[test]
#[ignore]
fn freeze() {
    if std::env::var_os("CAIRN_FREEZE").is_none() {
        return;
    }
    let v = FORMAT_VERSION;
    let bundle = common::micro_bundle();
    let enc = Encoder::from_bytes(&bundle).unwrap();
    let site = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/site");
    let (passages, _) = cairn::ingest::ingest_site(&site, &Default::default()).unwrap();
    let texts: Vec<String> = passages.iter().map(|p| p.indexed_text()).collect();
    let vectors = enc.embed(&texts, Role::Document).unwrap();
    std::fs::create_dir_all(dir()).unwrap();
    let (idx, mut files): (Box<dyn Source>, _) = if v == ONE_FILE_VERSION {
        let bytes =
            cairn::index::build_index(&passages, &vectors, enc.fingerprint(), &enc.config().name)
                .unwrap();
        let idx = Index::from_bytes(bytes.clone()).unwrap();
        (Box::new(idx), vec![(format!("index-v{v}.cairn"), bytes)])
    } else {
        // Small parts, so the fixture has several of each kind.
        let opts = cairn::index::sharded::ShardOptions {
            shard_rows: 4,
            chunk_bytes: 256,
            text_bytes: 512,
            probe_rows: 8,
        };
        let built = cairn::index::sharded::build_sharded(
            &passages,
            &vectors,
            enc.fingerprint(),
            &enc.config().name,
            &opts,
        )
        .unwrap();
        let folder = format!("index-v{v}");
        std::fs::create_dir_all(dir().join(&folder)).unwrap();
        let mut s = ShardedIndex::from_meta(built.meta.clone()).unwrap();
        let mut files = vec![(format!("{folder}/meta.cidx"), built.meta)];
        for (name, bytes) in built.parts {
            s.add_part(&name, bytes.clone()).unwrap();
            files.push((format!("{folder}/{name}"), bytes));
        }
        (Box::new(s), files)
    };
    // The bundle is frozen beside it unless one already frozen has its fingerprint.
    let known = std::fs::read_dir(dir()).unwrap().any(|e| {
        let name = e.unwrap().file_name().into_string().unwrap_or_default();
        name.ends_with(".gguf")
            && Encoder::from_bytes(&read(&name)).is_ok_and(|b| b.fingerprint() == enc.fingerprint())
    });
    if !known {
        files.push((format!("index-v{v}-model.gguf"), bundle));
    }
    for (name, data) in files {
        assert!(
            !dir().join(&name).exists(),
            "{name} is frozen: never overwrite it"
        );
        std::fs::write(dir().join(name), data).unwrap();
    }
    let expected = serde_json::to_string_pretty(&answers(&enc, &*idx)).unwrap();
    std::fs::write(
        dir().join(format!("expected-index-v{v}.json")),
        expected + "\n",
    )
    .unwrap();
}
