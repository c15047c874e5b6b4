//! The index reader on arbitrary bytes: a typed error or an index whose every view works.
#![no_main]
use cairn::{Index, Mode, Searcher};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(index) = Index::from_bytes(data.to_vec()) else {
        return;
    };
    // A file that loads must also search without panicking.
    let searcher = Searcher::new(&index);
    let dim = index.meta().dim;
    let v = vec![1.0 / (dim.max(1) as f32).sqrt(); dim];
    let _ = searcher.search(None, "the query", 10, Mode::Lexical);
    let _ = searcher.search(Some(&v), "the query", 10, Mode::Hybrid);
    let _ = index.section_sizes();
});
