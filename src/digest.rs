//! Checksums and version numbers that every build reads, the keyword engine (no encoder)
//! included: chunked SHA-256 and CRC-32, hex digits, and the model bundle's format versions
//! (the manifest reader checks them before any bundle is fetched).

use sha2::{Digest, Sha256};

/// The newest model bundle format version this build writes and reads. Version 2 added the
/// flat word-embedding table and the tokenizer's vocabulary as lines (`model::gguf`).
pub const BUNDLE_FORMAT_VERSION: u32 = 2;
/// The oldest bundle format version this build reads.
pub const MIN_BUNDLE_FORMAT_VERSION: u32 = 1;

/// Bytes per call into a checksum's block function: [`sha256_in_chunks`].
pub(crate) const CHECKSUM_CHUNK: usize = 1 << 16;

/// SHA-256 of `bytes`, fed 64 KB at a time. The same digest as one call, but in the browser
/// a single call over a whole bundle runs from start to end in the engine's baseline code
/// (V8 moves a wasm function to optimised code only between calls): 1.8 s for 24 MB in
/// Liftoff against 0.2 s once optimised. Many short calls let it move after the first few.
#[cfg_attr(not(feature = "encoder"), allow(dead_code))]
pub(crate) fn sha256_in_chunks(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for chunk in bytes.chunks(CHECKSUM_CHUNK) {
        h.update(chunk);
    }
    h.finalize().into()
}

/// CRC-32 of `bytes`, fed 64 KB at a time for the browser's sake (see [`sha256_in_chunks`]).
pub(crate) fn crc32_in_chunks(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for chunk in bytes.chunks(CHECKSUM_CHUNK) {
        h.update(chunk);
    }
    h.finalize()
}

/// Lower-case hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fed in chunks or whole, the same digest, at lengths around the chunk size.
    #[test]
    fn chunked_sha256_is_the_plain_digest() {
        for n in [
            0,
            1,
            63,
            64,
            CHECKSUM_CHUNK - 1,
            CHECKSUM_CHUNK,
            2 * CHECKSUM_CHUNK + 7,
        ] {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let whole: [u8; 32] = Sha256::digest(&bytes).into();
            assert_eq!(sha256_in_chunks(&bytes), whole, "{n} bytes");
        }
    }

    /// Fed in chunks or whole, the same CRC, at lengths around the chunk size.
    #[test]
    fn chunked_crc32_is_the_plain_crc() {
        let chunk = CHECKSUM_CHUNK;
        for n in [0, 1, chunk - 1, chunk, 3 * chunk + 5] {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 17 % 253) as u8).collect();
            assert_eq!(
                crc32_in_chunks(&bytes),
                crc32fast::hash(&bytes),
                "{n} bytes"
            );
        }
    }
}
