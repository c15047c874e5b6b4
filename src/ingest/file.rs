//! One file handed over as bytes (a file dropped on a page, `www/own.html`): its kind from
//! its name, then the same readers as `cairn index` (HTML pages and Markdown split at
//! headings, JSONL records, plain text as one section), or why it was left out.
//!
//! Nothing here touches a file system, so it runs in the browser as it does natively. What it
//! accepts, and what it refuses, with a [`FileSkip`] the page shows beside the file's name:
//! an empty file, one over [`MAX_FILE_BYTES`], one that is not text (a NUL byte, or more than
//! one byte in twenty not UTF-8), an unknown extension, a JSONL file with a malformed
//! line, and a file with no text left once its markup is gone. Text with a few invalid UTF-8
//! bytes is kept, each bad sequence replaced by U+FFFD, and [`FileRead::replaced`] says how
//! many. Hostile HTML is read as text: scripts, styles and attributes never reach a passage
//! (the same reader as a site's pages).

use scraper::Html;

use super::html::{page_passages, Selectors};
use super::markdown::markdown_passages;
use super::{jsonl::parse_jsonl, sections_to_passages, EmbedPlan};
use crate::index::Passage;

/// The largest file read: the page refuses a bigger one before reading it. 16 MB of text is
/// tens of thousands of passages, hours of embedding in a browser tab.
pub const MAX_FILE_BYTES: u64 = 16_000_000;

/// What a file is read as, from its name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// `.txt`, `.text`: one section, titled by the file's name.
    Text,
    /// `.md`, `.markdown`: split at headings, front matter read.
    Markdown,
    /// `.html`, `.htm`: split at headings, as a site's pages.
    Html,
    /// `.jsonl`: one passage per record (`_id`, `title`, `text`, ...), embedded whole, as
    /// BEIR evaluates corpora and `cairn index --jsonl` does.
    Jsonl,
}

impl FileKind {
    /// The kind a file's name says, or `None` for an extension Cairn does not read.
    pub fn from_name(name: &str) -> Option<FileKind> {
        let ext = extension(name).to_ascii_lowercase();
        Some(match ext.as_str() {
            "txt" | "text" => FileKind::Text,
            "md" | "markdown" => FileKind::Markdown,
            "html" | "htm" | "xhtml" => FileKind::Html,
            "jsonl" | "ndjson" => FileKind::Jsonl,
            _ => return None,
        })
    }

    /// What the model embeds of these passages: records whole, sections in parts where one is
    /// longer than the model reads (see [`super::split`]).
    pub fn plan(
        self,
        passages: &[Passage],
        budget: usize,
        overlap: usize,
        count: &dyn Fn(&str) -> usize,
    ) -> EmbedPlan {
        match self {
            FileKind::Jsonl => EmbedPlan::whole(passages),
            _ => EmbedPlan::parts(passages, budget, overlap, count),
        }
    }
}

fn extension(name: &str) -> &str {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    match base.rfind('.') {
        Some(i) if i > 0 => &base[i + 1..],
        _ => "",
    }
}

/// Why a file gave no passages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileSkip {
    #[error("empty file")]
    Empty,
    #[error("too large: {bytes} bytes (at most {max} bytes a file)")]
    TooLarge { bytes: u64, max: u64 },
    #[error("not a text file ({0})")]
    Binary(String),
    #[error(
        "unsupported type{}: Cairn reads .txt, .md, .html and .jsonl files",
        if .0.is_empty() { String::new() } else { format!(" (.{})", .0) }
    )]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
    #[error("no text to index")]
    NoText,
    #[error("left out: {0}")]
    NotContent(String),
}

/// The passages of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRead {
    pub kind: FileKind,
    pub passages: Vec<Passage>,
    /// Invalid UTF-8 sequences replaced by U+FFFD.
    pub replaced: usize,
}

/// Reads one file. `name` is its path as the page knows it (`notes/rust.md`), which becomes
/// its passages' URL and the start of their ids.
pub fn passages_from_file(name: &str, bytes: &[u8]) -> Result<FileRead, FileSkip> {
    let kind = FileKind::from_name(name)
        .ok_or_else(|| FileSkip::Unsupported(extension(name).to_ascii_lowercase()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(FileSkip::TooLarge {
            bytes: bytes.len() as u64,
            max: MAX_FILE_BYTES,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(FileSkip::Empty);
    }
    let (text, replaced) = decode(bytes)?;
    let stem = {
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        base.rsplit_once('.').map_or(base, |(s, _)| s).to_string()
    };
    let passages = match kind {
        FileKind::Text => {
            sections_to_passages(name, &stem, vec![(String::new(), String::new(), text)])
        }
        FileKind::Markdown => markdown_passages(&text, name, &stem),
        FileKind::Html => {
            let sel = Selectors::new().map_err(|e| FileSkip::Invalid(e.to_string()))?;
            let doc = Html::parse_document(&text);
            let lower = name
                .rsplit(['/', '\\'])
                .next()
                .unwrap_or(name)
                .to_ascii_lowercase();
            page_passages(&sel, &doc, name, &lower, false)
                .map_err(|why| FileSkip::NotContent(why.to_string()))?
        }
        FileKind::Jsonl => {
            parse_jsonl(&text, name).map_err(|e| FileSkip::Invalid(e.to_string()))?
        }
    };
    if passages.is_empty() {
        return Err(FileSkip::NoText);
    }
    Ok(FileRead {
        kind,
        passages,
        replaced,
    })
}

/// The bytes as text: a NUL byte, or invalid UTF-8 in more than one byte in twenty (and at
/// least four places), says binary; fewer invalid sequences are replaced (and counted), as a
/// Latin-1 accent in an otherwise UTF-8 note would be.
fn decode(bytes: &[u8]) -> Result<(String, usize), FileSkip> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(FileSkip::Binary(format!("a NUL byte at offset {at}")));
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok((s.to_string(), 0)),
        Err(_) => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            let replaced = text.matches('\u{FFFD}').count()
                - bytes.windows(3).filter(|w| w == b"\xEF\xBF\xBD").count();
            if replaced >= 4 && replaced * 20 > bytes.len() {
                return Err(FileSkip::Binary(format!(
                    "{replaced} of its {} bytes are not UTF-8",
                    bytes.len()
                )));
            }
            Ok((text, replaced))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_extensions() {
        assert_eq!(
            FileKind::from_name("a/b/Notes.MD"),
            Some(FileKind::Markdown)
        );
        assert_eq!(FileKind::from_name("x.htm"), Some(FileKind::Html));
        assert_eq!(FileKind::from_name("corpus.jsonl"), Some(FileKind::Jsonl));
        assert_eq!(FileKind::from_name("readme.txt"), Some(FileKind::Text));
        assert_eq!(FileKind::from_name("photo.png"), None);
        assert_eq!(FileKind::from_name(".txt"), None);
        assert_eq!(FileKind::from_name("dir.md/file"), None);
    }

    #[test]
    fn each_kind_becomes_passages() {
        let t = passages_from_file("notes/todo.txt", b"buy   milk\n\nand bread").unwrap();
        assert_eq!(t.kind, FileKind::Text);
        assert_eq!(t.passages.len(), 1);
        assert_eq!(t.passages[0].title, "todo");
        assert_eq!(t.passages[0].text, "buy milk and bread");
        assert_eq!(t.passages[0].id, "notes/todo.txt");
        let md = passages_from_file("a.md", b"# Title\n\nintro\n\n## Part\n\nbody").unwrap();
        assert_eq!(md.passages.len(), 2);
        assert_eq!(md.passages[1].id, "a.md#part");
        let html = passages_from_file(
            "p.html",
            b"<title>P</title><h2 id=x>X</h2><p>text<script>alert(1)</script>",
        )
        .unwrap();
        assert_eq!(html.passages.len(), 1);
        assert!(!html.passages[0].text.contains("alert"));
        let j = passages_from_file(
            "c.jsonl",
            b"{\"_id\":\"1\",\"title\":\"t\",\"text\":\"x\"}\n",
        )
        .unwrap();
        assert_eq!(j.passages[0].id, "1");
    }

    #[test]
    fn bad_files_are_refused_by_name() {
        assert_eq!(passages_from_file("e.txt", b""), Err(FileSkip::Empty));
        assert_eq!(passages_from_file("e.txt", b" \n\t "), Err(FileSkip::Empty));
        assert!(matches!(
            passages_from_file("b.txt", b"PNG\0\0\x01"),
            Err(FileSkip::Binary(_))
        ));
        let noise: Vec<u8> = (0..1000u32).map(|i| 0x80 | (i % 64) as u8).collect();
        assert!(matches!(
            passages_from_file("n.txt", &noise),
            Err(FileSkip::Binary(_))
        ));
        assert_eq!(
            passages_from_file("x.pdf", b"%PDF"),
            Err(FileSkip::Unsupported("pdf".into()))
        );
        assert!(passages_from_file("x.pdf", b"%PDF")
            .unwrap_err()
            .to_string()
            .contains("(.pdf)"));
        assert!(matches!(
            passages_from_file("c.jsonl", b"{\"_id\": 1, \"text\": \"a\"}\nnot json\n"),
            Err(FileSkip::Invalid(m)) if m.contains("line 2")
        ));
        assert_eq!(
            passages_from_file("s.html", b"<script>only()</script>"),
            Err(FileSkip::NoText)
        );
        assert_eq!(
            passages_from_file("r.html", b"<meta http-equiv=refresh content=0;url=/x>"),
            Err(FileSkip::NotContent("a redirect (meta refresh)".into()))
        );
        let big = vec![b'a'; MAX_FILE_BYTES as usize + 1];
        assert!(matches!(
            passages_from_file("big.txt", &big),
            Err(FileSkip::TooLarge { .. })
        ));
    }

    #[test]
    fn a_few_invalid_bytes_are_replaced_and_counted() {
        let r = passages_from_file("u.txt", b"caf\xE9 au lait, short").unwrap();
        assert_eq!(r.replaced, 1);
        assert!(r.passages[0].text.starts_with("caf\u{FFFD} au lait"));
        // A replacement character already in the text is not counted as replaced.
        let r = passages_from_file("v.txt", "a \u{FFFD} b".as_bytes()).unwrap();
        assert_eq!(r.replaced, 0);
    }
}
