//! Excerpts: the window of a passage that best matches the query, with matched words marked
//! as byte ranges (the caller decides how to render them; no HTML is produced here).

use serde::{Deserialize, Serialize};

use crate::index::lexical::{Analyzer, StemPrefixes};

/// Words in an excerpt window.
pub const WINDOW_WORDS: usize = 30;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excerpt {
    /// Plain text, a slice of the passage (with "…" where it was cut).
    pub text: String,
    /// Byte ranges `[start, end)` in `text` of words that match the query.
    pub marks: Vec<(usize, usize)>,
}

impl Excerpt {
    /// The marks as UTF-16 offsets into `text` (what JavaScript's `String.prototype.slice`
    /// takes): the browser boundary's form of the byte ranges.
    pub fn utf16_marks(&self) -> Vec<(u32, u32)> {
        let text = &self.text;
        let to16 = |byte: usize| -> u32 {
            let end = byte.min(text.len());
            let end = (0..=end)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            text[..end].encode_utf16().count() as u32
        };
        self.marks
            .iter()
            .map(|&(s, e)| (to16(s), to16(e)))
            .collect()
    }
}

/// Byte offsets of whitespace-separated words.
fn words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// The best window of `text` for `query_terms` (analysed, sorted, distinct).
pub fn excerpt(analyzer: &Analyzer, text: &str, query_terms: &[String]) -> Excerpt {
    // Only words that can stem to a query term are stemmed (see `StemPrefixes`).
    let prefixes = StemPrefixes::new(query_terms);
    // (start byte, end byte, index of the term in `query_terms`), in text order.
    let matches: Vec<(usize, usize, usize)> = analyzer
        .tokens_where(text, |w| prefixes.admits(w))
        .into_iter()
        .filter_map(|t| {
            let i = query_terms.binary_search(&t.term).ok()?;
            Some((t.start, t.end, i))
        })
        .collect();
    let ws = words(text);
    // The window (in words) covering the most distinct matched terms; among those, the one
    // whose first match sits a few words in, so the excerpt shows some lead-in.
    const LEAD: usize = 3;
    let (first, last) = if ws.is_empty() {
        (0, 0)
    } else if matches.is_empty() || ws.len() <= WINDOW_WORDS {
        (0, ws.len().min(WINDOW_WORDS))
    } else {
        let mut best = (0usize, 0usize, usize::MAX); // (start, distinct terms, lead error)
                                                     // The word each match lies in (a token never spans whitespace): a match is in the
                                                     // window starting at word `start` when its word is in `start..start + WINDOW_WORDS`.
        let word_of: Vec<usize> = matches
            .iter()
            .map(|m| ws.partition_point(|w| w.1 <= m.0))
            .collect();
        // `seen[i] == stamp`: term `i` is already counted in this window.
        let mut seen = vec![0usize; query_terms.len()];
        let mut from = 0; // the first match at or after the window's start
        for start in 0..=ws.len() - WINDOW_WORDS {
            while from < matches.len() && word_of[from] < start {
                from += 1;
            }
            let stamp = start + 1;
            let mut distinct = 0;
            let inside = (from..matches.len()).take_while(|&j| word_of[j] < start + WINDOW_WORDS);
            for j in inside {
                let term = matches[j].2;
                if seen[term] != stamp {
                    seen[term] = stamp;
                    distinct += 1;
                }
            }
            let first_word = match word_of.get(from) {
                Some(&w) if w < start + WINDOW_WORDS => w,
                _ => start,
            };
            let lead_error = (first_word - start).abs_diff(LEAD);
            if distinct > best.1 || (distinct == best.1 && lead_error < best.2) {
                best = (start, distinct, lead_error);
            }
        }
        (best.0, best.0 + WINDOW_WORDS)
    };
    let (lo, hi) = if ws.is_empty() {
        (0, 0)
    } else {
        (ws[first].0, ws[last - 1].1)
    };
    let prefix = if lo > 0 { "… " } else { "" };
    let suffix = if hi < text.len() { " …" } else { "" };
    let body = &text[lo..hi];
    let marks = matches
        .iter()
        .filter(|m| m.0 >= lo && m.1 <= hi)
        .map(|m| (m.0 - lo + prefix.len(), m.1 - lo + prefix.len()))
        .collect();
    Excerpt {
        text: format!("{prefix}{body}{suffix}"),
        marks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_point_at_matched_words() {
        let a = Analyzer::new();
        let text = format!(
            "{} Mutexes let threads share data. {}",
            "filler ".repeat(50),
            "end ".repeat(50)
        );
        let e = excerpt(&a, &text, &a.query_terms("thread sharing"));
        let marked: Vec<&str> = e.marks.iter().map(|&(s, t)| &e.text[s..t]).collect();
        assert_eq!(marked, vec!["threads", "share"]);
        assert!(e.text.starts_with("… "));
        assert!(e.text.ends_with(" …"));
    }

    /// What `excerpt` computed before it skipped words and counted without allocating: every
    /// word stemmed, every window's terms collected and sorted.
    fn reference(analyzer: &Analyzer, text: &str, query_terms: &[String]) -> Excerpt {
        let matches: Vec<(usize, usize, String)> = analyzer
            .tokens(text)
            .into_iter()
            .filter(|t| query_terms.binary_search(&t.term).is_ok())
            .map(|t| (t.start, t.end, t.term))
            .collect();
        let ws = words(text);
        let (first, last) = if ws.is_empty() {
            (0, 0)
        } else if matches.is_empty() || ws.len() <= WINDOW_WORDS {
            (0, ws.len().min(WINDOW_WORDS))
        } else {
            let mut best = (0usize, 0usize, usize::MAX);
            for start in 0..=ws.len() - WINDOW_WORDS {
                let (lo, hi) = (ws[start].0, ws[start + WINDOW_WORDS - 1].1);
                let inside: Vec<&(usize, usize, String)> =
                    matches.iter().filter(|m| m.0 >= lo && m.1 <= hi).collect();
                let mut terms: Vec<&str> = inside.iter().map(|m| m.2.as_str()).collect();
                terms.sort_unstable();
                terms.dedup();
                let first_word = inside
                    .first()
                    .map(|m| ws.partition_point(|w| w.1 <= m.0))
                    .unwrap_or(start);
                let lead_error = (first_word - start).abs_diff(3);
                if terms.len() > best.1 || (terms.len() == best.1 && lead_error < best.2) {
                    best = (start, terms.len(), lead_error);
                }
            }
            (best.0, best.0 + WINDOW_WORDS)
        };
        let (lo, hi) = if ws.is_empty() {
            (0, 0)
        } else {
            (ws[first].0, ws[last - 1].1)
        };
        let prefix = if lo > 0 { "… " } else { "" };
        let suffix = if hi < text.len() { " …" } else { "" };
        let marks = matches
            .iter()
            .filter(|m| m.0 >= lo && m.1 <= hi)
            .map(|m| (m.0 - lo + prefix.len(), m.1 - lo + prefix.len()))
            .collect();
        Excerpt {
            text: format!("{prefix}{}{suffix}", &text[lo..hi]),
            marks,
        }
    }

    const TEXT: &str = include_str!("../model/calibration.txt");

    /// The fact `could_stem_to` relies on: a Snowball English stem starts with its word's
    /// first two letters (but for three exceptions), over some 18,000 words of real text and
    /// the algorithm's exceptional forms.
    #[test]
    fn stems_keep_the_first_two_letters() {
        use crate::index::lexical::could_stem_to;
        let a = Analyzer::new();
        let extra = "dying lying tying idly gently ugly early only singly skis skies news \
                     Yesterday yellow cry cries ties 'tis o'clock naïve Éclair ÜBER generously";
        let mut checked = 0;
        for word in TEXT
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .chain(extra.split(' '))
        {
            for t in a.tokens(word) {
                let lower = word[t.start..t.end].to_lowercase();
                assert!(
                    could_stem_to(&lower, &t.term),
                    "{word:?} stems to {:?}",
                    t.term
                );
                let term = std::slice::from_ref(&t.term);
                assert!(
                    StemPrefixes::new(term).admits(&word[t.start..t.end]),
                    "{word:?}"
                );
                checked += 1;
            }
        }
        assert!(checked > 10_000, "only {checked} words");
        assert!(!could_stem_to("thread", "share"));
        assert!(could_stem_to("dying", "die"));
        let p = StemPrefixes::new(&["die".to_string(), "share".to_string()]);
        assert!(p.admits("Dying") && p.admits("SHARING") && !p.admits("thread"));
        assert!(!StemPrefixes::new(&["éclair".to_string()]).admits("eclair"));
        assert!(StemPrefixes::new(&["éclair".to_string()]).admits("ÉCLAIRS"));
    }

    /// The fast excerpt gives exactly the reference's, on real passages and queries.
    #[test]
    fn same_excerpts_as_the_reference() {
        let a = Analyzer::new();
        let passages: Vec<&str> = TEXT.split("\n\n").filter(|p| !p.is_empty()).collect();
        let queries: Vec<&str> = passages.iter().step_by(7).copied().collect();
        let mut compared = 0;
        for (i, p) in passages.iter().enumerate() {
            // A long passage: several joined, so windows slide.
            let long = passages[i..(i + 4).min(passages.len())].join(" ");
            for q in queries.iter().skip(i % 5).step_by(9).take(6) {
                let terms = a.query_terms(q);
                for text in [*p, long.as_str()] {
                    assert_eq!(
                        excerpt(&a, text, &terms),
                        reference(&a, text, &terms),
                        "passage {i}, query {q:?}"
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared > 1_000, "only {compared} comparisons");
    }

    #[test]
    fn byte_ranges_become_utf16_offsets() {
        // "crab" starts at byte 8 (é = 2 bytes, 🦀 = 4 bytes), UTF-16 offset 5 (🦀 is a
        // surrogate pair); a range inside a character rounds down to its start.
        let e = Excerpt {
            text: "é 🦀 crab".into(),
            marks: vec![(8, 12), (4, 5)],
        };
        assert_eq!(e.utf16_marks(), vec![(5, 9), (2, 2)]);
    }

    #[test]
    fn no_match_gives_the_beginning() {
        let a = Analyzer::new();
        let e = excerpt(&a, "Short text here.", &a.query_terms("zebra"));
        assert_eq!(e.text, "Short text here.");
        assert!(e.marks.is_empty());
    }
}
