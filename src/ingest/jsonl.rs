//! BEIR-style JSONL corpora: one JSON object per line with `_id`, `title`, `text` and an
//! optional `url`. Records are kept whole (as BEIR evaluates them): the model truncates
//! long ones, BM25 sees every word.

use std::path::Path;

use serde::Deserialize;

use crate::index::Passage;
use crate::{Error, Result};

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "_id", alias = "id")]
    id: serde_json::Value,
    #[serde(default)]
    title: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    url: String,
}

/// Reads a JSONL corpus; a malformed line is an error naming the file and line.
pub fn ingest_jsonl(file: &Path) -> Result<Vec<Passage>> {
    let text = std::fs::read_to_string(file)?;
    parse_jsonl(&text, &file.display().to_string())
}

/// Parses JSONL text (`what` names the source in errors).
pub fn parse_jsonl(text: &str, what: &str) -> Result<Vec<Passage>> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: Record = serde_json::from_str(line).map_err(|source| Error::Json {
            what: format!("{what} line {}", n + 1),
            source,
        })?;
        let id = match r.id {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "{what} line {}: `_id` must be a string or number, not {other}",
                    n + 1
                )))
            }
        };
        if !seen.insert(id.clone()) {
            return Err(Error::InvalidArgument(format!(
                "{what} line {}: duplicate `_id` {id:?}",
                n + 1
            )));
        }
        let text = super::collapse_whitespace(&r.text);
        let title = super::collapse_whitespace(&r.title);
        if text.is_empty() && title.is_empty() {
            continue;
        }
        out.push(Passage {
            id,
            url: r.url,
            anchor: String::new(),
            title,
            heading: String::new(),
            text,
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_records_and_reports_bad_lines() {
        let ps = parse_jsonl(
            "{\"_id\": \"a\", \"title\": \"T\", \"text\": \"x  y\"}\n\n{\"_id\": 7, \"text\": \"z\", \"url\": \"/z\"}\n",
            "c.jsonl",
        )
        .unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].text, "x y");
        assert_eq!(ps[1].id, "7");
        assert_eq!(ps[1].url, "/z");
        let err = parse_jsonl("{\"_id\": \"a\"}\nnot json\n", "c.jsonl").unwrap_err();
        assert!(err.to_string().contains("c.jsonl line 2"), "{err}");
        let err = parse_jsonl(
            "{\"_id\":1,\"text\":\"a\"}\n{\"_id\":1,\"text\":\"b\"}",
            "c",
        )
        .unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
    }
}
