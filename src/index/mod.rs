//! The hybrid index: passages, a BM25 keyword index and quantized vectors in one file.
//!
//! [`format`] defines the bytes; [`writer::build_index`] writes them (natively, at build
//! time) and [`Index::from_bytes`] reads them (natively and in the browser), validating
//! magic, version, checksum and every section's size before use.

#[cfg(feature = "encoder")]
pub mod cache;
pub mod dense;
pub mod facets;
pub mod format;
pub mod lexical;
pub mod manifest;
pub mod sharded;
pub mod writer;

use std::collections::BTreeMap;
use std::ops::Range;

pub use format::{IndexMeta, Passage, SectionKind, FORMAT_VERSION};
pub use writer::build_index;

use crate::{kernels, Error, Result};
use format::{ALIGN, ENTRY_LEN, HEADER_LEN, MAGIC, MIN_FORMAT_VERSION, TRAILER_LEN};

/// The file's bytes, kept 8-byte aligned so numeric sections can be viewed in place.
pub(crate) enum Storage {
    /// The caller's buffer, already aligned: used as is (no copy).
    Bytes(Vec<u8>),
    /// A copy into aligned words, for a buffer that happened to be misaligned.
    Words(Vec<u64>, usize),
}

impl Storage {
    /// Keeps `bytes` as they are when aligned, or copies them into aligned words.
    pub(crate) fn aligned(bytes: Vec<u8>) -> Self {
        if (bytes.as_ptr() as usize).is_multiple_of(ALIGN) {
            Storage::Bytes(bytes)
        } else {
            let len = bytes.len();
            let mut words = vec![0u64; len.div_ceil(8)];
            bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..len].copy_from_slice(&bytes);
            Storage::Words(words, len)
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Storage::Bytes(b) => b,
            Storage::Words(w, len) => &bytemuck::cast_slice(w)[..*len],
        }
    }
}

/// A loaded index.
pub struct Index {
    storage: Storage,
    meta: IndexMeta,
    passages: Vec<Passage>,
    terms: Vec<String>,
    sections: BTreeMap<SectionKind, Range<usize>>,
    /// The vectors packed for the scan kernels, when the index is small enough to be scanned
    /// exactly ([`dense::EXACT_SCAN_LIMIT`]).
    packed: Option<kernels::PackedMatrix>,
    /// Filters and sort keys (empty for an index without them).
    facets: facets::Facets,
    /// Each posting's field byte ([`lexical::LexicalData::fields`]), decoded at load; empty
    /// for an index written before field weights.
    fields: Vec<u8>,
}

pub(crate) fn corrupt(msg: impl Into<String>) -> Error {
    Error::CorruptIndex(msg.into())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// A container's version and sections, checked: magic, version range, checksum, trailer, and
/// every section inside the file and aligned. `what` names the file in errors.
pub(crate) struct Container {
    pub version: u32,
    pub sections: BTreeMap<SectionKind, Range<usize>>,
}

pub(crate) fn read_container(bytes: &[u8]) -> Result<Container> {
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(Error::NotAnIndex(format!(
            "the file does not start with {:?} ({} bytes); is this the model bundle or an error page?",
            String::from_utf8_lossy(MAGIC),
            bytes.len()
        )));
    }
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(corrupt(format!("only {} bytes", bytes.len())));
    }
    let version = u32_at(bytes, 8);
    if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(Error::UnsupportedIndexVersion {
            found: version,
            min: MIN_FORMAT_VERSION,
            max: FORMAT_VERSION,
        });
    }
    let body = bytes.len() - TRAILER_LEN;
    let reserved = u32_at(bytes, body + 4);
    if reserved != 0 {
        return Err(corrupt(format!(
            "the trailer's reserved word is {reserved:08x}, not 0: the file was altered"
        )));
    }
    let recorded = u32_at(bytes, body);
    let actual = crate::digest::crc32_in_chunks(&bytes[..body]);
    if recorded != actual {
        return Err(corrupt(format!(
            "checksum mismatch (recorded {recorded:08x}, computed {actual:08x}): the file was cut short or altered"
        )));
    }
    let n = u32_at(bytes, 12) as usize;
    if n > 64 || HEADER_LEN + n * ENTRY_LEN > body {
        return Err(corrupt(format!("implausible section count {n}")));
    }
    let mut sections = BTreeMap::new();
    for i in 0..n {
        let at = HEADER_LEN + i * ENTRY_LEN;
        let kind = u32_at(bytes, at);
        if u32_at(bytes, at + 4) != 0 {
            return Err(corrupt(format!("section {i}'s reserved word is not 0")));
        }
        let off = u64_at(bytes, at + 8);
        let len = u64_at(bytes, at + 16);
        let end = off.checked_add(len).filter(|&e| e <= body as u64);
        let (Some(end), true) = (end, (off as usize).is_multiple_of(ALIGN)) else {
            return Err(corrupt(format!("section {i} lies outside the file")));
        };
        // Unknown kinds are skipped: a later minor version may add sections.
        if let Some(kind) = SectionKind::from_u32(kind) {
            sections.insert(kind, off as usize..end as usize);
        }
    }
    Ok(Container { version, sections })
}

impl Index {
    /// Reads an index file. Takes the buffer by value and views its numeric sections in place.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let Container { version, sections } = read_container(&bytes)?;
        if version != format::ONE_FILE_VERSION {
            return Err(Error::NotAnIndex(format!(
                "this is a file of a sharded index (format version {version}), not a one-file \
                 index (version {}): load it through its folder's manifest",
                format::ONE_FILE_VERSION
            )));
        }
        for kind in SectionKind::ALL {
            if !sections.contains_key(&kind) {
                return Err(corrupt(format!("the {} section is missing", kind.name())));
            }
        }
        let storage = Storage::aligned(bytes);
        let b = storage.bytes();
        let json = |kind: SectionKind| &b[sections[&kind].clone()];
        let meta: IndexMeta = serde_json::from_slice(json(SectionKind::Meta))
            .map_err(|e| corrupt(format!("metadata: {e}")))?;
        let passages: Vec<Passage> = serde_json::from_slice(json(SectionKind::Passages))
            .map_err(|e| corrupt(format!("passage table: {e}")))?;
        let terms: Vec<String> = serde_json::from_slice(json(SectionKind::Terms))
            .map_err(|e| corrupt(format!("term list: {e}")))?;
        let facets = facets::Facets::from_sections(passages.len(), b, &sections)?;
        let fields = match sections.get(&SectionKind::PostingFields) {
            None => Vec::new(),
            Some(range) => {
                // One byte per posting: as many as the tfs section holds.
                let postings = sections[&SectionKind::PostingTfs].len();
                lexical::decode_fields(&b[range.clone()], postings)
                    .ok_or_else(|| corrupt("the posting fields are malformed"))?
            }
        };
        let mut index = Self {
            fields,
            facets,
            meta,
            passages,
            terms,
            sections,
            storage,
            packed: None,
        };
        index.validate()?;
        if (1..=dense::EXACT_SCAN_LIMIT).contains(&index.len()) {
            let d = index.dense();
            let packed = dense::pack(d.rows, d.scales, d.dim)?;
            index.packed = Some(packed);
        }
        Ok(index)
    }

    fn slice<T: bytemuck::Pod>(&self, kind: SectionKind) -> Result<&[T]> {
        let range = self.sections[&kind].clone();
        bytemuck::try_cast_slice(&self.storage.bytes()[range])
            .map_err(|e| corrupt(format!("the {} section: {e}", kind.name())))
    }

    /// Checks every size relation the searcher relies on, so a search can index freely.
    fn validate(&self) -> Result<()> {
        let n = self.passages.len();
        let m = &self.meta;
        let dim = m.dim;
        if m.passages != n {
            return Err(corrupt(format!(
                "metadata says {} passages, table has {n}",
                m.passages
            )));
        }
        if dim == 0 && n > 0 || dim > 8192 {
            return Err(corrupt(format!("vector length {dim}")));
        }
        let check = |kind: SectionKind, got: usize, want: usize| -> Result<()> {
            if got != want {
                return Err(corrupt(format!(
                    "the {} section has {got} entries, expected {want}",
                    kind.name()
                )));
            }
            Ok(())
        };
        let offsets = self.slice::<u32>(SectionKind::TermOffsets)?;
        let doc_offsets = self.slice::<u32>(SectionKind::PostingDocOffsets)?;
        let docs = self.slice::<u8>(SectionKind::PostingDocs)?;
        let tfs = self.slice::<u8>(SectionKind::PostingTfs)?;
        check(
            SectionKind::TermOffsets,
            offsets.len(),
            self.terms.len() + 1,
        )?;
        check(
            SectionKind::PostingDocOffsets,
            doc_offsets.len(),
            self.terms.len() + 1,
        )?;
        check(
            SectionKind::DocLens,
            self.slice::<u32>(SectionKind::DocLens)?.len(),
            n,
        )?;
        check(
            SectionKind::DenseMean,
            self.slice::<f32>(SectionKind::DenseMean)?.len(),
            dim,
        )?;
        // Checked: with a 32-bit `usize` (wasm32) a forged passage count times the vector
        // length could wrap to the size of a small section.
        let times = |a: usize, b: usize, what: &str| {
            a.checked_mul(b)
                .ok_or_else(|| corrupt(format!("{what}: {a} x {b} overflows")))
        };
        check(
            SectionKind::DenseCodes,
            self.slice::<u64>(SectionKind::DenseCodes)?.len(),
            times(n, dense::words_per_code(dim), "binary codes")?,
        )?;
        check(
            SectionKind::DenseRows,
            self.slice::<i8>(SectionKind::DenseRows)?.len(),
            times(n, dim, "vector rows")?,
        )?;
        check(
            SectionKind::DenseScales,
            self.slice::<f32>(SectionKind::DenseScales)?.len(),
            n,
        )?;
        let monotonic_to = |o: &[u32], end: usize| {
            o.first() == Some(&0)
                && o.windows(2).all(|w| w[0] <= w[1])
                && o.last().map(|&l| l as usize) == Some(end)
        };
        if !monotonic_to(offsets, tfs.len()) || !monotonic_to(doc_offsets, docs.len()) {
            return Err(corrupt("term offsets are not monotonic"));
        }
        // Decode every posting list once, so searches can trust them.
        for t in 0..self.terms.len() {
            let bytes = &docs[doc_offsets[t] as usize..doc_offsets[t + 1] as usize];
            let mut past_end = false;
            let count = lexical::for_each_doc(bytes, |_, d| past_end |= d as usize >= n);
            if count != Some((offsets[t + 1] - offsets[t]) as usize) || past_end {
                return Err(corrupt(format!(
                    "the postings of term {:?} are malformed",
                    self.terms[t]
                )));
            }
        }
        if self.terms.windows(2).any(|w| w[0] >= w[1]) {
            return Err(corrupt("the term list is not sorted"));
        }
        if !m.avg_len.is_finite() {
            return Err(corrupt("the average passage length is not finite"));
        }
        lexical::Ranking::of(m)
            .check()
            .map_err(|e| corrupt(format!("its BM25 parameters: {e}")))?;
        Ok(())
    }

    pub fn meta(&self) -> &IndexMeta {
        &self.meta
    }

    /// The index's filters and sort keys.
    pub fn facets(&self) -> &facets::Facets {
        &self.facets
    }

    pub fn passages(&self) -> &[Passage] {
        &self.passages
    }

    pub fn len(&self) -> usize {
        self.passages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }

    /// Total bytes of the file.
    pub fn byte_len(&self) -> usize {
        self.storage.bytes().len()
    }

    /// Bytes of each section, for build summaries and benchmarks.
    pub fn section_sizes(&self) -> Vec<(&'static str, usize)> {
        self.sections
            .iter()
            .map(|(k, r)| (k.name(), r.len()))
            .collect()
    }

    /// Refuses a model other than the one the index was built with.
    pub fn check_model(&self, fingerprint: &str) -> Result<()> {
        if fingerprint != self.meta.model_fingerprint {
            return Err(Error::ModelMismatch {
                index: short(&self.meta.model_fingerprint),
                model: short(fingerprint),
            });
        }
        Ok(())
    }

    pub fn lexical(&self) -> lexical::LexicalView<'_> {
        // Sizes were validated at load; a failed cast cannot happen here, but stays an empty
        // view rather than a panic.
        lexical::LexicalView {
            terms: &self.terms,
            offsets: self.slice(SectionKind::TermOffsets).unwrap_or(&[0]),
            docs: self.slice(SectionKind::PostingDocs).unwrap_or(&[]),
            doc_offsets: self.slice(SectionKind::PostingDocOffsets).unwrap_or(&[0]),
            tfs: self.slice(SectionKind::PostingTfs).unwrap_or(&[]),
            fields: &self.fields,
            doc_lens: self.slice(SectionKind::DocLens).unwrap_or(&[]),
            avg_len: self.meta.avg_len,
        }
    }

    pub fn dense(&self) -> dense::DenseView<'_> {
        dense::DenseView {
            dim: self.meta.dim,
            mean: self.slice(SectionKind::DenseMean).unwrap_or(&[]),
            codes: self.slice(SectionKind::DenseCodes).unwrap_or(&[]),
            rows: self.slice(SectionKind::DenseRows).unwrap_or(&[]),
            scales: self.slice(SectionKind::DenseScales).unwrap_or(&[]),
            packed: self.packed.as_ref(),
        }
    }
}

fn short(h: &str) -> String {
    h.chars().take(16).collect()
}
