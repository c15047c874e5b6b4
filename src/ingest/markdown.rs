//! Folders of Markdown (`.md`) files, split at headings like HTML pages. A page's URL is its
//! path with `.md` turned into `.html`, as static-site generators publish it; heading anchors
//! are GitHub-style slugs.

use std::path::Path;

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::{files_with_ext, page_url, sections_to_passages};
use crate::index::Passage;
use crate::Result;

/// Reads every `.md` file under `root`.
pub fn ingest_markdown(root: &Path, base_url: &str) -> Result<Vec<Passage>> {
    let mut out = Vec::new();
    for file in files_with_ext(root, &["md", "markdown"])? {
        let text = String::from_utf8_lossy(&std::fs::read(&file)?).into_owned();
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

/// Strips a leading `---` front-matter block.
fn strip_front_matter(text: &str) -> &str {
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return text;
    };
    match rest.find("\n---") {
        Some(end) => {
            let after = &rest[end + 4..];
            after.find('\n').map(|i| &after[i + 1..]).unwrap_or("")
        }
        None => text,
    }
}

/// Sections of one Markdown page.
pub fn markdown_passages(text: &str, url: &str, fallback_title: &str) -> Vec<Passage> {
    let text = strip_front_matter(text);
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
    sections_to_passages(url, &title, sections)
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
    }
}
