// Embedding lookup: adds one row of a (possibly quantized) table to every token's vector.
// Dispatched three times (word, position, token type): out = word + position + type, summed
// in the order candle sums them. Grid: (ceil(dim / 64), tokens).

struct EmbedParams {
    tokens: u32,     // T = batch * seq
    seq: u32,
    dim: u32,        // hidden size (a multiple of 32 for quantized tables)
    fmt: u32,        // FMT_*
    source: u32,     // 0: token ids, 1: positions (t % seq), 2: token-type ids
    accumulate: u32, // 0: out = row, 1: out += row
    rows: u32,       // rows in the table (indices are clamped below it)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: EmbedParams;
@group(0) @binding(1) var<storage, read> table_q: array<u32>;
@group(0) @binding(2) var<storage, read> table_s: array<u32>;
// ids (T), then token-type ids (T), then the attention mask (T).
@group(0) @binding(3) var<storage, read> tokens: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

fn table_value(row: u32, d: u32) -> f32 {
    if (p.fmt == FMT_F32) {
        return bitcast<f32>(table_q[row * p.dim + d]);
    }
    let block = row * (p.dim / 32u) + d / 32u;
    let e = d % 32u;
    let scale = f16_scale(table_s[block / 2u], block);
    if (p.fmt == FMT_Q8_0) {
        return scale * i8_of(table_q[block * 8u + e / 4u], e % 4u);
    }
    // Q4_0: element e < 16 is the low nibble of byte e, e >= 16 the high nibble of byte e - 16.
    let byte = e % 16u;
    return scale * q4_of(table_q[block * 4u + byte / 4u], byte % 4u, e >= 16u);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let d = gid.x;
    let t = gid.y;
    if (d >= p.dim || t >= p.tokens) {
        return;
    }
    var row: u32;
    if (p.source == 0u) {
        row = tokens[t];
    } else if (p.source == 1u) {
        row = t % p.seq;
    } else {
        row = tokens[p.tokens + t];
    }
    row = min(row, p.rows - 1u);
    let v = table_value(row, d);
    let i = t * p.dim + d;
    if (p.accumulate != 0u) {
        out[i] = out[i] + v;
    } else {
        out[i] = v;
    }
}
