//! `cairn eval`: nDCG@10 and Recall@100 of an index folder on a BEIR-style benchmark.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

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

pub fn evaluate(
    loaded: &Loaded,
    queries: &Path,
    qrels: &Path,
    mode: Mode,
    fusion: cairn::search::Fusion,
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
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; qs.len()];
    if let Some(enc) = &loaded.encoder {
        let wanted: Vec<usize> = (0..qs.len()).filter(|&i| mode.embeds(&qs[i].1)).collect();
        let texts: Vec<&str> = wanted.iter().map(|&i| qs[i].1.as_str()).collect();
        for (i, v) in wanted.into_iter().zip(enc.embed_queries(&texts)?) {
            vectors[i] = Some(v);
        }
    }
    let searcher = Searcher::new(loaded.index.source()).with_fusion(fusion);
    let (mut ndcg, mut recall) = (0.0, 0.0);
    for ((qid, qtext), v) in qs.iter().zip(&vectors) {
        let hits = searcher.search(v.as_deref(), qtext, 100, mode)?;
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

pub fn eval(
    dir: &Path,
    queries: &Path,
    qrels: &Path,
    mode: Mode,
    json: bool,
    fusion: cairn::search::Fusion,
    probe_only: bool,
) -> Result<()> {
    let mut loaded = load(dir, mode != Mode::Lexical)?;
    if probe_only {
        match &mut loaded.index {
            LoadedIndex::Sharded(s) => s.set_probe_only(true),
            LoadedIndex::One(_) => bail!("--probe-only is for a sharded index"),
        }
    }
    let s = evaluate(&loaded, queries, qrels, mode, fusion)?;
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
    Ok(())
}
