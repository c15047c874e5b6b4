//! Reciprocal rank fusion of ranked lists.

use std::collections::HashMap;

/// RRF's constant: a document at rank r (from 1) in a list earns `1 / (k + r)`.
///
/// The literature's default is 60. Tuned on SciFact's train qrels (the development set;
/// q8_0 bundle, hybrid nDCG@10): k = 60 0.7189, 20 0.7256, 10 0.7286, 5 0.7316, 1 0.7337.
/// A smaller k trusts the top of each list more; 5 sat inside the plateau. Weighting the
/// keyword list (0.7 to 1.5) or fusing deeper lists (200) did not beat equal weights at 100.
///
/// Re-tuned over the field-weighted keyword list (BENCHMARKS.md, `ranking`; SciFact train
/// nDCG@10 / Rust Book questions MRR / held-out Rust Book MRR): k = 5 gave 0.7283 / 0.793 /
/// 0.922 (SciFact below the 0.7297 of before), k = 2 0.7319 / 0.785 / 0.924, k = 1
/// 0.7332 / 0.781 / 0.938; a keyword weight of 1.15 to 1.3 at k = 1 to 2 moves SciFact by
/// +-0.002 and the Rust Book by -0.04. 2 sits inside the plateau with equal weights.
pub const RRF_K: f32 = 2.0;

/// Fuses ranked lists (best first) into one ranking, best first. `weights` scale each list's
/// contribution (1.0 each for plain RRF). Ties break by passage number, for determinism.
pub fn rrf(lists: &[&[u32]], weights: &[f32], k: f32) -> Vec<(u32, f32)> {
    let mut acc: HashMap<u32, f32> = HashMap::new();
    for (list, w) in lists.iter().zip(weights) {
        for (rank, &doc) in list.iter().enumerate() {
            *acc.entry(doc).or_default() += w / (k + rank as f32 + 1.0);
        }
    }
    let mut out: Vec<(u32, f32)> = acc.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_in_both_lists_rise() {
        let fused = rrf(&[&[1, 2, 3], &[3, 4, 1]], &[1.0, 1.0], RRF_K);
        assert_eq!(fused[0].0, 1);
        assert_eq!(fused[1].0, 3);
        assert_eq!(fused.len(), 4);
    }
}
