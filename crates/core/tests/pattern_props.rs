//! Property tests of key patterns (`Pattern`, PROTOCOL.md A5).
//!
//! The compiler classifies patterns into fast paths (exact key, prefix, regex, glob
//! fallback) so the hub can index them; these properties check that the fast paths
//! never change what a pattern means. Meaning is taken from a reference built straight
//! from the A5 rule with the `regex` crate: every `*` not preceded by `.` or `\`
//! becomes a wildcard, the whole key must match, and a pattern that does not compile
//! is literal text with `*` as the only wildcard. Also: compiling never panics, plain
//! keys match only themselves, `prefix*` matches exactly the keys starting with the
//! prefix, and every matching key starts with the pattern's `literal_prefix`.

// A property that fails panics; that is how proptest reports it.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use ripplekv_core::pattern::MAX_PATTERN_BYTES;
use ripplekv_core::Pattern;

mod a5_reference;

use a5_reference::{reference, META};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// Which keys the reference decides for `pattern`: all of them when the pattern has
/// no dot, escape or flag group of its own (every dot in the reference is then a
/// wildcard, so `dot_all` is exactly right); otherwise the keys without line breaks,
/// on which the two readings of the wildcard agree.
fn applicable(pattern: &str, key: &str) -> (bool, bool) {
    let only_wildcard_dots = !pattern.contains(['.', '\\']) && !pattern.contains("(?");
    (
        only_wildcard_dots || !key.contains('\n'),
        only_wildcard_dots,
    )
}

/// Text made mostly of regex syntax, so patterns are valid, invalid, anchored,
/// grouped and starred in every combination.
fn pattern_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(
            prop_oneof![
                3 => prop::sample::select(vec!['a', 'b', 'c', ':', '-', '1', ' ', '\n', 'é']),
                2 => prop::sample::select(META.to_vec()),
                1 => prop::sample::select(vec!['0', '9', ',', 'd', 'w', 's', 'x', '#', '?', 'i']),
            ],
            1..16,
        )
        .prop_map(|chars| chars.into_iter().collect()),
        1 => prop::sample::select(vec![
            "sub-test-*", "^product:*$", "^(product|user):*$", "^user:[0-9]+$", "^ns:.*$",
            "user:1", "a*b*c", "a[b", "price($*", "(x*y[", r"file\*", ".*", "*", "^*$",
            "a.b", "(a{1000}){1000}", r"\w{60}", "ab(?x)#(\n|cd", "(?i)ab*", "x)|(.*",
            "a)|(b", "(?x)ab # c", ")(", "a|b*",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// Keys a pattern is likely to match or nearly match: the pattern itself, its plain
/// characters, its prefixes, its alternatives, its metacharacters replaced by short
/// runs, with text around them, line breaks included.
fn keys_for(pattern: &str) -> impl Strategy<Value = Vec<String>> {
    let plain = |text: &str| -> String { text.chars().filter(|c| !META.contains(c)).collect() };
    let pattern = pattern.to_owned();
    let piece = prop::sample::select(vec!["", "a", "b", "1", ":", "\n", "x\ny", "é", "[", "*"]);
    let fill = prop::collection::vec(piece.clone(), 16);
    prop::collection::vec(
        (0..8usize, piece.clone(), piece, fill, any::<String>()),
        1..10,
    )
    .prop_map(move |choices| {
        choices
            .into_iter()
            .map(|(how, before, after, fill, noise)| {
                let cut = pattern
                    .char_indices()
                    .map(|(at, _)| at)
                    .nth(noise.len() % (pattern.chars().count() + 1))
                    .unwrap_or(pattern.len());
                let alternatives: Vec<&str> = pattern.split('|').collect();
                let mut fill = fill.iter().cycle();
                match how {
                    0 => pattern.clone(),
                    1 => plain(&pattern),
                    2 => format!("{before}{}{after}", plain(&pattern)),
                    3 => format!("{}{after}", &pattern[..cut]),
                    4 => plain(alternatives[noise.len() % alternatives.len()]),
                    5 => pattern
                        .chars()
                        .map(|c| match META.contains(&c) {
                            true => (*fill.next().unwrap()).to_owned(),
                            false => c.to_string(),
                        })
                        .collect(),
                    6 => format!("{}{after}{before}", plain(&pattern)),
                    _ => noise,
                }
            })
            .collect()
    })
}

fn plain_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9:/ _#@!%&=,;<>'\"~`-]{1,12}",
        any::<String>().prop_map(|s| s.chars().filter(|c| !META.contains(c)).collect()),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn compile_never_panics(source in prop_oneof![pattern_text(), any::<String>()]) {
        let compiled = Pattern::compile(&source);
        let refusable = source.is_empty() || source.len() > MAX_PATTERN_BYTES;
        prop_assert_eq!(compiled.is_err(), refusable, "{:?}", source);
        if let Ok(pattern) = compiled {
            prop_assert_eq!(pattern.source(), source.as_str());
            pattern.matches(&source);
            pattern.matches("");
        }
    }

    #[test]
    fn plain_keys_match_only_themselves(
        exact in plain_text().prop_filter("non-empty", |s| !s.is_empty()),
        suffix in "[a-z\n]{1,3}",
        other in any::<String>(),
    ) {
        let pattern = Pattern::compile(&exact).unwrap();
        prop_assert!(pattern.matches(&exact));
        let (longer, earlier) = (format!("{exact}{suffix}"), format!("{suffix}{exact}"));
        prop_assert!(!pattern.matches(&longer));
        prop_assert!(!pattern.matches(&earlier));
        prop_assert_eq!(pattern.matches(&other), other == exact);
        let shorter: String = exact.chars().skip(1).collect();
        prop_assert!(!pattern.matches(&shorter));
    }

    #[test]
    fn star_suffix_is_a_prefix_match(
        prefix in prop_oneof![plain_text(), Just(String::new())],
        suffix in prop_oneof![any::<String>(), "[a-z\n]{0,4}"],
        other in any::<String>(),
        anchored in any::<bool>(),
    ) {
        let source = if anchored { format!("^{prefix}*$") } else { format!("{prefix}*") };
        let pattern = Pattern::compile(&source).unwrap();
        let key = format!("{prefix}{suffix}");
        prop_assert!(pattern.matches(&key), "{:?} should match {:?}", source, key);
        prop_assert_eq!(pattern.matches(&other), other.starts_with(&prefix), "{:?} vs {:?}", source, other);
    }

    #[test]
    fn agrees_with_the_reference_rule(
        (source, keys) in pattern_text()
            .prop_filter("compilable size", |s| !s.is_empty() && s.len() <= MAX_PATTERN_BYTES)
            .prop_flat_map(|source| (Just(source.clone()), keys_for(&source)))
    ) {
        let pattern = Pattern::compile(&source).unwrap();
        for key in &keys {
            let (decided, dot_all) = applicable(&source, key);
            if !decided {
                continue;
            }
            let Some(reference) = reference(&source, dot_all) else {
                continue;
            };
            prop_assert_eq!(
                pattern.matches(key),
                reference.is_match(key),
                "pattern {:?} ({:?}) on key {:?}", source, pattern.kind(), key
            );
        }
    }

    #[test]
    fn matching_keys_start_with_the_literal_prefix(
        (source, keys) in pattern_text()
            .prop_filter("compilable size", |s| !s.is_empty() && s.len() <= MAX_PATTERN_BYTES)
            .prop_flat_map(|source| (Just(source.clone()), keys_for(&source)))
    ) {
        let pattern = Pattern::compile(&source).unwrap();
        for key in keys.iter().filter(|key| pattern.matches(key)) {
            prop_assert!(
                key.starts_with(pattern.literal_prefix()),
                "{:?} matches {:?} but the literal prefix is {:?}", source, key, pattern.literal_prefix()
            );
        }
    }
}
