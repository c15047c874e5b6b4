//! The portable reference kernel: plain Rust, one output at a time. Every SIMD kernel must
//! give exactly its results (`tests/kernels.rs`).

use super::{Tile, BLOCK, MR, NR};

pub(super) fn tile(t: &Tile, out: &mut [[f32; NR]; MR]) {
    let panel = t.w.panel(t.p);
    let scales = t.w.panel_scales(t.p);
    for (i, row) in out.iter_mut().enumerate().take(t.mr) {
        let (q, xs) = (t.q(i), t.scales(i));
        for (c, o) in row.iter_mut().enumerate() {
            let mut acc = 0f32;
            for b in 0..t.blocks() {
                let wb = &panel[b * BLOCK * NR..(b + 1) * BLOCK * NR];
                let mut isum = 0i32;
                for g in 0..BLOCK / 4 {
                    for j in 0..4 {
                        isum += q[b * BLOCK + g * 4 + j] as i32 * wb[g * 4 * NR + c * 4 + j] as i32;
                    }
                }
                acc += isum as f32 * (xs[b] * scales[b * NR + c]);
            }
            *o = acc;
        }
    }
}
