// y = act(x W^T + bias) for activations x (m x k, f32) and a weight matrix W (n x k) stored
// as F32, Q8_0 or Q4_0 rows, dequantized on the fly tile by tile.
//
// With `round_x`, each 32-value block of a row of x is first rounded as candle rounds
// activations for its quantized matmul (a Q8_0 block: scale amax / 127 stored as f16,
// values round(x / scale), half away from zero), so the result follows the CPU path's.
//
// Each workgroup computes a 32 x 64 tile of y; each of its 64 invocations a 4 x 8 block.
// Along k it steps one 32-wide block at a time: the x tile and the dequantized W tile go to
// workgroup memory (12 KiB). Grid: (ceil(n / 64), ceil(m / 32)).

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    fmt: u32, // FMT_*
    act: u32, // 0: none, 1: GELU (erf), 2: GELU (tanh), 3: ReLU
    round_x: u32, // 1: round x to Q8_0 blocks first (k must be a multiple of 32)
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wq: array<u32>;
@group(0) @binding(3) var<storage, read> ws: array<u32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

const TM: u32 = 32u;
const TN: u32 = 64u;
const TK: u32 = 32u;

var<workgroup> xs: array<f32, 1024>; // TK x TM (transposed)
var<workgroup> wt: array<f32, 2048>; // TK x TN: column j of the tile is row col0 + j of W
var<workgroup> xscale: array<f32, 32>; // per row of the x tile: its block's f16 scale
var<workgroup> xinv: array<f32, 32>; // and the inverse of the unrounded scale

// Elements 4 q .. 4 q + 4 (q = 0..8) of block `kb` of W's row `row` (zeros past W).
fn weight_quad(row: u32, kb: u32, q: u32) -> vec4<f32> {
    if (row >= p.n) {
        return vec4<f32>(0.0);
    }
    if (p.fmt == FMT_F32) {
        var v = vec4<f32>(0.0);
        let k0 = kb * TK + q * 4u;
        let base = row * p.k + k0;
        if (k0 + 3u < p.k) {
            v = vec4<f32>(
                bitcast<f32>(wq[base]),
                bitcast<f32>(wq[base + 1u]),
                bitcast<f32>(wq[base + 2u]),
                bitcast<f32>(wq[base + 3u]),
            );
        } else {
            for (var j = 0u; j < 4u; j++) {
                if (k0 + j < p.k) {
                    v[j] = bitcast<f32>(wq[base + j]);
                }
            }
        }
        return v;
    }
    let block = row * (p.k / 32u) + kb;
    let scale = f16_scale(ws[block / 2u], block);
    if (p.fmt == FMT_Q8_0) {
        let w = wq[block * 8u + q];
        return scale * vec4<f32>(i8_of(w, 0u), i8_of(w, 1u), i8_of(w, 2u), i8_of(w, 3u));
    }
    // Q4_0: elements 0..16 are the low nibbles of bytes 0..16 (words 0..4), 16..32 the high
    // nibbles of the same bytes.
    let w = wq[block * 4u + q % 4u];
    let high = q >= 4u;
    return scale * vec4<f32>(
        q4_of(w, 0u, high),
        q4_of(w, 1u, high),
        q4_of(w, 2u, high),
        q4_of(w, 3u, high),
    );
}

fn activate(v: f32) -> f32 {
    switch p.act {
        case 1u: {
            return 0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752));
        }
        case 2u: {
            let inner = clamp(0.79788456080286536 * (v + 0.044715 * v * v * v), -15.0, 15.0);
            return 0.5 * v * (1.0 + tanh(inner));
        }
        case 3u: {
            return max(v, 0.0);
        }
        default: {
            return v;
        }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row0 = wg.y * TM;
    let col0 = wg.x * TN;
    let tr = li / 8u; // rows row0 + 4 tr .. + 4 (the lanes of each accumulator)
    let tc = li % 8u; // columns col0 + tc + 8 c, c = 0..8 (accumulator c)
    // Named accumulators rather than an array: some compilers (llvmpipe's) keep a
    // dynamically indexed array in memory.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    let blocks = (p.k + TK - 1u) / TK;
    for (var kb = 0u; kb < blocks; kb++) {
        // The x tile, transposed: xs[kk * TM + r] is row row0 + r, column kb * TK + kk.
        for (var i = 0u; i < 16u; i++) {
            let e = li + i * 64u;
            let r = e / TK;
            let kk = e % TK;
            var v = 0.0;
            if (row0 + r < p.m && kb * TK + kk < p.k) {
                v = x[(row0 + r) * p.k + kb * TK + kk];
            }
            xs[kk * TM + r] = v;
        }
        if (p.round_x != 0u) {
            workgroupBarrier();
            if (li < TM) {
                var amax = 0.0;
                for (var kk = 0u; kk < TK; kk++) {
                    amax = max(amax, abs(xs[kk * TM + li]));
                }
                let d = amax / 127.0;
                xscale[li] = round_to_f16(d);
                xinv[li] = select(0.0, 1.0 / d, d != 0.0);
            }
            workgroupBarrier();
            for (var i = 0u; i < 16u; i++) {
                let e = li + i * 64u;
                let r = e % TM;
                let v = xs[e] * xinv[r];
                let q = clamp(sign(v) * floor(abs(v) + 0.5), -128.0, 127.0);
                xs[e] = q * xscale[r];
            }
        }
        // Each invocation dequantizes row col0 + li of W's block: wt[kk * TN + j] is
        // row col0 + j, column kb * TK + kk.
        for (var q = 0u; q < 8u; q++) {
            let w = weight_quad(col0 + li, kb, q);
            wt[(4u * q) * TN + li] = w.x;
            wt[(4u * q + 1u) * TN + li] = w.y;
            wt[(4u * q + 2u) * TN + li] = w.z;
            wt[(4u * q + 3u) * TN + li] = w.w;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let xa = kk * TM + 4u * tr;
            let a = vec4<f32>(xs[xa], xs[xa + 1u], xs[xa + 2u], xs[xa + 3u]);
            let wb = kk * TN + tc;
            acc0 += a * wt[wb];
            acc1 += a * wt[wb + 8u];
            acc2 += a * wt[wb + 16u];
            acc3 += a * wt[wb + 24u];
            acc4 += a * wt[wb + 32u];
            acc5 += a * wt[wb + 40u];
            acc6 += a * wt[wb + 48u];
            acc7 += a * wt[wb + 56u];
        }
        workgroupBarrier();
    }
    store(row0 + 4u * tr, col0 + tc, acc0);
    store(row0 + 4u * tr, col0 + tc + 8u, acc1);
    store(row0 + 4u * tr, col0 + tc + 16u, acc2);
    store(row0 + 4u * tr, col0 + tc + 24u, acc3);
    store(row0 + 4u * tr, col0 + tc + 32u, acc4);
    store(row0 + 4u * tr, col0 + tc + 40u, acc5);
    store(row0 + 4u * tr, col0 + tc + 48u, acc6);
    store(row0 + 4u * tr, col0 + tc + 56u, acc7);
}

// Writes y[row + r][col] = act(acc[r] + bias[col]) for r = 0..4, within bounds.
fn store(row: u32, col: u32, acc: vec4<f32>) {
    if (col >= p.n) {
        return;
    }
    let b = bias[col];
    for (var r = 0u; r < 4u; r++) {
        if (row + r < p.m) {
            y[(row + r) * p.n + col] = activate(acc[r] + b);
        }
    }
}
