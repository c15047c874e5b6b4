// Pooling and L2 normalisation, as `model::pool::pool` does them: masked mean, CLS (the first
// token) or masked max over each sentence's tokens, then division by the Euclidean norm
// (clamped at 1e-12). One workgroup per sentence. Grid: (batch).

struct PoolParams {
    batch: u32,
    seq: u32,
    dim: u32,
    mode: u32, // 0: mean, 1: CLS, 2: max
}

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> hidden: array<f32>;
// ids (T), token-type ids (T), attention mask (T); only the mask is read here.
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u;
var<workgroup> red: array<f32, 256>;

fn mask_at(t: u32) -> f32 {
    return f32(tokens[2u * p.batch * p.seq + t]);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let b = wg.x;
    if (b >= p.batch) {
        return;
    }
    let t0 = b * p.seq;
    var count = 0.0;
    for (var j = 0u; j < p.seq; j++) {
        count += mask_at(t0 + j);
    }
    count = max(count, 1e-9);
    var ss = 0.0;
    for (var d = li; d < p.dim; d += WG) {
        var v = 0.0;
        if (p.mode == 1u) {
            v = hidden[t0 * p.dim + d];
        } else if (p.mode == 2u) {
            v = -3.0e38;
            for (var j = 0u; j < p.seq; j++) {
                let m = mask_at(t0 + j);
                v = max(v, hidden[(t0 + j) * p.dim + d] + (1.0 - m) * -1e9);
            }
        } else {
            for (var j = 0u; j < p.seq; j++) {
                v += hidden[(t0 + j) * p.dim + d] * mask_at(t0 + j);
            }
            v = v / count;
        }
        out[b * p.dim + d] = v;
        ss += v * v;
    }
    red[li] = ss;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w / 2u) {
        if (li < w) {
            red[li] = red[li] + red[li + w];
        }
        workgroupBarrier();
    }
    let norm = max(sqrt(red[0]), 1e-12);
    for (var d = li; d < p.dim; d += WG) {
        out[b * p.dim + d] = out[b * p.dim + d] / norm;
    }
}
