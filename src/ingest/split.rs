//! Cuts sections longer than the model's token budget into parts that fit, with a small
//! overlap so a sentence cut at a boundary is whole in one of the two parts.

use crate::index::Passage;

/// Splits every passage whose indexed text (title, heading and text, as the model sees it)
/// takes more than `budget` tokens according to `count`. Parts keep the passage's URL,
/// anchor, title and heading; their ids get `~1`, `~2`, ... and consecutive parts share
/// about `overlap` tokens of text.
pub fn split_long(
    passages: Vec<Passage>,
    budget: usize,
    overlap: usize,
    count: &dyn Fn(&str) -> usize,
) -> Vec<Passage> {
    let mut out = Vec::with_capacity(passages.len());
    for p in passages {
        if count(&p.indexed_text()) <= budget {
            out.push(p);
            continue;
        }
        let words: Vec<&str> = p.text.split(' ').filter(|w| !w.is_empty()).collect();
        let with = |text: String| Passage { text, ..p.clone() };
        let fits = |from: usize, to: usize| {
            count(&with(words[from..to].join(" ")).indexed_text()) <= budget
        };
        let mut start = 0;
        let mut part = 0;
        while start < words.len() {
            // The longest run of words from `start` that fits (at least one word, so a
            // pathological word cannot stall the loop: the model truncates it).
            let (mut lo, mut hi) = (start + 1, words.len());
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
            part += 1;
            out.push(Passage {
                id: format!("{}~{part}", p.id),
                ..with(words[start..end].join(" "))
            });
            if end >= words.len() {
                break;
            }
            // Step back over about `overlap` tokens, but always move forward.
            let mut back = end;
            while back > start + 1
                && count(&words[back - 1..end].join(" ")).saturating_sub(2) < overlap
            {
                back -= 1;
            }
            start = if overlap == 0 {
                end
            } else {
                back.max(start + 1)
            };
        }
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
    fn long_sections_split_within_budget_with_overlap() {
        let text: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
        let parts = split_long(vec![passage(&text.join(" "))], 30, 5, &words);
        assert!(parts.len() > 3);
        for p in &parts {
            assert!(words(&p.indexed_text()) <= 30, "{}", p.text);
            assert_eq!(p.anchor, "a");
        }
        assert_eq!(parts[0].id, "p~1");
        assert!(parts[0].text.starts_with("w0 "));
        assert!(parts.last().unwrap().text.ends_with("w99"));
        // Consecutive parts overlap.
        let last_of_first = parts[0].text.split(' ').next_back().unwrap();
        assert!(parts[1].text.split(' ').any(|w| w == last_of_first));
        // Short ones stay whole.
        let short = split_long(vec![passage("a few words")], 30, 5, &words);
        assert_eq!(short[0].id, "p");
    }
}
