//! `cairn eval`: nDCG@10 and Recall@100 of an index folder on a BEIR-style benchmark, or the
//! rank of the right page for questions about a site (MRR).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use cairn::search::Refine;
use cairn::{Mode, Searcher};

use crate::search::{load, Loaded, LoadedIndex};

#[derive(Deserialize)]
struct QueryRecord {
    #[serde(rename = "_id")]
    id: serde_json::Value,
    text: String,
}

fn id_string(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The evaluation numbers for one mode.
pub struct Scores {
    pub ndcg10: f64,
    pub recall100: f64,
    pub queries: usize,
}

/// What to evaluate on.
pub enum Set {
    /// BEIR: queries JSONL and qrels TSV.
    Beir { queries: PathBuf, qrels: PathBuf },
    /// Questions with the pages that answer them.
    Questions(PathBuf),
}

/// Embeds `texts` as the engine would for `mode` (where the one fallback rule says to).
fn query_vectors(loaded: &Loaded, texts: &[&str], mode: Mode) -> Result<Vec<Option<Vec<f32>>>> {
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
    if let Some(enc) = &loaded.encoder {
        let wanted: Vec<usize> = (0..texts.len())
            .filter(|&i| mode.embeds(texts[i]))
            .collect();
        let chosen: Vec<&str> = wanted.iter().map(|&i| texts[i]).collect();
        for (i, v) in wanted.into_iter().zip(enc.embed_queries(&chosen)?) {
            vectors[i] = Some(v);
        }
    }
    Ok(vectors)
}

#[derive(Deserialize)]
struct Questions {
    questions: Vec<Question>,
}

#[derive(Deserialize)]
struct Question {
    q: String,
    expect: Vec<String>,
}

/// Pages looked at per question.
const QUESTION_DEPTH: usize = 20;

/// The questions' scores: MRR over the first [`QUESTION_DEPTH`] pages, hits at 1 and 5.
pub struct QuestionScores {
    pub mrr: f64,
    pub at1: usize,
    pub at5: usize,
    pub questions: usize,
}

/// A result URL's page (its path without anchor or query) is an expected one when the path
/// ends with the expected file name at a `/` (or is it).
fn on_page(url: &str, expect: &str) -> bool {
    let path = url.split(['#', '?']).next().unwrap_or(url);
    path == expect || path.ends_with(&format!("/{expect}"))
}

pub fn evaluate_questions(
    loaded: &Loaded,
    file: &Path,
    mode: Mode,
    fusion: cairn::search::Fusion,
    refine: &Refine,
) -> Result<QuestionScores> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let set: Questions =
        serde_json::from_str(&text).with_context(|| format!("reading {}", file.display()))?;
    if set.questions.is_empty() {
        bail!("{} holds no questions", file.display());
    }
    let texts: Vec<&str> = set.questions.iter().map(|q| q.q.as_str()).collect();
    let vectors = query_vectors(loaded, &texts, mode)?;
    let searcher = Searcher::new(loaded.index.source()).with_fusion(fusion);
    let (mut mrr, mut at1, mut at5) = (0.0, 0, 0);
    for (q, v) in set.questions.iter().zip(&vectors) {
        let found = searcher.find_refined(v.as_deref(), None, &q.q, 100, mode, refine)?;
        let mut pages: Vec<&str> = Vec::new();
        for h in &found.hits {
            let page = h.url.split(['#', '?']).next().unwrap_or(&h.url);
            if !pages.contains(&page) {
                pages.push(page);
            }
        }
        let rank = pages
            .iter()
            .take(QUESTION_DEPTH)
            .position(|p| q.expect.iter().any(|e| on_page(p, e)));
        if let Some(r) = rank {
            mrr += 1.0 / (r + 1) as f64;
            at1 += usize::from(r == 0);
            at5 += usize::from(r < 5);
        }
    }
    Ok(QuestionScores {
        mrr: mrr / set.questions.len() as f64,
        at1,
        at5,
        questions: set.questions.len(),
    })
}

pub fn evaluate(
    loaded: &Loaded,
    queries: &Path,
    qrels: &Path,
    mode: Mode,
    fusion: cairn::search::Fusion,
    refine: &Refine,
) -> Result<Scores> {
    // qrels: query-id, corpus-id, score (BEIR TSV with a header line).
    let mut rels: HashMap<String, HashMap<String, f64>> = HashMap::new();
    let text =
        std::fs::read_to_string(qrels).with_context(|| format!("reading {}", qrels.display()))?;
    for (n, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 3 {
            continue;
        }
        let Ok(score) = cols[2].trim().parse::<f64>() else {
            if n == 0 {
                continue; // header
            }
            bail!("{}:{}: bad relevance `{}`", qrels.display(), n + 1, cols[2]);
        };
        rels.entry(cols[0].to_string())
            .or_default()
            .insert(cols[1].to_string(), score);
    }
    let mut qs: Vec<(String, String)> = Vec::new();
    let qtext = std::fs::read_to_string(queries)
        .with_context(|| format!("reading {}", queries.display()))?;
    for (n, line) in qtext.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let q: QueryRecord = serde_json::from_str(line)
            .with_context(|| format!("{}:{}", queries.display(), n + 1))?;
        let id = id_string(&q.id);
        if rels.contains_key(&id) {
            qs.push((id, q.text));
        }
    }
    qs.sort();
    if qs.is_empty() {
        bail!(
            "no query in {} appears in {}",
            queries.display(),
            qrels.display()
        );
    }
    // Embedded as the engine embeds a query, where the one fallback rule says to.
    let texts: Vec<&str> = qs.iter().map(|q| q.1.as_str()).collect();
    let vectors = query_vectors(loaded, &texts, mode)?;
    let searcher = Searcher::new(loaded.index.source()).with_fusion(fusion);
    let (mut ndcg, mut recall) = (0.0, 0.0);
    for ((qid, qtext), v) in qs.iter().zip(&vectors) {
        let hits = searcher
            .find_refined(v.as_deref(), None, qtext, 100, mode, refine)?
            .hits;
        let mut seen = HashSet::new();
        let ranked: Vec<&str> = hits
            .iter()
            .map(|h| h.id.split('~').next().unwrap_or(&h.id))
            .filter(|id| seen.insert(*id))
            .collect();
        let rel = &rels[qid];
        let dcg: f64 = ranked
            .iter()
            .take(10)
            .enumerate()
            .map(|(i, id)| rel.get(*id).copied().unwrap_or(0.0) / (i as f64 + 2.0).log2())
            .sum();
        let mut ideal: Vec<f64> = rel.values().copied().filter(|&g| g > 0.0).collect();
        ideal.sort_by(|a, b| b.total_cmp(a));
        let idcg: f64 = ideal
            .iter()
            .take(10)
            .enumerate()
            .map(|(i, g)| g / (i as f64 + 2.0).log2())
            .sum();
        if idcg > 0.0 {
            ndcg += dcg / idcg;
        }
        let relevant = rel.values().filter(|&&g| g > 0.0).count();
        let found = ranked
            .iter()
            .take(100)
            .filter(|id| rel.get(**id).is_some_and(|&g| g > 0.0))
            .count();
        if relevant > 0 {
            recall += found as f64 / relevant as f64;
        }
    }
    let n = qs.len() as f64;
    Ok(Scores {
        ndcg10: ndcg / n,
        recall100: recall / n,
        queries: qs.len(),
    })
}

#[allow(clippy::too_many_arguments)]
pub fn eval(
    dir: &Path,
    set: &Set,
    mode: Mode,
    json: bool,
    fusion: cairn::search::Fusion,
    refine: &Refine,
    probe_only: bool,
) -> Result<()> {
    let mut loaded = load(dir, mode != Mode::Lexical)?;
    if probe_only {
        match &mut loaded.index {
            LoadedIndex::Sharded(s) => s.set_probe_only(true),
            LoadedIndex::One(_) => bail!("--probe-only is for a sharded index"),
        }
    }
    match set {
        Set::Beir { queries, qrels } => {
            let s = evaluate(&loaded, queries, qrels, mode, fusion, refine)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"mode": mode, "ndcg@10": s.ndcg10, "recall@100": s.recall100, "queries": s.queries})
                );
            } else {
                println!(
                    "nDCG@10={:.4} Recall@100={:.4} queries={}",
                    s.ndcg10, s.recall100, s.queries
                );
            }
        }
        Set::Questions(file) => {
            let s = evaluate_questions(&loaded, file, mode, fusion, refine)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"mode": mode, "mrr": s.mrr, "hits@1": s.at1, "hits@5": s.at5, "questions": s.questions})
                );
            } else {
                println!(
                    "MRR={:.4} hits@1={} hits@5={} questions={}",
                    s.mrr, s.at1, s.at5, s.questions
                );
            }
        }
    }
    Ok(())
}
