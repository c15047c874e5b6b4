//! The embedding cache: vectors of passages embedded by an earlier build, so a rebuild after
//! editing one page embeds only that page's passages (`cairn index`, native).
//!
//! A vector is found by the SHA-256 of the text's role and the text itself, in a file made
//! for one model (its fingerprint) and one embedding backend. Because the int8 kernels give
//! a text the same vector whatever batch it is embedded in, a cached vector is the vector a
//! clean build would compute, and a rebuild writes the same index bytes.
//!
//! Layout (little-endian), defined here once for writer and reader:
//!
//! ```text
//! magic "CAIRNEMB" | version u32 | dim u32 | count u64 | fingerprint: len u32 + UTF-8
//! | backend: len u32 + UTF-8 | count x (key [u8; 32], dim x f32), keys ascending | CRC-32 u32
//! ```

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::{Error, Result, Role};

/// The file's first eight bytes.
pub const MAGIC: &[u8; 8] = b"CAIRNEMB";
/// The layout version this build reads and writes.
pub const VERSION: u32 = 1;

/// Vectors by text, for one model and backend.
#[derive(Debug, Clone)]
pub struct EmbeddingCache {
    fingerprint: String,
    backend: String,
    dim: usize,
    entries: BTreeMap<[u8; 32], Vec<f32>>,
}

/// What a cache file holds, when it cannot be used for this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// Made for another model (its fingerprint).
    Model(String),
    /// Made by another embedding backend (`cpu`, or a GPU's name).
    Backend(String),
}

impl EmbeddingCache {
    /// An empty cache for the model with `fingerprint` on `backend`.
    pub fn new(fingerprint: &str, backend: &str, dim: usize) -> Self {
        Self {
            fingerprint: fingerprint.to_string(),
            backend: backend.to_string(),
            dim,
            entries: BTreeMap::new(),
        }
    }

    /// The key of `text` embedded as `role`.
    pub fn key(role: Role, text: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(match role {
            Role::Query => b"q\0",
            Role::Document => b"d\0",
        });
        h.update(text.as_bytes());
        h.finalize().into()
    }

    pub fn get(&self, role: Role, text: &str) -> Option<&[f32]> {
        self.entries.get(&Self::key(role, text)).map(Vec::as_slice)
    }

    /// Stores `vector` for `text`; a vector of another length is refused.
    pub fn insert(&mut self, role: Role, text: &str, vector: Vec<f32>) -> Result<()> {
        if vector.len() != self.dim {
            return Err(Error::InvalidArgument(format!(
                "a vector of {} values in a cache of {} dimensions",
                vector.len(),
                self.dim
            )));
        }
        self.entries.insert(Self::key(role, text), vector);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keeps only the entries of these texts (a rebuild's cache holds its own passages, so
    /// the file does not grow with every edit).
    pub fn retain<'a>(&mut self, role: Role, texts: impl IntoIterator<Item = &'a str>) {
        let keep: std::collections::HashSet<[u8; 32]> =
            texts.into_iter().map(|t| Self::key(role, t)).collect();
        self.entries.retain(|k, _| keep.contains(k));
    }

    /// The file's bytes (the same for the same entries).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40 + self.entries.len() * (32 + 4 * self.dim));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for s in [&self.fingerprint, &self.backend] {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        for (k, v) in &self.entries {
            out.extend_from_slice(k);
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads a cache file, checking magic, version, checksum and every size. `Ok(Err(_))`
    /// is a sound file made for another model or backend (a rebuild starts afresh).
    pub fn from_bytes(
        bytes: &[u8],
        fingerprint: &str,
        backend: &str,
    ) -> Result<std::result::Result<Self, Mismatch>> {
        let bad = |why: &str| Error::CorruptIndex(format!("embedding cache: {why}"));
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(bad("not an embedding cache (wrong magic)"));
        }
        if bytes.len() < 28 {
            return Err(bad("cut short"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(bad("checksum mismatch"));
        }
        let mut r = Reader { bytes: body, at: 8 };
        let version = r.u32()?;
        if version != VERSION {
            return Err(bad(&format!(
                "version {version}, this build reads version {VERSION}"
            )));
        }
        let dim = r.u32()? as usize;
        let count = usize::try_from(r.u64()?).map_err(|_| bad("entry count too large"))?;
        let file_fingerprint = r.string()?;
        let file_backend = r.string()?;
        let entry = dim
            .checked_mul(4)
            .and_then(|d| d.checked_add(32))
            .ok_or_else(|| bad("dimension too large"))?;
        let need = count
            .checked_mul(entry)
            .ok_or_else(|| bad("entry count too large"))?;
        if body.len() - r.at != need {
            return Err(bad(&format!(
                "{count} entries of {dim} dimensions need {need} bytes, found {}",
                body.len() - r.at
            )));
        }
        if file_fingerprint != fingerprint {
            return Ok(Err(Mismatch::Model(file_fingerprint)));
        }
        if file_backend != backend {
            return Ok(Err(Mismatch::Backend(file_backend)));
        }
        let mut entries = BTreeMap::new();
        for chunk in body[r.at..].chunks_exact(entry) {
            let mut key = [0u8; 32];
            key.copy_from_slice(&chunk[..32]);
            let v = chunk[32..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            entries.insert(key, v);
        }
        if entries.len() != count {
            return Err(bad("a key appears twice"));
        }
        Ok(Ok(Self {
            fingerprint: fingerprint.to_string(),
            backend: backend.to_string(),
            dim,
            entries,
        }))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| Error::CorruptIndex("embedding cache: cut short".into()))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| Error::CorruptIndex("embedding cache: a name is not UTF-8".into()))
    }
}
