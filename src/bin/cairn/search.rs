//! `cairn search`: a query against an index folder, as the browser engine answers it.

use std::path::Path;

use anyhow::{bail, Context, Result};

use cairn::index::format::SHARDED_VERSION;
use cairn::index::manifest::Manifest;
use cairn::index::sharded::ShardedIndex;
use cairn::index::Index;
use cairn::search::{Found, Refine, Source};
use cairn::{Encoder, Mode, Searcher};

/// An index of either layout.
pub enum LoadedIndex {
    One(Index),
    Sharded(ShardedIndex),
}

impl LoadedIndex {
    pub fn source(&self) -> &dyn Source {
        match self {
            LoadedIndex::One(i) => i,
            LoadedIndex::Sharded(s) => s,
        }
    }
}

/// A deployed index folder, loaded.
pub struct Loaded {
    pub index: LoadedIndex,
    pub encoder: Option<Encoder>,
}

/// Loads a folder: the index the manifest names (a sharded one with every part) and, when
/// asked, the model.
pub fn load(dir: &Path, with_model: bool) -> Result<Loaded> {
    load_with(dir, with_model, true)
}

fn load_with(dir: &Path, with_model: bool, all_parts: bool) -> Result<Loaded> {
    let manifest = Manifest::read(dir)
        .with_context(|| format!("reading the index folder {}", dir.display()))?;
    let bytes = std::fs::read(dir.join(&manifest.index))?;
    let index = if manifest.index_format == SHARDED_VERSION {
        let mut s = ShardedIndex::from_meta(bytes)
            .with_context(|| format!("loading {}", manifest.index))?;
        if all_parts {
            let names: Vec<String> = s.files().iter().map(|f| f.to_string()).collect();
            for name in names {
                s.add_part(&name, std::fs::read(dir.join(&name))?)?;
            }
        }
        LoadedIndex::Sharded(s)
    } else {
        LoadedIndex::One(
            Index::from_bytes(bytes).with_context(|| format!("loading {}", manifest.index))?,
        )
    };
    let encoder = if with_model {
        let enc = Encoder::from_bytes(&std::fs::read(dir.join(&manifest.model))?)
            .with_context(|| format!("loading {}", manifest.model))?;
        let fp = enc.fingerprint();
        match &index {
            LoadedIndex::One(i) => i.check_model(fp)?,
            LoadedIndex::Sharded(s) => s.check_model(fp)?,
        }
        Some(enc)
    } else {
        None
    };
    Ok(Loaded { index, encoder })
}

/// Searches a sharded index as the browser does: from the meta file alone, reading the parts
/// each round of the search names (terms and shards, then the text of the hits), until it
/// needs nothing more. Returns what was found, the parts read and their bytes.
#[allow(clippy::too_many_arguments)]
pub fn search_on_demand(
    dir: &Path,
    index: &mut ShardedIndex,
    vector: Option<&[f32]>,
    query: &str,
    k: usize,
    mode: Mode,
    refine: &Refine,
    show_reads: bool,
) -> Result<(Found, usize, u64)> {
    let (mut files, mut bytes) = (0, 0u64);
    for _ in 0..4 {
        let found = Searcher::new(index).find_refined(vector, None, query, k, mode, refine)?;
        if found.gaps.need.is_empty() {
            return Ok((found, files, bytes));
        }
        for name in &found.gaps.need {
            match std::fs::read(dir.join(name)) {
                Ok(b) => {
                    if show_reads {
                        eprintln!("read {name} {}", b.len());
                    }
                    files += 1;
                    bytes += b.len() as u64;
                    index.add_part(name, b)?;
                }
                Err(e) => {
                    eprintln!("could not read {name} ({e}): searching without it");
                    index.mark_missing(name);
                }
            }
        }
    }
    bail!("the search kept asking for more parts of the index")
}

/// The search's results as `cairn search --json` prints them.
#[derive(serde::Serialize)]
struct Printed<'a> {
    hits: &'a [cairn::Hit],
    total: usize,
    counts: &'a cairn::index::facets::Counts,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_counts: Option<&'a cairn::index::facets::Counts>,
}

pub fn search(
    dir: &Path,
    query: &str,
    k: usize,
    mode: Mode,
    refine: &Refine,
    json: bool,
    show_reads: bool,
) -> Result<()> {
    let mut loaded = load_with(dir, mode.embeds(query), false)?;
    let vector = match &loaded.encoder {
        Some(enc) => Some(enc.embed_query(query)?),
        None => None,
    };
    let found = match &mut loaded.index {
        LoadedIndex::One(index) => {
            Searcher::new(index).find_refined(vector.as_deref(), None, query, k, mode, refine)?
        }
        LoadedIndex::Sharded(s) => {
            let (found, files, bytes) = search_on_demand(
                dir,
                s,
                vector.as_deref(),
                query,
                k,
                mode,
                refine,
                show_reads,
            )?;
            eprintln!(
                "read the meta file ({} bytes) and {files} parts ({bytes} bytes) of {}",
                s.meta_byte_len(),
                s.files().len()
            );
            found
        }
    };
    let hits = &found.hits;
    if json {
        let printed = Printed {
            hits,
            total: found.total,
            counts: &found.counts,
            total_counts: found.total_counts.as_ref(),
        };
        println!("{}", serde_json::to_string_pretty(&printed)?);
        return Ok(());
    }
    if !found.counts.is_empty() {
        let mut line = format!("{} matched;", found.total);
        for (key, values) in &found.counts {
            let shown: Vec<String> = values
                .iter()
                .filter(|(_, &c)| c > 0)
                .map(|(v, c)| format!("{v} ({c})"))
                .collect();
            if !shown.is_empty() {
                line.push_str(&format!(" {key}: {};", shown.join(", ")));
            }
        }
        println!("{}", line.trim_end_matches(';'));
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
        if !h.meta.is_empty() {
            let meta: Vec<String> = h.meta.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            println!("    {}", meta.join(" · "));
        }
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
