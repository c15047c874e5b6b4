//! `search` with arbitrary query strings (and query vectors made from the same bytes) on a
//! small fixed index: every mode answers, never more than k hits, every hit a real passage;
//! the same bytes read as filters (JSON) either are refused with an error or only let
//! through passages that carry them.
#![no_main]
use cairn::index::{build_index, Passage};
use cairn::{Index, Mode, Searcher};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const DIM: usize = 16;

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let texts = [
            "Ownership is Rust's most unique feature",
            "Smart pointers: Box<T> points to data on the heap",
            "Fearless concurrency: sharing state between threads with Arc and Mutex",
            "Ünïcödé text, emoji 🦀 and CJK 中文 in one passage",
            "",
            "error handling with Result and the ? operator",
        ];
        let passages: Vec<Passage> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| Passage {
                id: format!("p{i}"),
                url: format!("/doc{i}.html"),
                anchor: String::new(),
                title: format!("Title {i}"),
                heading: String::new(),
                text: t.to_string(),
                filters: [("tag".to_string(), vec![format!("t{}", i % 3)])].into(),
                sort: [("n".to_string(), format!("{}", i * 7 % 5))].into(),
                ..Default::default()
            })
            .collect();
        let vectors: Vec<Vec<f32>> = (0..texts.len())
            .map(|i| {
                let mut v: Vec<f32> = (0..DIM)
                    .map(|j| ((i * 7 + j * 3) % 11) as f32 - 5.0)
                    .collect();
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
                v.iter_mut().for_each(|x| *x /= n);
                v
            })
            .collect();
        let bytes = build_index(&passages, &vectors, "fuzzfingerprint", "fuzz").unwrap();
        Index::from_bytes(bytes).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let index = index();
    let query = String::from_utf8_lossy(data);
    let mut v = [0f32; DIM];
    for (i, b) in data.iter().enumerate() {
        v[i % DIM] += *b as f32 - 127.5;
    }
    let searcher = Searcher::new(index);
    for mode in [Mode::Lexical, Mode::Dense, Mode::Hybrid] {
        for k in [0usize, 1, 10] {
            let hits = searcher
                .search(Some(&v), &query, k, mode)
                .expect("search failed");
            assert!(hits.len() <= k);
            for h in &hits {
                assert!((h.passage as usize) < index.len());
            }
        }
    }
    let _ = searcher
        .search(None, &query, 5, Mode::Hybrid)
        .expect("keyword search failed");
    // Ranking settings from the input's first bytes: in range, searched; out, refused.
    if let [a, b, c, d, ..] = *data {
        let ranking = cairn::index::lexical::RankingOptions {
            k1: Some(a as f32 / 16.0),
            b: Some(b as f32 / 128.0),
            title: Some(c as f32 / 2.0),
            heading: Some(d as f32 / 2.0),
        };
        let refine = cairn::search::Refine {
            ranking,
            ..Default::default()
        };
        let in_range = a > 0 && b <= 128 && c <= 200 && d <= 200;
        let found = searcher.find_refined(None, None, &query, 10, Mode::Lexical, &refine);
        assert_eq!(found.is_ok(), in_range, "ranking {ranking:?}");
        if let Ok(found) = found {
            assert!(found.hits.iter().all(|h| h.score.is_finite()));
        }
    }
    if let Ok(filters) = serde_json::from_slice::<cairn::index::facets::Filters>(data) {
        let refine = cairn::search::Refine {
            filters,
            sort: Some("n:desc".parse().unwrap()),
            ranking: Default::default(),
        };
        for mode in [Mode::Lexical, Mode::Dense, Mode::Hybrid] {
            if let Ok(found) = searcher.find_refined(Some(&v), None, "rust", 10, mode, &refine) {
                assert!(found.hits.len() <= 10);
                assert!(found.total <= index.len());
            }
        }
    }
});
