//! Sections longer than the model's token budget: the model reads at most `budget` tokens,
//! so a long section is embedded in parts that fit (consecutive parts share a few tokens, so
//! a sentence cut at a boundary is whole in one of them), and its vector is the normalised
//! mean of its parts' vectors. The section stays one passage: keyword search and excerpts see
//! its whole text, a result names it once, and meaning search sees all of it, not only the
//! first `budget` tokens.
//!
//! Measured on the Rust Book (BENCHMARKS.md, `ranking`; MiniLM q4_mix, MRR on the 20 tuning
//! / 36 held-out questions), against the same 804 sections each truncated to its first 256
//! tokens (what the indexer did before, by mistake): dense 0.640 / 0.860 against 0.651 /
//! 0.833, hybrid 0.775 / 0.947 against 0.785 / 0.924. Indexing each of the 2,029 parts as a
//! passage of its own instead gave hybrid 0.696 / 0.912 (its keyword scores are spread over
//! the parts, and one section fills several results).

use crate::index::Passage;

/// What to embed for a list of passages: `texts[j]` is a part of passage `owner[j]` (in
/// order), and every passage has at least one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbedPlan {
    pub texts: Vec<String>,
    pub owner: Vec<usize>,
    passages: usize,
}

impl EmbedPlan {
    /// Each passage embedded as one text (its indexed text; the model truncates a long one):
    /// corpus records, as BEIR evaluates them.
    pub fn whole(passages: &[Passage]) -> Self {
        EmbedPlan {
            texts: passages.iter().map(Passage::indexed_text).collect(),
            owner: (0..passages.len()).collect(),
            passages: passages.len(),
        }
    }

    /// Each passage embedded in the parts of [`parts`]: one text when it fits `budget`
    /// tokens according to `count`.
    pub fn parts(
        passages: &[Passage],
        budget: usize,
        overlap: usize,
        count: &dyn Fn(&str) -> usize,
    ) -> Self {
        let mut plan = EmbedPlan {
            passages: passages.len(),
            ..Default::default()
        };
        for (i, p) in passages.iter().enumerate() {
            for t in parts(p, budget, overlap, count) {
                plan.texts.push(t);
                plan.owner.push(i);
            }
        }
        plan
    }

    /// Adds `other`'s texts after this plan's, for passages that follow this plan's.
    pub fn append(&mut self, other: EmbedPlan) {
        let offset = self.passages;
        self.texts.extend(other.texts);
        self.owner
            .extend(other.owner.into_iter().map(|o| o + offset));
        self.passages += other.passages;
    }

    /// Number of passages the plan is for.
    pub fn passages(&self) -> usize {
        self.passages
    }

    /// One vector per passage from one per text (in the plan's order): a passage's parts'
    /// vectors averaged and scaled to unit length (one part: its vector as it is).
    pub fn join(&self, embedded: Vec<Vec<f32>>) -> crate::Result<Vec<Vec<f32>>> {
        if embedded.len() != self.texts.len() {
            return Err(crate::Error::InvalidArgument(format!(
                "{} vectors for {} texts",
                embedded.len(),
                self.texts.len()
            )));
        }
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); self.passages];
        let mut parts = vec![0usize; self.passages];
        for (v, &i) in embedded.into_iter().zip(&self.owner) {
            parts[i] += 1;
            if out[i].is_empty() {
                out[i] = v;
            } else if out[i].len() != v.len() {
                return Err(crate::Error::InvalidArgument(
                    "parts' vectors differ in length".into(),
                ));
            } else {
                out[i].iter_mut().zip(&v).for_each(|(a, x)| *a += x);
            }
        }
        for (v, n) in out.iter_mut().zip(parts) {
            if n > 1 {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm > 0.0 {
                    v.iter_mut().for_each(|x| *x /= norm);
                }
            }
        }
        Ok(out)
    }
}

/// The texts the model is given for one passage: its indexed text (title, heading and text)
/// when that takes at most `budget` tokens according to `count`, else parts of its text, each
/// with the title and heading, each within the budget, consecutive ones sharing about
/// `overlap` tokens.
pub fn parts(
    p: &Passage,
    budget: usize,
    overlap: usize,
    count: &dyn Fn(&str) -> usize,
) -> Vec<String> {
    let whole = p.indexed_text();
    if count(&whole) <= budget {
        return vec![whole];
    }
    let with = |text: String| Passage { text, ..p.clone() }.indexed_text();
    // A title and heading that leave little room for text: the whole, which the model cuts
    // (parts of a word or two each would mostly repeat the title).
    if count(&with(String::new())) >= budget / 2 {
        return vec![whole];
    }
    let mut out = Vec::new();
    let words: Vec<&str> = p.text.split(' ').filter(|w| !w.is_empty()).collect();
    let fits = |from: usize, to: usize| count(&with(words[from..to].join(" "))) <= budget;
    let mut start = 0;
    while start < words.len() {
        // The longest run of words from `start` that fits (at least one word, so a
        // pathological word cannot stall the loop: the model truncates it). A word is at
        // least one token, so no run longer than `budget` words fits: the search never
        // counts more than that, and a long section costs time in proportion to its length.
        let (mut lo, mut hi) = (start + 1, words.len().min(start + budget));
        if fits(start, hi) {
            lo = hi;
        } else {
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if fits(start, mid) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
        }
        let end = lo;
        out.push(with(words[start..end].join(" ")));
        if end >= words.len() {
            break;
        }
        // Step back over about `overlap` tokens, but always move forward.
        let mut back = end;
        while back > start + 1 && count(&words[back - 1..end].join(" ")).saturating_sub(2) < overlap
        {
            back -= 1;
        }
        start = if overlap == 0 {
            end
        } else {
            back.max(start + 1)
        };
    }
    if out.is_empty() {
        out.push(whole);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(text: &str) -> Passage {
        Passage {
            id: "p".into(),
            url: "/p.html".into(),
            anchor: "a".into(),
            title: "T".into(),
            heading: "H".into(),
            text: text.into(),
            ..Default::default()
        }
    }

    /// One token per word plus two special tokens.
    fn words(t: &str) -> usize {
        t.split_whitespace().count() + 2
    }

    #[test]
    fn long_sections_are_embedded_in_parts_within_budget_with_overlap() {
        let text: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
        let long = passage(&text.join(" "));
        let texts = parts(&long, 30, 5, &words);
        assert!(texts.len() > 3);
        for t in &texts {
            assert!(words(t) <= 30, "{t}");
            // Each part carries the title and heading, as the whole would.
            assert!(t.starts_with("T H w"), "{t}");
        }
        assert!(texts[0].contains(" w0 "));
        assert!(texts.last().unwrap().ends_with("w99"));
        // Consecutive parts overlap.
        let last_of_first = texts[0].split(' ').next_back().unwrap();
        assert!(texts[1].split(' ').any(|w| w == last_of_first));
        // Short ones stay whole.
        let short = passage("a few words");
        assert_eq!(parts(&short, 30, 5, &words), vec![short.indexed_text()]);
    }

    #[test]
    fn a_title_with_no_room_left_and_a_long_text_stay_cheap() {
        let mut p = passage(&["w"; 50].join(" "));
        p.title = ["t"; 20].join(" ");
        // 20 title words + H + 2 > 30 / 2: the whole, cut by the model.
        assert_eq!(parts(&p, 30, 5, &words), vec![p.indexed_text()]);
        // 100,000 words: every count past the first is of at most `budget` words.
        let long = passage(&vec!["w"; 100_000].join(" "));
        let counted = std::cell::Cell::new(0usize);
        let tally = |t: &str| {
            counted.set(counted.get() + t.len());
            words(t)
        };
        let texts = parts(&long, 30, 5, &tally);
        assert!(texts.len() > 3_000);
        assert!(counted.get() < 200 * long.text.len(), "{}", counted.get());
    }

    #[test]
    fn a_plan_joins_parts_into_one_unit_vector_per_passage() {
        let text: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
        let ps = vec![passage("short one"), passage(&text.join(" ")), passage("b")];
        let plan = EmbedPlan::parts(&ps, 30, 5, &words);
        assert_eq!(plan.passages(), 3);
        let n = plan.texts.len();
        assert!(n > 5);
        assert_eq!(plan.owner[0], 0);
        assert_eq!(plan.owner[n - 1], 2);
        assert!(plan.owner[1..n - 1].iter().all(|&o| o == 1));
        // Part j of the long one points along axis j % 2.
        let vectors: Vec<Vec<f32>> = (0..n)
            .map(|j| {
                if j % 2 == 0 {
                    vec![1.0, 0.0]
                } else {
                    vec![0.0, 1.0]
                }
            })
            .collect();
        let joined = plan.join(vectors).unwrap();
        assert_eq!(joined.len(), 3);
        assert_eq!(joined[0], vec![1.0, 0.0]);
        let norm: f32 = joined[1].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6);
        assert!(joined[1][0] > 0.5 && joined[1][1] > 0.5);
        assert!(plan.join(vec![vec![1.0]]).is_err());
        let mut whole = EmbedPlan::whole(&ps);
        assert_eq!(whole.texts.len(), 3);
        assert_eq!(whole.owner, vec![0, 1, 2]);
        whole.append(EmbedPlan::whole(&ps[..2]));
        assert_eq!(whole.owner, vec![0, 1, 2, 3, 4]);
        assert_eq!(whole.passages(), 5);
    }
}
