//! Filters and sort keys, stored once per index (both layouts: the one-file index's sections,
//! the sharded index's meta file), so a search can narrow and count without the passages.
//!
//! Three sections:
//! - [`SectionKind::Facets`] (JSON [`FacetTable`]): every filter key with its values, sorted,
//!   each with how many passages carry it and the byte length of its list; every sort key
//!   with its distinct values in order.
//! - [`SectionKind::FacetPostings`]: each value's passages, ascending, as LEB128 varint gaps
//!   (the postings' encoding, [`lexical::put_varint`]), one list after another in table order.
//! - [`SectionKind::SortRanks`]: u32 per passage per sort key (key after key): the passage's
//!   value as a rank into the key's values, [`NO_RANK`] where the passage has none.
//!
//! The sections are optional: an index without them (every index written before them) has
//! no filters, and an older reader skips them (unknown section kinds are allowed).
//!
//! A search's filters ([`Filters`]) combine keys with AND; within a key, `any` of some values,
//! `all` of others, `none` of others. They become a bitmap over the passages ([`Allowed`])
//! that every ranking consults before it ranks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::format::{Passage, SectionKind};
use super::lexical;
use super::writer::{json, raw};
use crate::{Error, Result};

/// The rank of a passage without a value for a sort key.
pub const NO_RANK: u32 = u32::MAX;
/// Keys and values longer than this are cut (on a character boundary) when indexed.
pub const MAX_KEY_BYTES: usize = 64;
pub const MAX_VALUE_BYTES: usize = 256;

/// The JSON dictionary of [`SectionKind::Facets`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FacetTable {
    pub filters: Vec<KeyEntry>,
    pub sorts: Vec<SortEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyEntry {
    pub key: String,
    pub values: Vec<ValueEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueEntry {
    pub value: String,
    /// Passages carrying the value.
    pub count: u32,
    /// Byte length of its varint list in [`SectionKind::FacetPostings`].
    pub bytes: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SortEntry {
    pub key: String,
    /// Whether every value parsed as a number (and the order is numeric); else text order.
    pub numeric: bool,
    /// The distinct values, in sort order.
    pub values: Vec<String>,
}

/// One filter key of a loaded index.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterKey {
    pub key: String,
    pub values: Vec<FilterValue>,
}

/// One value of a filter key, with the passages that carry it (ascending).
#[derive(Debug, Clone, PartialEq)]
pub struct FilterValue {
    pub value: String,
    pub passages: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq)]
struct SortColumn {
    key: String,
    numeric: bool,
    values: Vec<String>,
    ranks: Vec<u32>,
}

/// The filters and sort keys of a loaded index. Empty for an index that has none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facets {
    passages: usize,
    filters: Vec<FilterKey>,
    sorts: Vec<SortColumn>,
    /// Every (passage, value number) pair, by passage (values numbered key after key):
    /// counting walks these beside the sorted pool, not every value's list, so a tag cloud
    /// of thousands costs little per search; as long as the lists (bounded by the file's
    /// bytes, whatever passage count a file claims).
    by_passage: Vec<(u32, u32)>,
}

/// `s` trimmed, then cut to `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    crate::search::truncate(s.trim(), max)
}

fn number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// [`number`] for a key whose every value is one (NaN, sorting last, otherwise).
fn num(s: &str) -> f64 {
    number(s).unwrap_or(f64::NAN)
}

/// The facet sections for `passages` (none when no passage has a filter or sort key).
pub fn build(passages: &[Passage]) -> Result<Vec<(SectionKind, Vec<u8>)>> {
    let mut filters: BTreeMap<String, BTreeMap<String, Vec<u32>>> = BTreeMap::new();
    let mut sorts: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for (p, passage) in passages.iter().enumerate() {
        for (key, values) in &passage.filters {
            let key = cut(key, MAX_KEY_BYTES);
            if key.is_empty() {
                continue;
            }
            let by_value = filters.entry(key.to_string()).or_default();
            for value in values {
                let value = cut(value, MAX_VALUE_BYTES);
                if value.is_empty() {
                    continue;
                }
                let list = by_value.entry(value.to_string()).or_default();
                if list.last() != Some(&(p as u32)) {
                    list.push(p as u32);
                }
            }
        }
        for (key, value) in &passage.sort {
            let (key, value) = (cut(key, MAX_KEY_BYTES), cut(value, MAX_VALUE_BYTES));
            if key.is_empty() || value.is_empty() {
                continue;
            }
            let column = sorts
                .entry(key.to_string())
                .or_insert_with(|| vec![None; passages.len()]);
            column[p] = Some(value.to_string());
        }
    }
    filters.retain(|_, v| !v.is_empty());
    if filters.is_empty() && sorts.is_empty() {
        return Ok(Vec::new());
    }
    let mut table = FacetTable::default();
    let mut lists = Vec::new();
    for (key, values) in filters {
        let mut entries = Vec::with_capacity(values.len());
        for (value, list) in values {
            let start = lists.len();
            let mut prev: Option<u32> = None;
            for &p in &list {
                lexical::put_varint(&mut lists, prev.map_or(p, |q| p - q - 1));
                prev = Some(p);
            }
            entries.push(ValueEntry {
                value,
                count: list.len() as u32,
                bytes: (lists.len() - start) as u32,
            });
        }
        table.filters.push(KeyEntry {
            key,
            values: entries,
        });
    }
    let mut ranks: Vec<u32> = Vec::new();
    for (key, column) in sorts {
        let numeric = column.iter().flatten().all(|v| number(v).is_some());
        let mut values: Vec<String> = column.iter().flatten().cloned().collect();
        if numeric {
            values.sort_by(|a, b| num(a).total_cmp(&num(b)));
        } else {
            values.sort();
        }
        values.dedup();
        for v in &column {
            ranks.push(match v {
                Some(v) => values
                    .binary_search_by(|x| {
                        if numeric {
                            num(x).total_cmp(&num(v))
                        } else {
                            x.as_str().cmp(v.as_str())
                        }
                    })
                    .map_err(|_| Error::InvalidArgument(format!("sort key {key}: lost {v}")))?
                    as u32,
                None => NO_RANK,
            });
        }
        table.sorts.push(SortEntry {
            key,
            numeric,
            values,
        });
    }
    Ok(vec![
        (SectionKind::Facets, json(&table, "filter table")?),
        (SectionKind::FacetPostings, lists),
        (SectionKind::SortRanks, raw(&ranks)),
    ])
}

/// `passages` as the passage table stores them: the filters and sort keys live in the facet
/// sections instead.
pub fn for_table(passages: &[Passage]) -> Vec<Passage> {
    passages
        .iter()
        .map(|p| Passage {
            filters: BTreeMap::new(),
            sort: BTreeMap::new(),
            ..p.clone()
        })
        .collect()
}

impl Facets {
    /// Reads the facet sections of an index of `passages` passages: `table` (JSON), `lists`
    /// and `ranks` as stored. Every count, length and passage number is checked.
    pub fn read(passages: usize, table: &[u8], lists: &[u8], ranks: &[u8]) -> Result<Self> {
        let bad = |m: String| Error::CorruptIndex(format!("filter table: {m}"));
        let table: FacetTable = serde_json::from_slice(table).map_err(|e| bad(e.to_string()))?;
        let mut at = 0usize;
        let mut filters = Vec::with_capacity(table.filters.len());
        for KeyEntry { key, values } in table.filters {
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                let end = at
                    .checked_add(v.bytes as usize)
                    .filter(|&e| e <= lists.len())
                    .ok_or_else(|| bad(format!("`{key}` = `{}` runs past its section", v.value)))?;
                // A list cannot hold more passages than bytes (one byte per varint at least).
                if v.count as usize > v.bytes as usize || v.count as usize > passages {
                    return Err(bad(format!("`{key}` = `{}`: implausible count", v.value)));
                }
                let mut list = Vec::with_capacity(v.count as usize);
                let n = lexical::for_each_doc(&lists[at..end], |_, p| list.push(p));
                if n != Some(v.count as usize)
                    || list.last().is_some_and(|&p| p as usize >= passages)
                {
                    return Err(bad(format!(
                        "`{key}` = `{}`: its passages do not decode to {} below {passages}",
                        v.value, v.count
                    )));
                }
                at = end;
                out.push(FilterValue {
                    value: v.value,
                    passages: list,
                });
            }
            filters.push(FilterKey { key, values: out });
        }
        if at != lists.len() {
            return Err(bad(format!(
                "{} bytes of lists, the table accounts for {at}",
                lists.len()
            )));
        }
        if !ranks.len().is_multiple_of(4) {
            return Err(bad(format!("{} bytes of sort ranks", ranks.len())));
        }
        let words: Vec<u32> = ranks
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if Some(words.len()) != table.sorts.len().checked_mul(passages) {
            return Err(bad(format!(
                "{} sort ranks for {} keys of {passages} passages",
                words.len(),
                table.sorts.len()
            )));
        }
        let mut sorts = Vec::with_capacity(table.sorts.len());
        for (i, s) in table.sorts.into_iter().enumerate() {
            let ranks = words[i * passages..(i + 1) * passages].to_vec();
            if ranks
                .iter()
                .any(|&r| r != NO_RANK && r as usize >= s.values.len())
            {
                return Err(bad(format!("sort key `{}`: a rank past its values", s.key)));
            }
            sorts.push(SortColumn {
                key: s.key,
                numeric: s.numeric,
                values: s.values,
                ranks,
            });
        }
        // Invert the lists once: (passage, value number) pairs, by passage.
        let mut by_passage: Vec<(u32, u32)> = (filters.iter().flat_map(|k| &k.values))
            .enumerate()
            .flat_map(|(id, v)| v.passages.iter().map(move |&p| (p, id as u32)))
            .collect();
        by_passage.sort_unstable();
        Ok(Self {
            passages,
            filters,
            sorts,
            by_passage,
        })
    }

    /// The facets in `sections` of `bytes`, if the index has them (all three or none).
    pub(crate) fn from_sections(
        passages: usize,
        bytes: &[u8],
        sections: &BTreeMap<SectionKind, std::ops::Range<usize>>,
    ) -> Result<Self> {
        let get = |k: SectionKind| sections.get(&k).map(|r| &bytes[r.clone()]);
        match (
            get(SectionKind::Facets),
            get(SectionKind::FacetPostings),
            get(SectionKind::SortRanks),
        ) {
            (None, None, None) => Ok(Self {
                passages,
                ..Self::default()
            }),
            (Some(t), Some(l), Some(r)) => Self::read(passages, t, l, r),
            _ => Err(Error::CorruptIndex(
                "the filter sections are incomplete (the table, lists and sort ranks go together)"
                    .into(),
            )),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty() && self.sorts.is_empty()
    }

    /// Every filter key with its values.
    pub fn filters(&self) -> &[FilterKey] {
        &self.filters
    }

    /// The sort keys' names.
    pub fn sort_keys(&self) -> impl Iterator<Item = &str> {
        self.sorts.iter().map(|s| s.key.as_str())
    }

    /// Each filter value's number of passages in the whole index.
    pub fn totals(&self) -> Counts {
        // Maps filled by insertion, not `collect` (whose stable sort would add kilobytes to
        // the keyword engine).
        let mut out = Counts::new();
        for k in &self.filters {
            let mut values = BTreeMap::new();
            for v in &k.values {
                values.insert(v.value.clone(), v.passages.len() as u32);
            }
            out.insert(k.key.clone(), values);
        }
        out
    }

    fn key(&self, key: &str) -> Option<&FilterKey> {
        self.filters.iter().find(|k| k.key == key)
    }

    /// An error naming every key of `filters` this index does not have, and the keys it has.
    fn unknown_keys(&self, filters: &Filters) -> Result<()> {
        let unknown: Vec<String> = (filters.0.keys())
            .filter(|k| self.key(k).is_none())
            .map(|k| format!("`{k}`"))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let known: Vec<String> = self
            .filters
            .iter()
            .map(|k| format!("`{}`", k.key))
            .collect();
        let s = if unknown.len() > 1 { "s" } else { "" };
        Err(Error::InvalidArgument(if known.is_empty() {
            format!(
                "unknown filter key{s} {}: this index has no filters",
                unknown.join(", ")
            )
        } else {
            format!(
                "unknown filter key{s} {}: this index's filter keys are {}",
                unknown.join(", "),
                known.join(", ")
            )
        }))
    }

    /// The passages `filters` let through, or `None` when they ask for nothing. An unknown
    /// key is an error; an unknown value of a known key matches no passage.
    pub fn allowed(&self, filters: &Filters) -> Result<Option<Allowed>> {
        self.unknown_keys(filters)?;
        if filters.is_empty() {
            return Ok(None);
        }
        let n = self.passages;
        let mut out = Allowed::all(n);
        for (key, cond) in &filters.0 {
            let Some(fk) = self.key(key) else { continue };
            let list = |value: &str| fk.values.iter().find(|v| v.value == value);
            if !cond.any.is_empty() {
                let mut any = Allowed::none(n);
                for v in cond.any.iter().filter_map(|v| list(v)) {
                    any.set_all(&v.passages);
                }
                out.and(&any);
            }
            for value in &cond.all {
                let mut one = Allowed::none(n);
                if let Some(v) = list(value) {
                    one.set_all(&v.passages);
                }
                out.and(&one);
            }
            for v in cond.none.iter().filter_map(|v| list(v)) {
                out.clear_all(&v.passages);
            }
        }
        Ok(Some(out))
    }

    /// How many of `pool` (passage numbers, each once) carry each filter value: every key,
    /// with the values that some passage of the pool carries (a value left out counts 0).
    pub fn counts(&self, pool: &[u32]) -> Counts {
        let mut by_id = vec![0u32; self.filters.iter().map(|k| k.values.len()).sum()];
        let mut sorted;
        let pool = if pool.is_sorted() {
            pool
        } else {
            sorted = pool.to_vec();
            sorted.sort_unstable();
            &sorted
        };
        // Both sorted by passage: one merge walk.
        let (mut i, mut j) = (0, 0);
        while i < pool.len() && j < self.by_passage.len() {
            let (p, id) = self.by_passage[j];
            match pool[i].cmp(&p) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    by_id[id as usize] += 1;
                    j += 1;
                }
            }
        }
        let mut out = Counts::new();
        let mut id = 0;
        for k in &self.filters {
            let mut values = BTreeMap::new();
            for v in &k.values {
                if by_id[id] > 0 {
                    values.insert(v.value.clone(), by_id[id]);
                }
                id += 1;
            }
            out.insert(k.key.clone(), values);
        }
        out
    }

    /// Each passage's rank under sort key `key` ([`NO_RANK`] where it has none).
    pub fn sort_ranks(&self, key: &str) -> Result<&[u32]> {
        self.sorts
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.ranks.as_slice())
            .ok_or_else(|| {
                let known: Vec<String> = self.sort_keys().map(|k| format!("`{k}`")).collect();
                Error::InvalidArgument(if known.is_empty() {
                    format!("unknown sort key `{key}`: this index has no sort keys")
                } else {
                    format!(
                        "unknown sort key `{key}`: this index's sort keys are {}",
                        known.join(", ")
                    )
                })
            })
    }

    /// Whether sort key `key`'s values compare as numbers.
    pub fn sort_is_numeric(&self, key: &str) -> bool {
        self.sorts.iter().any(|s| s.key == key && s.numeric)
    }
}

/// Filter values by key, per key in [`Condition`] form: `{ "section": "Guide" }`,
/// `{ "tag": ["rust", "async"] }` (any of them), `{ "tag": { "all": [..], "none": [..] } }`.
/// Keys combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filters(pub BTreeMap<String, Condition>);

impl Filters {
    pub fn is_empty(&self) -> bool {
        self.0.values().all(Condition::is_empty)
    }

    /// Parses the command line's `key=value` (any of the values given for a key) and
    /// `key!=value` (none of them).
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> Result<Self> {
        let mut out = Filters::default();
        for arg in args {
            let arg = arg.as_ref();
            let (key, value, none) = match arg.split_once("!=") {
                Some((k, v)) => (k, v, true),
                None => match arg.split_once('=') {
                    Some((k, v)) => (k, v, false),
                    None => {
                        return Err(Error::InvalidArgument(format!(
                            "filter `{arg}`: expected key=value or key!=value"
                        )))
                    }
                },
            };
            let c = out.0.entry(key.trim().to_string()).or_default();
            let list = if none { &mut c.none } else { &mut c.any };
            list.push(value.trim().to_string());
        }
        Ok(out)
    }
}

/// What one filter key asks: any of `any` (when not empty), all of `all`, none of `none`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Condition {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub any: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub all: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub none: Vec<String>,
}

impl Condition {
    pub fn is_empty(&self) -> bool {
        self.any.is_empty() && self.all.is_empty() && self.none.is_empty()
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Values {
            One(String),
            Many(Vec<String>),
        }
        impl Values {
            fn list(self) -> Vec<String> {
                match self {
                    Values::One(s) => vec![s],
                    Values::Many(v) => v,
                }
            }
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Ops {
            any: Option<Values>,
            all: Option<Values>,
            none: Option<Values>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum In {
            Values(Values),
            Ops(Ops),
        }
        match In::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "a filter is a value, a list of values (any of them), or { any, all, none } \
                 of values",
            )
        })? {
            In::Values(v) => Ok(Condition {
                any: v.list(),
                ..Condition::default()
            }),
            In::Ops(o) => Ok(Condition {
                any: o.any.map(Values::list).unwrap_or_default(),
                all: o.all.map(Values::list).unwrap_or_default(),
                none: o.none.map(Values::list).unwrap_or_default(),
            }),
        }
    }
}

/// An order by a sort key instead of relevance (ties keep relevance order; passages without
/// the key come last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    pub key: String,
    pub descending: bool,
}

impl std::str::FromStr for Sort {
    type Err = Error;
    /// `key`, `key:asc` or `key:desc`.
    fn from_str(s: &str) -> Result<Self> {
        let (key, order) = s.rsplit_once(':').unwrap_or((s, "asc"));
        let descending = match order {
            "asc" => false,
            "desc" => true,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "sort order `{other}`: use asc or desc"
                )))
            }
        };
        Ok(Sort {
            key: key.trim().to_string(),
            descending,
        })
    }
}

/// Counts per filter key and value.
pub type Counts = BTreeMap<String, BTreeMap<String, u32>>;

/// A set of passages, one bit each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    words: Vec<u64>,
    n: usize,
}

impl Allowed {
    pub fn none(n: usize) -> Self {
        Self {
            words: vec![0; n.div_ceil(64)],
            n,
        }
    }

    pub fn all(n: usize) -> Self {
        let mut a = Self {
            words: vec![u64::MAX; n.div_ceil(64)],
            n,
        };
        if !n.is_multiple_of(64) {
            if let Some(last) = a.words.last_mut() {
                *last = (1u64 << (n % 64)) - 1;
            }
        }
        a
    }

    pub fn contains(&self, p: u32) -> bool {
        let p = p as usize;
        p < self.n && self.words[p / 64] & (1 << (p % 64)) != 0
    }

    fn set_all(&mut self, ps: &[u32]) {
        for &p in ps {
            let p = p as usize;
            if p < self.n {
                self.words[p / 64] |= 1 << (p % 64);
            }
        }
    }

    fn clear_all(&mut self, ps: &[u32]) {
        for &p in ps {
            let p = p as usize;
            if p < self.n {
                self.words[p / 64] &= !(1 << (p % 64));
            }
        }
    }

    fn and(&mut self, other: &Allowed) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= b;
        }
    }

    /// How many passages are in the set.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The passages in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros();
                w &= w - 1;
                Some((i * 64) as u32 + b)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(filters: &[(&str, &[&str])], sort: &[(&str, &str)]) -> Passage {
        Passage {
            filters: filters
                .iter()
                .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
                .collect(),
            sort: sort
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Passage::default()
        }
    }

    fn facets(ps: &[Passage]) -> Facets {
        let s = build(ps).unwrap();
        Facets::read(ps.len(), &s[0].1, &s[1].1, &s[2].1).unwrap()
    }

    fn f(json: &str) -> Filters {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn filters_any_all_none_and_counts() {
        let ps = vec![
            passage(
                &[("tag", &["a", "b"]), ("section", &["Guide"])],
                &[("n", "10")],
            ),
            passage(&[("tag", &["a"])], &[("n", "9")]),
            passage(&[("tag", &["b"]), ("section", &["Blog"])], &[("n", "100")]),
            passage(&[], &[]),
        ];
        let fc = facets(&ps);
        let got =
            |json: &str| -> Vec<u32> { fc.allowed(&f(json)).unwrap().unwrap().iter().collect() };
        assert_eq!(got(r#"{"tag": "a"}"#), [0, 1]);
        assert_eq!(got(r#"{"tag": ["a", "b"]}"#), [0, 1, 2]);
        assert_eq!(got(r#"{"tag": {"all": ["a", "b"]}}"#), [0]);
        assert_eq!(got(r#"{"tag": {"none": "a"}}"#), [2, 3]);
        assert_eq!(got(r#"{"tag": "b", "section": "Blog"}"#), [2]);
        assert_eq!(got(r#"{"tag": "nonesuch"}"#), Vec::<u32>::new());
        assert!(fc.allowed(&Filters::default()).unwrap().is_none());
        let e = fc
            .allowed(&f(r#"{"year": "2020"}"#))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`year`") && e.contains("`section`, `tag`"),
            "{e}"
        );
        let counts = fc.counts(&[0, 2, 3]);
        assert_eq!(counts["tag"]["a"], 1);
        assert_eq!(counts["tag"]["b"], 2);
        assert_eq!(counts["section"]["Guide"], 1);
        // Values no passage of the pool carries are left out; every key is there.
        let two = fc.counts(&[0, 1]);
        assert_eq!(two["section"].len(), 1);
        assert_eq!(two["section"]["Guide"], 1);
        assert_eq!(fc.counts(&[3]).len(), 2);
        assert!(fc.counts(&[3])["tag"].is_empty());
        assert_eq!(fc.totals()["tag"]["a"], 2);
        // Numeric sort keys order as numbers, not text.
        assert_eq!(fc.sort_ranks("n").unwrap(), [1, 0, 2, NO_RANK]);
        assert!(fc.sort_is_numeric("n"));
        assert!(fc.sort_ranks("date").is_err());
    }

    #[test]
    fn condition_shapes_and_errors() {
        assert_eq!(f(r#"{"k": "v"}"#).0["k"].any, ["v"]);
        assert_eq!(f(r#"{"k": {"none": ["x", "y"]}}"#).0["k"].none, ["x", "y"]);
        assert!(serde_json::from_str::<Filters>(r#"{"k": {"nany": "v"}}"#).is_err());
        assert!(serde_json::from_str::<Filters>(r#"{"k": 3}"#).is_err());
        let a = Filters::from_args(&["tag=a", "tag=b", "section!=Blog"]).unwrap();
        assert_eq!(a.0["tag"].any, ["a", "b"]);
        assert_eq!(a.0["section"].none, ["Blog"]);
        assert!(Filters::from_args(&["tag"]).is_err());
        assert_eq!(
            "date:desc".parse::<Sort>().unwrap(),
            Sort {
                key: "date".into(),
                descending: true
            }
        );
        assert!("date:sideways".parse::<Sort>().is_err());
    }

    #[test]
    fn damaged_sections_are_refused() {
        let ps = vec![
            passage(&[("tag", &["a"])], &[]),
            passage(&[("tag", &["a"])], &[]),
        ];
        let s = build(&ps).unwrap();
        let (t, l, r) = (&s[0].1, &s[1].1, &s[2].1);
        assert!(Facets::read(2, t, l, r).is_ok());
        // Fewer passages than the lists name, a cut list, extra bytes, foreign ranks.
        assert!(Facets::read(1, t, l, r).is_err());
        assert!(Facets::read(2, t, &l[..l.len() - 1], r).is_err());
        assert!(Facets::read(2, t, &[l.as_slice(), &[0]].concat(), r).is_err());
        assert!(Facets::read(2, t, l, &[0, 0, 0, 0]).is_err());
        assert!(Facets::read(2, b"{", l, r).is_err());
    }

    #[test]
    fn allowed_bits() {
        for n in [0usize, 1, 63, 64, 65, 130] {
            let a = Allowed::all(n);
            assert_eq!(a.count(), n);
            assert_eq!(a.iter().count(), n);
            assert!(!a.contains(n as u32));
        }
    }
}
