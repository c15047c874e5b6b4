//! Keyword side of the index: analysis (tokenize, stop words, Snowball stemming) and BM25.
//!
//! The analyzer follows bm25s's defaults, the reference the quality numbers are compared
//! with: lower-cased word tokens of two or more characters, English stop words removed,
//! Snowball English stems; BM25 with Lucene's IDF, `k1 = 1.2`, `b = 0.75`.

use std::collections::{BTreeMap, HashMap};

use rust_stemmers::{Algorithm, Stemmer};

/// BM25 term-frequency saturation.
pub const DEFAULT_K1: f32 = 1.2;
/// BM25 length normalisation.
pub const DEFAULT_B: f32 = 0.75;

/// English stop words (NLTK's list, as bm25s uses).
pub const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "ain",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "aren",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "couldn",
    "d",
    "did",
    "didn",
    "do",
    "does",
    "doesn",
    "doing",
    "don",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "hadn",
    "has",
    "hasn",
    "have",
    "haven",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "isn",
    "it",
    "its",
    "itself",
    "just",
    "ll",
    "m",
    "ma",
    "me",
    "mightn",
    "more",
    "most",
    "mustn",
    "my",
    "myself",
    "needn",
    "no",
    "nor",
    "not",
    "now",
    "o",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "re",
    "s",
    "same",
    "shan",
    "she",
    "should",
    "shouldn",
    "so",
    "some",
    "such",
    "t",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "ve",
    "very",
    "was",
    "wasn",
    "we",
    "were",
    "weren",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "won",
    "wouldn",
    "y",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// A term of a text with the byte range of the word it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub term: String,
    pub start: usize,
    pub end: usize,
}

/// Turns text into index terms. One analyzer serves the writer, the searcher and excerpts.
pub struct Analyzer {
    stemmer: Stemmer,
    stop: std::collections::HashSet<&'static str>,
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::new()
    }
}

impl Analyzer {
    /// The analyzer every searcher and the index writer share: built once per process (the
    /// stemmer and the stop-word set), not per query.
    pub fn shared() -> &'static Analyzer {
        static SHARED: std::sync::OnceLock<Analyzer> = std::sync::OnceLock::new();
        SHARED.get_or_init(Analyzer::new)
    }

    pub fn new() -> Self {
        Self {
            stemmer: Stemmer::create(Algorithm::English),
            stop: STOP_WORDS.iter().copied().collect(),
        }
    }

    /// Terms of `text` with byte offsets, in order (duplicates kept).
    pub fn tokens(&self, text: &str) -> Vec<Token> {
        self.tokens_where(text, |_| true)
    }

    /// The tokens of `text` whose word (as written) `keep` accepts: [`Analyzer::tokens`]
    /// filtered, without lower-casing or stemming the words left out (see [`StemPrefixes`]).
    pub fn tokens_where(&self, text: &str, keep: impl Fn(&str) -> bool) -> Vec<Token> {
        let mut out = Vec::new();
        let mut start = None;
        let flush = |s: usize, e: usize, out: &mut Vec<Token>| {
            let word = &text[s..e];
            if word.chars().count() < 2 {
                return;
            }
            if !keep(word) {
                return;
            }
            let lower = word.to_lowercase();
            if self.stop.contains(lower.as_str()) {
                return;
            }
            let term = self.stemmer.stem(&lower).into_owned();
            out.push(Token {
                term,
                start: s,
                end: e,
            });
        };
        for (i, c) in text.char_indices() {
            let word_char = c.is_alphanumeric() || c == '_';
            match (word_char, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    flush(s, i, &mut out);
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            flush(s, text.len(), &mut out);
        }
        out
    }

    /// Distinct terms of a query, sorted (so scores do not depend on word order).
    pub fn query_terms(&self, text: &str) -> Vec<String> {
        let mut terms: Vec<String> = self.tokens(text).into_iter().map(|t| t.term).collect();
        terms.sort();
        terms.dedup();
        terms
    }
}

/// Whether the lower-cased word `lower` can stem to `term`: a Snowball English stem starts
/// with its word's first two letters (the algorithm only rewrites suffixes, and never the
/// first two letters, except in three exceptional forms: `dying`, `lying` and `tying` stem
/// to `die`, `lie` and `tie`); a test checks it over real text. So a word that fails this
/// needs no stemming to know it does not match.
pub fn could_stem_to(lower: &str, term: &str) -> bool {
    let mut prefix = term.char_indices().nth(2).map_or(term, |(i, _)| &term[..i]);
    if is_exception(lower) {
        prefix = &prefix[..prefix
            .char_indices()
            .nth(1)
            .map_or(prefix.len(), |(i, _)| i)];
    }
    lower.starts_with(prefix)
}

/// The words whose stem changes their second letter.
fn is_exception(word: &str) -> bool {
    ["dying", "lying", "tying"]
        .iter()
        .any(|e| word.eq_ignore_ascii_case(e))
}

/// [`could_stem_to`] for a set of terms, prepared once: which words (as written, any case)
/// can stem to one of them.
pub struct StemPrefixes {
    /// Each term's first two letters.
    two: Vec<String>,
    /// Each term's first letter (for the exceptions).
    one: Vec<char>,
}

impl StemPrefixes {
    pub fn new(terms: &[String]) -> Self {
        let two = terms
            .iter()
            .map(|t| t.chars().take(2).collect::<String>())
            .collect();
        let one = terms.iter().filter_map(|t| t.chars().next()).collect();
        Self { two, one }
    }

    /// Whether `word` (as written) can stem to one of the terms. ASCII words are checked
    /// without allocating (their lower case is the ASCII one, letter by letter).
    pub fn admits(&self, word: &str) -> bool {
        let b = word.as_bytes();
        if b.len() >= 2 && b[0].is_ascii() && b[1].is_ascii() {
            let (c0, c1) = (b[0].to_ascii_lowercase(), b[1].to_ascii_lowercase());
            if is_exception(word) {
                return self.one.contains(&(c0 as char));
            }
            return self
                .two
                .iter()
                .any(|p| matches!(p.as_bytes(), [a, b] if *a == c0 && *b == c1));
        }
        let lower = word.to_lowercase();
        self.two.iter().any(|p| lower.starts_with(p.as_str()))
    }
}

/// Inverted lists built from documents, ready to be written into an index.
pub struct LexicalData {
    /// Sorted terms.
    pub terms: Vec<String>,
    /// `offsets[t]..offsets[t + 1]` is term `t`'s range of postings (in `tfs`).
    pub offsets: Vec<u32>,
    /// Passage numbers, per term ascending, as varint gaps.
    pub docs: Vec<u8>,
    /// `doc_offsets[t]..doc_offsets[t + 1]` is term `t`'s byte range in `docs`.
    pub doc_offsets: Vec<u32>,
    pub tfs: Vec<u8>,
    /// Terms per document (its BM25 length).
    pub doc_lens: Vec<u32>,
}

/// Appends `v` as an LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes the varint gaps of one term's postings into passage numbers, calling `f` with
/// each and its position. Returns `None` if the bytes are malformed (a varint runs past the
/// end or past 32 bits, or a number overflows).
pub fn for_each_doc(bytes: &[u8], mut f: impl FnMut(usize, u32)) -> Option<usize> {
    let (mut at, mut i, mut prev) = (0usize, 0usize, None::<u32>);
    while at < bytes.len() {
        let (mut v, mut shift) = (0u32, 0u32);
        loop {
            let b = *bytes.get(at)?;
            at += 1;
            if shift > 28 {
                return None;
            }
            v |= ((b & 0x7f) as u32) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let doc = match prev {
            None => v,
            Some(p) => p.checked_add(v)?.checked_add(1)?,
        };
        f(i, doc);
        prev = Some(doc);
        i += 1;
    }
    Some(i)
}

/// Builds postings for `docs` (one string per passage, already `title + " " + text`).
pub fn build(analyzer: &Analyzer, docs: &[String]) -> LexicalData {
    let mut postings: BTreeMap<String, Vec<(u32, u32)>> = BTreeMap::new();
    let mut doc_lens = Vec::with_capacity(docs.len());
    for (d, text) in docs.iter().enumerate() {
        let toks = analyzer.tokens(text);
        doc_lens.push(toks.len() as u32);
        let mut tf: HashMap<String, u32> = HashMap::new();
        for t in toks {
            *tf.entry(t.term).or_default() += 1;
        }
        for (term, n) in tf {
            postings.entry(term).or_default().push((d as u32, n));
        }
    }
    let mut terms = Vec::with_capacity(postings.len());
    let mut offsets = vec![0u32];
    let mut doc_offsets = vec![0u32];
    let mut pdocs = Vec::new();
    let mut tfs = Vec::new();
    for (term, mut list) in postings {
        list.sort_unstable();
        let mut prev = None;
        for (d, n) in list {
            // Gaps minus one (documents are distinct): the first number is stored as is.
            put_varint(&mut pdocs, prev.map_or(d, |p: u32| d - p - 1));
            prev = Some(d);
            tfs.push(n.min(255) as u8);
        }
        terms.push(term);
        offsets.push(tfs.len() as u32);
        doc_offsets.push(pdocs.len() as u32);
    }
    LexicalData {
        terms,
        offsets,
        docs: pdocs,
        doc_offsets,
        tfs,
        doc_lens,
    }
}

/// Read-only view of the keyword index, borrowed from the index file.
pub struct LexicalView<'a> {
    pub terms: &'a [String],
    pub offsets: &'a [u32],
    pub docs: &'a [u8],
    pub doc_offsets: &'a [u32],
    pub tfs: &'a [u8],
    pub doc_lens: &'a [u32],
    pub avg_len: f32,
    pub k1: f32,
    pub b: f32,
}

impl LexicalView<'_> {
    /// BM25 scores of every passage that matches at least one of `terms`, as
    /// `(passage, score)`, in the order passages were first matched ([`accumulate`]).
    pub fn score(&self, terms: &[String]) -> Vec<(u32, f32)> {
        let bm25 = Bm25 {
            passages: self.doc_lens.len(),
            avg_len: self.avg_len,
            k1: self.k1,
            b: self.b,
        };
        accumulate(bm25.passages, |add| {
            for term in terms {
                let Ok(t) = self.terms.binary_search(term) else {
                    continue;
                };
                let (s, e) = (self.offsets[t] as usize, self.offsets[t + 1] as usize);
                let (ds, de) = (
                    self.doc_offsets[t] as usize,
                    self.doc_offsets[t + 1] as usize,
                );
                let idf = bm25.idf(e - s);
                // Index::from_bytes decoded every list once and checked it against these
                // ranges and the passage count, so this cannot go out of bounds.
                for_each_doc(&self.docs[ds..de], |i, d| {
                    let (Some(&tf), Some(&dl)) =
                        (self.tfs.get(s + i), self.doc_lens.get(d as usize))
                    else {
                        return;
                    };
                    add(d, bm25.weight(idf, tf as u32, dl));
                });
            }
        })
    }
}

/// BM25 over one index (Lucene's IDF): the one definition of a term's weight in a passage,
/// for the one-file index and the sharded one alike.
#[derive(Debug, Clone, Copy)]
pub struct Bm25 {
    pub passages: usize,
    pub avg_len: f32,
    pub k1: f32,
    pub b: f32,
}

impl Bm25 {
    /// The IDF of a term found in `df` passages.
    pub fn idf(&self, df: usize) -> f32 {
        let (n, df) = (self.passages as f32, df as f32);
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// The score a term of weight `idf` adds to a passage of BM25 length `dl` where it occurs
    /// `tf` times.
    pub fn weight(&self, idf: f32, tf: u32, dl: u32) -> f32 {
        let (tf, dl) = (tf as f32, dl as f32);
        let norm = self.k1 * (1.0 - self.b + self.b * dl / self.avg_len.max(1e-6));
        idf * tf * (self.k1 + 1.0) / (tf + norm)
    }
}

/// Sums scores per passage: `fill` calls `add(passage, score)` for every posting (passages
/// below `passages`; others are ignored), and the result is every passage added to, as
/// `(passage, total)`, in the order passages were first added.
///
/// Scores accumulate in a dense array of one float per passage, kept per thread and reused
/// across queries (only the entries a query touched are reset).
pub fn accumulate(passages: usize, fill: impl FnOnce(&mut dyn FnMut(u32, f32))) -> Vec<(u32, f32)> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Scratch> = Default::default();
    }
    SCRATCH.with(|s| {
        let mut scratch = s.borrow_mut();
        let Scratch { acc, seen, touched } = &mut *scratch;
        if acc.len() < passages {
            acc.resize(passages, 0.0);
            seen.resize(passages, false);
        }
        touched.clear();
        fill(&mut |d, score| {
            let d = d as usize;
            if d >= passages {
                return;
            }
            if !seen[d] {
                seen[d] = true;
                touched.push(d as u32);
            }
            acc[d] += score;
        });
        touched
            .iter()
            .map(|&d| {
                let d = d as usize;
                let score = acc[d];
                acc[d] = 0.0;
                seen[d] = false;
                (d as u32, score)
            })
            .collect()
    })
}

/// Per-thread buffers of [`accumulate`], sized to the largest index seen: all zero
/// (and unseen) between queries.
#[derive(Default)]
struct Scratch {
    acc: Vec<f32>,
    seen: Vec<bool>,
    touched: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyzer_stems_drops_stop_words_and_keeps_offsets() {
        let a = Analyzer::new();
        let text = "Sharing the data between Threads, a x.";
        let toks = a.tokens(text);
        let terms: Vec<&str> = toks.iter().map(|t| t.term.as_str()).collect();
        assert_eq!(terms, vec!["share", "data", "thread"]);
        assert_eq!(&text[toks[2].start..toks[2].end], "Threads");
    }

    #[test]
    fn bm25_prefers_rarer_and_denser_matches() {
        let a = Analyzer::new();
        let docs: Vec<String> = [
            "threads share data with a mutex",
            "the mutex guards data",
            "cooking pasta with tomatoes",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let lex = build(&a, &docs);
        let avg = lex.doc_lens.iter().sum::<u32>() as f32 / 3.0;
        let view = LexicalView {
            terms: &lex.terms,
            offsets: &lex.offsets,
            docs: &lex.docs,
            doc_offsets: &lex.doc_offsets,
            tfs: &lex.tfs,
            doc_lens: &lex.doc_lens,
            avg_len: avg,
            k1: DEFAULT_K1,
            b: DEFAULT_B,
        };
        let mut s = view.score(&a.query_terms("thread mutex"));
        s.sort_by(|x, y| y.1.total_cmp(&x.1));
        assert_eq!(s[0].0, 0);
        assert_eq!(s.len(), 2);
        assert!(view.score(&a.query_terms("the of")).is_empty());
        // The reused buffers start from zero again: the same query scores the same.
        let mut again = view.score(&a.query_terms("thread mutex"));
        again.sort_by(|x, y| y.1.total_cmp(&x.1));
        assert_eq!(again, s);
    }

    #[test]
    fn varint_postings_round_trip_and_reject_garbage() {
        let docs = [0u32, 1, 2, 130, 20_000, 4_000_000_000];
        let mut bytes = Vec::new();
        let mut prev = None;
        for &d in &docs {
            put_varint(&mut bytes, prev.map_or(d, |p: u32| d - p - 1));
            prev = Some(d);
        }
        let mut got = Vec::new();
        assert_eq!(for_each_doc(&bytes, |_, d| got.push(d)), Some(docs.len()));
        assert_eq!(got, docs);
        assert_eq!(for_each_doc(&[0x80], |_, _| {}), None, "cut varint");
        assert_eq!(for_each_doc(&[0xff; 6], |_, _| {}), None, "over 32 bits");
        assert_eq!(
            for_each_doc(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x05], |_, _| {}),
            None,
            "overflow"
        );
    }
}
