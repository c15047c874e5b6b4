//! The sharded index (format version 2): the same answers as the one-file index once every
//! part is in, parts fetched only as a query needs them, and every bad part a typed error
//! naming its file.

use cairn::index::sharded::{build_sharded, ShardOptions, ShardedFiles, ShardedIndex};
use cairn::index::{build_index, Index, Passage};
use cairn::search::{Gaps, Source};
use cairn::{Error, Mode, Searcher};

const WORDS: &[&str] = &[
    "mutex", "thread", "channel", "vector", "string", "iterator", "closure", "trait", "borrow",
    "lifetime", "pointer", "heap", "stack", "macro", "module", "crate", "error", "result",
    "option", "future", "async", "pattern", "match", "slice", "array", "hash", "map", "set",
    "queue", "socket", "file", "path", "process", "signal", "memory", "cell", "atomic", "lock",
];

/// 300 passages over 60 pages, and a unit vector each (deterministic, no model needed).
fn corpus() -> (Vec<Passage>, Vec<Vec<f32>>) {
    let dim = 64;
    let mut passages = Vec::new();
    let mut vectors = Vec::new();
    for i in 0..300usize {
        let words: Vec<&str> = (0..12)
            .map(|j| WORDS[(i * 7 + j * j * 3 + i / 5) % WORDS.len()])
            .collect();
        passages.push(Passage {
            id: format!("p{i}"),
            url: format!("page{}.html", i / 5),
            anchor: format!("s{}", i % 5),
            title: format!("Page {} {}", i / 5, WORDS[i / 5 % WORDS.len()]),
            heading: format!("Section {}", i % 5),
            text: words.join(" ") + ".",
            ..Default::default()
        });
        // Vectors in a few loose clusters, so k-means has something to find.
        let cluster = (i % 6) as f32;
        let v: Vec<f32> = (0..dim)
            .map(|d| {
                let x = ((i * 31 + d * 17) % 23) as f32 / 23.0 - 0.5;
                x + if d % 6 == cluster as usize { 2.0 } else { 0.0 }
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        vectors.push(v.into_iter().map(|x| x / norm).collect());
    }
    (passages, vectors)
}

fn small() -> ShardOptions {
    ShardOptions {
        shard_rows: 32,
        chunk_bytes: 256,
        text_bytes: 512,
        probe_rows: 64,
    }
}

fn sharded() -> ShardedFiles {
    let (ps, vs) = corpus();
    build_sharded(&ps, &vs, "fp", "test-model", &small()).unwrap()
}

fn one_file() -> Index {
    let (ps, vs) = corpus();
    Index::from_bytes(build_index(&ps, &vs, "fp", "test-model").unwrap()).unwrap()
}

fn loaded(files: &ShardedFiles) -> ShardedIndex {
    let mut s = ShardedIndex::from_meta(files.meta.clone()).unwrap();
    for (name, bytes) in &files.parts {
        s.add_part(name, bytes.clone()).unwrap();
    }
    s
}

fn part<'a>(files: &'a ShardedFiles, stem: &str) -> &'a (String, Vec<u8>) {
    files
        .parts
        .iter()
        .find(|(n, _)| n.starts_with(stem))
        .unwrap()
}

/// A query vector near passage `p`'s.
fn query_vector(p: usize) -> Vec<f32> {
    let (_, vs) = corpus();
    let v: Vec<f32> = vs[p]
        .iter()
        .enumerate()
        .map(|(d, x)| x + if d % 5 == 0 { 0.05 } else { 0.0 })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

const QUERIES: &[&str] = &[
    "mutex thread",
    "heap pointer stack",
    "async future",
    "zebra",
    "",
];

#[test]
fn same_input_same_files_and_many_small_parts() {
    let (a, b) = (sharded(), sharded());
    assert_eq!(a.meta, b.meta);
    assert_eq!(a.parts, b.parts);
    for stem in ["terms.", "text.", "vecs."] {
        let count = a.parts.iter().filter(|(n, _)| n.starts_with(stem)).count();
        assert!(count > 3, "{count} {stem} parts");
    }
    let s = ShardedIndex::from_meta(a.meta.clone()).unwrap();
    assert_eq!(s.files().len(), a.parts.len());
    assert_eq!(s.len(), 300);
}

#[test]
fn with_every_part_loaded_every_mode_answers_as_the_one_file_index() {
    let files = sharded();
    let s = loaded(&files);
    let one = one_file();
    for (i, q) in QUERIES.iter().enumerate() {
        let v = query_vector(i * 37);
        for mode in [Mode::Hybrid, Mode::Dense, Mode::Lexical] {
            let want = Searcher::new(&one).search(Some(&v), q, 20, mode).unwrap();
            let got = Searcher::new(&s).find(Some(&v), None, q, 20, mode).unwrap();
            assert_eq!(got.gaps, Gaps::default());
            assert_eq!(got.hits, want, "{q:?} {mode:?}");
        }
    }
}

/// The browser's loop: search, fetch what it names, add it, search again.
fn on_demand(
    s: &mut ShardedIndex,
    files: &ShardedFiles,
    v: &[f32],
    q: &str,
    mode: Mode,
) -> (Vec<cairn::Hit>, Vec<String>) {
    let mut fetched = Vec::new();
    for _ in 0..4 {
        let found = Searcher::new(s).find(Some(v), None, q, 10, mode).unwrap();
        if found.gaps.need.is_empty() {
            return (found.hits, fetched);
        }
        for name in found.gaps.need {
            let (_, bytes) = files.parts.iter().find(|(n, _)| *n == name).unwrap();
            s.add_part(&name, bytes.clone()).unwrap();
            fetched.push(name);
        }
    }
    panic!("the search kept asking for parts");
}

#[test]
fn a_cold_query_fetches_only_the_parts_it_touches() {
    let files = sharded();
    let full = loaded(&files);
    let mut cold = ShardedIndex::from_meta(files.meta.clone()).unwrap();
    let v = query_vector(10);
    // Keywords: the term chunks of its words, then the text of its hits; the same answer.
    let (hits, fetched) = on_demand(&mut cold, &files, &v, "mutex thread", Mode::Lexical);
    let want = Searcher::new(&full).search(Some(&v), "mutex thread", 10, Mode::Lexical);
    assert_eq!(hits, want.unwrap());
    assert!(
        fetched
            .iter()
            .all(|f| !f.starts_with("vecs.") && !f.starts_with("cent.")),
        "{fetched:?}"
    );
    assert!(
        fetched.len() < files.parts.len() / 3,
        "{} of {}",
        fetched.len(),
        files.parts.len()
    );
    // Meaning: only the probed shards.
    let mut cold = ShardedIndex::from_meta(files.meta.clone()).unwrap();
    let (hits, fetched) = on_demand(&mut cold, &files, &v, "mutex thread", Mode::Hybrid);
    let shards = fetched.iter().filter(|f| f.starts_with("vecs.")).count();
    let total = cold.table().vector_rows.len();
    // Enough of the nearest shards to hold 64 rows: two or three of about 32.
    assert!(
        (2..=3).contains(&shards) && shards < total,
        "{shards} of {total}"
    );
    assert_eq!(fetched.iter().filter(|f| f.starts_with("cent.")).count(), 1);
    assert_eq!(hits.len(), 10);
    // A second query fetches only what it has not seen.
    let before = fetched.len();
    let (_, again) = on_demand(&mut cold, &files, &v, "mutex thread", Mode::Hybrid);
    assert!(again.is_empty(), "{again:?} after {before}");
}

#[test]
fn a_part_that_cannot_be_had_is_named_and_the_other_results_show() {
    let files = sharded();
    let s = loaded(&files);
    let v = query_vector(3);
    let all = Searcher::new(&s)
        .search(Some(&v), "mutex", 10, Mode::Hybrid)
        .unwrap();
    // Drop the text group of the top hit: rebuild without it and mark it missing.
    let mut partial = ShardedIndex::from_meta(files.meta.clone()).unwrap();
    let top_group = files
        .parts
        .iter()
        .filter(|(n, _)| n.starts_with("text."))
        .find(|(n, b)| {
            let mut probe = ShardedIndex::from_meta(files.meta.clone()).unwrap();
            probe.add_part(n, b.clone()).unwrap();
            probe
                .passage(all[0].passage, &mut Gaps::default())
                .is_some()
        })
        .map(|(n, _)| n.clone())
        .unwrap();
    for (name, bytes) in &files.parts {
        if *name != top_group {
            partial.add_part(name, bytes.clone()).unwrap();
        }
    }
    let found = Searcher::new(&partial)
        .find(Some(&v), None, "mutex", 10, Mode::Hybrid)
        .unwrap();
    assert_eq!(found.gaps.need, vec![top_group.clone()]);
    partial.mark_missing(&top_group);
    let found = Searcher::new(&partial)
        .find(Some(&v), None, "mutex", 10, Mode::Hybrid)
        .unwrap();
    assert_eq!(found.gaps.missing, vec![top_group.clone()]);
    assert!(found.gaps.need.is_empty());
    assert!(!found.hits.is_empty());
    assert!(found.hits.iter().all(|h| h.passage != all[0].passage));
    // The others keep their order.
    let rest: Vec<u32> = all
        .iter()
        .map(|h| h.passage)
        .filter(|p| found.hits.iter().any(|h| h.passage == *p))
        .collect();
    assert_eq!(
        rest,
        found.hits.iter().map(|h| h.passage).collect::<Vec<_>>()
    );
    // Once it arrives, it is no longer missing.
    let (_, bytes) = files.parts.iter().find(|(n, _)| *n == top_group).unwrap();
    partial.add_part(&top_group, bytes.clone()).unwrap();
    let found = Searcher::new(&partial)
        .find(Some(&v), None, "mutex", 10, Mode::Hybrid)
        .unwrap();
    assert!(found.gaps.is_empty());
    assert_eq!(found.hits, all);
}

#[test]
fn bad_parts_are_typed_errors_naming_the_file_and_leave_the_index_usable() {
    let files = sharded();
    let mut s = ShardedIndex::from_meta(files.meta.clone()).unwrap();
    for stem in ["terms.", "text.", "vecs.", "cent."] {
        let (name, bytes) = part(&files, stem);
        let named = |e: Error| match e {
            Error::CorruptPart { file, reason } => {
                assert_eq!(&file, name);
                assert!(e_text(&file, &reason).contains(name.as_str()));
            }
            other => panic!("{name}: {other}"),
        };
        // Cut short, anywhere.
        for cut in [0, 7, 16, bytes.len() / 2, bytes.len() - 1] {
            named(s.add_part(name, bytes[..cut].to_vec()).unwrap_err());
        }
        // One flipped bit, anywhere.
        for at in (0..bytes.len()).step_by(bytes.len() / 17 + 1) {
            let mut b = bytes.clone();
            b[at] ^= 0x10;
            named(s.add_part(name, b).unwrap_err());
        }
        // Another part's bytes (a stale cache, a server mix-up).
        let (other, other_bytes) = files.parts.iter().find(|(n, _)| n != name).unwrap();
        assert_ne!(other, name);
        named(s.add_part(name, other_bytes.clone()).unwrap_err());
        assert!(!s.has(name));
        // The right bytes still go in afterwards.
        s.add_part(name, bytes.clone()).unwrap();
        assert!(s.has(name));
    }
    assert!(matches!(
        s.add_part("terms.0000000000000000.cidx", vec![]),
        Err(Error::InvalidArgument(_))
    ));
}

fn e_text(file: &str, reason: &str) -> String {
    Error::CorruptPart {
        file: file.into(),
        reason: reason.into(),
    }
    .to_string()
}

/// Rewrites a container's version and its checksum, as a newer `cairn index` would write.
fn with_version(bytes: &[u8], version: u32) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[8..12].copy_from_slice(&version.to_le_bytes());
    let body = b.len() - 8;
    let crc = crc32fast::hash(&b[..body]);
    b[body..body + 4].copy_from_slice(&crc.to_le_bytes());
    b
}

#[test]
fn meta_files_of_another_version_or_layout_are_refused_by_name() {
    let files = sharded();
    match ShardedIndex::from_meta(with_version(&files.meta, 3)) {
        Err(Error::UnsupportedIndexVersion {
            found: 3,
            min: 1,
            max: 2,
        }) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a newer meta file loaded"),
    }
    let msg = ShardedIndex::from_meta(with_version(&files.meta, 3))
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains('3') && msg.contains('2'), "{msg}");
    // A meta file is not a one-file index, nor the other way round.
    assert!(matches!(
        Index::from_bytes(files.meta.clone()),
        Err(Error::NotAnIndex(_))
    ));
    let (ps, vs) = corpus();
    let one = build_index(&ps, &vs, "fp", "m").unwrap();
    assert!(matches!(
        ShardedIndex::from_meta(one),
        Err(Error::NotAnIndex(_))
    ));
    // A meta file cut anywhere is an error, never a panic.
    for cut in 0..files.meta.len() {
        assert!(ShardedIndex::from_meta(files.meta[..cut].to_vec()).is_err());
    }
    // Another model's index is refused.
    let s = ShardedIndex::from_meta(files.meta.clone()).unwrap();
    assert!(matches!(
        s.check_model("other"),
        Err(Error::ModelMismatch { .. })
    ));
    s.check_model("fp").unwrap();
}

#[test]
fn tiny_and_empty_corpora_build_and_answer() {
    let (ps, vs) = corpus();
    for n in [1, 2, 5] {
        let files = build_sharded(&ps[..n], &vs[..n], "fp", "m", &ShardOptions::default()).unwrap();
        let s = loaded(&files);
        let hits = Searcher::new(&s)
            .search(Some(&vs[0]), "mutex", 10, Mode::Hybrid)
            .unwrap();
        assert!(!hits.is_empty() && hits.len() <= n);
    }
    let files = build_sharded(&[], &[], "fp", "m", &ShardOptions::default()).unwrap();
    let s = loaded(&files);
    assert!(s.is_empty());
    let hits = Searcher::new(&s)
        .search(None, "mutex", 10, Mode::Hybrid)
        .unwrap();
    assert!(hits.is_empty());
}
