//! One dropped file (`passages_from_file`, what the browser's ingest module runs) on
//! arbitrary bytes under each kind's name: never panics, and a file read gives non-empty
//! passages whose ids start with the file's name (JSONL records excepted: their own ids),
//! and what the model is to embed of them names every passage (a word counted as a token).
#![no_main]
use cairn::ingest::{passages_from_file, FileKind};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 5] = ["notes.txt", "a/page.md", "site/p.html", "corpus.jsonl", "x.bin"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let name = NAMES[pick as usize % NAMES.len()];
    if let Ok(read) = passages_from_file(name, bytes) {
        assert!(!read.passages.is_empty());
        for p in &read.passages {
            assert!(!p.text.is_empty() || !p.title.is_empty());
            if read.kind != FileKind::Jsonl {
                assert!(p.id.starts_with(name), "id {:?}", p.id);
            }
        }
        let count = |t: &str| t.split_whitespace().count() + 2;
        let plan = read.kind.plan(&read.passages, 64, 8, &count);
        let mut texts_of = vec![0usize; read.passages.len()];
        for &o in &plan.owner {
            texts_of[o] += 1;
        }
        // A passage in parts: each part within the budget.
        for (t, &o) in plan.texts.iter().zip(&plan.owner) {
            assert!(texts_of[o] == 1 || count(t) <= 64, "a part over the budget");
        }
        let seen: Vec<bool> = texts_of.iter().map(|&n| n > 0).collect();
        assert!(seen.iter().all(|&s| s), "a passage with nothing to embed");
    }
});
