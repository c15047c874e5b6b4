//! The sharded index (format version 2): one small meta file and many small part files, so
//! a browser fetches only what a query touches, as Pagefind splits its index.
//!
//! Every file is the container of [`super::format`] (magic, version 2, sections, CRC-32),
//! named by the start of the SHA-256 of its bytes (`terms.0123abcd4567ef89.cidx`):
//!
//! - **the meta file** ([`SectionKind::Meta`], [`SectionKind::PartTable`],
//!   [`SectionKind::PartHashes`]): the index-wide facts and a directory of every part, 8
//!   bytes of hash each, so a part of another build (or a corrupt one) is refused by name;
//! - **term chunks** (`terms.*`): the keyword index cut by term range; the meta file keeps
//!   each chunk's first term. A term's postings are `(passage gap, tf, passage length)`
//!   varints, so BM25 needs no other file;
//! - **text groups** (`text.*`): consecutive passages (title, URL, anchor, heading, text), a
//!   few KB each, fetched only for the results shown;
//! - **vector shards** (`vecs.*`): the int8 rows (and their passages) of one coarse cluster
//!   of the vectors (spherical k-means over the passages);
//! - **the centroids** (`cent.*`, one part): a query scores them and probes the nearest
//!   shards until they hold [`PartTable::probe_rows`] rows, and every other shard already
//!   loaded, so with every
//!   shard loaded the ranking is the exact scan's. Only meaning search needs them, so a
//!   keyword answer waits for the meta file, term chunks and text alone.
//!
//! [`build_sharded`] writes the same bytes for the same input. [`ShardedIndex`] reads the
//! meta file and then takes parts as they arrive ([`ShardedIndex::add_part`]); a search
//! ([`crate::Searcher::find`]) reports the parts it needed and did not have
//! ([`crate::search::Gaps`]), and answers from what it has.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::dense::{self, top_k, DenseQuery, DenseView};
use super::facets::{self, Allowed, Facets};
use super::format::{write_container_version, IndexMeta, Passage, SectionKind, SHARDED_VERSION};
use super::lexical::{self, get_varint, put_varint, Bm25, LexicalData, Ranking};
use super::writer::{json, prepare, raw};
use super::{read_container, Container, Storage};
use crate::kernels::PackedMatrix;
use crate::search::{Gaps, Source};
use crate::{Error, Result};
use sha2::{Digest, Sha256};

/// What a part file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartKind {
    Terms,
    Text,
    Vectors,
    /// The coarse centroids (one part, when there are vectors): only meaning search needs
    /// them, so the keyword answer does not wait for them.
    Centroids,
}

impl PartKind {
    fn stem(self) -> &'static str {
        match self {
            PartKind::Terms => "terms",
            PartKind::Text => "text",
            PartKind::Vectors => "vecs",
            PartKind::Centroids => "cent",
        }
    }
}

/// A part file's own statement of what it is ([`SectionKind::Part`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartHeader {
    pub kind: PartKind,
    pub number: u32,
}

/// The meta file's directory of parts ([`SectionKind::PartTable`]). Each part is named by
/// the start of the SHA-256 of its bytes, listed in [`SectionKind::PartHashes`] (8 bytes a
/// part: term chunks, then text groups, then vector shards), so the table stays small: the
/// std docs' 5,000 parts cost 40 KB of hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartTable {
    /// The first term of each term chunk; a chunk holds the terms up to the next one's first.
    pub term_starts: Vec<String>,
    /// Passages per text group; the groups hold the passages in order.
    pub text_counts: Vec<u32>,
    /// Rows per vector shard, one shard per centroid.
    pub vector_rows: Vec<u32>,
    /// A query probes the nearest shards until they hold this many rows (at least one
    /// shard): a bound on the bytes of a cold meaning search, whatever the shards' sizes.
    pub probe_rows: u32,
}

/// The file name of a part: `terms.0123abcd4567ef89.cidx`, as [`hashed_name`] names files.
fn part_name(kind: PartKind, hash: &[u8]) -> String {
    format!("{}.{}.cidx", kind.stem(), crate::digest::hex(hash))
}

/// The start of the SHA-256 of `bytes`: what names a part.
fn part_hash(bytes: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(bytes);
    let mut h = [0u8; 8];
    h.copy_from_slice(&digest[..8]);
    h
}

/// Sizes the writer aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardOptions {
    /// Rows per vector shard, on average (the number of centroids follows).
    pub shard_rows: usize,
    /// Bytes of postings per term chunk (a chunk holds at least one term, however long).
    pub chunk_bytes: usize,
    /// Bytes of passage text per text group.
    pub text_bytes: usize,
    /// Rows the probed shards hold together (the last one may pass it).
    pub probe_rows: usize,
}

impl Default for ShardOptions {
    fn default() -> Self {
        Self {
            shard_rows: 256,
            chunk_bytes: 16 * 1024,
            text_bytes: 8 * 1024,
            probe_rows: 1792,
        }
    }
}

/// A sharded index's files: the meta file (the caller names it, `index.<hash>.cidx`) and
/// every part under its content-hashed name.
pub struct ShardedFiles {
    pub meta: Vec<u8>,
    pub parts: Vec<(String, Vec<u8>)>,
}

/// Writes one part; returns its hash and bytes.
fn part_file(
    kind: PartKind,
    number: usize,
    sections: Vec<(SectionKind, Vec<u8>)>,
) -> Result<([u8; 8], Vec<u8>)> {
    let header = PartHeader {
        kind,
        number: number as u32,
    };
    let mut all = vec![(SectionKind::Part, json(&header, "part header")?)];
    all.extend(sections);
    let bytes = write_container_version(SHARDED_VERSION, &all);
    Ok((part_hash(&bytes), bytes))
}

/// Writes the sharded index of `passages` with `vectors` (as [`super::build_index`] takes
/// them). Deterministic.
pub fn build_sharded(
    passages: &[Passage],
    vectors: &[Vec<f32>],
    model_fingerprint: &str,
    model_name: &str,
    opts: &ShardOptions,
) -> Result<ShardedFiles> {
    let (meta, lex) = prepare(passages, vectors, model_fingerprint, model_name)?;
    let facet_sections = facets::build(passages)?;
    let stored = facets::for_table(passages);
    let dim = meta.dim;
    let mut parts = Vec::new();
    let mut hashes: Vec<u8> = Vec::new();
    let mut table = PartTable {
        term_starts: Vec::new(),
        text_counts: Vec::new(),
        vector_rows: Vec::new(),
        probe_rows: 0,
    };
    let mut add = |kind: PartKind, (hash, bytes): ([u8; 8], Vec<u8>)| {
        hashes.extend_from_slice(&hash);
        parts.push((part_name(kind, &hash), bytes));
    };

    // Term chunks.
    for (range, terms) in chunk_terms(&lex, opts.chunk_bytes.max(1)) {
        let mut offsets = vec![0u32];
        let mut postings = Vec::new();
        for t in range.clone() {
            encode_postings(&lex, t, &mut postings);
            offsets.push(postings.len() as u32);
        }
        // The chunk's terms' postings are consecutive in the whole index's.
        let fields =
            &lex.fields[lex.offsets[range.start] as usize..lex.offsets[range.end] as usize];
        let number = table.term_starts.len();
        let part = part_file(
            PartKind::Terms,
            number,
            vec![
                (SectionKind::Terms, json(&terms, "terms")?),
                (SectionKind::TermOffsets, raw(&offsets)),
                (SectionKind::ChunkPostings, postings),
                (SectionKind::ChunkFields, lexical::encode_fields(fields)),
            ],
        )?;
        add(PartKind::Terms, part);
        table.term_starts.push(terms[0].clone());
    }

    // Text groups.
    let mut start = 0;
    while start < passages.len() {
        let mut end = start;
        let mut size = 0;
        while end < passages.len() && (end == start || size < opts.text_bytes) {
            let p = &passages[end];
            size += p.text.len() + p.title.len() + p.heading.len() + p.url.len() + p.id.len();
            end += 1;
        }
        let number = table.text_counts.len();
        let part = part_file(
            PartKind::Text,
            number,
            vec![(
                SectionKind::Passages,
                json(&&stored[start..end], "passages")?,
            )],
        )?;
        add(PartKind::Text, part);
        table.text_counts.push((end - start) as u32);
        start = end;
    }

    // Vector shards by coarse centroid, then the centroids.
    if !passages.is_empty() && dim > 0 {
        let d = dense::build(vectors, dim);
        let k = passages.len().div_ceil(opts.shard_rows.max(1)).max(1);
        let (centroids, assignment) = kmeans(vectors, dim, k);
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); centroids.len()];
        for (p, &c) in assignment.iter().enumerate() {
            members[c as usize].push(p as u32);
        }
        let mut kept = Vec::new();
        for (c, rows) in members.iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            kept.push(centroids[c].clone());
            let mut r8 = Vec::with_capacity(rows.len() * dim);
            let mut scales = Vec::with_capacity(rows.len());
            for &p in rows {
                let p = p as usize;
                r8.extend_from_slice(&d.rows[p * dim..(p + 1) * dim]);
                scales.push(d.scales[p]);
            }
            let number = table.vector_rows.len();
            let part = part_file(
                PartKind::Vectors,
                number,
                vec![
                    (SectionKind::RowPassages, raw(rows)),
                    (SectionKind::DenseRows, raw(&r8)),
                    (SectionKind::DenseScales, raw(&scales)),
                ],
            )?;
            add(PartKind::Vectors, part);
            table.vector_rows.push(rows.len() as u32);
        }
        let c = dense::build(&kept, dim);
        let part = part_file(
            PartKind::Centroids,
            0,
            vec![
                (SectionKind::CentroidRows, raw(&c.rows)),
                (SectionKind::CentroidScales, raw(&c.scales)),
            ],
        )?;
        add(PartKind::Centroids, part);
        table.probe_rows = opts.probe_rows.clamp(1, u32::MAX as usize) as u32;
    }

    let mut meta_sections = vec![
        (SectionKind::Meta, json(&meta, "index metadata")?),
        (SectionKind::PartTable, json(&table, "part table")?),
        (SectionKind::PartHashes, hashes),
    ];
    meta_sections.extend(facet_sections);
    let meta_bytes = write_container_version(SHARDED_VERSION, &meta_sections);
    Ok(ShardedFiles {
        meta: meta_bytes,
        parts,
    })
}

/// Term ranges of about `target` bytes of postings each (estimated at 3 bytes a posting).
fn chunk_terms(lex: &LexicalData, target: usize) -> Vec<(Range<usize>, Vec<String>)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for t in 0..lex.terms.len() {
        let postings = (lex.offsets[t + 1] - lex.offsets[t]) as usize;
        let bytes = (lex.doc_offsets[t + 1] - lex.doc_offsets[t]) as usize + 2 * postings;
        if t > start && size + bytes > target {
            out.push((start..t, lex.terms[start..t].to_vec()));
            start = t;
            size = 0;
        }
        size += bytes;
    }
    if start < lex.terms.len() {
        out.push((start..lex.terms.len(), lex.terms[start..].to_vec()));
    }
    out
}

/// Term `t`'s postings as `(gap, tf, length)` varints: the gap as in the one-file index
/// (the first passage as is, then the distance minus one).
fn encode_postings(lex: &LexicalData, t: usize, out: &mut Vec<u8>) {
    let bytes = &lex.docs[lex.doc_offsets[t] as usize..lex.doc_offsets[t + 1] as usize];
    let first = lex.offsets[t] as usize;
    let mut prev: Option<u32> = None;
    lexical::for_each_doc(bytes, |i, d| {
        put_varint(out, prev.map_or(d, |p| d - p - 1));
        prev = Some(d);
        put_varint(out, lex.tfs[first + i] as u32);
        put_varint(out, lex.doc_lens[d as usize]);
    });
}

/// Decodes one term's `(passage, tf, length)` postings, calling `f` with each. `None` if the
/// bytes are malformed or the passages do not ascend.
fn for_each_posting(bytes: &[u8], mut f: impl FnMut(u32, u32, u32)) -> Option<usize> {
    let (mut at, mut count, mut prev) = (0usize, 0usize, None::<u32>);
    while at < bytes.len() {
        let gap = get_varint(bytes, &mut at)?;
        let tf = get_varint(bytes, &mut at)?;
        let len = get_varint(bytes, &mut at)?;
        let doc = match prev {
            None => gap,
            Some(p) => p.checked_add(gap)?.checked_add(1)?,
        };
        f(doc, tf, len);
        prev = Some(doc);
        count += 1;
    }
    Some(count)
}

/// Spherical k-means over unit vectors, deterministic: `k` centroids started from evenly
/// spaced passages, ten rounds on a sample of at most 64 vectors a centroid, then every
/// vector assigned to its nearest centroid. Returns the centroids and each vector's.
fn kmeans(vectors: &[Vec<f32>], dim: usize, k: usize) -> (Vec<Vec<f32>>, Vec<u32>) {
    let n = vectors.len();
    let k = k.clamp(1, n);
    let mut centroids: Vec<Vec<f32>> = (0..k).map(|i| vectors[i * n / k].clone()).collect();
    let step = (n / (k * 64)).max(1);
    let sample: Vec<&Vec<f32>> = vectors.iter().step_by(step).collect();
    let nearest = |v: &[f32], centroids: &[Vec<f32>]| -> u32 {
        let mut best = (f32::NEG_INFINITY, 0u32);
        for (c, m) in centroids.iter().enumerate() {
            let s: f32 = v.iter().zip(m).map(|(a, b)| a * b).sum();
            if s > best.0 {
                best = (s, c as u32);
            }
        }
        best.1
    };
    if k > 1 {
        for _ in 0..10 {
            let mut sums = vec![vec![0f64; dim]; k];
            let mut counts = vec![0usize; k];
            for v in &sample {
                let c = nearest(v, &centroids) as usize;
                counts[c] += 1;
                for (s, x) in sums[c].iter_mut().zip(v.iter()) {
                    *s += *x as f64;
                }
            }
            for c in 0..k {
                let norm = sums[c].iter().map(|x| x * x).sum::<f64>().sqrt();
                // An empty cluster keeps its centroid.
                if counts[c] > 0 && norm > 0.0 {
                    centroids[c] = sums[c].iter().map(|x| (x / norm) as f32).collect();
                }
            }
        }
    }
    // Every vector to its nearest centroid with room, most confident first, so no shard
    // grows past a quarter over the average (one query's probe stays near its byte budget).
    let cap = n.div_ceil(k) + n.div_ceil(k).div_ceil(4);
    let ranked = |v: &[f32], keep: usize| -> Vec<(f32, u32)> {
        let mut s: Vec<(f32, u32)> = centroids
            .iter()
            .enumerate()
            .map(|(c, m)| (v.iter().zip(m).map(|(a, b)| a * b).sum(), c as u32))
            .collect();
        let by = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if keep < s.len() {
            s.select_nth_unstable_by(keep, by);
            s.truncate(keep);
        }
        s.sort_by(by);
        s
    };
    let choices: Vec<Vec<(f32, u32)>> = vectors.iter().map(|v| ranked(v, 8)).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| choices[b][0].0.total_cmp(&choices[a][0].0).then(a.cmp(&b)));
    let mut fill = vec![0usize; k];
    let mut assignment = vec![0u32; n];
    for i in order {
        let room = |c: &&(f32, u32)| fill[c.1 as usize] < cap;
        let c = match choices[i].iter().find(room) {
            Some(&(_, c)) => c,
            // All eight nearest are full: the nearest with room (k * cap >= n, so one has).
            None => ranked(&vectors[i], k)
                .iter()
                .find(room)
                .map_or(choices[i][0].1, |&(_, c)| c),
        };
        fill[c as usize] += 1;
        assignment[i] = c;
    }
    (centroids, assignment)
}

/// A loaded term chunk.
struct TermChunk {
    terms: Vec<String>,
    offsets: Vec<u32>,
    postings: Vec<u8>,
    dfs: Vec<u32>,
    /// Each term's first posting among the chunk's (for `fields`).
    firsts: Vec<u32>,
    /// Every posting's field byte, in order; empty for a chunk written before field weights.
    fields: Vec<u8>,
}

/// A loaded vector shard.
struct VectorShard {
    passages: Vec<u32>,
    rows: Vec<i8>,
    scales: Vec<f32>,
    packed: PackedMatrix,
}

/// One part as the meta file names it.
struct PartInfo {
    kind: PartKind,
    /// Its number among the parts of its kind.
    number: usize,
    hash: [u8; 8],
    name: String,
}

/// A sharded index as far as it is loaded: the meta file, and whichever parts were added.
pub struct ShardedIndex {
    meta: IndexMeta,
    table: PartTable,
    meta_bytes: usize,
    /// The coarse centroids' int8 rows and scales, once their part is in.
    centroids: Option<(Vec<i8>, Vec<f32>)>,
    /// Every part: term chunks, then text groups, then vector shards, then the centroids.
    parts: Vec<PartInfo>,
    by_name: HashMap<String, usize>,
    /// The first passage of each text group, and the passage count after the last.
    text_starts: Vec<u32>,
    terms: Vec<Option<TermChunk>>,
    text: Vec<Option<Vec<Passage>>>,
    vectors: Vec<Option<VectorShard>>,
    missing: HashSet<String>,
    probe_only: bool,
    /// Filters and sort keys, from the meta file (empty for an index without them).
    facets: Facets,
}

fn slice<'a, T: bytemuck::Pod>(
    bytes: &'a [u8],
    sections: &BTreeMap<SectionKind, Range<usize>>,
    kind: SectionKind,
    bad: &dyn Fn(String) -> Error,
) -> Result<&'a [T]> {
    let range = sections
        .get(&kind)
        .ok_or_else(|| bad(format!("the {} section is missing", kind.name())))?;
    bytemuck::try_cast_slice(&bytes[range.clone()])
        .map_err(|e| bad(format!("the {} section: {e}", kind.name())))
}

fn json_section<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    sections: &BTreeMap<SectionKind, Range<usize>>,
    kind: SectionKind,
    bad: &dyn Fn(String) -> Error,
) -> Result<T> {
    let raw = slice::<u8>(bytes, sections, kind, bad)?;
    serde_json::from_slice(raw).map_err(|e| bad(format!("the {} section: {e}", kind.name())))
}

impl ShardedIndex {
    /// Reads a sharded index's meta file; parts come later ([`ShardedIndex::add_part`]).
    pub fn from_meta(bytes: Vec<u8>) -> Result<Self> {
        let Container { version, sections } = read_container(&bytes)?;
        if version != SHARDED_VERSION {
            return Err(Error::NotAnIndex(format!(
                "this is a one-file index (format version {version}), not a sharded index's \
                 meta file (version {SHARDED_VERSION})"
            )));
        }
        let storage = Storage::aligned(bytes);
        let b = storage.bytes();
        let bad = |m: String| Error::CorruptIndex(format!("meta file: {m}"));
        let meta: IndexMeta = json_section(b, &sections, SectionKind::Meta, &bad)?;
        let table: PartTable = json_section(b, &sections, SectionKind::PartTable, &bad)?;
        let hashes = slice::<u8>(b, &sections, SectionKind::PartHashes, &bad)?;
        let n = meta.passages;
        let dim = meta.dim;
        // The writer refuses more than u32::MAX / 2; a claim past that is not an index (and
        // searches size bitmaps and lists by it).
        if n > u32::MAX as usize / 2 {
            return Err(bad(format!("implausible passage count {n}")));
        }
        if dim == 0 && n > 0 || dim > 8192 {
            return Err(bad(format!("vector length {dim}")));
        }
        if !meta.avg_len.is_finite() {
            return Err(bad("the average passage length is not finite".into()));
        }
        Ranking::of(&meta)
            .check()
            .map_err(|e| bad(format!("its BM25 parameters: {e}")))?;
        let t = &table;
        if t.term_starts.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("term chunks are not in term order".into()));
        }
        let mut text_starts = vec![0u32];
        for &c in &t.text_counts {
            let last = *text_starts.last().unwrap_or(&0);
            match last.checked_add(c) {
                Some(next) if c > 0 && next as usize <= n => text_starts.push(next),
                _ => return Err(bad("text groups do not cover the passages".into())),
            }
        }
        if text_starts.last().map(|&l| l as usize) != Some(n) {
            return Err(bad("text groups do not cover the passages".into()));
        }
        let rows: u64 = t.vector_rows.iter().map(|&r| r as u64).sum();
        if (dim > 0 && rows != n as u64) || t.vector_rows.contains(&0) {
            return Err(bad(format!(
                "vector shards hold {rows} rows for {n} passages"
            )));
        }
        let shards = t.vector_rows.len();
        if shards > 0 && t.probe_rows == 0 {
            return Err(bad("probes no rows".into()));
        }
        let kinds = [
            (PartKind::Terms, t.term_starts.len()),
            (PartKind::Text, t.text_counts.len()),
            (PartKind::Vectors, shards),
            (PartKind::Centroids, usize::from(shards > 0)),
        ];
        let count: usize = kinds.iter().map(|k| k.1).sum();
        if Some(hashes.len()) != count.checked_mul(8) {
            return Err(bad(format!(
                "{} bytes of part hashes for {count} parts",
                hashes.len()
            )));
        }
        let facets = Facets::from_sections(n, b, &sections).map_err(|e| bad(e.to_string()))?;
        let mut parts = Vec::with_capacity(count);
        let mut by_name = HashMap::with_capacity(count);
        let mut hash_chunks = hashes.chunks_exact(8);
        for (kind, len) in kinds {
            for number in 0..len {
                let mut hash = [0u8; 8];
                hash.copy_from_slice(hash_chunks.next().unwrap_or(&[0; 8]));
                let name = part_name(kind, &hash);
                if by_name.insert(name.clone(), parts.len()).is_some() {
                    return Err(bad(format!("part {name} is listed twice")));
                }
                parts.push(PartInfo {
                    kind,
                    number,
                    hash,
                    name,
                });
            }
        }
        Ok(Self {
            terms: (0..t.term_starts.len()).map(|_| None).collect(),
            text: (0..t.text_counts.len()).map(|_| None).collect(),
            vectors: (0..shards).map(|_| None).collect(),
            meta,
            table,
            meta_bytes: storage.bytes().len(),
            centroids: None,
            parts,
            by_name,
            text_starts,
            missing: HashSet::new(),
            probe_only: false,
            facets,
        })
    }

    pub fn meta(&self) -> &IndexMeta {
        &self.meta
    }

    /// The index's filters and sort keys.
    pub fn facets(&self) -> &Facets {
        &self.facets
    }

    pub fn table(&self) -> &PartTable {
        &self.table
    }

    pub fn len(&self) -> usize {
        self.meta.passages
    }

    pub fn is_empty(&self) -> bool {
        self.meta.passages == 0
    }

    /// Bytes of the meta file.
    pub fn meta_byte_len(&self) -> usize {
        self.meta_bytes
    }

    /// Refuses a model other than the one the index was built with.
    pub fn check_model(&self, fingerprint: &str) -> Result<()> {
        if fingerprint != self.meta.model_fingerprint {
            return Err(Error::ModelMismatch {
                index: self.meta.model_fingerprint.chars().take(16).collect(),
                model: fingerprint.chars().take(16).collect(),
            });
        }
        Ok(())
    }

    /// Every part's file name, term chunks first, then the centroids and the vector shards,
    /// then text groups: the order to prefetch them in (keywords, then meaning, then the text
    /// of more results).
    pub fn files(&self) -> Vec<&str> {
        let of = |kind: PartKind| {
            self.parts
                .iter()
                .filter(move |p| p.kind == kind)
                .map(|p| p.name.as_str())
        };
        of(PartKind::Terms)
            .chain(of(PartKind::Centroids))
            .chain(of(PartKind::Vectors))
            .chain(of(PartKind::Text))
            .collect()
    }

    /// Whether part `name` is loaded.
    pub fn has(&self, name: &str) -> bool {
        let Some(&i) = self.by_name.get(name) else {
            return false;
        };
        let p = &self.parts[i];
        match p.kind {
            PartKind::Terms => self.terms[p.number].is_some(),
            PartKind::Text => self.text[p.number].is_some(),
            PartKind::Vectors => self.vectors[p.number].is_some(),
            PartKind::Centroids => self.centroids.is_some(),
        }
    }

    /// Searches probe only the nearest shards, not every loaded one (what a first visit
    /// sees; for evaluation).
    pub fn set_probe_only(&mut self, on: bool) {
        self.probe_only = on;
    }

    /// Records that part `name` cannot be had (its fetch failed): searches answer without it
    /// and name it in [`Gaps::missing`] rather than [`Gaps::need`].
    pub fn mark_missing(&mut self, name: &str) {
        if self.by_name.contains_key(name) {
            self.missing.insert(name.to_string());
        }
    }

    /// Takes part `name`'s bytes, after checking them: a name the meta file does not list is
    /// an invalid argument; bytes that are cut short, fail their checksum, are not the file
    /// the name's hash names, or do not hold what the meta file says are
    /// [`Error::CorruptPart`] naming the file (evict it, fetch it again).
    pub fn add_part(&mut self, name: &str, bytes: Vec<u8>) -> Result<()> {
        let Some(&i) = self.by_name.get(name) else {
            return Err(Error::InvalidArgument(format!(
                "{name} is not a part of this index"
            )));
        };
        let (kind, number) = (self.parts[i].kind, self.parts[i].number);
        let bad = |reason: String| Error::CorruptPart {
            file: name.to_string(),
            reason,
        };
        let Container { version, sections } =
            read_container(&bytes).map_err(|e| bad(e.to_string()))?;
        if version != SHARDED_VERSION || part_hash(&bytes) != self.parts[i].hash {
            return Err(bad(format!(
                "its bytes do not hash to its name (format version {version}): another build's file?"
            )));
        }
        let storage = Storage::aligned(bytes);
        let b = storage.bytes();
        let header: PartHeader = json_section(b, &sections, SectionKind::Part, &bad)?;
        if header.kind != kind || header.number as usize != number {
            return Err(bad(format!(
                "it holds {:?} part {}, the index names it {:?} part {number}",
                header.kind, header.number, kind
            )));
        }
        let n = self.meta.passages;
        match kind {
            PartKind::Terms => {
                let terms: Vec<String> = json_section(b, &sections, SectionKind::Terms, &bad)?;
                let offsets = slice::<u32>(b, &sections, SectionKind::TermOffsets, &bad)?.to_vec();
                let postings =
                    slice::<u8>(b, &sections, SectionKind::ChunkPostings, &bad)?.to_vec();
                let next = self.table.term_starts.get(number + 1);
                let first = &self.table.term_starts[number];
                if terms.first() != Some(first)
                    || terms.windows(2).any(|w| w[0] >= w[1])
                    || next.is_some_and(|nx| terms.last().is_some_and(|l| l >= nx))
                {
                    return Err(bad("its terms are not the range the index names".into()));
                }
                if offsets.len() != terms.len() + 1
                    || offsets.first() != Some(&0)
                    || offsets.windows(2).any(|w| w[0] > w[1])
                    || offsets.last().map(|&l| l as usize) != Some(postings.len())
                {
                    return Err(bad("term offsets do not fit the postings".into()));
                }
                let mut dfs = Vec::with_capacity(terms.len());
                let mut firsts = Vec::with_capacity(terms.len());
                let mut total = 0u32;
                for (t, w) in offsets.windows(2).enumerate() {
                    firsts.push(total);
                    let list = &postings[w[0] as usize..w[1] as usize];
                    let mut past_end = false;
                    let count = for_each_posting(list, |d, _, _| past_end |= d as usize >= n);
                    match count {
                        // At least three bytes a posting, so the total fits a u32.
                        Some(c) if c > 0 && !past_end => {
                            dfs.push(c as u32);
                            total += c as u32;
                        }
                        _ => {
                            return Err(bad(format!(
                                "the postings of term {:?} are malformed",
                                terms[t]
                            )))
                        }
                    }
                }
                let fields = match sections.get(&SectionKind::ChunkFields) {
                    None => Vec::new(),
                    Some(range) => lexical::decode_fields(&b[range.clone()], total as usize)
                        .ok_or_else(|| bad("its posting fields are malformed".into()))?,
                };
                self.terms[number] = Some(TermChunk {
                    terms,
                    offsets,
                    postings,
                    dfs,
                    firsts,
                    fields,
                });
            }
            PartKind::Text => {
                let passages: Vec<Passage> =
                    json_section(b, &sections, SectionKind::Passages, &bad)?;
                let want = self.table.text_counts[number] as usize;
                if passages.len() != want {
                    return Err(bad(format!(
                        "it holds {} passages, the index names {want}",
                        passages.len()
                    )));
                }
                self.text[number] = Some(passages);
            }
            PartKind::Centroids => {
                let dim = self.meta.dim;
                let shards = self.vectors.len();
                let rows = slice::<i8>(b, &sections, SectionKind::CentroidRows, &bad)?.to_vec();
                let scales =
                    slice::<f32>(b, &sections, SectionKind::CentroidScales, &bad)?.to_vec();
                if scales.len() != shards || Some(rows.len()) != shards.checked_mul(dim) {
                    return Err(bad(format!(
                        "it holds {} centroids for {shards} vector shards",
                        scales.len()
                    )));
                }
                self.centroids = Some((rows, scales));
            }
            PartKind::Vectors => {
                let dim = self.meta.dim;
                let rows_n = self.table.vector_rows[number] as usize;
                let passages = slice::<u32>(b, &sections, SectionKind::RowPassages, &bad)?.to_vec();
                let rows = slice::<i8>(b, &sections, SectionKind::DenseRows, &bad)?.to_vec();
                let scales = slice::<f32>(b, &sections, SectionKind::DenseScales, &bad)?.to_vec();
                if passages.len() != rows_n
                    || scales.len() != rows_n
                    || Some(rows.len()) != rows_n.checked_mul(dim)
                    || passages.windows(2).any(|w| w[0] >= w[1])
                    || passages.last().is_some_and(|&p| p as usize >= n)
                {
                    return Err(bad(format!(
                        "its rows do not match the {rows_n} x {dim} the index names"
                    )));
                }
                let packed = dense::pack(&rows, &scales, dim).map_err(|e| bad(e.to_string()))?;
                self.vectors[number] = Some(VectorShard {
                    passages,
                    rows,
                    scales,
                    packed,
                });
            }
        }
        self.missing.remove(name);
        Ok(())
    }

    /// Notes part `kind` `number` in `gaps`: missing if its fetch failed, else needed.
    fn gap(&self, kind: PartKind, number: usize, gaps: &mut Gaps) {
        let offset = match kind {
            PartKind::Terms => 0,
            PartKind::Text => self.terms.len(),
            PartKind::Vectors => self.terms.len() + self.text.len(),
            PartKind::Centroids => self.terms.len() + self.text.len() + self.vectors.len(),
        };
        let name = &self.parts[offset + number].name;
        if self.missing.contains(name) {
            gaps.add_missing(name);
        } else {
            gaps.add_need(name);
        }
    }

    /// The term chunk that would hold `term`.
    fn chunk_of(&self, term: &str) -> Option<usize> {
        let after = self
            .table
            .term_starts
            .partition_point(|s| s.as_str() <= term);
        after.checked_sub(1)
    }

    /// The shards a query probes: those of the nearest centroids, best first, until they hold
    /// [`PartTable::probe_rows`] rows
    /// (none, and the centroids noted in `gaps`, before their part is in).
    fn probed(
        &self,
        q: &DenseQuery,
        allowed: Option<&Allowed>,
        gaps: &mut Gaps,
    ) -> Result<Vec<usize>> {
        if self.vectors.is_empty() {
            return Ok(Vec::new());
        }
        let Some((rows, scales)) = &self.centroids else {
            self.gap(PartKind::Centroids, 0, gaps);
            return Ok(Vec::new());
        };
        let view = DenseView {
            dim: self.meta.dim,
            mean: &[],
            codes: &[],
            rows,
            scales,
            packed: None,
        };
        let mut scored: Vec<(u32, f32)> = (0u32..).zip(view.scores(q)?).collect();
        let all = scored.len();
        top_k(&mut scored, all);
        // Under a filter, enough shards that about as many rows pass it as would be probed
        // without one (the filter's share of the passages taken as every shard's share).
        // At most 8 times as many rows: a very narrow filter would otherwise fetch every
        // shard of a big index for one answer (the rest come with the prefetch).
        let target = match allowed {
            Some(a) => {
                let share = a.count().max(1) as f64 / self.meta.passages.max(1) as f64;
                (self.table.probe_rows as f64 / share)
                    .ceil()
                    .min(8.0 * self.table.probe_rows as f64) as u64
            }
            None => self.table.probe_rows as u64,
        };
        let mut rows = 0u64;
        let mut out = Vec::new();
        for (c, _) in scored {
            if rows >= target {
                break;
            }
            rows += self.table.vector_rows[c as usize] as u64;
            out.push(c as usize);
        }
        Ok(out)
    }
}

impl Source for ShardedIndex {
    fn meta(&self) -> &IndexMeta {
        &self.meta
    }

    fn lexical_scores(
        &self,
        terms: &[String],
        ranking: &Ranking,
        gaps: &mut Gaps,
    ) -> Vec<(u32, f32)> {
        let bm25 = Bm25::new(self.meta.passages, self.meta.avg_len, ranking);
        // Chunks first, so a query names every chunk it lacks at once.
        let mut lists = Vec::with_capacity(terms.len());
        for term in terms {
            let Some(c) = self.chunk_of(term) else {
                lists.push(None);
                continue;
            };
            match &self.terms[c] {
                Some(chunk) => lists.push(chunk.terms.binary_search(term).ok().map(|t| (chunk, t))),
                None => {
                    self.gap(PartKind::Terms, c, gaps);
                    lists.push(None);
                }
            }
        }
        lexical::accumulate(bm25.passages, |add| {
            for (chunk, t) in lists.into_iter().flatten() {
                let idf = bm25.idf(chunk.dfs[t] as usize);
                let range = chunk.offsets[t] as usize..chunk.offsets[t + 1] as usize;
                let first = chunk.firsts[t] as usize;
                let mut i = 0;
                // add_part decoded every list once and checked it.
                for_each_posting(&chunk.postings[range], |d, tf, dl| {
                    let f = chunk.fields.get(first + i).copied().unwrap_or(0);
                    i += 1;
                    add(d, bm25.weight(idf, tf, f, dl));
                });
            }
        })
    }

    fn facets(&self) -> &Facets {
        &self.facets
    }

    fn dense_ranking(
        &self,
        query: &[f32],
        depth: usize,
        allowed: Option<&Allowed>,
        gaps: &mut Gaps,
    ) -> Result<Vec<(u32, f32)>> {
        let dim = self.meta.dim;
        if query.len() != dim {
            return Err(Error::InvalidArgument(format!(
                "query vector has {} dimensions, the index {dim}",
                query.len()
            )));
        }
        let q = DenseQuery::new(query)?;
        let mut shards = self.probed(&q, allowed, gaps)?;
        if !self.probe_only {
            for (s, v) in self.vectors.iter().enumerate() {
                if v.is_some() && !shards.contains(&s) {
                    shards.push(s);
                }
            }
        }
        let mut scored = Vec::new();
        for s in shards {
            let Some(shard) = &self.vectors[s] else {
                self.gap(PartKind::Vectors, s, gaps);
                continue;
            };
            let view = DenseView {
                dim,
                mean: &[],
                codes: &[],
                rows: &shard.rows,
                scales: &shard.scales,
                packed: Some(&shard.packed),
            };
            let rows = shard.passages.iter().copied().zip(view.scores(&q)?);
            match allowed {
                Some(a) => scored.extend(rows.filter(|r| a.contains(r.0))),
                None => scored.extend(rows),
            }
        }
        top_k(&mut scored, depth);
        Ok(scored)
    }

    fn passage(&self, p: u32, gaps: &mut Gaps) -> Option<&Passage> {
        if p as usize >= self.meta.passages {
            return None;
        }
        let g = self
            .text_starts
            .partition_point(|&s| s <= p)
            .checked_sub(1)?;
        match self.text.get(g)? {
            Some(list) => list.get((p - self.text_starts[g]) as usize),
            None => {
                self.gap(PartKind::Text, g, gaps);
                None
            }
        }
    }
}
