//! Builds an index file from passages and their vectors. Deterministic: the same passages,
//! vectors and model give the same bytes.

use super::format::{write_container, IndexMeta, Passage, SectionKind};
use super::lexical::{self, Analyzer};
use super::{dense, facets};
use crate::{Error, Result};

pub(crate) fn json<T: serde::Serialize>(v: &T, what: &str) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|source| Error::Json {
        what: what.into(),
        source,
    })
}

pub(crate) fn raw<T: bytemuck::Pod>(v: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

/// The index-wide facts and the keyword index of `passages`, after checking the inputs: the
/// start of every index build, one-file or sharded.
pub(crate) fn prepare(
    passages: &[Passage],
    vectors: &[Vec<f32>],
    model_fingerprint: &str,
    model_name: &str,
) -> Result<(IndexMeta, lexical::LexicalData)> {
    if passages.len() != vectors.len() {
        return Err(Error::InvalidArgument(format!(
            "{} passages but {} vectors",
            passages.len(),
            vectors.len()
        )));
    }
    if passages.len() > u32::MAX as usize / 2 {
        return Err(Error::InvalidArgument(
            "too many passages for one index".into(),
        ));
    }
    let dim = vectors.first().map(Vec::len).unwrap_or(0);
    if vectors.iter().any(|v| v.len() != dim) {
        return Err(Error::InvalidArgument("vectors differ in length".into()));
    }
    let parts: Vec<[&str; 3]> = passages.iter().map(Passage::indexed_parts).collect();
    let lex = lexical::build(Analyzer::shared(), &parts);
    let total: u64 = lex.doc_lens.iter().map(|&l| l as u64).sum();
    let meta = IndexMeta {
        model_fingerprint: model_fingerprint.to_string(),
        model_name: model_name.to_string(),
        dim,
        passages: passages.len(),
        avg_len: if passages.is_empty() {
            0.0
        } else {
            total as f32 / passages.len() as f32
        },
        k1: lexical::DEFAULT_K1,
        b: lexical::DEFAULT_B,
        created_by: format!("cairn {}", env!("CARGO_PKG_VERSION")),
    };
    Ok((meta, lex))
}

/// Writes the one-file index for `passages` with `vectors` (one unit vector per passage, made
/// by the model with `model_fingerprint`).
pub fn build_index(
    passages: &[Passage],
    vectors: &[Vec<f32>],
    model_fingerprint: &str,
    model_name: &str,
) -> Result<Vec<u8>> {
    let (meta, lex) = prepare(passages, vectors, model_fingerprint, model_name)?;
    let d = dense::build(vectors, meta.dim);
    let mut sections = vec![
        (SectionKind::Meta, json(&meta, "index metadata")?),
        (
            SectionKind::Passages,
            json(&facets::for_table(passages), "passages")?,
        ),
        (SectionKind::Terms, json(&lex.terms, "terms")?),
        (SectionKind::TermOffsets, raw(&lex.offsets)),
        (SectionKind::PostingDocs, lex.docs),
        (SectionKind::PostingDocOffsets, raw(&lex.doc_offsets)),
        (SectionKind::PostingTfs, lex.tfs),
        (
            SectionKind::PostingFields,
            lexical::encode_fields(&lex.fields),
        ),
        (SectionKind::DocLens, raw(&lex.doc_lens)),
        (SectionKind::DenseMean, raw(&d.mean)),
        (SectionKind::DenseCodes, raw(&d.codes)),
        (SectionKind::DenseRows, raw(&d.rows)),
        (SectionKind::DenseScales, raw(&d.scales)),
    ];
    sections.extend(facets::build(passages)?);
    Ok(write_container(&sections))
}
