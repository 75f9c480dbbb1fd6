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
use ripplekv_core::pattern::MAX_PATTERN_BYTES;
use ripplekv_core::{Pattern, PatternKind};

#[path = "../../crates/core/tests/a5_reference/mod.rs"]
mod a5_reference;

use a5_reference::{reference, META};

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
    let reference = reference(source, false);
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
