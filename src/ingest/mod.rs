//! Ingest (native only, feature `ingest`): turns a built static site, a BEIR-style JSONL
//! corpus or a folder of Markdown into [`Passage`]s, the units the index stores.
//!
//! - [`html`]: pages of a static site, split at headings into sections with `#anchor`s.
//! - [`markdown`]: `.md` files, split the same way.
//! - [`jsonl`]: one record per line (`_id`, `title`, `text`, optional `url`).
//! - [`split`]: cuts sections longer than the model's token budget into overlapping parts.

pub mod html;
pub mod jsonl;
pub mod markdown;
pub mod split;

use std::path::{Path, PathBuf};

pub use html::{ingest_site, SiteOptions, SiteReport, Skipped};
pub use jsonl::ingest_jsonl;
pub use markdown::ingest_markdown;
pub use split::split_long;

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
