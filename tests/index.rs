//! The index format and search: round trip, determinism, refusals, the three modes.

mod common;

use cairn::index::{build_index, Index, Passage};
use cairn::{Encoder, Error, Mode, Role, Searcher, Why};

fn passages() -> Vec<Passage> {
    let rows = [
        ("threads", "Shared-State Concurrency", "Using Mutexes", "A mutex allows only one thread to access some data at any given time. Arc lets several threads own the mutex."),
        ("box", "Smart Pointers", "Using Box<T> to Point to Data on the Heap", "Boxes allow you to store data on the heap rather than the stack. What remains on the stack is the pointer to the heap data."),
        ("errors", "Error Handling", "Recoverable Errors with Result", "Most errors aren't serious enough to require the program to stop entirely. Result has two variants, Ok and Err."),
        ("cargo", "Hello, Cargo!", "Building a Cargo Project", "Cargo is Rust's build system and package manager. It builds your code and downloads the libraries your code depends on."),
        ("closures", "Closures", "Capturing the Environment", "Closures are anonymous functions you can save in a variable or pass as arguments to other functions."),
        ("pasta", "Cooking", "Tomato Sauce", "Simmer the tomatoes with garlic and olive oil for twenty minutes, then toss with the pasta."),
    ];
    rows.iter()
        .map(|(id, title, heading, text)| Passage {
            id: id.to_string(),
            url: format!("{id}.html"),
            anchor: "section".into(),
            title: title.to_string(),
            heading: heading.to_string(),
            text: text.to_string(),
            ..Default::default()
        })
        .collect()
}

fn encoder() -> Encoder {
    Encoder::from_bytes(&common::read_model_file("all-minilm-l6-v2-q8_0.gguf")).unwrap()
}

fn built(enc: &Encoder) -> (Vec<u8>, Index) {
    let ps = passages();
    let texts: Vec<String> = ps.iter().map(Passage::indexed_text).collect();
    let vs = enc.embed(&texts, Role::Document).unwrap();
    let bytes = build_index(&ps, &vs, enc.fingerprint(), &enc.config().name).unwrap();
    let index = Index::from_bytes(bytes.clone()).unwrap();
    (bytes, index)
}

#[test]
fn round_trip_is_deterministic_and_faithful() {
    let enc = encoder();
    let (bytes, index) = built(&enc);
    let (again, _) = built(&enc);
    assert_eq!(bytes, again, "same input, same bytes");
    assert_eq!(index.passages(), passages().as_slice());
    assert_eq!(index.meta().dim, 384);
    assert_eq!(index.meta().model_fingerprint, enc.fingerprint());
    index.check_model(enc.fingerprint()).unwrap();
}

#[test]
fn searches_find_the_right_passage_in_every_mode() {
    let enc = encoder();
    let (_, index) = built(&enc);
    let s = Searcher::new(&index);
    let ask = |q: &str, mode: Mode| {
        let v = enc.embed(&[q], Role::Query).unwrap().pop().unwrap();
        s.search(Some(&v), q, 3, mode).unwrap()
    };
    // Meaning without shared words.
    let hits = ask(
        "how do I let several threads change the same value safely",
        Mode::Dense,
    );
    assert_eq!(hits[0].id, "threads");
    assert_eq!(hits[0].why, Why::Meaning);
    // Keywords.
    let hits = ask("Box heap", Mode::Lexical);
    assert_eq!(hits[0].id, "box");
    assert_eq!(hits[0].why, Why::Keyword);
    let marked: Vec<&str> = hits[0]
        .excerpt
        .marks
        .iter()
        .map(|&(a, b)| &hits[0].excerpt.text[a..b])
        .collect();
    assert!(marked.contains(&"heap"), "{marked:?}");
    // Both.
    let hits = ask("mutex threads", Mode::Hybrid);
    assert_eq!(hits[0].id, "threads");
    assert_eq!(hits[0].why, Why::Both);
    // Without a vector every mode answers from keywords.
    let hits = s.search(None, "pasta tomatoes", 2, Mode::Hybrid).unwrap();
    assert_eq!(hits[0].id, "pasta");
    assert_eq!(hits[0].why, Why::Keyword);
}

#[test]
fn odd_queries_answer_without_error() {
    let enc = encoder();
    let (_, index) = built(&enc);
    let s = Searcher::new(&index);
    let long = "ünïcödé 🦀 ".repeat(1000);
    for q in ["", "   ", "the of and", long.as_str(), "\u{0}"] {
        let v = enc.embed(&[q], Role::Query).unwrap().pop().unwrap();
        for mode in [Mode::Hybrid, Mode::Dense, Mode::Lexical] {
            let hits = s.search(Some(&v), q, 5, mode).unwrap();
            assert!(hits.len() <= 5);
        }
    }
    let wrong = vec![0.0f32; 10];
    assert!(matches!(
        s.search(Some(&wrong), "x", 5, Mode::Dense),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn index_from_another_model_is_refused_naming_both() {
    let enc = encoder();
    let (_, index) = built(&enc);
    let other =
        Encoder::from_bytes(&common::read_model_file("all-minilm-l6-v2-q4_0.gguf")).unwrap();
    let err = index.check_model(other.fingerprint()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::ModelMismatch { .. }));
    assert!(
        msg.contains(&enc.fingerprint()[..16]) && msg.contains(&other.fingerprint()[..16]),
        "{msg}"
    );
}

#[test]
fn truncated_corrupted_and_foreign_files_are_refused() {
    let enc = encoder();
    let (bytes, _) = built(&enc);
    for cut in (0..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
        let err = Index::from_bytes(bytes[..cut].to_vec())
            .err()
            .expect("truncated must fail");
        assert!(
            matches!(err, Error::NotAnIndex(_) | Error::CorruptIndex(_)),
            "cut {cut}: {err}"
        );
    }
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    assert!(
        matches!(Index::from_bytes(flipped), Err(Error::CorruptIndex(ref m)) if m.contains("checksum"))
    );
    let model = common::read_model_file("all-minilm-l6-v2-q4_0.gguf");
    assert!(matches!(
        Index::from_bytes(model),
        Err(Error::NotAnIndex(_))
    ));
    let mut newer = bytes.clone();
    newer[8..12].copy_from_slice(&7u32.to_le_bytes());
    let err = Index::from_bytes(newer).err().unwrap();
    assert!(
        matches!(err, Error::UnsupportedIndexVersion { found: 7, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("version 7"));
}
