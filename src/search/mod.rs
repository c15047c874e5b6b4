//! Search over an [`Index`]: keyword (BM25), meaning (dense vectors) or both, fused.

pub mod excerpt;
pub mod fuse;

use serde::{Deserialize, Serialize};

use crate::index::dense::top_k;
use crate::index::facets::{Allowed, Counts, Facets, Filters, Sort, NO_RANK};
use crate::index::lexical::{Analyzer, Ranking, RankingOptions};
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
    /// Listed by its filters (or sort key) alone: a search with no words to match.
    Filter,
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
    /// The passage's meta values (a date, an image's URL; see [`Passage::meta`]).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub meta: std::collections::BTreeMap<String, String>,
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
    /// The index's filters and sort keys.
    fn facets(&self) -> &Facets;
    /// BM25 scores of the passages matching any of `terms`, in first-matched order.
    fn lexical_scores(
        &self,
        terms: &[String],
        ranking: &Ranking,
        gaps: &mut Gaps,
    ) -> Vec<(u32, f32)>;
    /// The `depth` passages nearest to `query` (a unit vector) among those `allowed` lets
    /// through (all without it), best first.
    fn dense_ranking(
        &self,
        query: &[f32],
        depth: usize,
        allowed: Option<&Allowed>,
        gaps: &mut Gaps,
    ) -> Result<Vec<(u32, f32)>>;
    /// Passage `p`'s text and place, when it is loaded.
    fn passage(&self, p: u32, gaps: &mut Gaps) -> Option<&Passage>;
}

impl Source for Index {
    fn meta(&self) -> &IndexMeta {
        Index::meta(self)
    }

    fn facets(&self) -> &Facets {
        Index::facets(self)
    }

    fn lexical_scores(&self, terms: &[String], ranking: &Ranking, _: &mut Gaps) -> Vec<(u32, f32)> {
        self.lexical().score(terms, ranking)
    }

    fn dense_ranking(
        &self,
        query: &[f32],
        depth: usize,
        allowed: Option<&Allowed>,
        _: &mut Gaps,
    ) -> Result<Vec<(u32, f32)>> {
        self.dense().search_in(query, depth, allowed)
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
    /// How many passages matched (filters applied) before the cut to `k`: every passage
    /// with a query word, and the `depth` nearest by meaning, in the modes that use them.
    pub total: usize,
    /// Of those, how many carry each filter value (every key and value of the index, 0
    /// where none does; empty for an index without filters).
    pub counts: Counts,
    /// The counts the same query would give without its filters (as Pagefind's
    /// `totalFilters`): what choosing another value of a key would bring. `None` for a
    /// search without filters (they are `counts`).
    pub total_counts: Option<Counts>,
}

/// What narrows or orders a search besides its words: filters, a sort key to order by
/// instead of relevance, and keyword ranking settings other than the index's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Refine {
    pub filters: Filters,
    pub sort: Option<Sort>,
    /// BM25's settings and the field weights, where they differ from the index's
    /// ([`Ranking::of`]).
    pub ranking: RankingOptions,
}

impl Refine {
    /// Whether it neither filters nor sorts (ranking settings alone list nothing).
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty() && self.sort.is_none()
    }
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
        self.find_refined(query_vector, dense, query_text, k, mode, &Refine::default())
    }

    /// [`Searcher::find`] with filters and a sort key. Filters apply before ranking (the
    /// dense scan too), so a filter never leaves out a passage that would rank among the
    /// allowed ones; an unknown filter or sort key is an error. `dense` (the GPU scorer's
    /// unfiltered ranking) is ignored under a filter. A query with no words to match lists
    /// the passages the filters let through (or every passage, for a sort alone), in index
    /// order or by the sort key.
    pub fn find_refined(
        &self,
        query_vector: Option<&[f32]>,
        dense: Option<Vec<(u32, f32)>>,
        query_text: &str,
        k: usize,
        mode: Mode,
        refine: &Refine,
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
        // Ranking settings are checked in every mode (only keywords use them).
        let ranking = Ranking::of(self.index.meta()).with(&refine.ranking);
        if !refine.ranking.is_empty() {
            ranking.check()?;
        }
        let facets = self.index.facets();
        let allowed = facets.allowed(&refine.filters)?;
        let ranks = match &refine.sort {
            Some(sort) => Some(facets.sort_ranks(&sort.key)?),
            None => None,
        };
        let keep = |p: u32| allowed.as_ref().is_none_or(|a| a.contains(p));
        let mode = mode.runs_as(query_vector.is_some(), text);
        let f = self.fusion;
        let depth = k.max(f.depth);
        let mut gaps = Gaps::default();
        let n = self.index.meta().passages as u32;
        // Every passage with a query word that the filters let through (relevance order
        // comes later): the keyword share of the pool the counts are taken over.
        let mut matched: Vec<(u32, f32)> = Vec::new();
        // The same without the filters, for the counts an unfiltered search would give.
        let mut unfiltered: Vec<u32> = Vec::new();
        let browse = text.trim().is_empty() && mode == Mode::Lexical && !refine.is_empty();
        let counting = allowed.is_some() && !facets.filters().is_empty();
        if mode != Mode::Dense {
            matched = if browse {
                if counting {
                    unfiltered = (0..n).collect();
                }
                match &allowed {
                    Some(a) => a.iter().map(|p| (p, 0.0)).collect(),
                    None => (0..n).map(|p| (p, 0.0)).collect(),
                }
            } else {
                let mut s = self.index.lexical_scores(&terms, &ranking, &mut gaps);
                // A match only in fields weighing 0 is no match.
                s.retain(|&(_, score)| score > 0.0);
                if counting {
                    unfiltered = s.iter().map(|x| x.0).collect();
                }
                s.retain(|&(p, _)| keep(p));
                s
            };
        }
        let precomputed = dense.filter(|_| allowed.is_none()).map(|mut d| {
            d.retain(|&(p, _)| p < n);
            d.truncate(depth);
            d
        });
        let dense = |v: &[f32], gaps: &mut Gaps| match &precomputed {
            Some(d) => Ok(d.clone()),
            None => self.index.dense_ranking(v, depth, allowed.as_ref(), gaps),
        };
        // The lexical list as fusion (and a lexical search without a sort) ranks it.
        let lexical_top = |m: &[(u32, f32)]| {
            let mut l = m.to_vec();
            if !browse {
                top_k(&mut l, depth);
            }
            l
        };
        let (mut ranked, keyword, meaning): (Vec<(u32, f32)>, Vec<u32>, Vec<u32>) =
            match (mode, query_vector) {
                (Mode::Dense, Some(v)) => {
                    let d = dense(v, &mut gaps)?;
                    let ids = d.iter().map(|x| x.0).collect();
                    (d, Vec::new(), ids)
                }
                (Mode::Hybrid, Some(v)) => {
                    let l = lexical_top(&matched);
                    let d = dense(v, &mut gaps)?;
                    let li: Vec<u32> = l.iter().map(|x| x.0).collect();
                    let di: Vec<u32> = d.iter().map(|x| x.0).collect();
                    let fused =
                        fuse::rrf(&[&li, &di], &[f.lexical_weight, f.dense_weight], f.rrf_k);
                    (fused, li, di)
                }
                _ => {
                    // Sorted, every match is ranked (the sort picks the first k, not
                    // relevance); unsorted, the best `depth` are enough.
                    let mut l = matched.clone();
                    if ranks.is_none() && !browse {
                        top_k(&mut l, depth);
                    } else if !browse {
                        let all = l.len();
                        top_k(&mut l, all);
                    }
                    let ids = l.iter().map(|x| x.0).take(depth).collect();
                    (l, ids, Vec::new())
                }
            };
        // The pool: the keyword matches and the passages ranked by meaning. Sorted (for the
        // counts' merge walk) only where there are filters to count; otherwise counted.
        let passages = matched.iter().map(|x| x.0).chain(meaning.iter().copied());
        let (total, counts) = if facets.filters().is_empty() {
            (count_distinct(passages), Counts::new())
        } else {
            let mut pool: Vec<u32> = passages.collect();
            pool.sort_unstable();
            pool.dedup();
            (pool.len(), facets.counts(&pool))
        };
        let total_counts = if counting {
            // The meaning share without the filters, from the parts already loaded (it
            // asks for none: its gaps are dropped).
            if let (Mode::Dense | Mode::Hybrid, Some(v)) = (mode, query_vector) {
                let d = self
                    .index
                    .dense_ranking(v, depth, None, &mut Gaps::default())?;
                unfiltered.extend(d.iter().map(|x| x.0));
            }
            unfiltered.sort_unstable();
            unfiltered.dedup();
            Some(facets.counts(&unfiltered))
        } else {
            None
        };
        if let (Some(ranks), Some(sort)) = (ranks, &refine.sort) {
            // Stable: ties keep their relevance (or index) order; no value sorts last.
            // The key and the position packed in one u64 for an unstable sort (the stable
            // sort's code would add kilobytes to the keyword engine).
            let at = |p: u32| ranks.get(p as usize).copied().unwrap_or(NO_RANK);
            let mut order: Vec<u64> = (ranked.iter().enumerate())
                .map(|(i, &(p, _))| {
                    let r = at(p);
                    let key = match (sort.descending, r == NO_RANK) {
                        (_, true) => u32::MAX,
                        (true, false) => u32::MAX - 1 - r,
                        (false, false) => r,
                    };
                    (key as u64) << 32 | i as u64
                })
                .collect();
            order.sort_unstable();
            ranked = order.iter().map(|&o| ranked[o as u32 as usize]).collect();
        }
        let in_top = |list: &[u32], p: u32| list.iter().take(depth).any(|&x| x == p);
        let mut hits = Vec::with_capacity(k.min(ranked.len()));
        for (p, score) in ranked.into_iter().take(k) {
            let Some(passage) = self.index.passage(p, &mut gaps) else {
                continue;
            };
            let kw = in_top(&keyword, p);
            let mn = in_top(&meaning, p);
            let why = match (kw, mn) {
                _ if browse => Why::Filter,
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
                meta: passage.meta.clone(),
            });
        }
        Ok(Found {
            hits,
            gaps,
            total,
            counts,
            total_counts,
        })
    }
}

/// How many distinct passages `passages` names: one bit per passage up to the highest (or,
/// for ids far beyond any index's size, sorted and deduplicated).
fn count_distinct(passages: impl Iterator<Item = u32> + Clone) -> usize {
    let Some(top) = passages.clone().max() else {
        return 0;
    };
    if top >= 1 << 26 {
        let mut all: Vec<u32> = passages.collect();
        all.sort_unstable();
        all.dedup();
        return all.len();
    }
    let mut seen = vec![0u64; top as usize / 64 + 1];
    passages
        .filter(|&p| {
            let (word, bit) = (p as usize / 64, 1u64 << (p % 64));
            let new = seen[word] & bit == 0;
            seen[word] |= bit;
            new
        })
        .count()
}

/// A query cut to [`MAX_QUERY_BYTES`] (on a character boundary): what is searched and
/// embedded.
pub fn truncate_query(s: &str) -> &str {
    truncate(s, MAX_QUERY_BYTES)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
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
    use super::{count_distinct, Mode};

    #[test]
    fn distinct_passages_are_counted_once() {
        assert_eq!(count_distinct([].into_iter()), 0);
        assert_eq!(count_distinct([5u32].into_iter()), 1);
        let lists = [3u32, 64, 0, 63, 64, 3, 200, 0, 127, 128];
        assert_eq!(count_distinct(lists.into_iter()), 7);
        assert_eq!(
            count_distinct([u32::MAX / 4096, 0, u32::MAX / 4096].into_iter()),
            2
        );
        assert_eq!(count_distinct([u32::MAX, 0, u32::MAX, 7].into_iter()), 3);
    }

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
