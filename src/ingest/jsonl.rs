//! BEIR-style JSONL corpora: one JSON object per line with `_id`, `title`, `text` and an
//! optional `url`. Records are kept whole (as BEIR evaluates them): the model truncates
//! long ones, BM25 sees every word.
//!
//! A record may also carry (see [`super`] for what each is for, and how keys and values are
//! cleaned):
//!
//! - `"filters": {"key": "value" | ["value", ...]}`: one value or a list of them per key;
//! - `"meta": {"key": "value"}`: a string per key;
//! - `"sort": {"key": "value" | number}`: a string or a number (kept as its decimal text,
//!   `3` as `"3"`, `2.5` as `"2.5"`) per key.
//!
//! Any of them may be left out or `null`. A value of another type (`"filters": "x"`, a
//! number in a filter's list, an object as a meta value) is an error naming the file, the line
//! and the key.

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
    #[serde(default)]
    filters: serde_json::Value,
    #[serde(default)]
    meta: serde_json::Value,
    #[serde(default)]
    sort: serde_json::Value,
}

/// What a JSON value is, for error messages (the value itself may be long).
fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A record's `filters`, `meta` and `sort`; `at` names the file and line in errors.
fn record_fields(r: &Record, at: &str) -> Result<super::PageFields> {
    use serde_json::Value;
    let bad = |what: String| Error::InvalidArgument(format!("{at}: {what}"));
    let object = |name: &str, v: &'_ Value| -> Result<Vec<(String, Value)>> {
        match v {
            Value::Null => Ok(Vec::new()),
            Value::Object(m) => Ok(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            other => Err(bad(format!(
                "`{name}` must be an object, not {}",
                kind(other)
            ))),
        }
    };
    let mut fields = super::PageFields::default();
    for (key, v) in object("filters", &r.filters)? {
        match v {
            Value::String(s) => fields.add_filter(&key, &s),
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::String(s) => fields.add_filter(&key, &s),
                        other => {
                            return Err(bad(format!(
                                "`filters.{key}` must hold strings, not {}",
                                kind(&other)
                            )))
                        }
                    }
                }
            }
            other => {
                return Err(bad(format!(
                    "`filters.{key}` must be a string or a list of strings, not {}",
                    kind(&other)
                )))
            }
        }
    }
    for (key, v) in object("meta", &r.meta)? {
        match v {
            Value::String(s) => fields.set_meta(&key, &s),
            other => {
                return Err(bad(format!(
                    "`meta.{key}` must be a string, not {}",
                    kind(&other)
                )))
            }
        }
    }
    for (key, v) in object("sort", &r.sort)? {
        match v {
            Value::String(s) => fields.set_sort(&key, &s),
            Value::Number(n) => fields.set_sort(&key, &n.to_string()),
            other => {
                return Err(bad(format!(
                    "`sort.{key}` must be a string or a number, not {}",
                    kind(&other)
                )))
            }
        }
    }
    Ok(fields)
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
        let fields = record_fields(&r, &format!("{what} line {}", n + 1))?;
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
            filters: fields.filters,
            meta: fields.meta,
            sort: fields.sort,
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

    #[test]
    fn filters_meta_and_sort_are_read_and_checked() {
        let ps = parse_jsonl(
            concat!(
                r#"{"_id":"a","text":"x","filters":{"tag":["rust"," web ","rust"],"section":"Blog"},"#,
                r#""meta":{"date":"2020-01-02"},"sort":{"weight":3,"score":2.5,"date":"2020-01-02"}}"#,
                "
",
                r#"{"_id":"b","text":"y","filters":null,"meta":{},"sort":null}"#,
            ),
            "c.jsonl",
        )
        .unwrap();
        assert_eq!(ps[0].filters["tag"], vec!["rust", "web"]);
        assert_eq!(ps[0].filters["section"], vec!["Blog"]);
        assert_eq!(ps[0].meta["date"], "2020-01-02");
        assert_eq!(ps[0].sort["weight"], "3");
        assert_eq!(ps[0].sort["score"], "2.5");
        assert_eq!(ps[0].sort["date"], "2020-01-02");
        assert!(ps[1].filters.is_empty() && ps[1].meta.is_empty() && ps[1].sort.is_empty());
        for (line, want) in [
            (
                r#"{"_id":1,"text":"x","filters":"tag"}"#,
                "`filters` must be an object, not a string",
            ),
            (
                r#"{"_id":1,"text":"x","filters":{"tag":5}}"#,
                "`filters.tag` must be a string or a list of strings, not a number",
            ),
            (
                r#"{"_id":1,"text":"x","filters":{"tag":["a",null]}}"#,
                "`filters.tag` must hold strings, not null",
            ),
            (
                r#"{"_id":1,"text":"x","meta":{"date":2020}}"#,
                "`meta.date` must be a string, not a number",
            ),
            (
                r#"{"_id":1,"text":"x","sort":{"w":true}}"#,
                "`sort.w` must be a string or a number, not a boolean",
            ),
            (
                r#"{"_id":1,"text":"x","sort":[1]}"#,
                "`sort` must be an object, not a list",
            ),
        ] {
            let err = parse_jsonl(
                &format!("{{\"_id\":0,\"text\":\"ok\"}}\n{line}\n"),
                "c.jsonl",
            )
            .unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
            let msg = err.to_string();
            assert!(msg.contains("c.jsonl line 2: "), "{msg}");
            assert!(msg.contains(want), "{msg}");
        }
    }
}
