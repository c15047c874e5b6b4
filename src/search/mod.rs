//! Search over an [`Index`]: keyword (BM25), meaning (dense vectors) or both, fused.

pub mod excerpt;
pub mod fuse;

use serde::{Deserialize, Serialize};

use crate::index::dense::top_k;
use crate::index::lexical::Analyzer;
use crate::index::{Index, IndexMeta, Passage};
use crate::{Error, Result};
pub use excerpt::Excerpt;

/// Which rankings to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Keyword and meaning, fused by reciprocal rank fusion.
    #[default]
    Hybrid,
    /// Meaning only: dense vectors.
    Dense,
    /// Keywords only: BM25.
    Lexical,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "hybrid" => Ok(Mode::Hybrid),
            "dense" => Ok(Mode::Dense),
            "lexical" | "keyword" | "bm25" => Ok(Mode::Lexical),
            _ => Err(Error::InvalidArgument(format!(
                "unknown mode `{s}`; use hybrid, dense or lexical"
            ))),
        }
    }
}

impl Mode {
    /// The one fallback rule (the CLI, the browser engine and the worker all use it): the
    /// mode a search asked to run as `self` runs as. Meaning (dense, hybrid) needs the
    /// query's vector: without one (the model is not loaded yet), or for a query of only
    /// white space as searched (cut to [`MAX_QUERY_BYTES`]: nothing to embed), the search
    /// runs on keywords.
    pub fn runs_as(self, have_vector: bool, query: &str) -> Mode {
        if self == Mode::Lexical || !have_vector || truncate_query(query).trim().is_empty() {
            Mode::Lexical
        } else {
            self
        }
    }

    /// Whether a search that asked for `self` embeds `query` when the model is loaded.
    pub fn embeds(self, query: &str) -> bool {
        self.runs_as(true, query) != Mode::Lexical
    }
}

/// Why a result matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Why {
    Keyword,
    Meaning,
    Both,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Position of the passage in the index.
    pub passage: u32,
    pub id: String,
    pub url: String,
    pub anchor: String,
    pub title: String,
    pub heading: String,
    pub score: f32,
    pub why: Why,
    pub excerpt: Excerpt,
}

/// How deep each list goes before fusion: passages below this rank in a list get nothing
/// from it. Tuned on SciFact train (see BENCHMARKS.md).
pub const FUSION_DEPTH: usize = 100;
/// Queries are cut to this many bytes before analysis: longer input adds nothing but time.
pub const MAX_QUERY_BYTES: usize = 4096;

/// How the keyword and meaning lists are fused in hybrid mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fusion {
    /// RRF's constant.
    pub rrf_k: f32,
    /// Weight of the keyword (BM25) list.
    pub lexical_weight: f32,
    /// Weight of the meaning (dense) list.
    pub dense_weight: f32,
    /// How deep each list goes before fusion.
    pub depth: usize,
}

impl Default for Fusion {
    fn default() -> Self {
        Self {
            rrf_k: fuse::RRF_K,
            lexical_weight: 1.0,
            dense_weight: 1.0,
            depth: FUSION_DEPTH,
        }
    }
}

/// Files a search over a sharded index could not use: `need` are not loaded yet (fetch them,
/// add them and search again), `missing` could not be had (the search answered without them).
/// Always empty for a one-file [`Index`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gaps {
    pub need: Vec<String>,
    pub missing: Vec<String>,
}

impl Gaps {
    pub fn is_empty(&self) -> bool {
        self.need.is_empty() && self.missing.is_empty()
    }

    pub(crate) fn add_need(&mut self, file: &str) {
        if !self.need.iter().any(|f| f == file) {
            self.need.push(file.to_string());
        }
    }

    pub(crate) fn add_missing(&mut self, file: &str) {
        if !self.missing.iter().any(|f| f == file) {
            self.missing.push(file.to_string());
        }
    }
}

/// What a searcher searches: a one-file [`Index`], or a sharded index
/// (`index::sharded::ShardedIndex`) that may hold only some of its parts. Each call notes in
/// `gaps` the parts it would have used but does not have.
pub trait Source {
    fn meta(&self) -> &IndexMeta;
    /// BM25 scores of the passages matching any of `terms`, in first-matched order.
    fn lexical_scores(&self, terms: &[String], gaps: &mut Gaps) -> Vec<(u32, f32)>;
    /// The `depth` passages nearest to `query` (a unit vector), best first.
    fn dense_ranking(
        &self,
        query: &[f32],
        depth: usize,
        gaps: &mut Gaps,
    ) -> Result<Vec<(u32, f32)>>;
    /// Passage `p`'s text and place, when it is loaded.
    fn passage(&self, p: u32, gaps: &mut Gaps) -> Option<&Passage>;
}

impl Source for Index {
    fn meta(&self) -> &IndexMeta {
        Index::meta(self)
    }

    fn lexical_scores(&self, terms: &[String], _: &mut Gaps) -> Vec<(u32, f32)> {
        self.lexical().score(terms)
    }

    fn dense_ranking(&self, query: &[f32], depth: usize, _: &mut Gaps) -> Result<Vec<(u32, f32)>> {
        self.dense().search(query, depth)
    }

    fn passage(&self, p: u32, _: &mut Gaps) -> Option<&Passage> {
        self.passages().get(p as usize)
    }
}

/// A search's results and the parts of a sharded index it lacked ([`Gaps`]). Hits whose
/// passage text is not loaded are left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub hits: Vec<Hit>,
    pub gaps: Gaps,
}

/// Searches one index. Cheap to build (the analyzer is shared, [`Analyzer::shared`]).
pub struct Searcher<'a> {
    index: &'a dyn Source,
    analyzer: &'static Analyzer,
    fusion: Fusion,
}

impl<'a> Searcher<'a> {
    pub fn new(index: &'a dyn Source) -> Self {
        Self {
            index,
            analyzer: Analyzer::shared(),
            fusion: Fusion::default(),
        }
    }

    /// Hybrid search with other fusion settings (for tuning; the defaults are the tuned ones).
    pub fn with_fusion(mut self, fusion: Fusion) -> Self {
        self.fusion = fusion;
        self
    }

    /// The `k` best passages for a query. `query_vector` is the query embedded with the
    /// index's model (`Role::Query`); without it (the model is still loading) every mode
    /// falls back to keywords.
    pub fn search(
        &self,
        query_vector: Option<&[f32]>,
        query_text: &str,
        k: usize,
        mode: Mode,
    ) -> Result<Vec<Hit>> {
        self.search_with_dense(query_vector, None, query_text, k, mode)
    }

    /// How many dense results [`Searcher::search`] ranks for `k` hits: what another scorer
    /// (the GPU's) must return for [`Searcher::search_with_dense`].
    pub fn dense_depth(&self, k: usize) -> usize {
        k.max(self.fusion.depth)
    }

    /// [`Searcher::search`] with the dense ranking computed elsewhere (the GPU scorer):
    /// `dense` must be what `index.dense().search(query_vector, self.dense_depth(k))` would
    /// return. `None` computes it here.
    pub fn search_with_dense(
        &self,
        query_vector: Option<&[f32]>,
        dense: Option<Vec<(u32, f32)>>,
        query_text: &str,
        k: usize,
        mode: Mode,
    ) -> Result<Vec<Hit>> {
        Ok(self.find(query_vector, dense, query_text, k, mode)?.hits)
    }

    /// [`Searcher::search_with_dense`], saying which parts of a sharded index it lacked.
    pub fn find(
        &self,
        query_vector: Option<&[f32]>,
        dense: Option<Vec<(u32, f32)>>,
        query_text: &str,
        k: usize,
        mode: Mode,
    ) -> Result<Found> {
        let text = truncate_query(query_text);
        let terms = self.analyzer.query_terms(text);
        let dim = self.index.meta().dim;
        if let Some(v) = query_vector {
            if v.len() != dim {
                return Err(Error::InvalidArgument(format!(
                    "query vector has {} dimensions, the index {dim}",
                    v.len(),
                )));
            }
        }
        let mode = mode.runs_as(query_vector.is_some(), text);
        let f = self.fusion;
        let depth = k.max(f.depth);
        let mut gaps = Gaps::default();
        let lexical = |gaps: &mut Gaps| -> Vec<(u32, f32)> {
            let mut s = self.index.lexical_scores(&terms, gaps);
            top_k(&mut s, depth);
            s
        };
        let n = self.index.meta().passages as u32;
        let precomputed = dense.map(|mut d| {
            d.retain(|&(p, _)| p < n);
            d.truncate(depth);
            d
        });
        let dense = |v: &[f32], gaps: &mut Gaps| match &precomputed {
            Some(d) => Ok(d.clone()),
            None => self.index.dense_ranking(v, depth, gaps),
        };
        let (ranked, keyword, meaning): (Vec<(u32, f32)>, Vec<u32>, Vec<u32>) =
            match (mode, query_vector) {
                (Mode::Dense, Some(v)) => {
                    let d = dense(v, &mut gaps)?;
                    let ids = d.iter().map(|x| x.0).collect();
                    (d, Vec::new(), ids)
                }
                (Mode::Hybrid, Some(v)) => {
                    let l = lexical(&mut gaps);
                    let d = dense(v, &mut gaps)?;
                    let li: Vec<u32> = l.iter().map(|x| x.0).collect();
                    let di: Vec<u32> = d.iter().map(|x| x.0).collect();
                    let fused =
                        fuse::rrf(&[&li, &di], &[f.lexical_weight, f.dense_weight], f.rrf_k);
                    (fused, li, di)
                }
                _ => {
                    let l = lexical(&mut gaps);
                    let ids = l.iter().map(|x| x.0).collect();
                    (l, ids, Vec::new())
                }
            };
        let in_top = |list: &[u32], p: u32| list.iter().take(depth).any(|&x| x == p);
        let mut hits = Vec::with_capacity(k.min(ranked.len()));
        for (p, score) in ranked.into_iter().take(k) {
            let Some(passage) = self.index.passage(p, &mut gaps) else {
                continue;
            };
            let kw = in_top(&keyword, p);
            let mn = in_top(&meaning, p);
            let why = match (kw, mn) {
                (true, true) => Why::Both,
                (true, false) => Why::Keyword,
                _ => Why::Meaning,
            };
            hits.push(Hit {
                passage: p,
                id: passage.id.clone(),
                url: passage.url.clone(),
                anchor: passage.anchor.clone(),
                title: passage.title.clone(),
                heading: passage.heading.clone(),
                score,
                why,
                excerpt: excerpt::excerpt(self.analyzer, &passage.text, &terms),
            });
        }
        Ok(Found { hits, gaps })
    }
}

/// A query cut to [`MAX_QUERY_BYTES`] (on a character boundary): what is searched and
/// embedded.
pub fn truncate_query(s: &str) -> &str {
    truncate(s, MAX_QUERY_BYTES)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::Mode;

    #[test]
    fn one_fallback_rule() {
        for asked in [Mode::Hybrid, Mode::Dense] {
            assert_eq!(asked.runs_as(true, "cell biology"), asked);
            // No vector yet (the model is loading): keywords.
            assert_eq!(asked.runs_as(false, "cell biology"), Mode::Lexical);
            // Nothing to embed: keywords, and no embedding is asked for.
            assert_eq!(asked.runs_as(true, " \t\n"), Mode::Lexical);
            assert_eq!(asked.runs_as(true, ""), Mode::Lexical);
            assert!(asked.embeds("cell"));
            assert!(!asked.embeds("   "));
            // Blank as far as it is searched: the words past the cut are not.
            let padded = format!("{}cell", " ".repeat(super::MAX_QUERY_BYTES));
            assert_eq!(asked.runs_as(true, &padded), Mode::Lexical);
        }
        assert_eq!(Mode::Lexical.runs_as(true, "cell"), Mode::Lexical);
        assert!(!Mode::Lexical.embeds("cell"));
    }
}
