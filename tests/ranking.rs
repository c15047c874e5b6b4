//! Field-weighted keyword ranking through both index layouts: a word in a title or heading
//! counts as its weight says, the one-file and sharded indexes score alike, settings a search
//! names replace the index's, and settings out of range are errors.

use cairn::index::lexical::{Ranking, RankingOptions};
use cairn::index::sharded::{build_sharded, ShardOptions, ShardedIndex};
use cairn::index::{build_index, Index, Passage};
use cairn::search::{Refine, Source};
use cairn::{Error, Mode, Searcher};

fn passage(i: usize, title: &str, heading: &str, text: &str) -> Passage {
    Passage {
        id: format!("p{i}"),
        url: format!("page{i}.html"),
        anchor: String::new(),
        title: title.into(),
        heading: heading.into(),
        text: text.into(),
        ..Default::default()
    }
}

/// Passages of equal length where "mutex" occurs once: in the title of one, the heading of
/// another, the text of a third; the rest have other words.
fn corpus() -> (Vec<Passage>, Vec<Vec<f32>>) {
    let filler = ["apple", "river", "stone", "cloud", "tiger", "piano"];
    let mut passages = vec![
        passage(
            0,
            "Channels",
            "Sending values",
            "a mutex guards counters firmly",
        ),
        passage(
            1,
            "Mutex",
            "Sending values",
            "a lock guards counters firmly",
        ),
        passage(
            2,
            "Channels",
            "Mutex values",
            "a lock guards counters firmly",
        ),
    ];
    for i in 3..40 {
        let w = |j: usize| filler[(i + j) % filler.len()];
        passages.push(passage(
            i,
            &format!("Chapter {}", w(0)),
            &format!("About {}", w(1)),
            &format!("{} {} {} {} counters", w(2), w(3), w(4), w(5)),
        ));
    }
    let vectors = (0..passages.len())
        .map(|i| {
            let mut v = vec![0.0f32; 8];
            v[i % 8] = 1.0;
            v
        })
        .collect();
    (passages, vectors)
}

fn one_file() -> Index {
    let (ps, vs) = corpus();
    Index::from_bytes(build_index(&ps, &vs, "fp", "test").unwrap()).unwrap()
}

fn sharded() -> ShardedIndex {
    let (ps, vs) = corpus();
    let opts = ShardOptions {
        chunk_bytes: 64,
        ..Default::default()
    };
    let files = build_sharded(&ps, &vs, "fp", "test", &opts).unwrap();
    let mut s = ShardedIndex::from_meta(files.meta).unwrap();
    for (name, bytes) in files.parts {
        s.add_part(&name, bytes).unwrap();
    }
    s
}

/// The keyword scores of `query` by passage id, best first.
fn scores(index: &dyn Source, query: &str, ranking: RankingOptions) -> Vec<(String, f32)> {
    let refine = Refine {
        ranking,
        ..Default::default()
    };
    Searcher::new(index)
        .find_refined(None, None, query, 10, Mode::Lexical, &refine)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| (h.id, h.score))
        .collect()
}

fn weights(title: f32, heading: f32) -> RankingOptions {
    RankingOptions {
        title: Some(title),
        heading: Some(heading),
        ..Default::default()
    }
}

#[test]
fn title_and_heading_weights_order_matches_in_both_layouts() {
    let (one, sh) = (one_file(), sharded());
    for index in [&one as &dyn Source, &sh as &dyn Source] {
        // Weights of one: the same word once in passages of one length scores the same.
        let flat = scores(index, "mutex", weights(1.0, 1.0));
        assert_eq!(flat.len(), 3, "{flat:?}");
        assert!((flat[0].1 - flat[2].1).abs() < 1e-5, "{flat:?}");
        let ids = |s: &[(String, f32)]| s.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
        assert_eq!(
            ids(&scores(index, "mutex", weights(4.0, 2.0))),
            ["p1", "p2", "p0"]
        );
        assert_eq!(
            ids(&scores(index, "mutex", weights(2.0, 4.0))),
            ["p2", "p1", "p0"]
        );
        // The text match scores as it did: weights touch only title and heading matches.
        let text_score = |s: &[(String, f32)]| s.iter().find(|x| x.0 == "p0").unwrap().1;
        assert!(
            (text_score(&flat) - text_score(&scores(index, "mutex", weights(4.0, 2.0)))).abs()
                < 1e-5
        );
    }
}

#[test]
fn both_layouts_score_alike_under_any_settings() {
    let (one, sh) = (one_file(), sharded());
    let settings = [
        RankingOptions::default(),
        weights(3.0, 1.5),
        RankingOptions {
            k1: Some(0.5),
            b: Some(0.0),
            title: Some(0.0),
            heading: Some(10.0),
        },
    ];
    for r in settings {
        for q in ["mutex counters", "channels lock", "sending values apple"] {
            let (a, b) = (scores(&one, q, r), scores(&sh, q, r));
            assert_eq!(a.len(), b.len(), "{q}");
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.0, y.0, "{q} {r:?}");
                assert!((x.1 - y.1).abs() < 1e-5, "{q} {r:?}: {x:?} {y:?}");
            }
        }
    }
}

#[test]
fn the_index_default_is_what_no_options_give() {
    let one = one_file();
    let own = Ranking::of(cairn::search::Source::meta(&one));
    let named = RankingOptions {
        k1: Some(own.k1),
        b: Some(own.b),
        title: Some(own.title),
        heading: Some(own.heading),
    };
    assert_eq!(
        scores(&one, "mutex counters", RankingOptions::default()),
        scores(&one, "mutex counters", named)
    );
    // The tuned default weighs a title match above a text match.
    let ids: Vec<String> = scores(&one, "mutex", RankingOptions::default())
        .into_iter()
        .map(|x| x.0)
        .collect();
    assert_eq!(ids.last().map(String::as_str), Some("p0"), "{ids:?}");
}

#[test]
fn settings_out_of_range_are_errors() {
    let one = one_file();
    let bad = [
        RankingOptions {
            b: Some(1.5),
            ..Default::default()
        },
        RankingOptions {
            k1: Some(0.0),
            ..Default::default()
        },
        RankingOptions {
            title: Some(-1.0),
            ..Default::default()
        },
        RankingOptions {
            heading: Some(f32::INFINITY),
            ..Default::default()
        },
    ];
    let v = {
        let mut v = vec![0.0f32; 8];
        v[1] = 1.0;
        v
    };
    for r in bad {
        let refine = Refine {
            ranking: r,
            ..Default::default()
        };
        // In every mode, though only keywords use them.
        for mode in [Mode::Lexical, Mode::Dense, Mode::Hybrid] {
            let err = Searcher::new(&one)
                .find_refined(Some(&v), None, "mutex", 10, mode, &refine)
                .unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        }
    }
}

#[test]
fn a_match_only_in_fields_weighing_nothing_is_no_match() {
    let (one, sh) = (one_file(), sharded());
    for index in [&one as &dyn Source, &sh as &dyn Source] {
        let ids: Vec<String> = scores(index, "mutex", weights(0.0, 0.0))
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(ids, ["p0"], "only the text match is left");
        let found = Searcher::new(index)
            .find_refined(
                None,
                None,
                "mutex",
                10,
                Mode::Lexical,
                &Refine {
                    ranking: weights(0.0, 1.0),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(found.total, 2, "the heading match and the text match");
    }
}

/// The byte range of section `kind` in a container (header: magic, version, count; then
/// 24-byte entries: kind, reserved, offset, length).
fn section(bytes: &[u8], kind: u32) -> std::ops::Range<usize> {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    (0..u32_at(12) as usize)
        .map(|i| 16 + i * 24)
        .find(|&at| u32_at(at) == kind)
        .map(|at| u64_at(at + 8)..u64_at(at + 8) + u64_at(at + 16))
        .expect("the section is there")
}

#[test]
fn damaged_field_bytes_are_refused() {
    let (ps, vs) = corpus();
    let bytes = build_index(&ps, &vs, "fp", "test").unwrap();
    let fields = section(&bytes, cairn::index::SectionKind::PostingFields as u32);
    assert!(!fields.is_empty(), "titles and headings hold query words");
    // An overlong gap, then a stored zero: each with the checksum made to match.
    for forged in [[0xff, 0xff, 0xff, 0xff], [0, 0, 0, 0]] {
        let mut b = bytes.clone();
        let end = fields.start + forged.len().min(fields.len());
        b[fields.start..end].copy_from_slice(&forged[..end - fields.start]);
        let body = b.len() - 8;
        let crc = crc32fast::hash(&b[..body]);
        b[body..body + 4].copy_from_slice(&crc.to_le_bytes());
        match Index::from_bytes(b) {
            Err(Error::CorruptIndex(m)) => assert!(m.contains("posting fields"), "{m}"),
            other => panic!("a damaged field section loaded: {:?}", other.err()),
        }
    }
}
