//! `cairn search`: a query against an index folder, as the browser engine answers it.

use std::path::Path;

use anyhow::{bail, Context, Result};

use cairn::index::format::SHARDED_VERSION;
use cairn::index::manifest::Manifest;
use cairn::index::sharded::ShardedIndex;
use cairn::index::Index;
use cairn::search::Source;
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
/// needs nothing more. Returns the hits, the parts read and their bytes.
pub fn search_on_demand(
    dir: &Path,
    index: &mut ShardedIndex,
    vector: Option<&[f32]>,
    query: &str,
    k: usize,
    mode: Mode,
    show_reads: bool,
) -> Result<(Vec<cairn::Hit>, usize, u64)> {
    let (mut files, mut bytes) = (0, 0u64);
    for _ in 0..4 {
        let found = Searcher::new(index).find(vector, None, query, k, mode)?;
        if found.gaps.need.is_empty() {
            return Ok((found.hits, files, bytes));
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

pub fn search(
    dir: &Path,
    query: &str,
    k: usize,
    mode: Mode,
    json: bool,
    show_reads: bool,
) -> Result<()> {
    let mut loaded = load_with(dir, mode.embeds(query), false)?;
    let vector = match &loaded.encoder {
        Some(enc) => Some(enc.embed_query(query)?),
        None => None,
    };
    let hits = match &mut loaded.index {
        LoadedIndex::One(index) => {
            Searcher::new(index).search(vector.as_deref(), query, k, mode)?
        }
        LoadedIndex::Sharded(s) => {
            let (hits, files, bytes) =
                search_on_demand(dir, s, vector.as_deref(), query, k, mode, show_reads)?;
            eprintln!(
                "read the meta file ({} bytes) and {files} parts ({bytes} bytes) of {}",
                s.meta_byte_len(),
                s.files().len()
            );
            hits
        }
    };
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
