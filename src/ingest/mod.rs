//! Ingest (feature `ingest`): turns a built static site, a BEIR-style JSONL corpus or a
//! folder of Markdown into [`Passage`]s, the units the index stores; and files handed over
//! as bytes ([`file`]), which is what the browser's ingest module (`cairn_ingest`) runs. The
//! folder readers use the file system: in wasm they compile but are never called.
//!
//! - [`file`]: one file's bytes by its kind (text, Markdown, HTML, JSONL), or why not.
//! - [`html`]: pages of a static site, split at headings into sections with `#anchor`s.
//! - [`markdown`]: `.md` files, split the same way.
//! - [`jsonl`]: one record per line (`_id`, `title`, `text`, optional `url`).
//! - [`split`]: what the model embeds of each passage: a section longer than its token budget
//!   in overlapping parts, whose vectors are averaged into the section's.
//!
//! Every source can give a page (or record) **filters**, **meta** and **sort** keys, as
//! Pagefind's `data-pagefind-filter/meta/sort` do; they apply to every passage of the page:
//!
//! - filters (`Passage::filters`): what a search can narrow by, several values per key
//!   (kept in the order they came, each once);
//! - meta (`Passage::meta`): text shown beside a result (a date, an image's URL), one value
//!   per key, the last one given winning;
//! - sort (`Passage::sort`): the keys results can be ordered by, one value per key, the last
//!   one winning (numbers are kept as their decimal text).
//!
//! HTML gives them with `data-cairn-filter`, `data-cairn-meta` and `data-cairn-sort`
//! attributes ([`html`]), JSONL with a record's `filters`, `meta` and `sort` objects
//! ([`jsonl`]), Markdown with the same maps in its YAML front matter ([`markdown`]). Keys and
//! values are plain text, whatever the source: whitespace runs become one space and the ends
//! are trimmed, a key is cut to [`MAX_KEY_BYTES`] and a value to [`MAX_VALUE_BYTES`] (on a
//! character boundary), and an empty key or value is dropped.

pub mod file;
pub mod html;
pub mod jsonl;
pub mod markdown;
pub mod split;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use file::{passages_from_file, FileKind, FileRead, FileSkip, MAX_FILE_BYTES};
pub use html::{ingest_site, SiteOptions, SiteReport, Skipped};
pub use jsonl::ingest_jsonl;
pub use markdown::ingest_markdown;
pub use split::{parts, EmbedPlan};

use crate::index::Passage;
use crate::{Error, Result};

/// Files under `root` whose extension is one of `exts`, sorted (so builds are deterministic),
/// skipping hidden folders and files.
pub(crate) fn files_with_ext(root: &Path, exts: &[&str]) -> Result<Vec<PathBuf>> {
    if !root.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a folder",
            root.display()
        )));
    }
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = entry.map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let ext = entry
            .path()
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if exts.contains(&ext.as_str()) {
            out.push(entry.into_path());
        }
    }
    Ok(out)
}

/// The URL of a page: its path from the site root, `/`-separated, under `base_url`;
/// `index.html` (or `index.md`, `README.md`) stands for its folder.
pub(crate) fn page_url(root: &Path, file: &Path, base_url: &str, as_html: bool) -> String {
    let rel = file.strip_prefix(root).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.last_mut() {
        let lower = last.to_ascii_lowercase();
        if lower == "index.html"
            || lower == "index.htm"
            || lower == "index.md"
            || lower == "readme.md"
        {
            *last = String::new();
        } else if as_html {
            if let Some(stem) = last
                .strip_suffix(".md")
                .or_else(|| last.strip_suffix(".MD"))
            {
                *last = format!("{stem}.html");
            }
        }
    }
    let base = if base_url.ends_with('/') {
        base_url.to_string()
    } else {
        format!("{base_url}/")
    };
    let path: Vec<String> = parts.iter().map(|p| encode_path_segment(p)).collect();
    format!("{base}{}", path.join("/"))
}

/// Percent-encodes what may not stand in a URL path segment.
fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
            | b':'
            | b'@' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Collapses runs of whitespace into single spaces and trims the ends.
pub(crate) fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The longest filter, meta or sort key kept, in bytes (longer ones are cut).
pub const MAX_KEY_BYTES: usize = 64;
/// The longest filter, meta or sort value kept, in bytes (longer ones are cut).
pub const MAX_VALUE_BYTES: usize = 256;

/// A page's (or record's) filters, meta and sort keys, given to every passage of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PageFields {
    pub filters: BTreeMap<String, Vec<String>>,
    pub meta: BTreeMap<String, String>,
    pub sort: BTreeMap<String, String>,
}

impl PageFields {
    /// Adds a filter value (after those already there, unless it is one of them).
    pub fn add_filter(&mut self, key: &str, value: &str) {
        if let Some((key, value)) = clean_pair(key, value) {
            let values = self.filters.entry(key).or_default();
            if !values.contains(&value) {
                values.push(value);
            }
        }
    }

    /// Sets a meta value (replacing one given before).
    pub fn set_meta(&mut self, key: &str, value: &str) {
        if let Some((key, value)) = clean_pair(key, value) {
            self.meta.insert(key, value);
        }
    }

    /// Sets a sort value (replacing one given before).
    pub fn set_sort(&mut self, key: &str, value: &str) {
        if let Some((key, value)) = clean_pair(key, value) {
            self.sort.insert(key, value);
        }
    }

    /// Gives every passage these fields.
    pub fn apply(&self, passages: &mut [Passage]) {
        for p in passages {
            p.filters.clone_from(&self.filters);
            p.meta.clone_from(&self.meta);
            p.sort.clone_from(&self.sort);
        }
    }
}

/// A key and value as stored: whitespace collapsed, cut to their caps; `None` when either is
/// empty.
fn clean_pair(key: &str, value: &str) -> Option<(String, String)> {
    let key = clean_text(key, MAX_KEY_BYTES);
    let value = clean_text(value, MAX_VALUE_BYTES);
    (!key.is_empty() && !value.is_empty()).then_some((key, value))
}

/// `s` with whitespace collapsed, cut to at most `max` bytes on a character boundary.
fn clean_text(s: &str, max: usize) -> String {
    let mut s = collapse_whitespace(s);
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.truncate(s.trim_end().len());
    }
    s
}

/// A page's sections as passages: ids are `page-url#anchor` (made unique within the page).
pub(crate) fn sections_to_passages(
    url: &str,
    title: &str,
    sections: Vec<(String, String, String)>,
) -> Vec<Passage> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (anchor, heading, text) in sections {
        let text = collapse_whitespace(&text);
        if text.is_empty() {
            continue;
        }
        let base = if anchor.is_empty() {
            url.to_string()
        } else {
            format!("{url}#{anchor}")
        };
        let mut id = base.clone();
        let mut n = 1;
        while !seen.insert(id.clone()) {
            n += 1;
            id = format!("{base}@{n}");
        }
        out.push(Passage {
            id,
            url: url.to_string(),
            anchor,
            title: collapse_whitespace(title),
            heading: collapse_whitespace(&heading),
            text,
            ..Default::default()
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_fields_are_cleaned_capped_and_deduplicated() {
        let mut f = PageFields::default();
        f.add_filter(" tag ", "rust");
        f.add_filter("tag", " a\n  b ");
        f.add_filter("tag", "rust");
        f.add_filter("", "x");
        f.add_filter("empty", "  ");
        f.set_meta("date", "2020");
        f.set_meta("date", "2021");
        f.set_sort(&"k".repeat(100), &"é".repeat(200));
        assert_eq!(f.filters.len(), 1);
        assert_eq!(f.filters["tag"], vec!["rust", "a b"]);
        assert_eq!(f.meta["date"], "2021");
        let (key, value) = f.sort.iter().next().unwrap();
        assert_eq!(key.len(), MAX_KEY_BYTES);
        // 'é' is two bytes: 256 bytes hold 128 of them.
        assert_eq!(value.len(), MAX_VALUE_BYTES);
        assert_eq!(clean_text("ab€", 4), "ab");
        let mut ps = vec![Passage::default(), Passage::default()];
        f.apply(&mut ps);
        assert!(ps
            .iter()
            .all(|p| p.filters == f.filters && p.meta == f.meta));
    }

    #[test]
    fn urls_are_root_relative_with_folder_indexes() {
        let root = Path::new("/site");
        assert_eq!(
            page_url(root, Path::new("/site/index.html"), "/", false),
            "/"
        );
        assert_eq!(
            page_url(root, Path::new("/site/ch16-01-threads.html"), "/", false),
            "/ch16-01-threads.html"
        );
        assert_eq!(
            page_url(root, Path::new("/site/guide/index.html"), "/book", false),
            "/book/guide/"
        );
        assert_eq!(
            page_url(root, Path::new("/site/a b/ß.md"), "/", true),
            "/a%20b/%C3%9F.html"
        );
    }
}
