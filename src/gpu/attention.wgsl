// Multi-head self-attention over a fused q|k|v buffer (tokens x 3 hidden; head h owns columns
// h * head_dim .. (h + 1) * head_dim of each part). One workgroup per (query position, head,
// sentence): scores q.k / sqrt(head_dim) against every key of the sentence, softmax with
// padded keys given no weight (as candle's additive -1e9 mask does), then the weighted sum
// of the values. Grid: (seq, heads, batch). Limits: seq <= 1024, head_dim <= 256.

struct AttnParams {
    seq: u32,
    heads: u32,
    head_dim: u32,
    hidden: u32,
    scale: f32, // 1 / sqrt(head_dim)
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: AttnParams;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
// ids (T), token-type ids (T), attention mask (T); only the mask is read here.
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read_write> ctx: array<f32>;

const WG: u32 = 64u;
const MAX_SEQ: u32 = 1024u;
const MAX_HEAD_DIM: u32 = 256u;

var<workgroup> probs: array<f32, 1024>;
var<workgroup> qrow: array<f32, 256>;
var<workgroup> red: array<f32, 64>;

fn attended(t: u32, total: u32) -> bool {
    return tokens[2u * total + t] != 0u;
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = wg.x;
    let h = wg.y;
    let b = wg.z;
    let s = p.seq;
    let hd = p.head_dim;
    let hidden = p.hidden;
    let stride = 3u * hidden;
    let total = groups.z * s;
    let tq = b * s + i;

    for (var d = li; d < hd; d += WG) {
        qrow[d] = qkv[tq * stride + h * hd + d];
    }
    workgroupBarrier();

    // Scores, and their maximum.
    var mx = -3.0e38;
    for (var j = li; j < s; j += WG) {
        let tk = b * s + j;
        var sc = -3.0e38;
        if (attended(tk, total)) {
            let base = tk * stride + hidden + h * hd;
            var dot = 0.0;
            for (var d = 0u; d < hd; d++) {
                dot += qrow[d] * qkv[base + d];
            }
            sc = dot * p.scale;
        }
        probs[j] = sc;
        mx = max(mx, sc);
    }
    red[li] = mx;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w / 2u) {
        if (li < w) {
            red[li] = max(red[li], red[li + w]);
        }
        workgroupBarrier();
    }
    let m = red[0];
    workgroupBarrier();

    // exp(score - max), and the sum.
    var sum = 0.0;
    for (var j = li; j < s; j += WG) {
        var e = 0.0;
        if (attended(b * s + j, total)) {
            e = exp(probs[j] - m);
        }
        probs[j] = e;
        sum += e;
    }
    red[li] = sum;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w / 2u) {
        if (li < w) {
            red[li] = red[li] + red[li + w];
        }
        workgroupBarrier();
    }
    let total_sum = red[0];
    workgroupBarrier();
    // A sentence with no attended token at all (only possible for a hand-made batch) gets a
    // zero context rather than NaN.
    let inv = select(0.0, 1.0 / total_sum, total_sum > 0.0);

    // Weighted sum of the values. With head_dim <= 64, the workgroup splits the keys among
    // WG / head_dim groups and adds their partial sums.
    let vbase = 2u * hidden + h * hd;
    if (hd <= WG) {
        let groups_n = WG / hd;
        let g = li / hd;
        let d = li % hd;
        var acc = 0.0;
        if (g < groups_n) {
            for (var j = g; j < s; j += groups_n) {
                acc += probs[j] * qkv[(b * s + j) * stride + vbase + d];
            }
        }
        red[li] = acc;
        workgroupBarrier();
        if (li < hd) {
            var total_acc = 0.0;
            for (var gg = 0u; gg < groups_n; gg++) {
                total_acc += red[gg * hd + li];
            }
            ctx[tq * hidden + h * hd + li] = total_acc * inv;
        }
    } else {
        for (var d = li; d < hd; d += WG) {
            var acc = 0.0;
            for (var j = 0u; j < s; j++) {
                acc += probs[j] * qkv[(b * s + j) * stride + vbase + d];
            }
            ctx[tq * hidden + h * hd + d] = acc * inv;
        }
    }
}
