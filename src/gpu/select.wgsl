// Top-k on the GPU: selects the `want` items with the smallest (key, position) pairs out of
// `count` keys and writes their rows (position i, or ids[i] with use_ids) to `out`, in
// ascending position order. Ties are broken by lower position, as `index::dense` breaks them
// by lower passage number, so the selected set is exactly the CPU's.
//
// The threshold key is found by radix select, 8 bits at a time from the top: `histogram`
// counts the digits of the keys that match the prefix found so far and `pick` finds the
// digit where the `want`-th item falls (4 rounds). Then `count` counts, per chunk of 256
// items, the keys below and equal to the threshold; `scan` turns the counts into each
// chunk's output offset and number of ties before it; `scatter` writes the selected items.
// Only `want` u32s are read back. Dispatch order: (histogram, pick) x 4 with shift 24, 16,
// 8, 0; count; scan; scatter. `state` must start as [0, want, 0, 0] and `hist` as zeros.

struct SelectParams {
    count: u32,
    shift: u32,   // histogram: the digit's lowest bit (24, 16, 8, 0)
    chunks: u32,  // ceil(count / 256)
    use_ids: u32,
}

@group(0) @binding(0) var<uniform> p: SelectParams;
@group(0) @binding(1) var<storage, read> keys: array<u32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> hist: array<atomic<u32>, 256>;
// [threshold prefix, items still wanted among those matching it, items below it, unused]
@group(0) @binding(4) var<storage, read_write> state: array<u32, 4>;
// Per chunk: (ties, below) from `count`; (ties before, output offset) after `scan`.
@group(0) @binding(5) var<storage, read_write> chunk_info: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<u32>;

var<workgroup> local_hist: array<atomic<u32>, 256>;
var<workgroup> local_count: array<atomic<u32>, 2>;
var<workgroup> scan_buf: array<u32, 256>;

@compute @workgroup_size(256)
fn histogram(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    atomicStore(&local_hist[li], 0u);
    workgroupBarrier();
    let i = linear_index(wg, groups, li, 256u);
    if (i < p.count) {
        let key = keys[i];
        var matches = true;
        if (p.shift < 24u) {
            matches = (key >> (p.shift + 8u)) == state[0];
        }
        if (matches) {
            atomicAdd(&local_hist[(key >> p.shift) & 255u], 1u);
        }
    }
    workgroupBarrier();
    let c = atomicLoad(&local_hist[li]);
    if (c > 0u) {
        atomicAdd(&hist[li], c);
    }
}

@compute @workgroup_size(256)
fn pick(@builtin(local_invocation_index) li: u32) {
    if (li == 0u) {
        let remaining = state[1];
        var cum = 0u;
        var digit = 255u;
        for (var b = 0u; b < 256u; b++) {
            let c = atomicLoad(&hist[b]);
            if (cum + c >= remaining) {
                digit = b;
                break;
            }
            cum += c;
        }
        state[0] = (state[0] << 8u) | digit;
        state[1] = remaining - cum;
        state[2] = state[2] + cum;
    }
    storageBarrier();
    atomicStore(&hist[li], 0u);
}

@compute @workgroup_size(256)
fn count(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    if (li < 2u) {
        atomicStore(&local_count[li], 0u);
    }
    workgroupBarrier();
    let threshold = state[0];
    let i = linear_index(wg, groups, li, 256u);
    if (i < p.count) {
        let key = keys[i];
        if (key == threshold) {
            atomicAdd(&local_count[0], 1u);
        } else if (key < threshold) {
            atomicAdd(&local_count[1], 1u);
        }
    }
    workgroupBarrier();
    let c = i / 256u;
    if (li == 0u && c < p.chunks) {
        chunk_info[2u * c] = atomicLoad(&local_count[0]);
        chunk_info[2u * c + 1u] = atomicLoad(&local_count[1]);
    }
}

@compute @workgroup_size(256)
fn scan(@builtin(local_invocation_index) li: u32) {
    if (li != 0u) {
        return;
    }
    let need_ties = state[1];
    var ties_before = 0u;
    var out_before = 0u;
    for (var c = 0u; c < p.chunks; c++) {
        let ties = chunk_info[2u * c];
        let below = chunk_info[2u * c + 1u];
        let take = min(ties, need_ties - min(need_ties, ties_before));
        chunk_info[2u * c] = ties_before;
        chunk_info[2u * c + 1u] = out_before;
        ties_before += ties;
        out_before += below + take;
    }
}

// Exclusive prefix sum of `v` over the workgroup (Hillis-Steele in workgroup memory).
fn exclusive_scan(li: u32, v: u32) -> u32 {
    scan_buf[li] = v;
    workgroupBarrier();
    for (var off = 1u; off < 256u; off *= 2u) {
        var t = 0u;
        if (li >= off) {
            t = scan_buf[li - off];
        }
        workgroupBarrier();
        scan_buf[li] += t;
        workgroupBarrier();
    }
    let inclusive = scan_buf[li];
    workgroupBarrier();
    return inclusive - v;
}

@compute @workgroup_size(256)
fn scatter(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let threshold = state[0];
    let need_ties = state[1];
    let i = linear_index(wg, groups, li, 256u);
    let c = i / 256u;
    var is_tie = 0u;
    var is_below = false;
    if (i < p.count) {
        let key = keys[i];
        is_tie = select(0u, 1u, key == threshold);
        is_below = key < threshold;
    }
    let tie_rank = exclusive_scan(li, is_tie);
    var selected = 0u;
    if (i < p.count) {
        if (is_below || (is_tie == 1u && chunk_info[2u * c] + tie_rank < need_ties)) {
            selected = 1u;
        }
    }
    let rank = exclusive_scan(li, selected);
    if (selected == 1u) {
        var row = i;
        if (p.use_ids != 0u) {
            row = ids[i];
        }
        out[chunk_info[2u * c + 1u] + rank] = row;
    }
}
