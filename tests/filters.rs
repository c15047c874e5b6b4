//! Filters, meta and sort keys through both index layouts: stored once, applied before
//! ranking in every mode (so a filter never shrinks a page of results that exist), counted
//! per value, and sorted; unknown keys are errors.

use std::collections::BTreeMap;

use cairn::index::facets::{Filters, Sort};
use cairn::index::sharded::{build_sharded, ShardOptions, ShardedIndex};
use cairn::index::{build_index, Index, Passage};
use cairn::search::{Found, Refine, Source, Why};
use cairn::{Mode, Searcher};

const WORDS: &[&str] = &[
    "mutex", "thread", "channel", "vector", "string", "iterator", "closure", "trait", "borrow",
    "lifetime", "pointer", "heap", "stack", "macro", "module", "crate",
];

/// 240 passages over 48 pages. Page `g`: section Guide for even pages, Blog for odd; tag
/// `rust` on every third page, `async` on every fourth (so some have both, some neither);
/// a date (and its meta) on pages not divisible by 5; the page's number as `weight`.
fn corpus() -> (Vec<Passage>, Vec<Vec<f32>>) {
    let dim = 32;
    let (mut passages, mut vectors) = (Vec::new(), Vec::new());
    for i in 0..240usize {
        let g = i / 5;
        let words: Vec<&str> = (0..10)
            .map(|j| WORDS[(i * 7 + j * j * 3 + g) % WORDS.len()])
            .collect();
        let mut filters = BTreeMap::new();
        let section = if g % 2 == 0 { "Guide" } else { "Blog" };
        filters.insert("section".to_string(), vec![section.to_string()]);
        let mut tags = Vec::new();
        if g % 3 == 0 {
            tags.push("rust".to_string());
        }
        if g % 4 == 0 {
            tags.push("async".to_string());
        }
        if !tags.is_empty() {
            filters.insert("tag".to_string(), tags);
        }
        let (mut meta, mut sort) = (BTreeMap::new(), BTreeMap::new());
        if g % 5 != 0 {
            let date = format!("20{:02}-01-{:02}", 10 + g % 13, 1 + g % 28);
            meta.insert("date".to_string(), date.clone());
            sort.insert("date".to_string(), date);
        }
        sort.insert("weight".to_string(), g.to_string());
        passages.push(Passage {
            id: format!("p{i}"),
            url: format!("page{g}.html"),
            anchor: format!("s{}", i % 5),
            title: format!("Page {g}"),
            heading: format!("Section {}", i % 5),
            text: words.join(" ") + ".",
            filters,
            meta,
            sort,
        });
        let v: Vec<f32> = (0..dim)
            .map(|d| {
                ((i * 31 + d * 17) % 23) as f32 / 23.0 - 0.5
                    + if d % 6 == i % 6 { 2.0 } else { 0.0 }
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        vectors.push(v.into_iter().map(|x| x / norm).collect());
    }
    (passages, vectors)
}

fn one_file() -> Index {
    let (ps, vs) = corpus();
    Index::from_bytes(build_index(&ps, &vs, "fp", "test").unwrap()).unwrap()
}

fn sharded() -> ShardedIndex {
    let (ps, vs) = corpus();
    let opts = ShardOptions {
        shard_rows: 24,
        chunk_bytes: 256,
        text_bytes: 512,
        probe_rows: 32,
    };
    let files = build_sharded(&ps, &vs, "fp", "test", &opts).unwrap();
    let mut s = ShardedIndex::from_meta(files.meta).unwrap();
    for (name, bytes) in files.parts {
        s.add_part(&name, bytes).unwrap();
    }
    s
}

/// A value's count in an answer (a value no passage of the pool carries is left out: 0).
fn count(counts: &cairn::index::facets::Counts, key: &str, value: &str) -> u32 {
    counts
        .get(key)
        .and_then(|v| v.get(value))
        .copied()
        .unwrap_or(0)
}

fn filters(json: &str) -> Filters {
    serde_json::from_str(json).unwrap()
}

fn find(
    index: &dyn Source,
    vector: Option<&[f32]>,
    q: &str,
    k: usize,
    mode: Mode,
    r: &Refine,
) -> Found {
    Searcher::new(index)
        .find_refined(vector, None, q, k, mode, r)
        .unwrap()
}

/// Whether passage `p` of the corpus passes `pred` on its own fields.
fn by_hand(pred: impl Fn(&Passage) -> bool) -> Vec<u32> {
    let (ps, _) = corpus();
    (0..ps.len() as u32)
        .filter(|&p| pred(&ps[p as usize]))
        .collect()
}

fn has(p: &Passage, key: &str, value: &str) -> bool {
    p.filters
        .get(key)
        .is_some_and(|v| v.iter().any(|x| x == value))
}

/// Which passages a filter should let through, judged by hand.
type Pred = Box<dyn Fn(&Passage) -> bool>;

#[test]
fn filters_apply_in_every_mode_and_layout() {
    let (ps, vs) = corpus();
    let one = one_file();
    let sh = sharded();
    let cases: [(&str, Pred); 5] = [
        (
            r#"{"section": "Blog"}"#,
            Box::new(|p| has(p, "section", "Blog")),
        ),
        (
            r#"{"tag": ["rust", "async"]}"#,
            Box::new(|p| has(p, "tag", "rust") || has(p, "tag", "async")),
        ),
        (
            r#"{"tag": {"all": ["rust", "async"]}}"#,
            Box::new(|p| has(p, "tag", "rust") && has(p, "tag", "async")),
        ),
        (
            r#"{"section": "Guide", "tag": {"none": "rust"}}"#,
            Box::new(|p| has(p, "section", "Guide") && !has(p, "tag", "rust")),
        ),
        (r#"{"tag": "nonesuch"}"#, Box::new(|_| false)),
    ];
    for (json, pred) in &cases {
        let allowed = by_hand(pred);
        let refine = Refine {
            filters: filters(json),
            sort: None,
            ranking: Default::default(),
        };
        // The one-file index scans every row: exactly the unfiltered order, kept by hand.
        for (index, exact) in [(&one as &dyn Source, true), (&sh as &dyn Source, false)] {
            for (mode, vector) in [
                (Mode::Lexical, None),
                (Mode::Dense, Some(vs[7].as_slice())),
                (Mode::Hybrid, Some(vs[7].as_slice())),
            ] {
                let k = 10;
                let found = find(index, vector, "mutex thread channel", k, mode, &refine);
                for h in &found.hits {
                    assert!(
                        allowed.contains(&h.passage),
                        "{json} {mode:?}: {} passed",
                        h.id
                    );
                }
                // Applied before ranking: a full page wherever that many allowed passages
                // match (the meaning modes rank every allowed passage).
                if mode != Mode::Lexical {
                    assert_eq!(found.hits.len(), k.min(allowed.len()), "{json} {mode:?}");
                }
                // Unfiltered, then kept by hand: the dense order is the same.
                if exact && mode == Mode::Dense && !allowed.is_empty() {
                    let all = find(index, vector, "x", ps.len(), mode, &Refine::default());
                    let expect: Vec<u32> = all
                        .hits
                        .iter()
                        .map(|h| h.passage)
                        .filter(|p| allowed.contains(p))
                        .take(k)
                        .collect();
                    let got: Vec<u32> = found.hits.iter().map(|h| h.passage).collect();
                    assert_eq!(got, expect, "{json}");
                }
            }
        }
    }
}

#[test]
fn counts_match_a_count_by_hand() {
    let (ps, _) = corpus();
    for index in [&one_file() as &dyn Source, &sharded() as &dyn Source] {
        let refine = Refine {
            filters: filters(r#"{"section": "Blog"}"#),
            sort: None,
            ranking: Default::default(),
        };
        let found = find(index, None, "mutex", 100, Mode::Lexical, &refine);
        let matched = by_hand(|p| has(p, "section", "Blog") && p.text.contains("mutex"));
        assert_eq!(found.total, matched.len());
        // Without the filter: every keyword match counted.
        let all = by_hand(|p| p.text.contains("mutex"));
        let guide = all
            .iter()
            .filter(|&&p| has(&ps[p as usize], "section", "Guide"))
            .count();
        assert_eq!(
            count(found.total_counts.as_ref().unwrap(), "section", "Guide") as usize,
            guide
        );
        assert_eq!(
            count(found.total_counts.as_ref().unwrap(), "section", "Blog") as usize,
            matched.len()
        );
        assert_eq!(found.hits.len(), matched.len().min(100));
        for (key, value) in [
            ("section", "Blog"),
            ("section", "Guide"),
            ("tag", "rust"),
            ("tag", "async"),
        ] {
            let expect = matched
                .iter()
                .filter(|&&p| has(&ps[p as usize], key, value))
                .count() as u32;
            assert_eq!(count(&found.counts, key, value), expect, "{key} = {value}");
        }
        // Without a query word: every allowed passage, listed by its filters.
        let found = find(index, None, "", 500, Mode::Hybrid, &refine);
        assert_eq!(found.total, 120);
        assert_eq!(found.hits.len(), 120);
        assert!(found.hits.iter().all(|h| h.why == Why::Filter));
        assert_eq!(count(&found.counts, "section", "Guide"), 0);
        assert_eq!(
            count(&found.counts, "tag", "rust"),
            by_hand(|p| has(p, "section", "Blog") && has(p, "tag", "rust")).len() as u32
        );
        // Only stop words is not "no words": nothing matches, nothing is listed.
        assert!(find(index, None, "the of", 50, Mode::Lexical, &refine)
            .hits
            .is_empty());
        // No filter, no sort, no words: nothing, as before filters existed.
        assert!(find(index, None, "", 10, Mode::Lexical, &Refine::default())
            .hits
            .is_empty());
    }
}

#[test]
fn sort_keys_order_results() {
    for index in [&one_file() as &dyn Source, &sharded() as &dyn Source] {
        let by = |key: &str, descending: bool| Refine {
            filters: Filters::default(),
            sort: Some(Sort {
                key: key.into(),
                descending,
            }),
            ranking: Default::default(),
        };
        // Numeric: 2 < 10 (text order would put "10" first).
        let found = find(
            index,
            None,
            "mutex",
            100,
            Mode::Lexical,
            &by("weight", false),
        );
        let w: Vec<u32> = found
            .hits
            .iter()
            .map(|h| h.url[4..h.url.len() - 5].parse().unwrap())
            .collect();
        assert!(w.windows(2).all(|p| p[0] <= p[1]), "{w:?}");
        assert_eq!(found.hits.len(), found.total.min(100));
        let found = find(
            index,
            None,
            "mutex",
            100,
            Mode::Lexical,
            &by("weight", true),
        );
        let w: Vec<u32> = found
            .hits
            .iter()
            .map(|h| h.url[4..h.url.len() - 5].parse().unwrap())
            .collect();
        assert!(w.windows(2).all(|p| p[0] >= p[1]), "{w:?}");
        // Dates as text, newest first; passages without one last; meta comes back.
        let found = find(index, None, "thread", 100, Mode::Lexical, &by("date", true));
        let dates: Vec<Option<&String>> = found.hits.iter().map(|h| h.meta.get("date")).collect();
        let first_none = dates
            .iter()
            .position(Option::is_none)
            .unwrap_or(dates.len());
        assert!(dates[first_none..].iter().all(Option::is_none));
        assert!(
            dates[..first_none].windows(2).all(|p| p[0] >= p[1]),
            "{dates:?}"
        );
        let e = Searcher::new(index)
            .find_refined(None, None, "thread", 10, Mode::Lexical, &by("year", false))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`year`") && e.contains("`date`, `weight`"),
            "{e}"
        );
    }
}

#[test]
fn unknown_keys_are_errors_and_values_are_stored_once() {
    let one = one_file();
    let e = Searcher::new(&one)
        .find_refined(
            None,
            None,
            "mutex",
            10,
            Mode::Lexical,
            &Refine {
                filters: filters(r#"{"year": "2020"}"#),
                sort: None,
                ranking: Default::default(),
            },
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown filter key `year`") && e.contains("`section`, `tag`"),
        "{e}"
    );
    // The passage table keeps meta, not filters or sort keys (those live in the facets).
    assert!(one
        .passages()
        .iter()
        .all(|p| p.filters.is_empty() && p.sort.is_empty()));
    assert_eq!(one.passages()[6].meta["date"], "2011-01-02");
    let totals = one.facets().totals();
    assert_eq!(totals["section"]["Blog"], 120);
    assert_eq!(
        totals["tag"]["rust"],
        by_hand(|p| has(p, "tag", "rust")).len() as u32
    );
    // An index without filters: every key unknown, said so.
    let (mut ps, vs) = corpus();
    for p in &mut ps {
        p.filters.clear();
        p.sort.clear();
    }
    let plain = Index::from_bytes(build_index(&ps, &vs, "fp", "test").unwrap()).unwrap();
    assert!(plain.facets().is_empty());
    let e = Searcher::new(&plain)
        .find_refined(
            None,
            None,
            "mutex",
            10,
            Mode::Lexical,
            &Refine {
                filters: filters(r#"{"section": "Blog"}"#),
                sort: None,
                ranking: Default::default(),
            },
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("this index has no filters"), "{e}");
    // Unfiltered results are what they were before filters existed.
    let a = Searcher::new(&plain)
        .search(Some(&vs[3]), "mutex thread", 10, Mode::Hybrid)
        .unwrap();
    let b = Searcher::new(&one)
        .search(Some(&vs[3]), "mutex thread", 10, Mode::Hybrid)
        .unwrap();
    let ids = |h: &[cairn::Hit]| h.iter().map(|h| h.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
}

/// The fixture site's blog pages (tests/fixtures/site/blog/, filters, meta and sort keys in
/// their HTML) and the guide's two pages (section Guide), indexed and searched.
#[cfg(feature = "ingest")]
#[test]
fn fixture_site_filters_counts_and_sorts() {
    use cairn::ingest::{ingest_site, SiteOptions};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/site");
    let (passages, _) = ingest_site(&root, &SiteOptions::default()).unwrap();
    // Vectors need no model here: one per passage, distinct (the dense modes rank them).
    let vectors: Vec<Vec<f32>> = (0..passages.len())
        .map(|i| {
            let v: Vec<f32> = (0..16)
                .map(|d| ((i * 7 + d * 3) % 11) as f32 - 5.0)
                .collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / n).collect()
        })
        .collect();
    let index = Index::from_bytes(build_index(&passages, &vectors, "fp", "test").unwrap()).unwrap();
    let page = |url: &str| url.rsplit('/').next().unwrap_or("").to_string();
    let on = |key: &str, value: &str| -> Vec<u32> {
        (0..passages.len() as u32)
            .filter(|&p| has(&passages[p as usize], key, value))
            .collect()
    };
    let blog = on("section", "Blog");
    let guide = on("section", "Guide");
    // By hand: four blog pages, three of them tagged rust; two guide pages.
    let pages_of = |ps: &[u32]| {
        let mut v: Vec<String> = ps
            .iter()
            .map(|&p| page(&passages[p as usize].url))
            .collect();
        v.dedup();
        v
    };
    assert_eq!(
        pages_of(&blog),
        ["async.html", "const-generics.html", "editions.html"]
    );
    assert_eq!(pages_of(&on("section", "Release notes")), ["release.html"]);
    assert_eq!(pages_of(&guide), ["boxes.html", "threads.html"]);
    assert_eq!(
        pages_of(&on("tag", "rust")),
        ["async.html", "editions.html", "release.html"]
    );
    let refine = |json: &str, sort: Option<&str>| Refine {
        filters: filters(json),
        sort: sort.map(|s| s.parse().unwrap()),
        ranking: Default::default(),
    };
    for (mode, vector) in [
        (Mode::Lexical, None),
        (Mode::Dense, Some(vectors[0].as_slice())),
        (Mode::Hybrid, Some(vectors[0].as_slice())),
    ] {
        // Filtered in each mode: only Blog passages, and (meaning modes) all of them.
        let found = find(
            &index,
            vector,
            "rust editions async",
            50,
            mode,
            &refine(r#"{"section": "Blog"}"#, None),
        );
        assert!(
            found.hits.iter().all(|h| blog.contains(&h.passage)),
            "{mode:?}"
        );
        assert!(!found.hits.is_empty(), "{mode:?}");
        if mode != Mode::Lexical {
            assert_eq!(found.hits.len(), blog.len(), "{mode:?}");
        }
        // Counts against a count by hand over the passages found.
        let ids: Vec<u32> = found.hits.iter().map(|h| h.passage).collect();
        let rust = ids
            .iter()
            .filter(|p| has(&passages[**p as usize], "tag", "rust"))
            .count();
        assert_eq!(
            count(&found.counts, "tag", "rust") as usize,
            rust,
            "{mode:?}"
        );
        assert_eq!(count(&found.counts, "section", "Blog") as usize, ids.len());
        assert_eq!(count(&found.counts, "section", "Guide"), 0);
        assert_eq!(found.total, ids.len());
        // Two keys, any of two values, none of one.
        let found = find(
            &index,
            vector,
            "rust",
            50,
            mode,
            &refine(
                r#"{"tag": ["generics", "async"], "section": {"none": "Guide"}}"#,
                None,
            ),
        );
        assert!(
            found
                .hits
                .iter()
                .all(|h| ["const-generics.html", "async.html"].contains(&page(&h.url).as_str())),
            "{mode:?}"
        );
    }
    // Listing by filter alone, sorted: weight ascending (numeric; release.html has none, so
    // last), date descending (text).
    let order = |sort: &str| -> Vec<String> {
        let found = find(
            &index,
            None,
            "",
            50,
            Mode::Hybrid,
            &refine(
                r#"{"tag": {"none": "nonesuch"}, "section": ["Blog", "Release notes"]}"#,
                Some(sort),
            ),
        );
        pages_of(&found.hits.iter().map(|h| h.passage).collect::<Vec<_>>())
    };
    assert_eq!(
        order("weight"),
        [
            "const-generics.html",
            "editions.html",
            "async.html",
            "release.html"
        ]
    );
    assert_eq!(
        order("date:desc"),
        [
            "release.html",
            "const-generics.html",
            "async.html",
            "editions.html"
        ]
    );
    // Meta comes back with the hit, as text.
    let found = find(
        &index,
        None,
        "editions",
        5,
        Mode::Lexical,
        &refine(r#"{"tag": "editions"}"#, None),
    );
    assert_eq!(found.hits[0].meta["date"], "2018-12-06");
    assert_eq!(found.hits[0].meta["image"], "/img/editions.png");
    let found = find(
        &index,
        None,
        "",
        50,
        Mode::Lexical,
        &refine(r#"{"level": "introduction <b>"}"#, None),
    );
    assert_eq!(
        pages_of(&found.hits.iter().map(|h| h.passage).collect::<Vec<_>>()),
        ["const-generics.html"]
    );
}
