//! Property tests for everything Cairn reads from outside: index files, model bundles,
//! manifests, HTML pages and query strings. Truncated at every offset or with bytes flipped
//! at random, each input gives a typed error (or, where the bytes still form a valid file, a
//! working one), never a panic: in the browser a panic is a trapped module.
//!
//! The same tests run natively and on wasm32 in Chromium (`make test-wasm`): every size read
//! from a file is checked against a 32-bit `usize` there, where an unchecked product wraps.

mod common;

// On wasm32, `#[test]` (the proptest blocks' too) is wasm-bindgen-test's.
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_dedicated_worker);

use std::sync::OnceLock;

use proptest::prelude::*;

use cairn::index::manifest::Manifest;
use cairn::index::sharded::{build_sharded, ShardOptions, ShardedFiles, ShardedIndex};
use cairn::index::{build_index, Index, Passage};
use cairn::{Encoder, Error, Mode, Role, Searcher};

/// A passage with filters and sort keys, so the forged files have facet sections too.
fn with_facets(mut p: Passage) -> Passage {
    let i: usize = p.id[1..].parse().unwrap_or(0);
    p.filters
        .insert("tag".into(), vec![format!("t{}", i % 3), "all".into()]);
    p.sort.insert("n".into(), format!("{}", (i * 5) % 7));
    p
}

/// A small real index (the tiny model's vectors; the bytes are what matter here).
fn index_bytes() -> &'static (Vec<u8>, Encoder) {
    static CELL: OnceLock<(Vec<u8>, Encoder)> = OnceLock::new();
    CELL.get_or_init(|| {
        let enc = Encoder::from_bytes(&common::tiny_bundle()).unwrap();
        let passages: Vec<Passage> = (0..12)
            .map(|i| Passage {
                id: format!("p{i}"),
                url: format!("/p{i}.html"),
                anchor: format!("s{i}"),
                title: format!("Title {i}"),
                heading: "Heading".into(),
                text: format!(
                    "passage number {i} about threads, boxes and {} tokens",
                    i * 7
                ),
                ..Default::default()
            })
            .map(with_facets)
            .collect();
        let texts: Vec<String> = passages.iter().map(Passage::indexed_text).collect();
        let vectors = enc.embed(&texts, Role::Document).unwrap();
        let bytes = build_index(&passages, &vectors, enc.fingerprint(), "tiny").unwrap();
        (bytes, enc)
    })
}

/// The same passages as a sharded index in small parts (two or three of each kind), with the
/// vectors of [`index_bytes`]'s index.
fn sharded_files() -> &'static ShardedFiles {
    static CELL: OnceLock<ShardedFiles> = OnceLock::new();
    CELL.get_or_init(|| {
        let (bytes, enc) = index_bytes();
        let index = Index::from_bytes(bytes.clone()).unwrap();
        let texts: Vec<String> = index.passages().iter().map(Passage::indexed_text).collect();
        let vectors = enc.embed(&texts, Role::Document).unwrap();
        // The passage table keeps no filters: put them back for the sharded build.
        let passages: Vec<Passage> = index.passages().iter().cloned().map(with_facets).collect();
        let opts = ShardOptions {
            shard_rows: 4,
            chunk_bytes: 64,
            text_bytes: 300,
            probe_rows: 4,
        };
        build_sharded(&passages, &vectors, enc.fingerprint(), "tiny", &opts).unwrap()
    })
}

/// Sets a container's CRC-32 trailer to match its bytes (a forged file).
fn reseal(b: &mut [u8]) {
    let body = b.len() - 8;
    let crc = crc32fast::hash(&b[..body]);
    b[body..body + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Loads a sharded index from (possibly forged) files and searches it every way.
fn exercise_sharded(meta: Vec<u8>, parts: &[(String, Vec<u8>)], enc: &Encoder) {
    let Ok(mut index) = ShardedIndex::from_meta(meta) else {
        return;
    };
    for (name, bytes) in parts {
        let _ = index.add_part(name, bytes.clone());
    }
    let s = Searcher::new(&index);
    let v = enc.embed(&["threads"], Role::Query).unwrap().pop().unwrap();
    refined(&s, &v);
    for mode in [Mode::Hybrid, Mode::Dense, Mode::Lexical] {
        let _ = s.find(Some(&v), None, "threads boxes passage", 5, mode);
    }
    let _ = s.search(None, "passage", 5, Mode::Hybrid);
}

/// 256 cases each; natively, failures are kept in `hostile_files.proptest-regressions`
/// (wasm has no files).
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        #[cfg(target_arch = "wasm32")]
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn bundle() -> &'static Vec<u8> {
    static CELL: OnceLock<Vec<u8>> = OnceLock::new();
    CELL.get_or_init(common::tiny_bundle)
}

/// Where the bundle's header (metadata, tokenizer, tensor table) ends: flips there reach
/// the parsers; flips past it are caught by the weights checksum.
fn bundle_header_len() -> usize {
    let b = bundle();
    let mut cursor = std::io::Cursor::new(b.as_slice());
    let content = candle_core::quantized::gguf_file::Content::read(&mut cursor).unwrap();
    content.tensor_data_offset as usize
}

/// Searches a loaded index every way, to show a file that loaded is safe to use.
/// Filtered, sorted and listing searches (errors allowed, panics not).
fn refined(s: &Searcher, v: &[f32]) {
    let filters: cairn::index::facets::Filters =
        serde_json::from_str(r#"{"tag": {"any": ["t1", "t2"], "none": "t2"}}"#).unwrap();
    for sort in [None, Some("n"), Some("n:desc")] {
        let refine = cairn::search::Refine {
            filters: filters.clone(),
            sort: sort.map(|s| s.parse().unwrap()),
            // The extremes of the ranking settings, on a forged file's field bytes.
            ranking: cairn::index::lexical::RankingOptions {
                k1: Some(100.0),
                b: Some(1.0),
                title: Some(100.0),
                heading: Some(0.0),
            },
        };
        for mode in [Mode::Hybrid, Mode::Dense, Mode::Lexical] {
            let _ = s.find_refined(Some(v), None, "threads", 5, mode, &refine);
            let _ = s.find_refined(None, None, "", 5, mode, &refine);
        }
    }
}

fn exercise(index: &Index, enc: &Encoder) {
    let s = Searcher::new(index);
    let v = enc.embed(&["threads"], Role::Query).unwrap().pop().unwrap();
    refined(&s, &v);
    for mode in [Mode::Hybrid, Mode::Dense, Mode::Lexical] {
        let _ = s.search(Some(&v), "threads boxes", 5, mode);
    }
    let _ = s.search(None, "passage", 5, Mode::Hybrid);
}

#[test]
fn index_truncated_at_every_offset_is_a_typed_error() {
    let (bytes, _) = index_bytes();
    for cut in 0..bytes.len() {
        match Index::from_bytes(bytes[..cut].to_vec()) {
            Err(Error::NotAnIndex(_)) | Err(Error::CorruptIndex(_)) => {}
            Err(other) => panic!("cut at {cut}: unexpected error kind: {other}"),
            Ok(_) => panic!("cut at {cut}: a truncated index loaded"),
        }
    }
}

/// Every single-bit flip at every offset, the checksum and trailer included (CI once found
/// that a flip in the trailer's reserved word loaded).
#[test]
fn index_with_any_single_bit_flipped_is_refused() {
    let (bytes, _) = index_bytes();
    for at in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[at] ^= bit;
            match Index::from_bytes(b) {
                Err(Error::NotAnIndex(_))
                | Err(Error::CorruptIndex(_))
                | Err(Error::UnsupportedIndexVersion { .. }) => {}
                Err(other) => panic!("flip {bit:#04x} at {at}: unexpected error kind: {other}"),
                Ok(_) => panic!(
                    "flip {bit:#04x} at {at} of {}: the index loaded",
                    bytes.len()
                ),
            }
        }
    }
}

#[test]
fn bundle_header_truncated_at_every_offset_is_a_typed_error() {
    // Every offset through the fixed header and the first metadata; sampled beyond (the
    // tokenizer alone is half a megabyte).
    let b = bundle();
    let header = bundle_header_len();
    let cuts = (0..4096)
        .chain((4096..b.len()).step_by(997))
        .chain([header, b.len() - 1]);
    for cut in cuts {
        match Encoder::from_bytes(&b[..cut]) {
            Err(Error::NotABundle(_))
            | Err(Error::CorruptBundle(_))
            | Err(Error::Metadata { .. }) => {}
            Err(other) => panic!("cut at {cut}: unexpected error kind: {other}"),
            Ok(_) => panic!("cut at {cut}: a truncated bundle loaded"),
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Flipped bytes fail the checksum.
    #[test]
    fn index_with_flipped_bytes_is_refused(flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4)) {
        let (bytes, _) = index_bytes();
        let mut b = bytes.clone();
        let n = b.len();
        for (at, mask) in &flips {
            b[at.index(n)] ^= mask;
        }
        let refused = matches!(
            Index::from_bytes(b),
            Err(Error::CorruptIndex(_)) | Err(Error::NotAnIndex(_)) | Err(Error::UnsupportedIndexVersion { .. })
        );
        prop_assert!(refused, "a flipped index was not refused");
    }

    /// Flipped bytes with the checksum recomputed (a forged file): the structural checks
    /// must hold on their own. Whatever loads must be searchable without panicking.
    #[test]
    fn forged_index_never_panics(flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6)) {
        let (bytes, enc) = index_bytes();
        let mut b = bytes.clone();
        let body = b.len() - 8;
        for (at, mask) in &flips {
            b[at.index(body)] ^= mask;
        }
        let crc = crc32fast::hash(&b[..body]);
        b[body..body + 4].copy_from_slice(&crc.to_le_bytes());
        if let Ok(index) = Index::from_bytes(b) {
            exercise(&index, enc);
        }
    }

    /// A forged meta file of a sharded index (flipped bytes, checksum recomputed): refused or
    /// usable, never a panic, with its parts added and searched.
    #[test]
    fn forged_sharded_meta_never_panics(flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6)) {
        let files = sharded_files();
        let mut meta = files.meta.clone();
        let body = meta.len() - 8;
        for (at, mask) in &flips {
            meta[at.index(body)] ^= mask;
        }
        reseal(&mut meta);
        exercise_sharded(meta, &files.parts, &index_bytes().1);
    }

    /// A forged part, and a meta file forged to name it (its hash and name changed to
    /// match): the part's own checks must hold; never a panic.
    #[test]
    fn forged_sharded_part_never_panics(which in any::<prop::sample::Index>(), flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6)) {
        use sha2::{Digest, Sha256};
        let files = sharded_files();
        let i = which.index(files.parts.len());
        let (name, bytes) = &files.parts[i];
        let mut part = bytes.clone();
        let body = part.len() - 8;
        for (at, mask) in &flips {
            part[at.index(body)] ^= mask;
        }
        reseal(&mut part);
        let (old, new) = (Sha256::digest(bytes), Sha256::digest(&part));
        let mut meta = files.meta.clone();
        let at = meta.windows(8).position(|w| w == &old[..8]).expect("the part's hash is in the meta file");
        meta[at..at + 8].copy_from_slice(&new[..8]);
        reseal(&mut meta);
        let hex = |h: &[u8]| h.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let forged_name = name.replace(&hex(&old[..8]), &hex(&new[..8]));
        let mut parts = files.parts.clone();
        parts[i] = (forged_name, part);
        exercise_sharded(meta, &parts, &index_bytes().1);
    }

    /// Flips in the bundle's header reach the GGUF, metadata and tokenizer parsers.
    #[test]
    fn bundle_with_flipped_header_bytes_never_panics(flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4)) {
        let mut b = bundle().clone();
        let header = bundle_header_len();
        for (at, mask) in &flips {
            b[at.index(header)] ^= mask;
        }
        if let Ok(enc) = Encoder::from_bytes(&b) {
            let _ = enc.embed(&["a query", ""], Role::Query);
        }
    }

    /// Flips in the weights fail the checksum.
    #[test]
    fn bundle_with_flipped_weights_is_refused(at in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let mut b = bundle().clone();
        let header = bundle_header_len();
        let i = header + at.index(b.len() - header);
        b[i] ^= mask;
        let refused = matches!(Encoder::from_bytes(&b), Err(Error::CorruptBundle(ref m)) if m.contains("checksum"));
        prop_assert!(refused, "flipped weights were not refused");
    }

    /// Any query string: an answer or a typed error, never a panic; long ones are cut.
    #[test]
    fn any_query_string_is_answered(q in "\\PC{0,300}", long in 0usize..3) {
        let (bytes, enc) = index_bytes();
        let index = Index::from_bytes(bytes.clone()).unwrap();
        let s = Searcher::new(&index);
        let q = q.repeat(1 + long * 40);
        let v = enc.embed(&[q.as_str()], Role::Query).unwrap().pop().unwrap();
        for mode in [Mode::Hybrid, Mode::Dense, Mode::Lexical] {
            let hits = s.search(Some(&v), &q, 10, mode).unwrap();
            prop_assert!(hits.len() <= 10);
            for h in hits {
                for (a, b) in h.excerpt.marks {
                    prop_assert!(h.excerpt.text.is_char_boundary(a) && h.excerpt.text.is_char_boundary(b) && a < b);
                }
            }
        }
    }

    /// Any bytes as a manifest: parsed or refused by the one reader, never a panic.
    #[test]
    fn any_manifest_bytes_are_parsed_or_refused(b in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Manifest::parse(&b);
    }
}

#[cfg(feature = "ingest")]
mod html {
    use super::*;
    use cairn::ingest::html::{page_passages, Selectors};
    use scraper::Html;

    proptest! {
        #![proptest_config(config())]

        /// Arbitrary markup-ish text: the ingester returns text sections or skips the page.
        #[test]
        fn any_html_is_ingested_or_skipped(parts in prop::collection::vec(prop_oneof![
            Just("<h1 id=a>".to_string()), Just("</h1>".to_string()), Just("<h2>".to_string()),
            Just("<main>".to_string()), Just("<nav>".to_string()), Just("<script>".to_string()),
            Just("<div data-cairn-ignore>".to_string()), Just("<div data-cairn-body>".to_string()),
            Just("<meta http-equiv=refresh>".to_string()), Just("&amp;&lt;&#0;&#x110000;".to_string()),
            Just("<!--".to_string()), Just("<![CDATA[".to_string()), Just("</".to_string()),
            "\\PC{0,20}",
        ], 0..40)) {
            let html = parts.concat();
            let sel = Selectors::new().unwrap();
            if let Ok(ps) = page_passages(&sel, &Html::parse_document(&html), "/p.html", "p.html", false) {
                for p in ps {
                    prop_assert!(!p.text.is_empty());
                    prop_assert!(!p.text.contains("  "));
                }
            }
        }

        /// A dropped file of any bytes under any kind's name: passages or a typed skip, and
        /// a file over the limit is refused by its size.
        #[test]
        fn any_dropped_file_is_read_or_skipped(
            name in prop::sample::select(vec!["a.txt", "b.md", "c.html", "d.jsonl", "e.bin", "noext"]),
            bytes in prop::collection::vec(any::<u8>(), 0..600),
            text in "\\PC{0,200}",
        ) {
            use cairn::ingest::{passages_from_file, FileSkip};
            for b in [bytes.as_slice(), text.as_bytes()] {
                match passages_from_file(name, b) {
                    Ok(r) => {
                        prop_assert!(!r.passages.is_empty());
                        for p in &r.passages {
                            prop_assert!(!p.text.contains("  "));
                        }
                    }
                    Err(FileSkip::TooLarge { .. }) => prop_assert!(false, "{} bytes", b.len()),
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
            }
        }
    }
}

#[test]
fn forged_zero_alignment_is_refused() {
    // candle divides by `general.alignment`: a forged 0 must be an error, not a panic.
    use candle_core::quantized::gguf_file::{self, Value};
    let cfg = common::tiny_config();
    let tensors = common::tensors_for(&cfg);
    let mut md = cairn::model::gguf::config_to_metadata(&cfg);
    md.push(("general.alignment", Value::U32(32)));
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &candle_core::quantized::QTensor)> =
        tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut out = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut out, &md_refs, &t_refs).unwrap();
    let mut bytes = out.into_inner();
    let key = b"general.alignment\x04\0\0\0\x20\0\0\0";
    let pos = bytes.windows(key.len()).position(|w| w == key).unwrap();
    bytes[pos + key.len() - 4] = 0;
    let err = Encoder::from_bytes(&bytes).err().expect("must fail");
    assert!(
        matches!(err, Error::CorruptBundle(ref m) if m.contains("alignment")),
        "{err}"
    );
}
