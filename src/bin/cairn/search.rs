//! `cairn search`: a query against an index folder, as the browser engine answers it.

use std::path::Path;

use anyhow::{Context, Result};

use cairn::index::manifest::Manifest;
use cairn::index::Index;
use cairn::{Encoder, Mode, Searcher};

/// A deployed index folder, loaded.
pub struct Loaded {
    pub index: Index,
    pub encoder: Option<Encoder>,
}

pub fn load(dir: &Path, with_model: bool) -> Result<Loaded> {
    let manifest = Manifest::read(dir)
        .with_context(|| format!("reading the index folder {}", dir.display()))?;
    let index = Index::from_bytes(std::fs::read(dir.join(&manifest.index))?)
        .with_context(|| format!("loading {}", manifest.index))?;
    let encoder = if with_model {
        let enc = Encoder::from_bytes(&std::fs::read(dir.join(&manifest.model))?)
            .with_context(|| format!("loading {}", manifest.model))?;
        index.check_model(enc.fingerprint())?;
        Some(enc)
    } else {
        None
    };
    Ok(Loaded { index, encoder })
}

pub fn search(dir: &Path, query: &str, k: usize, mode: Mode, json: bool) -> Result<()> {
    let loaded = load(dir, mode.embeds(query))?;
    let vector = match &loaded.encoder {
        Some(enc) => Some(enc.embed_query(query)?),
        None => None,
    };
    let hits = Searcher::new(&loaded.index).search(vector.as_deref(), query, k, mode)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&hits)?);
        return Ok(());
    }
    for (i, h) in hits.iter().enumerate() {
        let link = if h.anchor.is_empty() {
            h.url.clone()
        } else {
            format!("{}#{}", h.url, h.anchor)
        };
        let place = if h.heading.is_empty() || h.heading == h.title {
            h.title.clone()
        } else {
            format!("{} — {}", h.title, h.heading)
        };
        println!("{:>2}. [{:?}] {:.4}  {place}", i + 1, h.why, h.score);
        if !link.is_empty() {
            println!("    {link}");
        } else {
            println!("    id {}", h.id);
        }
        // Marks shown as **word** on the terminal.
        let mut text = String::new();
        let mut last = 0;
        for &(s, e) in &h.excerpt.marks {
            text.push_str(&h.excerpt.text[last..s]);
            text.push_str("**");
            text.push_str(&h.excerpt.text[s..e]);
            text.push_str("**");
            last = e;
        }
        text.push_str(&h.excerpt.text[last..]);
        println!("    {text}");
    }
    Ok(())
}
