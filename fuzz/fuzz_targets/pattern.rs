//! Fuzzes key patterns: compiles the input as a pattern and matches keys made from it.
//!
//! The input is `pattern`, optionally followed by U+0000 and keys separated by U+0000
//! (keys cannot contain it). Keys are also derived from the pattern itself: the
//! pattern, its plain characters, its alternatives, and a few of its prefixes. Checks: compiling fails only on
//! empty or oversize patterns; exact and prefix fast paths mean what they say; every
//! matching key starts with the pattern's literal prefix (the hub's index relies on
//! it); and for keys without line breaks, matching agrees with the A5 rule evaluated
//! directly with the `regex` crate.

#![no_main]

use libfuzzer_sys::fuzz_target;
use regex::{Regex, RegexBuilder};
use ripplekv_core::pattern::MAX_PATTERN_BYTES;
use ripplekv_core::{Pattern, PatternKind};

const META: &[char] = &[
    '.', '^', '$', '|', '?', '*', '+', '(', ')', '[', ']', '{', '}', '\\',
];

/// The compiled-size limit of pattern.rs, so the reference falls back where it does.
const MAX_COMPILED_BYTES: usize = 256 * 1024;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let source = parts.next().unwrap_or_default();
    let compiled = match Pattern::compile(source) {
        Ok(compiled) => compiled,
        Err(_) => {
            assert!(source.is_empty() || source.len() > MAX_PATTERN_BYTES);
            return;
        }
    };
    let plain: String = source.chars().filter(|c| !META.contains(c)).collect();
    let mut keys: Vec<String> = parts.map(str::to_owned).collect();
    keys.push(source.to_owned());
    keys.push(plain.clone());
    // A few prefixes, not all: every key costs two regex runs, and patterns reach
    // 1 KiB, so all prefixes would cut the exec rate by two orders of magnitude.
    let cuts: Vec<usize> = source.char_indices().map(|(at, _)| at).collect();
    let step = (cuts.len() / 6).max(1);
    keys.extend(cuts.iter().step_by(step).map(|&at| source[..at].to_owned()));
    keys.extend(source.split('|').map(|alternative| {
        alternative
            .chars()
            .filter(|c| !META.contains(c))
            .collect::<String>()
    }));
    let reference = reference(source);
    for key in &keys {
        let matched = compiled.matches(key);
        match compiled.kind() {
            PatternKind::Exact(exact) => assert_eq!(matched, key == exact),
            PatternKind::Prefix(prefix) => assert_eq!(matched, key.starts_with(prefix.as_str())),
            PatternKind::Regex(_) | PatternKind::Glob(_) => {}
        }
        if matched {
            assert!(
                key.starts_with(compiled.literal_prefix()),
                "{source:?} matches {key:?} outside its literal prefix {:?}",
                compiled.literal_prefix()
            );
        }
        // With a line break the rule's `.*` is ambiguous (RippleKV's wildcard
        // crosses it); without one, the rule as written decides.
        if let Some(reference) = reference.as_ref().filter(|_| !key.contains('\n')) {
            assert_eq!(matched, reference.is_match(key), "{source:?} on {key:?}");
        }
    }
});

/// PROTOCOL.md A5 as written: each `*` not after `.` or `\` becomes `.*`, anchored;
/// a pattern that does not compile is literal text with `*` as the wildcard. `None`
/// when this direct reading cannot decide (see the end).
fn reference(source: &str) -> Option<Regex> {
    let mut expanded = String::new();
    let mut previous = None;
    for c in source.chars() {
        if c == '*' && previous != Some('.') && previous != Some('\\') {
            expanded.push_str(".*");
        } else {
            expanded.push(c);
        }
        previous = Some(c);
    }
    // "Does not compile" is about the pattern on its own: pasted into the anchors,
    // `a)|(b` would compile (as `^(?:a)|(b)$`), though it is no regex.
    let compiles = |regex: &str| {
        RegexBuilder::new(regex)
            .size_limit(MAX_COMPILED_BYTES)
            .dfa_size_limit(MAX_COMPILED_BYTES)
            .build()
    };
    if compiles(&expanded).is_err() {
        let pieces: Vec<String> = source.split('*').map(regex::escape).collect();
        let glob = Regex::new(&format!("^{}$", pieces.join("(?s:.*)")));
        return Some(glob.expect("escaped text compiles"));
    }
    // A regex that compiles alone but not anchored this way (an `(?x)` comment eating
    // the closing `)$`) is one this direct reading cannot decide.
    compiles(&format!("^(?:{expanded})$")).ok()
}
