//! The HTML ingester on arbitrary pages: never panics, stores text only, and keeps no link
//! other than http(s) and relative ones.
#![no_main]
use cairn::ingest::html::{page_passages, Selectors};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static SEL: OnceLock<Selectors> = OnceLock::new();
    let sel = SEL.get_or_init(|| Selectors::new().unwrap());
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let doc = scraper::Html::parse_document(text);
    for require_marker in [false, true] {
        if let Ok(passages) = page_passages(sel, &doc, "/page.html", "page.html", require_marker) {
            for p in &passages {
                assert!(p.url.starts_with("/page.html"), "passage url {:?}", p.url);
                assert!(!p.text.is_empty() || !p.title.is_empty() || !p.heading.is_empty());
            }
        }
    }
});
