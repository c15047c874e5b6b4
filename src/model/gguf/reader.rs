//! Reading a bundle: the GGUF header checked before candle parses it, the metadata and
//! tokenizer read back, every tensor checked against the configuration's shapes, and the
//! weights' SHA-256 checked against the fingerprint the bundle carries.

use std::collections::HashMap;
use std::io::Cursor;

use crate::digest::{hex, sha256_in_chunks};
use candle_core::quantized::gguf_file;
use candle_core::quantized::QTensor;
use candle_core::Device;

use super::layout::{
    config_from_metadata, expected_tensors, flat_table_rows, keys, meta_err, meta_string,
    meta_string_or, names, BUNDLE_FORMAT_VERSION, MIN_BUNDLE_FORMAT_VERSION,
};
use super::vocab::join_vocab;
use crate::model::config::ModelConfig;
use crate::{Error, Result};

/// A parsed and validated bundle: configuration, tokenizer and weights.
pub struct Bundle {
    pub config: ModelConfig,
    pub tokenizer_json: String,
    /// Name of the quantization the bundle was converted with (`q8_0`, ...).
    pub quant: String,
    /// SHA-256 of the tensor data, hex: identifies the weights.
    pub fingerprint: String,
    /// The bundle's `cairn.format_version`.
    pub format_version: u32,
    pub tensors: HashMap<String, QTensor>,
}

impl Bundle {
    /// A copy, weights included, for a second consumer of one read: the CPU encoder takes a
    /// bundle's tensors, and a GPU upload needs them too. Copying costs a memcpy where
    /// reading the bytes again would also parse them and hash every weight.
    pub fn duplicate(&self) -> Result<Bundle> {
        let tensors = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let storage = candle_core::quantized::QStorage::from_data(
                    std::borrow::Cow::Owned(t.data()?.into_owned()),
                    &Device::Cpu,
                    t.dtype(),
                )?;
                Ok((name.clone(), QTensor::new(storage, t.shape().clone())?))
            })
            .collect::<Result<HashMap<_, _>>>()?;
        Ok(Bundle {
            config: self.config.clone(),
            tokenizer_json: self.tokenizer_json.clone(),
            quant: self.quant.clone(),
            fingerprint: self.fingerprint.clone(),
            format_version: self.format_version,
            tensors,
        })
    }
}

/// The GGUF magic, little-endian "GGUF".
const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// Parses and validates a bundle. Every problem is a typed [`Error`]; nothing here panics on
/// hostile input: shapes are checked against the configuration before any tensor is read.
pub fn read_bundle(bytes: &[u8]) -> Result<Bundle> {
    if bytes.len() < 8 {
        return Err(Error::NotABundle(format!(
            "only {} bytes; a GGUF file starts with an 8-byte header",
            bytes.len()
        )));
    }
    if &bytes[..4] != GGUF_MAGIC {
        return Err(Error::NotABundle(format!(
            "wrong magic {:02x?} (expected \"GGUF\"); is this the index file or a download error page?",
            &bytes[..4]
        )));
    }
    check_alignment(bytes)?;
    let mut cursor = Cursor::new(bytes);
    let content = gguf_file::Content::read(&mut cursor)
        .map_err(|e| Error::CorruptBundle(format!("GGUF header: {e}")))?;
    let md = &content.metadata;

    let arch = meta_string(md, keys::ARCHITECTURE)?;
    if arch != "bert" {
        return Err(Error::UnsupportedBundle(format!(
            "architecture `{arch}`; Cairn runs BERT-family encoders (`bert`)"
        )));
    }
    let version =
        match md.get(keys::FORMAT_VERSION) {
            None => return Err(Error::UnsupportedBundle(
                "no `cairn.format_version`: this GGUF was not written by `cairn model convert` \
                 (it lacks the tokenizer and pooling settings Cairn needs)"
                    .into(),
            )),
            Some(v) => v.to_u32().map_err(|e| meta_err(keys::FORMAT_VERSION, e))?,
        };
    if !(MIN_BUNDLE_FORMAT_VERSION..=BUNDLE_FORMAT_VERSION).contains(&version) {
        return Err(Error::UnsupportedBundle(format!(
            "bundle format version {version}; this build of Cairn reads versions \
             {MIN_BUNDLE_FORMAT_VERSION} to {BUNDLE_FORMAT_VERSION}"
        )));
    }
    let config = config_from_metadata(md)?;
    let tokenizer_json = match (md.get(keys::TOKENIZER_HF_JSON), version) {
        (None, 2..) if md.contains_key(keys::TOKENIZER_VOCAB) => join_vocab(
            &meta_string(md, keys::TOKENIZER_JSON_NO_VOCAB)?,
            &meta_string(md, keys::TOKENIZER_VOCAB)?,
        )?,
        _ => meta_string(md, keys::TOKENIZER_HF_JSON)?,
    };
    let quant = meta_string_or(md, keys::QUANT, "unknown")?;
    let fingerprint = meta_string(md, keys::WEIGHTS_SHA256)?;

    let data_start = usize::try_from(content.tensor_data_offset)
        .ok()
        .filter(|&o| o <= bytes.len())
        .ok_or_else(|| {
            Error::CorruptBundle("tensor data starts past the end of the file".into())
        })?;
    let actual = hex(&sha256_in_chunks(&bytes[data_start..]));
    if actual != fingerprint {
        return Err(Error::CorruptBundle(format!(
            "weights checksum mismatch (recorded {}, computed {}): the file was cut short or altered",
            short(&fingerprint),
            short(&actual)
        )));
    }

    let mut tensors = HashMap::new();
    for (name, shape) in expected_tensors(&config) {
        let info = content
            .tensor_infos
            .get(&name)
            .ok_or_else(|| Error::MissingTensor(name.clone()))?;
        let flat = name == names::TOKEN_EMBD
            && version >= 2
            && flat_table_rows(config.vocab_size, config.hidden_size, info.ggml_dtype)
                .is_some_and(|rows| info.shape.dims() == [rows, info.ggml_dtype.block_size()]);
        if info.shape.dims() != shape.as_slice() && !flat {
            return Err(Error::WrongShape {
                name,
                expected: shape,
                found: info.shape.dims().to_vec(),
            });
        }
        let row = *info.shape.dims().last().unwrap_or(&1);
        if !row.is_multiple_of(info.ggml_dtype.block_size()) {
            return Err(Error::CorruptBundle(format!(
                "tensor `{name}` rows of {row} do not fit {:?} blocks",
                info.ggml_dtype
            )));
        }
        // The tensor's bytes, in checked 64-bit arithmetic, must lie inside the file before
        // candle reads it: candle multiplies the shape in `usize`, which can wrap on wasm32
        // and leave a tensor with less storage than its shape.
        let bytes_needed = info
            .shape
            .dims()
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .map(|n| n / info.ggml_dtype.block_size() as u64)
            .and_then(|blocks| blocks.checked_mul(info.ggml_dtype.type_size() as u64));
        let end = bytes_needed
            .and_then(|b| b.checked_add(info.offset))
            .and_then(|b| b.checked_add(content.tensor_data_offset));
        if end.is_none_or(|e| e > bytes.len() as u64) {
            return Err(Error::CorruptBundle(format!(
                "tensor `{name}` ({:?} {:?}) runs past the end of the file",
                info.ggml_dtype,
                info.shape.dims()
            )));
        }
        let t = info
            .read(&mut cursor, content.tensor_data_offset, &Device::Cpu)
            .map_err(|e| Error::CorruptBundle(format!("tensor `{name}`: {e}")))?;
        tensors.insert(name, t);
    }
    Ok(Bundle {
        config,
        tokenizer_json,
        quant,
        fingerprint,
        format_version: version,
        tensors,
    })
}

/// Walks the GGUF header's metadata to check `general.alignment` before candle's reader sees
/// it: candle divides by it, so a forged 0 would panic (a trapped module in the browser).
/// Everything else in the header candle bounds-checks itself.
fn check_alignment(bytes: &[u8]) -> Result<()> {
    struct Reader<'a> {
        b: &'a [u8],
        at: usize,
        wide: bool,
    }
    let bad = |what: &str| Error::CorruptBundle(format!("GGUF header: {what}"));
    impl Reader<'_> {
        fn take(&mut self, n: u64) -> Option<&[u8]> {
            let n = usize::try_from(n).ok()?;
            let end = self.at.checked_add(n)?;
            let out = self.b.get(self.at..end)?;
            self.at = end;
            Some(out)
        }
        fn u32(&mut self) -> Option<u32> {
            Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
        }
        fn u64(&mut self) -> Option<u64> {
            Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
        }
        /// A count or string length: u32 in GGUF v1, u64 later.
        fn len(&mut self) -> Option<u64> {
            if self.wide {
                self.u64()
            } else {
                self.u32().map(u64::from)
            }
        }
        fn string(&mut self) -> Option<&[u8]> {
            let n = self.len()?;
            self.take(n)
        }
        /// Skips a value of `ty`, returning it as an integer when it is one.
        fn value(&mut self, ty: u32, depth: u32) -> Option<Option<u64>> {
            let fixed = |r: &mut Self, n: u64| {
                r.take(n).map(|b| {
                    let mut a = [0u8; 8];
                    a[..b.len()].copy_from_slice(b);
                    Some(u64::from_le_bytes(a))
                })
            };
            match ty {
                0 | 1 | 7 => fixed(self, 1),
                2 | 3 => fixed(self, 2),
                4 | 5 => fixed(self, 4),
                6 => self.take(4).map(|_| None),
                10 | 11 => fixed(self, 8),
                12 => self.take(8).map(|_| None),
                8 => self.string().map(|_| None),
                9 if depth < 4 => {
                    let elem = self.u32()?;
                    let n = self.len()?;
                    if n > (self.b.len() - self.at) as u64 {
                        return None;
                    }
                    for _ in 0..n {
                        self.value(elem, depth + 1)?;
                    }
                    Some(None)
                }
                _ => None,
            }
        }
    }
    let version = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let mut r = Reader {
        b: bytes,
        at: 8,
        wide: version >= 2,
    };
    let _tensors = r.len().ok_or_else(|| bad("truncated"))?;
    let kvs = r.len().ok_or_else(|| bad("truncated"))?;
    for _ in 0..kvs {
        let key = r
            .string()
            .ok_or_else(|| bad("truncated metadata"))?
            .to_vec();
        let ty = r.u32().ok_or_else(|| bad("truncated metadata"))?;
        let v = r.value(ty, 0).ok_or_else(|| bad("malformed metadata"))?;
        if key == b"general.alignment" {
            match v {
                Some(a) if a.is_power_of_two() && a <= 1 << 16 => {}
                _ => {
                    return Err(bad(
                        "`general.alignment` must be a power of two up to 65536",
                    ))
                }
            }
        }
    }
    Ok(())
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}
