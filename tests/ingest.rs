//! Reading the fixture site (`tests/fixtures/site/`): sections at headings with anchors,
//! navigation and ignored parts left out, redirect stubs and print pages skipped, hostile
//! markup kept as plain text.
#![cfg(all(feature = "ingest", not(target_arch = "wasm32")))]

use std::path::PathBuf;

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
    assert_eq!(report.pages_indexed, 4);
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
