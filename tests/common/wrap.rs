//! A bundle forged to wrap a 32-bit `usize`: the position table declared with
//! `2^32 / hidden + 1` rows, in the metadata and in the tensor's header, over the original
//! bytes (the weights' checksum still holds). Its element count is `2^32 + hidden`, which
//! wraps to `hidden` on wasm32: without checked sizes candle reads one row's bytes for a
//! table it believes holds 134 million, and the embedding lookup traps the module.
//! Plain byte patching, no file access, so the wasm tests share it.

/// Rows that make the position table of a hidden-32 bundle wrap on wasm32.
pub const WRAP_ROWS: u64 = (1u64 << 32) / 32 + 1;

/// Where `key` (a GGUF string: u64 length, then bytes) ends in `bytes`.
fn after_string(bytes: &[u8], key: &str) -> usize {
    let mut pat = (key.len() as u64).to_le_bytes().to_vec();
    pat.extend_from_slice(key.as_bytes());
    let at = bytes
        .windows(pat.len())
        .position(|w| w == pat.as_slice())
        .unwrap_or_else(|| panic!("no {key:?} in the bundle"));
    at + pat.len()
}

/// `bundle` (hidden size 32, a `u32` `bert.context_length`, a 2-D position table) with the
/// position table declared `rows` long.
pub fn with_position_rows(bundle: &[u8], rows: u64) -> Vec<u8> {
    let mut b = bundle.to_vec();
    // Metadata: value type (u32 = 4), then the value.
    let at = after_string(&b, "bert.context_length");
    assert_eq!(
        b[at..at + 4],
        4u32.to_le_bytes(),
        "context length is not a u32"
    );
    b[at + 4..at + 8].copy_from_slice(&(rows as u32).to_le_bytes());
    // Tensor info: dimension count (u32), then dimensions (u64, innermost first).
    let at = after_string(&b, "position_embd.weight");
    assert_eq!(
        b[at..at + 4],
        2u32.to_le_bytes(),
        "position table is not 2-D"
    );
    assert_eq!(
        b[at + 4..at + 12],
        32u64.to_le_bytes(),
        "hidden size is not 32"
    );
    b[at + 12..at + 20].copy_from_slice(&rows.to_le_bytes());
    b
}
