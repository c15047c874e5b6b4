//! Reading the fixture site (`tests/fixtures/site/`): sections at headings with anchors,
//! navigation and ignored parts left out, redirect stubs and print pages skipped, hostile
//! markup kept as plain text; filters, meta and sort keys from the site's attributes, JSONL
//! records and Markdown front matter.
#![cfg(all(feature = "ingest", not(target_arch = "wasm32")))]

#[cfg(feature = "encoder")]
mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use cairn::index::Passage;
use cairn::ingest::jsonl::parse_jsonl;
use cairn::ingest::markdown::markdown_passages;
use cairn::ingest::{ingest_site, SiteOptions, Skipped};

fn site() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/site")
}

#[test]
fn fixture_site_becomes_sections_with_anchors() {
    let (passages, report) = ingest_site(&site(), &SiteOptions::default()).unwrap();
    let mut skipped: Vec<(String, Skipped)> = report.skipped.clone();
    skipped.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        skipped,
        vec![
            ("/old-threads.html".to_string(), Skipped::Redirect),
            ("/print.html".to_string(), Skipped::NotContent),
        ]
    );
    // index, hostile, guide/{threads,boxes} and the four pages of blog/.
    assert_eq!(report.pages_indexed, 8);
    let ids: Vec<&str> = passages.iter().map(|p| p.id.as_str()).collect();
    for want in [
        "/#welcome",
        "/#getting-started",
        "/guide/threads.html#fearless-concurrency",
        "/guide/threads.html#using-threads",
        "/guide/threads.html#shared-state",
        "/guide/threads.html#message-passing",
        "/guide/boxes.html#box",
    ] {
        assert!(ids.contains(&want), "missing {want} in {ids:?}");
    }
    let shared = passages
        .iter()
        .find(|p| p.anchor == "shared-state")
        .unwrap();
    assert_eq!(shared.title, "Fearless Concurrency");
    assert_eq!(shared.heading, "Shared-State Concurrency");
    assert_eq!(shared.url, "/guide/threads.html");
    assert!(shared.text.contains("Arc::new(Mutex::new(0))"));
    let all: String = passages.iter().map(|p| p.text.clone() + " ").collect();
    for absent in [
        "Buy the printed edition",
        "Copyright",
        "Theme",
        "Home",
        "Redirecting",
    ] {
        assert!(!all.contains(absent), "`{absent}` should not be indexed");
    }
    let boxes = passages.iter().find(|p| p.anchor == "box").unwrap();
    assert_eq!(boxes.heading, "Using Box<T> to Point to Data on the Heap");
}

#[test]
fn hostile_page_is_plain_text() {
    let (passages, _) = ingest_site(&site(), &SiteOptions::default()).unwrap();
    let hostile: Vec<_> = passages
        .iter()
        .filter(|p| p.url == "/hostile.html")
        .collect();
    assert!(!hostile.is_empty());
    let first = hostile[0];
    assert_eq!(first.title, "Hostile page <b>bold</b>");
    assert!(first
        .text
        .contains("café & crème <script>window.__cairnPwned = 'text'</script> zebra"));
    assert!(first.text.contains("click me"));
    let all: String = hostile
        .iter()
        .map(|p| format!("{} {} ", p.heading, p.text))
        .collect();
    for absent in [
        "head script",
        "onload",
        "onerror",
        "svg text",
        "display:none",
        "javascript:",
    ] {
        assert!(!all.contains(absent), "`{absent}` leaked into {all:?}");
    }
}

#[test]
fn base_url_and_body_marker() {
    let opts = SiteOptions {
        base_url: "/docs/".into(),
    };
    let (passages, _) = ingest_site(&site(), &opts).unwrap();
    assert!(passages.iter().all(|p| p.url.starts_with("/docs/")));

    // Once one page marks its body, pages without the marker are left out.
    let dir = std::env::temp_dir().join(format!("cairn-marker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("a.html"),
        "<body><p>outside</p><div data-cairn-body><h2 id=h>In</h2><p>inside text</p></div></body>",
    )
    .unwrap();
    std::fs::write(dir.join("b.html"), "<body><p>unmarked page</p></body>").unwrap();
    let (passages, report) = ingest_site(&dir, &SiteOptions::default()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(passages.len(), 1);
    assert_eq!(passages[0].text, "inside text");
    assert_eq!(
        report.skipped,
        vec![("/b.html".to_string(), Skipped::NoBodyMarker)]
    );
}

fn filters(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn fixture_pages_carry_their_filters_meta_and_sort_keys() {
    let (passages, _) = ingest_site(&site(), &SiteOptions::default()).unwrap();
    type Want<'a> = (
        &'a str,
        &'a [(&'a str, &'a [&'a str])],
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
    );
    let pages: &[Want] = &[
        (
            "/blog/editions.html",
            &[("section", &["Blog"]), ("tag", &["editions", "rust"])],
            &[("date", "2018-12-06"), ("image", "/img/editions.png")],
            &[("date", "2018-12-06"), ("weight", "3")],
        ),
        (
            "/blog/async.html",
            &[("section", &["Blog"]), ("tag", &["async", "rust"])],
            &[("date", "2019-11-07")],
            &[("date", "2019-11-07"), ("weight", "10")],
        ),
        (
            "/blog/const-generics.html",
            &[
                ("level", &["introduction <b>"]),
                ("section", &["Blog"]),
                ("tag", &["generics"]),
            ],
            &[("date", "2021-03-25")],
            &[("date", "2021-03-25"), ("weight", "2")],
        ),
        (
            // Both filters in one attribute: `section:Release notes, tag:rust`.
            "/blog/release.html",
            &[("section", &["Release notes"]), ("tag", &["rust"])],
            &[("date", "2023-06-01")],
            &[("date", "2023-06-01")],
        ),
        ("/guide/threads.html", &[("section", &["Guide"])], &[], &[]),
        ("/guide/boxes.html", &[("section", &["Guide"])], &[], &[]),
        ("/", &[], &[], &[]),
        // Markup and a javascript: address in meta stay text (the element shows no image
        // for the latter: tests/e2e/demo.test.mjs).
        (
            "/hostile.html",
            &[],
            &[
                ("date", "<img src=x onerror=\"window.__cairnPwned='meta'\">"),
                ("image", "javascript:window.__cairnPwned='meta-image'"),
            ],
            &[],
        ),
    ];
    for (url, f, m, s) in pages {
        let of_page: Vec<&Passage> = passages.iter().filter(|p| p.url == *url).collect();
        // Every page has two sections (threads.html four); the hostile page's are counted
        // by `hostile_page_is_plain_text`.
        match *url {
            "/hostile.html" => assert!(!of_page.is_empty()),
            "/guide/threads.html" => assert_eq!(of_page.len(), 4, "sections of {url}"),
            _ => assert_eq!(of_page.len(), 2, "sections of {url}"),
        }
        for p in of_page {
            assert_eq!(p.filters, filters(f), "filters of {}", p.id);
            assert_eq!(p.meta, map(m), "meta of {}", p.id);
            assert_eq!(p.sort, map(s), "sort of {}", p.id);
        }
    }
    // Every passage belongs to one of the pages above.
    assert!(passages
        .iter()
        .all(|p| pages.iter().any(|(url, ..)| p.url == *url)));
    // The filter and meta elements' text is indexed like any other text.
    let editions = passages
        .iter()
        .find(|p| p.id == "/blog/editions.html#editions")
        .unwrap();
    assert!(
        editions.text.contains("Tags: editions, rust."),
        "{}",
        editions.text
    );
}

#[test]
fn jsonl_records_carry_filters_meta_and_sort() {
    let text = concat!(
        r#"{"_id": "a", "text": "One.", "filters": {"tag": "rust", "section": ["Blog", "News"]}, "meta": {"date": "2020-01-02"}, "sort": {"weight": 10, "date": "2020-01-02"}}"#,
        "\n",
        r#"{"_id": "b", "text": "Two.", "filters": {"tag": ["async", "rust"]}}"#,
        "\n",
        r#"{"_id": "c", "text": "Three."}"#,
        "\n",
    );
    let ps = parse_jsonl(text, "corpus.jsonl").unwrap();
    assert_eq!(
        ps[0].filters,
        filters(&[("section", &["Blog", "News"]), ("tag", &["rust"])])
    );
    assert_eq!(ps[0].meta, map(&[("date", "2020-01-02")]));
    assert_eq!(ps[0].sort, map(&[("date", "2020-01-02"), ("weight", "10")]));
    assert_eq!(ps[1].filters, filters(&[("tag", &["async", "rust"])]));
    assert!(ps[1].meta.is_empty() && ps[1].sort.is_empty());
    assert!(ps[2].filters.is_empty() && ps[2].meta.is_empty() && ps[2].sort.is_empty());

    let bad = format!(
        "{text}{}\n",
        r#"{"_id": "d", "text": "Four.", "filters": {"tag": 7}}"#
    );
    let err = parse_jsonl(&bad, "corpus.jsonl").unwrap_err();
    assert!(matches!(err, cairn::Error::InvalidArgument(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("corpus.jsonl line 4"), "{msg}");
    assert!(
        msg.contains("`filters.tag` must be a string or a list of strings, not a number"),
        "{msg}"
    );
}

#[test]
fn markdown_front_matter_carries_filters_meta_and_sort() {
    let md = "---
title: Async-await
filters:
  section: Blog
  tag:
    - async
    - rust
meta:
  date: 2019-11-07
  image: /img/async.png
sort:
  date: 2019-11-07
  weight: 10
---
# Async-await on Stable

Futures do nothing until polled.

## Awaiting Futures

The await keyword suspends the function.
";
    let ps = markdown_passages(md, "/blog/async.html", "async");
    assert_eq!(ps.len(), 2);
    for p in &ps {
        assert_eq!(
            p.filters,
            filters(&[("section", &["Blog"]), ("tag", &["async", "rust"])])
        );
        assert_eq!(
            p.meta,
            map(&[("date", "2019-11-07"), ("image", "/img/async.png")])
        );
        assert_eq!(p.sort, map(&[("date", "2019-11-07"), ("weight", "10")]));
    }
    assert!(!ps[0].text.contains("filters"), "front matter is not text");

    // Broken YAML: the page is indexed all the same, without fields.
    let broken = md.replacen("  section: Blog", "  section: [Blog", 1);
    let ps = markdown_passages(&broken, "/blog/async.html", "async");
    assert_eq!(ps.len(), 2);
    assert_eq!(ps[0].heading, "Async-await on Stable");
    assert_eq!(ps[0].text, "Futures do nothing until polled.");
    assert!(ps
        .iter()
        .all(|p| p.filters.is_empty() && p.meta.is_empty() && p.sort.is_empty()));
}

/// A section far over the model's budget is embedded in parts that each fit, counted by the
/// real tokenizer (which must not truncate while counting, or nothing is ever cut), and stays
/// one passage with one unit vector.
#[cfg(feature = "encoder")]
#[test]
fn long_section_is_embedded_in_parts_within_the_models_budget() {
    use cairn::ingest::EmbedPlan;
    use cairn::{Encoder, Role};
    let enc = Encoder::from_bytes(&common::read_model_file("all-minilm-l6-v2-q4_0.gguf")).unwrap();
    let budget = enc.config().max_seq_length;
    let words: Vec<String> = (0..3_000)
        .map(|i| format!("{} word{i}", ["ownership", "borrowing", "lifetimes"][i % 3]))
        .collect();
    let section = Passage {
        id: "/long.html#s".into(),
        url: "/long.html".into(),
        anchor: "s".into(),
        title: "Long".into(),
        heading: "A very long section".into(),
        text: words.join(" "),
        ..Passage::default()
    };
    let short = Passage {
        id: "/short.html".into(),
        text: "a short page".into(),
        ..Passage::default()
    };
    let count = |t: &str| enc.token_count(t, Role::Document).unwrap();
    assert!(count(&section.indexed_text()) > 10 * budget);
    let sections = vec![short.clone(), section.clone()];
    let plan = EmbedPlan::parts(&sections, budget, 32, &count);
    assert_eq!(plan.texts[0], short.indexed_text());
    let parts = plan.texts.len() - 1;
    assert!(parts >= 10, "{parts} parts");
    for (i, t) in plan.texts.iter().enumerate().skip(1) {
        assert_eq!(plan.owner[i], 1);
        assert!(count(t) <= budget, "part {i}");
        assert!(t.starts_with("Long A very long section "), "part {i}");
    }
    // Every word of the section is in some part.
    assert!(plan.texts.last().unwrap().ends_with(" word2999"));
    let vectors = plan
        .join(enc.embed(&plan.texts, Role::Document).unwrap())
        .unwrap();
    assert_eq!(vectors.len(), 2);
    let norm: f32 = vectors[1].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    // The whole section's vector is not its first part's alone.
    let first = enc.embed(&[&plan.texts[1]], Role::Document).unwrap();
    let dot: f32 = first[0].iter().zip(&vectors[1]).map(|(a, b)| a * b).sum();
    assert!(dot < 0.9999, "{dot}");
}
