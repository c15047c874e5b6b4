//! Folders of Markdown (`.md`) files, split at headings like HTML pages. A page's URL is its
//! path with `.md` turned into `.html`, as static-site generators publish it; heading anchors
//! are GitHub-style slugs.
//!
//! A page may start with YAML front matter (between two `---` lines), which is never indexed
//! as text. Three maps in it give the page filters, meta and sort keys ([`super`] says what
//! each is for), which every passage of the page carries:
//!
//! ```yaml
//! ---
//! title: Async Rust        # other keys are ignored
//! filters:
//!   section: Blog          # one value...
//!   tag: [async, rust]     # ...or a list of them
//! meta:
//!   date: 2019-11-07
//! sort:
//!   date: 2019-11-07
//!   weight: 10             # numbers are kept as written
//! ---
//! ```
//!
//! Values are scalars as written (`10`, `true`, `2019-11-07`); `null`, `~` and empty ones
//! are dropped, as are nested maps, lists where one value is wanted, and aliases. Front
//! matter that is not valid YAML, or whose top level is not a map, gives the page no fields;
//! the page is indexed all the same. It is read from the parser's events (`yaml-rust2`), so
//! no document tree is built and aliases are never expanded.

use std::path::Path;

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::{files_with_ext, page_url, sections_to_passages, PageFields};
use crate::index::Passage;
use crate::Result;

/// Reads every `.md` file under `root`.
pub fn ingest_markdown(root: &Path, base_url: &str) -> Result<Vec<Passage>> {
    let mut out = Vec::new();
    for file in files_with_ext(root, &["md", "markdown"])? {
        let raw = std::fs::read(&file)?;
        // A byte-order mark would hide the front matter's first `---` (a dropped file is
        // read the same way: `file::passages_from_file`).
        let raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&raw);
        let text = String::from_utf8_lossy(raw).into_owned();
        let url = page_url(root, &file, base_url, true);
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.extend(markdown_passages(&text, &url, &stem));
    }
    Ok(out)
}

/// GitHub-style heading slug: lower case, punctuation dropped, spaces to hyphens.
pub fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Splits a leading `---` front-matter block off: `(front matter, the rest)`. Without one
/// (or without its closing `---` line), the front matter is `None` and the rest the whole
/// text.
fn split_front_matter(text: &str) -> (Option<&str>, &str) {
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return (None, text);
    };
    // The closing line: `---` at the start of a line (the first line of `rest` included,
    // for an empty block); whatever follows it on that line is dropped.
    let end = if rest.starts_with("---") {
        Some((0, 3))
    } else {
        rest.find("\n---").map(|i| (i, i + 4))
    };
    match end {
        Some((end, after)) => {
            let after = &rest[after..];
            let body = after.find('\n').map(|i| &after[i + 1..]).unwrap_or("");
            (Some(&rest[..end]), body)
        }
        None => (None, text),
    }
}

/// The `filters`, `meta` and `sort` maps of a page's YAML front matter; none when it is not
/// valid YAML or not a map.
fn front_matter_fields(yaml: &str) -> PageFields {
    use yaml_rust2::parser::Parser as YamlParser;
    use yaml_rust2::Event as Y;
    let mut events = Vec::new();
    let mut parser = YamlParser::new_from_str(yaml);
    loop {
        match parser.next_token() {
            Ok((Y::StreamEnd, _)) => break,
            Ok((event, _)) => events.push(event),
            Err(_) => return PageFields::default(),
        }
    }
    let mut fields = PageFields::default();
    let mut at = Cursor {
        events: &events,
        i: 0,
    };
    // The first document's top-level map.
    while let Some(e) = at.next() {
        match e {
            Y::StreamStart | Y::DocumentStart => continue,
            Y::MappingStart(..) => {}
            _ => return fields,
        }
        break;
    }
    loop {
        let Some(key) = at.scalar_key() else {
            return fields;
        };
        match (key.as_str(), at.peek()) {
            ("filters", Some(Y::MappingStart(..))) => {
                at.next();
                while let Some(k) = at.scalar_key() {
                    for v in at.values() {
                        fields.add_filter(&k, &v);
                    }
                }
            }
            (map @ ("meta" | "sort"), Some(Y::MappingStart(..))) => {
                at.next();
                while let Some(k) = at.scalar_key() {
                    let Some(v) = at.value() else { continue };
                    if map == "meta" {
                        fields.set_meta(&k, &v);
                    } else {
                        fields.set_sort(&k, &v);
                    }
                }
            }
            _ => at.skip(),
        }
    }
}

/// A position in a YAML event stream, reading a map's entries.
struct Cursor<'a> {
    events: &'a [yaml_rust2::Event],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<&'a yaml_rust2::Event> {
        self.events.get(self.i)
    }

    fn next(&mut self) -> Option<&'a yaml_rust2::Event> {
        let e = self.events.get(self.i);
        self.i += 1;
        e
    }

    /// Skips one node, however deeply nested.
    fn skip(&mut self) {
        use yaml_rust2::Event as Y;
        let mut depth = 0usize;
        while let Some(e) = self.next() {
            match e {
                Y::MappingStart(..) | Y::SequenceStart(..) => depth += 1,
                Y::MappingEnd | Y::SequenceEnd => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth == 0 {
                return;
            }
        }
    }

    /// The next key of the map being read, or `None` at its end; an entry whose key is not
    /// a scalar is skipped, value and all.
    fn scalar_key(&mut self) -> Option<String> {
        use yaml_rust2::Event as Y;
        loop {
            match self.peek()? {
                Y::MappingEnd | Y::DocumentEnd => {
                    self.next();
                    return None;
                }
                Y::Scalar(k, ..) => {
                    self.next();
                    return Some(k.clone());
                }
                _ => {
                    self.skip();
                    self.skip();
                }
            }
        }
    }

    /// A scalar value as text; `None` (the node skipped) for anything else, or a null.
    fn value(&mut self) -> Option<String> {
        use yaml_rust2::scanner::TScalarStyle;
        use yaml_rust2::Event as Y;
        match self.peek()? {
            Y::Scalar(v, style, ..) => {
                self.next();
                let null = *style == TScalarStyle::Plain
                    && matches!(v.as_str(), "" | "~" | "null" | "Null" | "NULL");
                (!null).then(|| v.clone())
            }
            _ => {
                self.skip();
                None
            }
        }
    }

    /// A scalar value, or every scalar of a list (other items skipped).
    fn values(&mut self) -> Vec<String> {
        use yaml_rust2::Event as Y;
        if !matches!(self.peek(), Some(Y::SequenceStart(..))) {
            return self.value().into_iter().collect();
        }
        self.next();
        let mut out = Vec::new();
        while let Some(e) = self.peek() {
            if matches!(e, Y::SequenceEnd) {
                self.next();
                break;
            }
            out.extend(self.value());
        }
        out
    }
}

/// Sections of one Markdown page.
pub fn markdown_passages(text: &str, url: &str, fallback_title: &str) -> Vec<Passage> {
    let (front_matter, text) = split_front_matter(text);
    let fields = front_matter.map(front_matter_fields).unwrap_or_default();
    let mut sections = Vec::new();
    let (mut anchor, mut heading, mut body) = (String::new(), String::new(), String::new());
    let mut in_heading: Option<HeadingLevel> = None;
    let mut heading_text = String::new();
    let mut title: Option<String> = None;
    let mut slugs = std::collections::HashMap::<String, usize>::new();
    for event in Parser::new_ext(text, Options::all()) {
        match event {
            Event::Start(Tag::Heading { .. }) => {
                sections.push((
                    std::mem::take(&mut anchor),
                    std::mem::take(&mut heading),
                    std::mem::take(&mut body),
                ));
                heading_text.clear();
                in_heading = Some(HeadingLevel::H1);
            }
            Event::End(TagEnd::Heading(level)) => {
                let h = super::collapse_whitespace(&heading_text);
                if level == HeadingLevel::H1 && title.is_none() {
                    title = Some(h.clone());
                }
                let base = slug(&h);
                let n = slugs.entry(base.clone()).or_insert(0);
                anchor = if *n == 0 {
                    base.clone()
                } else {
                    format!("{base}-{n}")
                };
                *n += 1;
                heading = h;
                in_heading = None;
            }
            Event::Text(t) | Event::Code(t) | Event::InlineMath(t) | Event::DisplayMath(t) => {
                if in_heading.is_some() {
                    heading_text.push_str(&t);
                } else {
                    body.push_str(&t);
                }
            }
            Event::SoftBreak
            | Event::HardBreak
            | Event::Rule
            | Event::End(
                TagEnd::Paragraph
                | TagEnd::Item
                | TagEnd::CodeBlock
                | TagEnd::BlockQuote(_)
                | TagEnd::TableCell
                | TagEnd::TableRow
                | TagEnd::TableHead
                | TagEnd::List(_)
                | TagEnd::HtmlBlock
                | TagEnd::FootnoteDefinition
                | TagEnd::DefinitionListTitle
                | TagEnd::DefinitionListDefinition,
            ) => {
                if in_heading.is_some() {
                    heading_text.push(' ');
                } else {
                    body.push(' ');
                }
            }
            _ => {}
        }
    }
    sections.push((anchor, heading, body));
    let title = title.unwrap_or_else(|| fallback_title.to_string());
    let mut passages = sections_to_passages(url, &title, sections);
    fields.apply(&mut passages);
    passages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_make_sections_with_slugs() {
        let md = "---\ntitle: x\n---\n# Fearless Concurrency\n\nIntro *here*.\n\n## Using `Arc<T>`!\n\nShare it.\n\n## Using `Arc<T>`!\n\nAgain.\n";
        let ps = markdown_passages(md, "/c.html", "c");
        let got: Vec<(&str, &str, &str)> = ps
            .iter()
            .map(|p| (p.anchor.as_str(), p.heading.as_str(), p.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "fearless-concurrency",
                    "Fearless Concurrency",
                    "Intro here."
                ),
                ("using-arct", "Using Arc<T>!", "Share it."),
                ("using-arct-1", "Using Arc<T>!", "Again."),
            ]
        );
        assert_eq!(ps[0].title, "Fearless Concurrency");
        assert!(ps.iter().all(|p| p.filters.is_empty() && p.meta.is_empty()));
    }

    #[test]
    fn front_matter_gives_filters_meta_and_sort() {
        let md = "---\ntitle: Async\nfilters:\n  section: Blog\n  tag: [async, rust, async]\n  \
                  skip: {a: b}\n  none: ~\n  ? [complex]\n  : x\nmeta:\n  date: 2019-11-07\n  \
                  image: \"/img/a.png\"\n  list: [a]\nsort:\n  weight: 10\n  score: 2.50\n  \
                  date: 2019-11-07\nother: &a [1, 2]\n---\n# Async\n\nText.\n\n## More\n\nMore.\n";
        let ps = markdown_passages(md, "/a.html", "a");
        assert_eq!(ps.len(), 2);
        for p in &ps {
            assert_eq!(p.filters.len(), 2, "{:?}", p.filters);
            assert_eq!(p.filters["section"], vec!["Blog"]);
            assert_eq!(p.filters["tag"], vec!["async", "rust"]);
            assert_eq!(p.meta.len(), 2, "{:?}", p.meta);
            assert_eq!(p.meta["date"], "2019-11-07");
            assert_eq!(p.meta["image"], "/img/a.png");
            assert_eq!(p.sort.len(), 3, "{:?}", p.sort);
            assert_eq!(p.sort["weight"], "10");
            assert_eq!(p.sort["score"], "2.50");
            assert_eq!(p.sort["date"], "2019-11-07");
        }
        assert_eq!(ps[0].text, "Text.");
    }

    #[test]
    fn broken_or_odd_front_matter_gives_no_fields_and_no_panic() {
        for fm in [
            "filters: [unclosed\n",
            "filters:\n  tag: a\n bad indent: : :\n",
            "- a list\n- at the top\n",
            "just text\n",
            "",
            "filters: *nowhere\n",
            "filters:\n  tag: &x [a]\n  other: *x\n",
            "{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\n",
        ] {
            let md = format!("---\n{fm}---\n# T\n\nBody text.\n");
            let ps = markdown_passages(&md, "/b.html", "b");
            assert_eq!(ps.len(), 1, "{fm:?}");
            assert_eq!(ps[0].text, "Body text.", "{fm:?}");
            let f = &ps[0].filters;
            assert!(
                f.is_empty() || f == &[("tag".to_string(), vec!["a".to_string()])].into(),
                "{fm:?}: {f:?}"
            );
        }
        // Deep nesting and many aliases: no stack overflow, no blow-up.
        let deep = format!(
            "---\nfilters: {}{}\n---\ntext\n",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(markdown_passages(&deep, "/c.html", "c")[0].text, "text");
        let mut laughs = String::from("---\na: &a [x, x, x, x, x, x, x, x, x]\n");
        for i in 0..20 {
            laughs.push_str(&format!(
                "b{i}: &b{i} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n",
                p = if i == 0 {
                    "a".to_string()
                } else {
                    format!("b{}", i - 1)
                }
            ));
        }
        laughs.push_str("filters: {tag: *b19}\n---\ntext\n");
        let ps = markdown_passages(&laughs, "/d.html", "d");
        assert_eq!(ps[0].text, "text");
        assert!(ps[0].filters.is_empty());
        // Without a closing line, nothing is front matter.
        let ps = markdown_passages("---\nfilters:\n  tag: a\n", "/e.html", "e");
        assert!(ps[0].filters.is_empty());
    }
}
