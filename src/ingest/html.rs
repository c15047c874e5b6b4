//! HTML pages of a built static site into sections.
//!
//! Parsing is html5ever's (through `scraper`), so malformed and hostile markup is read the
//! way a browser reads it; only text is kept, never markup. Per page:
//!
//! - The content root is the element marked `data-cairn-body`, else `<main>`, else
//!   `[role=main]`, else `<article>`, else `<body>`. As with Pagefind's `data-pagefind-body`,
//!   once any page of a site carries `data-cairn-body`, pages without it are not indexed.
//! - Skipped inside it: `nav`, `header`, `footer`, `aside`, scripts, styles, forms, `svg`,
//!   anything `hidden`, and any element with `data-cairn-ignore`.
//! - Skipped pages: redirect stubs (`<meta http-equiv="refresh">`), pages that ask robots not
//!   to index them (mdBook's print-all page does), `404.html` and `print.html`.
//! - The title is the first `<h1>` of the content, else `<title>`; every heading starts a new
//!   section whose anchor is the heading's `id` (or its link target's), so results link to
//!   `url#anchor`.
//!
//! ## Filters, meta and sort keys
//!
//! As Pagefind's `data-pagefind-filter`, `-meta` and `-sort`, three attributes give a page
//! filters, meta and sort keys ([`super`] says what each is for), which every passage of the
//! page carries. They count on any element of the page, inside the parts left out of the
//! text too (a `<nav>`, the `<head>`, a `data-cairn-ignore` block), read in document order:
//!
//! - `data-cairn-filter="key:value"` adds `value` to the filter `key`;
//!   `data-cairn-filter="key"` adds the element's text (its text content as indexed: scripts
//!   and hidden parts left out, markup dropped, whitespace collapsed). A key may have several
//!   values (from several elements), kept in document order, each once.
//! - `data-cairn-meta="key:value"` or `"key"` (the element's text) sets a meta value; on an
//!   `<img>`, a bare key takes the image's `src` as written (`data-cairn-meta="image"`). The
//!   last element giving a key wins.
//! - `data-cairn-sort="key:value"` or `"key"` (the element's text) sets a sort key; the last
//!   wins.
//!
//! The key is what comes before the first `:`, the value everything after it (so
//! `time:12:30` is `12:30`). One attribute may hold several entries separated by commas:
//! `data-cairn-filter="section:Guide, tag:rust"`. A comma separates entries only where it is
//! followed (after optional spaces) by a key of letters, digits, `_`, `-` or `.` and a `:`;
//! any other comma is part of the value (`tag:a, b` is the one value `a, b`). The first entry
//! may be a bare key (`"tag, section:Guide"`: the tag is the element's text). Values are
//! plain text: `<b>` written in an attribute or as text stays the text `<b>`.

use std::path::Path;

use scraper::{ElementRef, Html, Node, Selector};

use super::{collapse_whitespace, files_with_ext, page_url, sections_to_passages, PageFields};
use crate::index::Passage;
use crate::{Error, Result};

/// Options for reading a site.
#[derive(Debug, Clone)]
pub struct SiteOptions {
    /// Prefix of every page URL (`/` when the site is served from the domain root).
    pub base_url: String,
}

impl Default for SiteOptions {
    fn default() -> Self {
        Self {
            base_url: "/".into(),
        }
    }
}

/// Elements whose content is never indexed.
const SKIP: &[&str] = &[
    "nav", "header", "footer", "aside", "script", "style", "noscript", "template", "svg", "canvas",
    "iframe", "object", "embed", "form", "button", "select", "textarea", "input", "head", "dialog",
    "menu",
];

/// Elements that do not break words apart (everything else is a block boundary).
const INLINE: &[&str] = &[
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "i", "kbd", "mark", "q",
    "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var", "wbr", "del", "ins",
    "label",
];

const IGNORE_ATTR: &str = "data-cairn-ignore";
const BODY_ATTR: &str = "data-cairn-body";
const FILTER_ATTR: &str = "data-cairn-filter";
const META_ATTR: &str = "data-cairn-meta";
const SORT_ATTR: &str = "data-cairn-sort";

/// Why a page was left out, for the build summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    Redirect,
    NoIndex,
    NotContent,
    NoBodyMarker,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Skipped::Redirect => "a redirect (meta refresh)",
            Skipped::NoIndex => "marked noindex",
            Skipped::NotContent => "not content (a 404 or print page)",
            Skipped::NoBodyMarker => "no data-cairn-body element, where the site uses them",
        })
    }
}

/// What reading a site found.
#[derive(Debug, Default)]
pub struct SiteReport {
    pub pages_indexed: usize,
    /// Pages left out, with the reason.
    pub skipped: Vec<(String, Skipped)>,
}

/// Reads every `.html` file under `root`.
pub fn ingest_site(root: &Path, opts: &SiteOptions) -> Result<(Vec<Passage>, SiteReport)> {
    let files = files_with_ext(root, &["html", "htm"])?;
    let mut pages = Vec::with_capacity(files.len());
    for file in &files {
        let raw = std::fs::read(file)?;
        let text = String::from_utf8_lossy(&raw);
        pages.push((file, Html::parse_document(&text)));
    }
    let sel = Selectors::new()?;
    let site_uses_marker = pages
        .iter()
        .any(|(_, doc)| doc.select(&sel.body_marker).next().is_some());
    let mut out = Vec::new();
    let mut report = SiteReport::default();
    for (file, doc) in &pages {
        let url = page_url(root, file, &opts.base_url, false);
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match page_passages(&sel, doc, &url, &name, site_uses_marker) {
            Ok(passages) => {
                report.pages_indexed += 1;
                out.extend(passages);
            }
            Err(why) => report.skipped.push((url, why)),
        }
    }
    Ok((out, report))
}

/// The CSS selectors ingest uses, parsed once.
pub struct Selectors {
    meta: Selector,
    title: Selector,
    body_marker: Selector,
    roots: Vec<Selector>,
    /// Elements carrying a filter, meta or sort attribute.
    fields: Selector,
}

impl Selectors {
    pub fn new() -> Result<Self> {
        let p = |s: &str| {
            Selector::parse(s).map_err(|e| Error::InvalidArgument(format!("selector `{s}`: {e}")))
        };
        Ok(Self {
            meta: p("meta")?,
            title: p("title")?,
            body_marker: p(&format!("[{BODY_ATTR}]"))?,
            roots: ["main", "[role=main]", "article", "body"]
                .into_iter()
                .map(p)
                .collect::<Result<_>>()?,
            fields: p(&format!("[{FILTER_ATTR}], [{META_ATTR}], [{SORT_ATTR}]"))?,
        })
    }
}

/// Sections of one parsed page, or why it was skipped.
pub fn page_passages(
    sel: &Selectors,
    doc: &Html,
    url: &str,
    file_name: &str,
    require_marker: bool,
) -> std::result::Result<Vec<Passage>, Skipped> {
    if matches!(file_name, "404.html" | "print.html") {
        return Err(Skipped::NotContent);
    }
    for meta in doc.select(&sel.meta) {
        let attr = |k: &str| meta.value().attr(k).unwrap_or("").to_ascii_lowercase();
        if attr("http-equiv") == "refresh" {
            return Err(Skipped::Redirect);
        }
        if attr("name") == "robots" && attr("content").contains("noindex") {
            return Err(Skipped::NoIndex);
        }
    }
    let root = if let Some(b) = doc.select(&sel.body_marker).next() {
        b
    } else if require_marker {
        return Err(Skipped::NoBodyMarker);
    } else {
        sel.roots
            .iter()
            .find_map(|s| doc.select(s).next())
            .unwrap_or_else(|| doc.root_element())
    };
    let mut walker = Walker::default();
    walker.walk(root);
    walker.finish();
    let title = walker
        .first_h1
        .clone()
        .filter(|t| !t.is_empty())
        .or_else(|| {
            doc.select(&sel.title)
                .next()
                .map(|t| collapse_whitespace(&t.text().collect::<String>()))
        })
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| url.to_string());
    let mut passages = sections_to_passages(url, &title, walker.sections);
    page_fields(sel, doc).apply(&mut passages);
    Ok(passages)
}

/// The filters, meta and sort keys given by the attributes of every element of the page.
fn page_fields(sel: &Selectors, doc: &Html) -> PageFields {
    let mut fields = PageFields::default();
    for el in doc.select(&sel.fields) {
        let e = el.value();
        // The element's text, read once and only when a bare key asks for it.
        let mut text: Option<String> = None;
        let mut text_of_el = || {
            text.get_or_insert_with(|| {
                let mut t = CappedText::default();
                t.read(el);
                t.out
            })
            .clone()
        };
        for (key, value) in e.attr(FILTER_ATTR).map(entries).unwrap_or_default() {
            let value = value.map_or_else(&mut text_of_el, str::to_string);
            fields.add_filter(key, &value);
        }
        for (key, value) in e.attr(META_ATTR).map(entries).unwrap_or_default() {
            let value = match value {
                Some(v) => v.to_string(),
                None if e.name() == "img" => e.attr("src").unwrap_or("").to_string(),
                None => text_of_el(),
            };
            fields.set_meta(key, &value);
        }
        for (key, value) in e.attr(SORT_ATTR).map(entries).unwrap_or_default() {
            let value = value.map_or_else(&mut text_of_el, str::to_string);
            fields.set_sort(key, &value);
        }
    }
    fields
}

/// An element's text as [`text_of`] reads it, whitespace collapsed, read only until it is
/// past what a value keeps ([`super::MAX_VALUE_BYTES`]): a bare key on a large element (or
/// on each of many nested ones) costs no more than that.
#[derive(Default)]
struct CappedText {
    out: String,
    space: bool,
}

impl CappedText {
    fn full(&self) -> bool {
        self.out.len() > super::MAX_VALUE_BYTES
    }

    fn push(&mut self, text: &str) {
        for c in text.chars() {
            if c.is_whitespace() {
                self.space = true;
            } else {
                if self.space && !self.out.is_empty() {
                    self.out.push(' ');
                }
                self.space = false;
                self.out.push(c);
                if self.full() {
                    return;
                }
            }
        }
    }

    fn read(&mut self, el: ElementRef) {
        for child in el.children() {
            if self.full() {
                return;
            }
            match child.value() {
                Node::Text(t) => self.push(t),
                Node::Element(e) if !ignored(e) => {
                    let block = !INLINE.contains(&e.name());
                    self.space |= block;
                    if let Some(c) = ElementRef::wrap(child) {
                        self.read(c);
                    }
                    self.space |= block;
                }
                _ => {}
            }
        }
    }
}

/// The `key:value` (or bare `key`) entries of a filter, meta or sort attribute: split at
/// every comma followed by optional spaces, a key (letters, digits, `_`, `-`, `.`) and a `:`;
/// each entry's key is what comes before its first `:`.
fn entries(attr: &str) -> Vec<(&str, Option<&str>)> {
    let is_key_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.');
    let starts_entry = |rest: &str| {
        let rest = rest.trim_start();
        let key_len: usize = rest
            .chars()
            .take_while(|&c| is_key_char(c))
            .map(char::len_utf8)
            .sum();
        key_len > 0 && rest[key_len..].starts_with(':')
    };
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in attr.match_indices(',') {
        if starts_entry(&attr[i + 1..]) {
            out.push(&attr[start..i]);
            start = i + 1;
        }
    }
    out.push(&attr[start..]);
    out.into_iter()
        .map(|entry| match entry.split_once(':') {
            Some((key, value)) => (key, Some(value)),
            None => (entry, None),
        })
        .collect()
}

#[derive(Default)]
struct Walker {
    /// Finished sections: (anchor, heading, text).
    sections: Vec<(String, String, String)>,
    anchor: String,
    heading: String,
    text: String,
    first_h1: Option<String>,
}

fn ignored(el: &scraper::node::Element) -> bool {
    SKIP.contains(&el.name())
        || el.attr(IGNORE_ATTR).is_some()
        || el.attr("hidden").is_some()
        || el.attr("aria-hidden") == Some("true")
}

fn heading_level(name: &str) -> Option<u8> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

/// Text of an element's subtree, skipping ignored elements, with block boundaries as spaces.
fn text_of(el: ElementRef, out: &mut String) {
    for child in el.children() {
        match child.value() {
            Node::Text(t) => out.push_str(t),
            Node::Element(e) if !ignored(e) => {
                let block = !INLINE.contains(&e.name());
                if block {
                    out.push(' ');
                }
                if let Some(c) = ElementRef::wrap(child) {
                    text_of(c, out);
                }
                if block {
                    out.push(' ');
                }
            }
            _ => {}
        }
    }
}

/// The anchor of a heading: its own `id`, else that of a link or element inside it.
fn heading_anchor(el: ElementRef) -> String {
    if let Some(id) = el.value().id() {
        return id.to_string();
    }
    for d in el.descendants().filter_map(ElementRef::wrap) {
        if let Some(id) = d.value().id() {
            return id.to_string();
        }
        if let Some(name) = d.value().attr("name") {
            return name.to_string();
        }
        if let Some(frag) = d.value().attr("href").and_then(|h| h.strip_prefix('#')) {
            return frag.to_string();
        }
    }
    String::new()
}

impl Walker {
    fn walk(&mut self, el: ElementRef) {
        for child in el.children() {
            match child.value() {
                Node::Text(t) => self.text.push_str(t),
                Node::Element(e) if !ignored(e) => {
                    let Some(c) = ElementRef::wrap(child) else {
                        continue;
                    };
                    if let Some(level) = heading_level(e.name()) {
                        self.finish();
                        let mut h = String::new();
                        text_of(c, &mut h);
                        let h = collapse_whitespace(&h);
                        if level == 1 && self.first_h1.is_none() {
                            self.first_h1 = Some(h.clone());
                        }
                        self.anchor = heading_anchor(c);
                        self.heading = h;
                        continue;
                    }
                    let block = !INLINE.contains(&e.name());
                    if block {
                        self.text.push(' ');
                    }
                    self.walk(c);
                    if block {
                        self.text.push(' ');
                    }
                }
                _ => {}
            }
        }
    }

    fn finish(&mut self) {
        let text = std::mem::take(&mut self.text);
        if !text.trim().is_empty() {
            self.sections
                .push((self.anchor.clone(), self.heading.clone(), text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(html: &str) -> std::result::Result<Vec<Passage>, Skipped> {
        let sel = Selectors::new().unwrap();
        page_passages(
            &sel,
            &Html::parse_document(html),
            "/p.html",
            "p.html",
            false,
        )
    }

    #[test]
    fn sections_split_at_headings_with_anchors() {
        let ps = parse(
            r##"<html><head><title>Site - Page</title></head><body>
            <nav>Home About</nav>
            <main><h1 id="top">Threads</h1><p>Intro <em>text</em>.</p>
            <h2><a class="header" href="#arc">Arc &amp; Mutex</a></h2><p>Share&nbsp;data.</p>
            <div data-cairn-ignore><p>Advert</p></div>
            <h3 id="empty">Empty</h3>
            <h3 id="more">More</h3><pre><code>let x = 1;</code></pre></main>
            <footer>Copyright</footer></body></html>"##,
        )
        .unwrap();
        let got: Vec<(&str, &str, &str)> = ps
            .iter()
            .map(|p| (p.anchor.as_str(), p.heading.as_str(), p.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("top", "Threads", "Intro text."),
                ("arc", "Arc & Mutex", "Share data."),
                ("more", "More", "let x = 1;"),
            ]
        );
        assert!(ps
            .iter()
            .all(|p| p.title == "Threads" && p.url == "/p.html"));
        assert_eq!(ps[1].id, "/p.html#arc");
    }

    #[test]
    fn redirects_and_noindex_pages_are_skipped() {
        let r = parse(r#"<meta http-equiv="refresh" content="0; url=x.html"><p>Moved</p>"#);
        assert_eq!(r.unwrap_err(), Skipped::Redirect);
        let r = parse(r#"<meta name="robots" content="noindex"><p>All chapters</p>"#);
        assert_eq!(r.unwrap_err(), Skipped::NoIndex);
    }

    #[test]
    fn attribute_entries_split_at_commas_before_keys() {
        assert_eq!(entries("tag"), vec![("tag", None)]);
        assert_eq!(entries("time:12:30"), vec![("time", Some("12:30"))]);
        assert_eq!(
            entries("section:Release notes, tag:rust,lang:en"),
            vec![
                ("section", Some("Release notes")),
                (" tag", Some("rust")),
                ("lang", Some("en")),
            ]
        );
        assert_eq!(entries("tag:a, b"), vec![("tag", Some("a, b"))]);
        assert_eq!(
            entries("title:Rust, the language: intro"),
            vec![("title", Some("Rust, the language: intro"))]
        );
        assert_eq!(
            entries("tag, section:Guide"),
            vec![("tag", None), (" section", Some("Guide"))]
        );
    }

    #[test]
    fn filter_meta_and_sort_attributes_apply_to_every_section() {
        let ps = parse(
            r#"<html><head><meta data-cairn-sort="weight:1"></head>
            <body data-cairn-filter="section:Blog">
            <nav><span data-cairn-filter="tag">nav tag</span></nav>
            <main><h1 id="a">A</h1><p>One.</p>
            <p data-cairn-filter="tag">  rust
               lang <script>x</script></p>
            <p data-cairn-filter="tag:rust, tag:web" data-cairn-meta="author:Ann, author:Bo">Two.</p>
            <img data-cairn-meta="image" src=" /i.png ">
            <span data-cairn-meta="image">text wins on a span</span>
            <h2 id="b">B</h2><p data-cairn-sort="weight">2</p>
            <p data-cairn-filter="tag:" data-cairn-meta=":x">Three.</p></main></body></html>"#,
        )
        .unwrap();
        assert_eq!(ps.len(), 2);
        for p in &ps {
            assert_eq!(p.filters["section"], vec!["Blog"]);
            assert_eq!(
                p.filters["tag"],
                vec!["nav tag", "rust lang", "rust", "web"]
            );
            assert_eq!(p.filters.len(), 2);
            assert_eq!(p.meta["author"], "Bo");
            assert_eq!(p.meta["image"], "text wins on a span");
            assert_eq!(p.meta.len(), 2);
            assert_eq!(p.sort["weight"], "2");
            assert_eq!(p.sort.len(), 1);
        }
        // Long element text is cut like any value; block boundaries separate words.
        let long = format!(
            "<body><h1>T</h1><p>x</p><div data-cairn-sort=\"k\"><p>a</p><p>b</p>{}</div></body>",
            "word ".repeat(100_000)
        );
        let ps = parse(&long).unwrap();
        assert!(ps[0].sort["k"].starts_with("a b word word"));
        assert!(ps[0].sort["k"].len() <= crate::ingest::MAX_VALUE_BYTES);
        let ps =
            parse(r#"<body><h1>T</h1><p>x</p><img data-cairn-meta="image" src=" /i.png "></body>"#)
                .unwrap();
        assert_eq!(ps[0].meta["image"], "/i.png");
        // No attributes: nothing.
        let ps = parse("<body><p>x</p></body>").unwrap();
        assert!(ps[0].filters.is_empty() && ps[0].meta.is_empty() && ps[0].sort.is_empty());
    }

    #[test]
    fn hostile_markup_becomes_plain_text() {
        let ps = parse(
            r#"<title>&lt;script&gt;alert(1)&lt;/script&gt;</title>
            <body><h2 id="x" onclick="alert(2)">Hi <img src=x onerror="alert(3)"></h2>
            <script>alert(4)</script><p>a <b>&lt;b&gt;</b> <a href="javascript:alert(5)">link</a></p></body>"#,
        )
        .unwrap();
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0].title, "<script>alert(1)</script>");
        assert_eq!(ps[0].heading, "Hi");
        assert_eq!(ps[0].text, "a <b> link");
    }
}
