//! The index file format, defined once for the writer and the reader.
//!
//! ```text
//! offset 0   magic  b"CAIRNIDX"
//!        8   u32    format version
//!       12   u32    section count N
//!       16   N x { u32 kind, u32 reserved (must be 0), u64 offset, u64 length }
//!            sections, each starting at a multiple of 8 (zero padding between)
//!   end - 8  u32    CRC-32 of every byte before it, u32 reserved (0; the reader refuses any other value)
//! ```
//!
//! All integers are little-endian. JSON sections hold the metadata, the passage table and the
//! term list; the numeric sections (postings, vectors) are raw little-endian arrays read in
//! place, without copying, through `bytemuck`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const MAGIC: &[u8; 8] = b"CAIRNIDX";
/// The newest version this build reads. Version 1 is the one-file index ([`ONE_FILE_VERSION`]),
/// version 2 the sharded index ([`SHARDED_VERSION`], `index::sharded`): a meta file and part
/// files in the same container, each a version 2 file.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest version this build reads.
pub const MIN_FORMAT_VERSION: u32 = 1;
/// The version of a one-file index (`build_index`; still written for small sites).
pub const ONE_FILE_VERSION: u32 = 1;
/// The version of every file of a sharded index.
pub const SHARDED_VERSION: u32 = 2;
pub const HEADER_LEN: usize = 16;
pub const ENTRY_LEN: usize = 24;
pub const TRAILER_LEN: usize = 8;
pub const ALIGN: usize = 8;

/// What a section holds. The numbers are part of the format: never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum SectionKind {
    /// JSON [`IndexMeta`].
    Meta = 1,
    /// JSON array of [`Passage`].
    Passages = 2,
    /// JSON array of the sorted BM25 terms.
    Terms = 3,
    /// u32 per term + 1: term `t`'s postings are `offsets[t]..offsets[t + 1]` (so its
    /// document frequency is the difference).
    TermOffsets = 4,
    /// The passage numbers of every term's postings, ascending, as LEB128 varints of the
    /// gaps between them (the first gap from -1... i.e. the first number itself).
    PostingDocs = 5,
    /// u8 term frequency of every posting (saturating at 255; BM25 saturates long before).
    PostingTfs = 6,
    /// u32 BM25 length of every passage.
    DocLens = 7,
    /// f32 x dim: the corpus mean the binary codes are taken against.
    DenseMean = 8,
    /// u64 x ceil(dim / 64) per passage: binary codes.
    DenseCodes = 9,
    /// i8 x dim per passage.
    DenseRows = 10,
    /// f32 per passage: the scale of its int8 row.
    DenseScales = 11,
    /// u32 per term + 1: byte ranges of each term's varints in [`SectionKind::PostingDocs`].
    PostingDocOffsets = 12,
    // Sharded index (version 2) only, below.
    /// JSON `PartHeader`: which part of which index this file is.
    Part = 13,
    /// JSON `PartTable`: the meta file's directory of part files.
    PartTable = 14,
    /// i8 x dim per coarse centroid (the meta file).
    CentroidRows = 15,
    /// f32 per coarse centroid: the scale of its int8 row.
    CentroidScales = 16,
    /// A term chunk's postings: per term, per passage `(gap, tf, length)` as LEB128 varints.
    ChunkPostings = 17,
    /// u32 per row of a vector shard: the passage it belongs to, ascending.
    RowPassages = 18,
    /// 8 bytes per part file: the start of the SHA-256 of its bytes, which names it.
    PartHashes = 19,
    // Filters and sort keys (optional, both layouts: `index::facets`), below.
    /// JSON `FacetTable`: filter keys and values, sort keys.
    Facets = 20,
    /// Each filter value's passages as varint gaps.
    FacetPostings = 21,
    /// u32 per passage per sort key: the rank of its value.
    SortRanks = 22,
    // Field weights (optional, `index::lexical`), below.
    /// The one-file index's field bytes ([`super::lexical::encode_fields`]): per posting of
    /// [`SectionKind::PostingTfs`], its occurrences in the title and heading.
    PostingFields = 23,
    /// A term chunk's field bytes, per posting of [`SectionKind::ChunkPostings`] in order.
    ChunkFields = 24,
}

impl SectionKind {
    pub const ALL: [SectionKind; 12] = [
        SectionKind::Meta,
        SectionKind::Passages,
        SectionKind::Terms,
        SectionKind::TermOffsets,
        SectionKind::PostingDocs,
        SectionKind::PostingTfs,
        SectionKind::DocLens,
        SectionKind::DenseMean,
        SectionKind::DenseCodes,
        SectionKind::DenseRows,
        SectionKind::DenseScales,
        SectionKind::PostingDocOffsets,
    ];

    /// Every kind, the sharded format's included.
    pub const EVERY: [SectionKind; 24] = [
        SectionKind::Meta,
        SectionKind::Passages,
        SectionKind::Terms,
        SectionKind::TermOffsets,
        SectionKind::PostingDocs,
        SectionKind::PostingTfs,
        SectionKind::DocLens,
        SectionKind::DenseMean,
        SectionKind::DenseCodes,
        SectionKind::DenseRows,
        SectionKind::DenseScales,
        SectionKind::PostingDocOffsets,
        SectionKind::Part,
        SectionKind::PartTable,
        SectionKind::CentroidRows,
        SectionKind::CentroidScales,
        SectionKind::ChunkPostings,
        SectionKind::RowPassages,
        SectionKind::PartHashes,
        SectionKind::Facets,
        SectionKind::FacetPostings,
        SectionKind::SortRanks,
        SectionKind::PostingFields,
        SectionKind::ChunkFields,
    ];

    pub fn from_u32(v: u32) -> Option<Self> {
        Self::EVERY.into_iter().find(|k| *k as u32 == v)
    }

    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Meta => "meta",
            SectionKind::Passages => "passages",
            SectionKind::Terms => "terms",
            SectionKind::TermOffsets => "term offsets",
            SectionKind::PostingDocs => "posting docs",
            SectionKind::PostingTfs => "posting tfs",
            SectionKind::DocLens => "doc lengths",
            SectionKind::DenseMean => "dense mean",
            SectionKind::DenseCodes => "binary codes",
            SectionKind::DenseRows => "int8 rows",
            SectionKind::DenseScales => "row scales",
            SectionKind::PostingDocOffsets => "posting offsets",
            SectionKind::Part => "part header",
            SectionKind::PartTable => "part table",
            SectionKind::CentroidRows => "centroid rows",
            SectionKind::CentroidScales => "centroid scales",
            SectionKind::ChunkPostings => "chunk postings",
            SectionKind::RowPassages => "row passages",
            SectionKind::PartHashes => "part hashes",
            SectionKind::Facets => "filter table",
            SectionKind::FacetPostings => "filter lists",
            SectionKind::SortRanks => "sort ranks",
            SectionKind::PostingFields => "posting fields",
            SectionKind::ChunkFields => "chunk fields",
        }
    }
}

/// Index-wide facts, stored as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    /// SHA-256 of the model bundle's weights that made the vectors.
    pub model_fingerprint: String,
    pub model_name: String,
    pub dim: usize,
    pub passages: usize,
    /// Average BM25 length of a passage.
    pub avg_len: f32,
    pub k1: f32,
    pub b: f32,
    /// The program that wrote the index (`cairn 0.1.0`).
    pub created_by: String,
}

/// One searchable unit: a section of a page, or part of one, or a corpus record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Passage {
    pub id: String,
    pub url: String,
    pub anchor: String,
    pub title: String,
    pub heading: String,
    pub text: String,
    /// Filter values by key (`data-cairn-filter`, a record's `filters`): what a search can
    /// narrow by. The writer stores them once per index ([`super::facets`]), not in the
    /// passage table, so a loaded passage has none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filters: BTreeMap<String, Vec<String>>,
    /// Text shown beside a result (`data-cairn-meta`: a date, an image's URL), kept with the
    /// passage.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// Sort keys (`data-cairn-sort`): numeric where they parse as numbers, else compared as
    /// text (ISO dates sort as text). Stored once per index like the filters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sort: BTreeMap<String, String>,
}

impl Passage {
    /// The text the model and BM25 see: title and heading give context to a section.
    pub fn indexed_text(&self) -> String {
        let mut s = String::new();
        for part in self.indexed_parts() {
            if !part.is_empty() {
                if !s.is_empty() {
                    s.push(' ');
                }
                s.push_str(part);
            }
        }
        s
    }

    /// The fields of [`Passage::indexed_text`] in order, title, heading and text, as the
    /// field-weighted BM25 scores them: a part the ones before it already contain (a first
    /// section's heading repeating its page's title) is left out, as an empty string.
    pub fn indexed_parts(&self) -> [&str; 3] {
        let mut out = [""; 3];
        let mut joined = String::new();
        for (i, part) in [&self.title, &self.heading, &self.text]
            .into_iter()
            .enumerate()
        {
            if !part.is_empty() && !joined.contains(part.as_str()) {
                if !joined.is_empty() {
                    joined.push(' ');
                }
                joined.push_str(part);
                out[i] = part;
            }
        }
        out
    }
}

/// Serialises sections into the container described above, as a one-file index.
pub fn write_container(sections: &[(SectionKind, Vec<u8>)]) -> Vec<u8> {
    write_container_version(ONE_FILE_VERSION, sections)
}

/// Serialises sections into the container described above, with format `version`.
pub fn write_container_version(version: u32, sections: &[(SectionKind, Vec<u8>)]) -> Vec<u8> {
    let n = sections.len();
    let mut offset = HEADER_LEN + n * ENTRY_LEN;
    offset = offset.div_ceil(ALIGN) * ALIGN;
    let mut entries = Vec::with_capacity(n);
    for (kind, data) in sections {
        entries.push((*kind, offset, data.len()));
        offset = (offset + data.len()).div_ceil(ALIGN) * ALIGN;
    }
    let mut out = Vec::with_capacity(offset + TRAILER_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(n as u32).to_le_bytes());
    for (kind, off, len) in &entries {
        out.extend_from_slice(&(*kind as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(*off as u64).to_le_bytes());
        out.extend_from_slice(&(*len as u64).to_le_bytes());
    }
    for ((_, off, _), (_, data)) in entries.iter().zip(sections) {
        out.resize(*off, 0);
        out.extend_from_slice(data);
    }
    out.resize(offset, 0);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out
}
