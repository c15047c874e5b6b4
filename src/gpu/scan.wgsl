// The dense index scan (`index::dense::DenseView::search`, on the GPU): Hamming distances of
// every binary code to the query's code, and int8 scores of rows against the query (rounded
// to int8 blocks as the CPU rounds it, sent as floats).
// Both write one u32 sort key per item, smaller = better, for `select.wgsl`. 1-D ranges;
// the grid may be 2-D when a range needs more than 65535 workgroups of 256.

struct ScanParams {
    count: u32,     // items to score: every row, or the candidates in `ids`
    words: u32,     // u32 words per binary code (2 per u64 word)
    dim: u32,
    row_words: u32, // u32 words per int8 row (ceil(dim / 4); rows are padded to it)
    use_ids: u32,   // rescore: 1 = item i is row ids[i], 0 = item i is row i
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: ScanParams;
// hamming: the codes (rows x words); rescore: the int8 rows (rows x row_words).
@group(0) @binding(1) var<storage, read> data: array<u32>;
// hamming: the query's code (words); rescore: the float query (dim).
@group(0) @binding(2) var<storage, read> query: array<u32>;
// rescore: the rows' scales; hamming: unused (bound to anything).
@group(0) @binding(3) var<storage, read> scales: array<f32>;
// rescore with use_ids = 1: the rows to score; otherwise unused.
@group(0) @binding(4) var<storage, read> ids: array<u32>;
@group(0) @binding(5) var<storage, read_write> keys: array<u32>;

// Maps a score to a key whose ascending order is the scores' descending order, with f32's
// total order (as `f32::total_cmp` orders, -0 below +0).
fn descending_key(s: f32) -> u32 {
    let b = bitcast<u32>(s);
    let ascending = select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
    return ~ascending;
}

@compute @workgroup_size(256)
fn hamming(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let r = linear_index(wg, groups, li, 256u);
    if (r >= p.count) {
        return;
    }
    var dist = 0u;
    for (var w = 0u; w < p.words; w++) {
        dist += countOneBits(data[r * p.words + w] ^ query[w]);
    }
    keys[r] = dist;
}

@compute @workgroup_size(256)
fn rescore(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = linear_index(wg, groups, li, 256u);
    if (i >= p.count) {
        return;
    }
    var r = i;
    if (p.use_ids != 0u) {
        r = ids[i];
    }
    let base = r * p.row_words;
    var dot = 0.0;
    for (var w = 0u; w < p.row_words; w++) {
        let packed = data[base + w];
        for (var b = 0u; b < 4u; b++) {
            let d = w * 4u + b;
            if (d < p.dim) {
                dot += i8_of(packed, b) * bitcast<f32>(query[d]);
            }
        }
    }
    keys[i] = descending_key(dot * scales[r]);
}
