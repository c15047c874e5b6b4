//! One dropped file (`passages_from_file`, what the browser's ingest module runs) on
//! arbitrary bytes under each kind's name: never panics, and a file read gives non-empty
//! passages whose ids start with the file's name (JSONL records excepted: their own ids).
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
    }
});
