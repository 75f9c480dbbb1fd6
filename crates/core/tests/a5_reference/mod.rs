//! The A5 pattern rule evaluated directly with the `regex` crate: the reference the
//! property tests (`pattern_props.rs`) and the fuzz target (`fuzz/fuzz_targets/
//! pattern.rs`, which includes this file by path) check `Pattern` against.

use regex::{Regex, RegexBuilder};
use ripplekv_core::pattern::MAX_COMPILED_BYTES;

/// The regex metacharacters; a pattern without them is a plain key.
pub(crate) const META: &[char] = &[
    '.', '^', '$', '|', '?', '*', '+', '(', ')', '[', ']', '{', '}', '\\',
];

/// The A5 rule, written directly: every `*` not after `.` or `\` becomes `.*`, the
/// result is anchored and compiled (with the compiler's size limit); a pattern that
/// does not compile is literal text with `*` as the only wildcard. `None` when this
/// direct reading cannot decide (see the end).
///
/// The rule's `.*` does not say whether the wildcard crosses a line break; RippleKV
/// says it does (the hub runs `prefix*` as a plain prefix match, which must agree
/// with the regex form). With `dot_all` the reference's dots cross line breaks, which
/// is right only for patterns whose every dot is a wildcard (see `applicable` in
/// pattern_props.rs).
pub(crate) fn reference(pattern: &str, dot_all: bool) -> Option<Regex> {
    let mut expanded = String::new();
    let mut previous = None;
    for c in pattern.chars() {
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
            .dot_matches_new_line(dot_all)
            .build()
    };
    if compiles(&expanded).is_err() {
        let pieces: Vec<String> = pattern.split('*').map(regex::escape).collect();
        let glob = Regex::new(&format!("^{}$", pieces.join("(?s:.*)")));
        return Some(glob.expect("escaped text compiles"));
    }
    // A regex that compiles alone but not anchored this way (an `(?x)` comment eating
    // the closing `)$`) is one this direct reading cannot decide.
    compiles(&format!("^(?:{expanded})$")).ok()
}
