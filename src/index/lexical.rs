//! Keyword side of the index: analysis (tokenize, stop words, Snowball stemming) and BM25.
//!
//! The analyzer follows bm25s's defaults, the reference the quality numbers are compared
//! with: lower-cased word tokens of two or more characters, English stop words removed,
//! Snowball English stems; BM25 with Lucene's IDF, `k1 = 1.2` (bm25s's `b = 0.75` until
//! field weights; now 0.4, tuned with them).
//!
//! Field weights (a BM25F of three fields sharing one length normalisation): each posting
//! also records how many of its occurrences are in the passage's title and in its heading
//! ([`LexicalData::fields`]), and a term's frequency counts those `title` and `heading` times
//! over ([`Ranking`]) before BM25 saturates it. An index written before field weights has
//! no such record, and scores as plain BM25.

use std::collections::{BTreeMap, HashMap};

use rust_stemmers::{Algorithm, Stemmer};

/// BM25 term-frequency saturation.
pub const DEFAULT_K1: f32 = 1.2;
/// BM25 length normalisation, written into each index's meta. Tuned with the field weights
/// (a grid over title 1-5, heading 1-5, b 0.2-0.9, k1 0.9-1.5; lexical nDCG@10 on SciFact
/// train, MRR on `bench/rust-book-questions.json`; BENCHMARKS.md, `ranking`): the Rust Book
/// questions want less length normalisation than bm25s's 0.75 (their answers sit in long
/// sections), SciFact is flat from 0.3 to 0.75 once titles weigh more.
pub const DEFAULT_B: f32 = 0.4;
/// How many times over an occurrence in a passage's title counts (tuned as [`DEFAULT_B`]:
/// 2 to 3 lift both sets, 5 costs the Rust Book questions).
pub const DEFAULT_TITLE_WEIGHT: f32 = 2.5;
/// How many times over an occurrence in a passage's heading counts (tuned as
/// [`DEFAULT_B`]; 1.5 to 2 sit on a plateau).
pub const DEFAULT_HEADING_WEIGHT: f32 = 1.5;

/// The keyword ranking's settings, as a search may override them (Pagefind's `ranking`
/// options play this part): BM25's `k1` (term saturation) and `b` (length normalisation),
/// and the field weights.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ranking {
    pub k1: f32,
    pub b: f32,
    /// How many times over a term in the title counts (1: as in the text).
    pub title: f32,
    /// How many times over a term in the heading counts.
    pub heading: f32,
}

/// The [`Ranking`] settings a search names (the others stay [`Ranking::of`]'s: the index's
/// k1 and b, the default weights).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RankingOptions {
    pub k1: Option<f32>,
    pub b: Option<f32>,
    pub title: Option<f32>,
    pub heading: Option<f32>,
}

impl RankingOptions {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Ranking {
    /// The settings an index was written with (its `k1` and `b`) and the default weights.
    pub fn of(meta: &super::IndexMeta) -> Self {
        Self {
            k1: meta.k1,
            b: meta.b,
            title: DEFAULT_TITLE_WEIGHT,
            heading: DEFAULT_HEADING_WEIGHT,
        }
    }

    /// These settings with those `options` names in their place.
    pub fn with(self, options: &RankingOptions) -> Self {
        Self {
            k1: options.k1.unwrap_or(self.k1),
            b: options.b.unwrap_or(self.b),
            title: options.title.unwrap_or(self.title),
            heading: options.heading.unwrap_or(self.heading),
        }
    }

    /// Refuses settings outside their range: `k1` in (0, 100], `b` in [0, 1], weights in
    /// [0, 100].
    pub fn check(&self) -> crate::Result<()> {
        let ok = |v: f32, lo: f32, hi: f32| v.is_finite() && v >= lo && v <= hi;
        if !(ok(self.k1, 0.0, 100.0) && self.k1 > 0.0) {
            return Err(crate::Error::InvalidArgument(format!(
                "ranking: termSaturation (BM25's k1) must be above 0 and at most 100, not {}",
                self.k1
            )));
        }
        if !ok(self.b, 0.0, 1.0) {
            return Err(crate::Error::InvalidArgument(format!(
                "ranking: pageLength (BM25's b) must be between 0 and 1, not {}",
                self.b
            )));
        }
        for (name, w) in [("title", self.title), ("heading", self.heading)] {
            if !ok(w, 0.0, 100.0) {
                return Err(crate::Error::InvalidArgument(format!(
                    "ranking: the {name} weight must be between 0 and 100, not {w}"
                )));
            }
        }
        Ok(())
    }
}

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
    /// Per posting, beside its `tfs`: the occurrences in the title (high four bits) and in
    /// the heading (low four bits), each saturating at 15 ([`field_counts`]).
    pub fields: Vec<u8>,
    /// Terms per document (its BM25 length).
    pub doc_lens: Vec<u32>,
}

/// The title and heading occurrences of a posting's field byte ([`LexicalData::fields`]).
pub fn field_counts(fields: u8) -> (u32, u32) {
    ((fields >> 4) as u32, (fields & 15) as u32)
}

/// Stores the field bytes of postings (one per posting, most of them zero) as the nonzero
/// ones alone: `(gap, byte)` pairs, the gap a varint counted as passage gaps are (the first
/// position as is, then the distance minus one). One format for both layouts.
pub fn encode_fields(fields: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev: Option<usize> = None;
    for (i, &f) in fields.iter().enumerate() {
        if f != 0 {
            put_varint(&mut out, prev.map_or(i, |p| i - p - 1) as u32);
            out.push(f);
            prev = Some(i);
        }
    }
    out
}

/// The field bytes of `postings` postings from [`encode_fields`]'s bytes. `None` if they are
/// malformed: a cut varint or one of more than five bytes, a position past the postings, a
/// zero byte stored.
pub fn decode_fields(bytes: &[u8], postings: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; postings];
    let (mut at, mut prev) = (0usize, None::<usize>);
    while at < bytes.len() {
        let v = get_varint(bytes, &mut at)?;
        let i = match prev {
            None => v as usize,
            Some(p) => p.checked_add(v as usize)?.checked_add(1)?,
        };
        let f = *bytes.get(at)?;
        at += 1;
        if f == 0 {
            return None;
        }
        *out.get_mut(i)? = f;
        prev = Some(i);
    }
    Some(out)
}

/// Reads the LEB128 varint at `*at`, moving `at` past it. `None` if it runs past the end or
/// past five bytes. The one reader of every varint list (postings, field bytes, the sharded
/// index's chunk postings).
pub fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u32> {
    let (mut v, mut shift) = (0u32, 0u32);
    loop {
        let b = *bytes.get(*at)?;
        *at += 1;
        if shift > 28 {
            return None;
        }
        v |= ((b & 0x7f) as u32) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
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
        let v = get_varint(bytes, &mut at)?;
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

/// Builds postings for `docs`: per passage its title, heading and text
/// ([`super::Passage::indexed_parts`]), scored as one text whose title and heading
/// occurrences are also counted apart.
pub fn build(analyzer: &Analyzer, docs: &[[&str; 3]]) -> LexicalData {
    // Per term: (passage, occurrences, title and heading occurrences).
    let mut postings: BTreeMap<String, Vec<(u32, u32, u8)>> = BTreeMap::new();
    let mut doc_lens = Vec::with_capacity(docs.len());
    for (d, parts) in docs.iter().enumerate() {
        let mut len = 0u32;
        // Term -> (occurrences, in the title, in the heading).
        let mut tf: HashMap<String, (u32, u32, u32)> = HashMap::new();
        for (field, text) in parts.iter().enumerate() {
            for t in analyzer.tokens(text) {
                len += 1;
                let e = tf.entry(t.term).or_default();
                e.0 += 1;
                match field {
                    0 => e.1 += 1,
                    1 => e.2 += 1,
                    _ => {}
                }
            }
        }
        doc_lens.push(len);
        for (term, (n, title, heading)) in tf {
            let f = (title.min(15) << 4 | heading.min(15)) as u8;
            postings.entry(term).or_default().push((d as u32, n, f));
        }
    }
    let mut terms = Vec::with_capacity(postings.len());
    let mut offsets = vec![0u32];
    let mut doc_offsets = vec![0u32];
    let mut pdocs = Vec::new();
    let mut tfs = Vec::new();
    let mut fields = Vec::new();
    for (term, mut list) in postings {
        list.sort_unstable();
        let mut prev = None;
        for (d, n, f) in list {
            // Gaps minus one (documents are distinct): the first number is stored as is.
            put_varint(&mut pdocs, prev.map_or(d, |p: u32| d - p - 1));
            prev = Some(d);
            tfs.push(n.min(255) as u8);
            fields.push(f);
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
        fields,
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
    /// The field bytes beside `tfs`; empty for an index written before field weights.
    pub fields: &'a [u8],
    pub doc_lens: &'a [u32],
    pub avg_len: f32,
}

impl LexicalView<'_> {
    /// BM25 scores of every passage that matches at least one of `terms`, as
    /// `(passage, score)`, in the order passages were first matched ([`accumulate`]).
    pub fn score(&self, terms: &[String], ranking: &Ranking) -> Vec<(u32, f32)> {
        let bm25 = Bm25::new(self.doc_lens.len(), self.avg_len, ranking);
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
                    let f = self.fields.get(s + i).copied().unwrap_or(0);
                    add(d, bm25.weight(idf, tf as u32, f, dl));
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
    pub title: f32,
    pub heading: f32,
}

impl Bm25 {
    pub fn new(passages: usize, avg_len: f32, ranking: &Ranking) -> Self {
        Self {
            passages,
            avg_len,
            k1: ranking.k1,
            b: ranking.b,
            title: ranking.title,
            heading: ranking.heading,
        }
    }

    /// The IDF of a term found in `df` passages.
    pub fn idf(&self, df: usize) -> f32 {
        let (n, df) = (self.passages as f32, df as f32);
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// The score a term of weight `idf` adds to a passage of BM25 length `dl` where it occurs
    /// `tf` times, `fields` ([`field_counts`]) of them in the title and heading: those count
    /// `title` and `heading` times over, then BM25 saturates the sum.
    pub fn weight(&self, idf: f32, tf: u32, fields: u8, dl: u32) -> f32 {
        let (title, heading) = field_counts(fields);
        let body = tf.saturating_sub(title + heading) as f32;
        let tf = body + self.title * title as f32 + self.heading * heading as f32;
        if tf <= 0.0 {
            // Only in fields weighing 0: no score (and no 0 / 0 with b = 1 and a length 0).
            return 0.0;
        }
        let dl = dl as f32;
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
        let docs = [
            ["", "", "threads share data with a mutex"],
            ["", "", "the mutex guards data"],
            ["", "", "cooking pasta with tomatoes"],
        ];
        let lex = build(&a, &docs);
        let avg = lex.doc_lens.iter().sum::<u32>() as f32 / 3.0;
        let view = view_of(&lex, avg);
        let r = plain();
        let mut s = view.score(&a.query_terms("thread mutex"), &r);
        s.sort_by(|x, y| y.1.total_cmp(&x.1));
        assert_eq!(s[0].0, 0);
        assert_eq!(s.len(), 2);
        assert!(view.score(&a.query_terms("the of"), &r).is_empty());
        // The reused buffers start from zero again: the same query scores the same.
        let mut again = view.score(&a.query_terms("thread mutex"), &r);
        again.sort_by(|x, y| y.1.total_cmp(&x.1));
        assert_eq!(again, s);
    }

    fn plain() -> Ranking {
        Ranking {
            k1: DEFAULT_K1,
            b: DEFAULT_B,
            title: 1.0,
            heading: 1.0,
        }
    }

    fn view_of(lex: &LexicalData, avg_len: f32) -> LexicalView<'_> {
        LexicalView {
            terms: &lex.terms,
            offsets: &lex.offsets,
            docs: &lex.docs,
            doc_offsets: &lex.doc_offsets,
            tfs: &lex.tfs,
            fields: &lex.fields,
            doc_lens: &lex.doc_lens,
            avg_len,
        }
    }

    #[test]
    fn field_weights_lift_title_matches_and_weight_one_is_plain_bm25() {
        let a = Analyzer::new();
        // The same words, once in the title and once in the text.
        let docs = [
            ["Mutex", "Guards", "sharing state between threads safely"],
            ["Sharing", "State", "a mutex guards the data firmly"],
        ];
        let lex = build(&a, &docs);
        assert_eq!(lex.doc_lens, vec![6, 6]);
        let avg = 6.0;
        let view = view_of(&lex, avg);
        let q = a.query_terms("mutex guard");
        let score = |r: &Ranking| {
            let mut s = view.score(&q, r);
            s.sort_by_key(|x| x.0);
            s
        };
        let flat = score(&plain());
        assert!((flat[0].1 - flat[1].1).abs() < 1e-6, "{flat:?}");
        let titled = score(&Ranking {
            title: 3.0,
            heading: 2.0,
            ..plain()
        });
        assert!(titled[0].1 > titled[1].1, "{titled:?}");
        assert!(
            (titled[1].1 - flat[1].1).abs() < 1e-6,
            "text matches unchanged"
        );
        // Without field bytes (an older index) the weights change nothing.
        let old = LexicalView {
            fields: &[],
            ..view_of(&lex, avg)
        };
        let mut s = old.score(
            &q,
            &Ranking {
                title: 3.0,
                ..plain()
            },
        );
        s.sort_by_key(|x| x.0);
        assert_eq!(s, flat);
        assert!(Ranking { b: 1.5, ..plain() }.check().is_err());
        assert!(Ranking { k1: 0.0, ..plain() }.check().is_err());
        assert!(Ranking {
            title: f32::NAN,
            ..plain()
        }
        .check()
        .is_err());
        assert!(plain().check().is_ok());
    }

    #[test]
    fn field_bytes_round_trip_sparse_and_reject_garbage() {
        let fields = [0u8, 0x10, 0, 0, 0x21, 0, 0, 0, 0, 0, 0x0f];
        let bytes = encode_fields(&fields);
        assert_eq!(bytes.len(), 6, "only the nonzero bytes are stored");
        assert_eq!(
            decode_fields(&bytes, fields.len()).as_deref(),
            Some(&fields[..])
        );
        assert_eq!(decode_fields(&[], 3), Some(vec![0; 3]));
        assert_eq!(
            decode_fields(&bytes, 5),
            None,
            "a position past the postings"
        );
        assert_eq!(decode_fields(&[0, 0], 3), None, "a zero byte stored");
        assert_eq!(decode_fields(&[0x80], 3), None, "cut varint");
        assert_eq!(decode_fields(&[1], 3), None, "no byte after the gap");
        assert_eq!(decode_fields(&[0xff; 6], 3), None, "over 32 bits");
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
