// Layer norm of a sum: out = LN(a + b) * gamma + beta, one workgroup per row (token).
// With `add_b` = 0, `b` is ignored (the embeddings' norm). Grid: (rows).

struct LnParams {
    rows: u32,
    dim: u32,
    add_b: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: LnParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u;
var<workgroup> red: array<f32, 256>;

fn input(i: u32) -> f32 {
    if (p.add_b != 0u) {
        return a[i] + b[i];
    }
    return a[i];
}

// Sum of `v` over the workgroup; every invocation gets the result.
fn reduce_sum(li: u32, v: f32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (li < s) {
            red[li] = red[li] + red[li + s];
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wg.x;
    // `row` is uniform across the workgroup, so the early return keeps barriers uniform.
    if (row >= p.rows) {
        return;
    }
    let base = row * p.dim;
    var s = 0.0;
    for (var d = li; d < p.dim; d += WG) {
        s += input(base + d);
    }
    let mean = reduce_sum(li, s) / f32(p.dim);
    var s2 = 0.0;
    for (var d = li; d < p.dim; d += WG) {
        let c = input(base + d) - mean;
        s2 += c * c;
    }
    let variance = reduce_sum(li, s2) / f32(p.dim);
    let inv = 1.0 / sqrt(variance + p.eps);
    for (var d = li; d < p.dim; d += WG) {
        out[base + d] = (input(base + d) - mean) * inv * gamma[d] + beta[d];
    }
}
