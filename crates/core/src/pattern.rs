//! Key patterns, as used by token access patterns and subscriptions (PROTOCOL.md A5).
//!
//! The rule: a pattern is a regular expression in which every `*` not preceded by `.`
//! or `\` means `.*`, matched against the whole key. So `sub-test-*`, `^product:*$`,
//! `^(product|user):*$`, `^user:[0-9]+$`, `^ns:.*$` and plain keys all mean what their
//! authors expect. A pattern that does not compile falls back to a literal match in
//! which `*` is the only wildcard.
//!
//! Compiling also classifies the pattern, so the fan-out hub can index it: a plain
//! key is [`PatternKind::Exact`], a plain prefix followed by one final `*` is
//! [`PatternKind::Prefix`], anything else must be run as a matcher. Regexes are
//! compiled with a size limit; the `regex` crate matches in linear time, so no pattern
//! can make matching slow.

use regex::{Regex, RegexBuilder};

use crate::Error;

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 1024;
/// Most memory one compiled pattern may take.
const MAX_COMPILED_BYTES: usize = 256 * 1024;

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    kind: PatternKind,
    /// Text every matching key starts with (for regexes and globs), so an index can
    /// skip the pattern for keys that do not start with it.
    literal_prefix: String,
}

/// How a pattern matches, from cheapest to most general.
#[derive(Debug, Clone)]
pub enum PatternKind {
    /// Matches exactly this key.
    Exact(String),
    /// Matches every key starting with this (possibly empty) prefix.
    Prefix(String),
    /// A full-string regular expression.
    Regex(Regex),
    /// The fallback for patterns that are not valid regexes: literal text, with `*`
    /// matching any run of characters. Holds the literal pieces between the stars.
    Glob(Vec<String>),
}

impl Pattern {
    /// Compiles a pattern by the rule above. Fails only on empty or oversize patterns.
    pub fn compile(source: &str) -> Result<Pattern, Error> {
        if source.is_empty() {
            return Err(Error::invalid("Pattern must not be empty"));
        }
        if source.len() > MAX_PATTERN_BYTES {
            return Err(Error::invalid(format!(
                "Pattern is {} bytes; the limit is {MAX_PATTERN_BYTES} bytes",
                source.len()
            )));
        }
        let kind = classify_plain(source).unwrap_or_else(|| {
            let expanded = expand_stars(source);
            RegexBuilder::new(&format!("^(?:{expanded})$"))
                .size_limit(MAX_COMPILED_BYTES)
                .dfa_size_limit(MAX_COMPILED_BYTES)
                .build()
                .map_or_else(|_| glob(source), PatternKind::Regex)
        });
        let literal_prefix = match &kind {
            PatternKind::Exact(_) | PatternKind::Prefix(_) => String::new(),
            PatternKind::Regex(_) => regex_literal_prefix(source),
            PatternKind::Glob(pieces) => pieces.first().cloned().unwrap_or_default(),
        };
        Ok(Pattern {
            source: source.to_owned(),
            kind,
            literal_prefix,
        })
    }

    /// For regexes and globs: text every matching key starts with (may be empty).
    pub fn literal_prefix(&self) -> &str {
        &self.literal_prefix
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// How it matches.
    pub fn kind(&self) -> &PatternKind {
        &self.kind
    }

    /// True when `key` matches the whole pattern.
    pub fn matches(&self, key: &str) -> bool {
        match &self.kind {
            PatternKind::Exact(exact) => key == exact,
            PatternKind::Prefix(prefix) => key.starts_with(prefix.as_str()),
            PatternKind::Regex(regex) => regex.is_match(key),
            PatternKind::Glob(pieces) => glob_matches(pieces, key),
        }
    }
}

const META: &[char] = &[
    '.', '^', '$', '|', '?', '*', '+', '(', ')', '[', ']', '{', '}', '\\',
];

/// Recognises the cheap cases: a plain key, or a plain prefix plus one final star,
/// optionally anchored with `^` and `$` (which a full match implies anyway).
fn classify_plain(source: &str) -> Option<PatternKind> {
    let body = source.strip_prefix('^').unwrap_or(source);
    let body = body.strip_suffix('$').unwrap_or(body);
    if body.is_empty() {
        return None;
    }
    if !body.contains(META) {
        return Some(PatternKind::Exact(body.to_owned()));
    }
    let prefix = body.strip_suffix('*')?;
    // A star after '.' or '\' is regex syntax, not the wildcard.
    if prefix.ends_with(['.', '\\']) || prefix.contains(META) {
        return None;
    }
    Some(PatternKind::Prefix(prefix.to_owned()))
}

/// The literal text a regex source forces at the start of every match: plain
/// characters up to the first metacharacter. A character made optional by `?` or
/// `{` is dropped; a top-level `|` means there is no common prefix at all.
fn regex_literal_prefix(source: &str) -> String {
    if has_top_level_alternation(source) {
        return String::new();
    }
    let body = source.strip_prefix('^').unwrap_or(source);
    let mut prefix = String::new();
    for c in body.chars() {
        if !META.contains(&c) {
            prefix.push(c);
            continue;
        }
        if matches!(c, '?' | '{') {
            prefix.pop();
        }
        // '*' after a plain character is this dialect's wildcard; '+' keeps one copy.
        break;
    }
    prefix
}

/// True when `|` appears outside any group or character class.
fn has_top_level_alternation(source: &str) -> bool {
    let (mut depth, mut in_class, mut escaped) = (0usize, false, false);
    for c in source.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            _ if in_class => {}
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

/// Replaces every `*` not preceded by `.` or `\` with `.*`.
fn expand_stars(source: &str) -> String {
    let mut expanded = String::with_capacity(source.len() + 8);
    let mut previous = None;
    for c in source.chars() {
        if c == '*' && !matches!(previous, Some('.' | '\\')) {
            expanded.push_str(".*");
        } else {
            expanded.push(c);
        }
        previous = Some(c);
    }
    expanded
}

/// The literal fallback: pieces between stars; a single trailing star is a prefix.
fn glob(source: &str) -> PatternKind {
    let pieces: Vec<String> = source.split('*').map(str::to_owned).collect();
    match pieces.as_slice() {
        [exact] => PatternKind::Exact(exact.clone()),
        [prefix, last] if last.is_empty() => PatternKind::Prefix(prefix.clone()),
        _ => PatternKind::Glob(pieces),
    }
}

fn glob_matches(pieces: &[String], key: &str) -> bool {
    let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else {
        return false;
    };
    if pieces.len() == 1 {
        return key == first;
    }
    if !key.starts_with(first.as_str()) || key.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &key[first.len()..key.len() - last.len()];
    if !key.ends_with(last.as_str()) {
        return false;
    }
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece.as_str()) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, matching: &[&str], other: &[&str]) {
        let compiled = Pattern::compile(pattern).unwrap();
        for key in matching {
            assert!(compiled.matches(key), "{pattern:?} should match {key:?}");
        }
        for key in other {
            assert!(
                !compiled.matches(key),
                "{pattern:?} should not match {key:?}"
            );
        }
    }

    #[test]
    fn examples_of_the_protocol() {
        check(
            "sub-test-*",
            &["sub-test-", "sub-test-1", "sub-test-a:b"],
            &["sub-tes", "xsub-test-1"],
        );
        check(
            "^product:*$",
            &["product:", "product:42"],
            &["products:1", "user:1"],
        );
        check(
            "^(product|user):*$",
            &["product:1", "user:2"],
            &["order:1", "xuser:1"],
        );
        check(
            "^user:[0-9]+$",
            &["user:1", "user:123"],
            &["user:", "user:1a", "user:x"],
        );
        check("^ns:.*$", &["ns:", "ns:anything"], &["ns", "other:ns:"]);
        check("user:1", &["user:1"], &["user:10", "user:", "xuser:1"]);
    }

    #[test]
    fn classification_feeds_the_index() {
        assert!(
            matches!(Pattern::compile("user:1").unwrap().kind(), PatternKind::Exact(k) if k == "user:1")
        );
        assert!(
            matches!(Pattern::compile("^user:1$").unwrap().kind(), PatternKind::Exact(k) if k == "user:1")
        );
        assert!(
            matches!(Pattern::compile("todos-*").unwrap().kind(), PatternKind::Prefix(p) if p == "todos-")
        );
        assert!(
            matches!(Pattern::compile("^product:*$").unwrap().kind(), PatternKind::Prefix(p) if p == "product:")
        );
        assert!(
            matches!(Pattern::compile("*").unwrap().kind(), PatternKind::Prefix(p) if p.is_empty())
        );
        assert!(matches!(
            Pattern::compile("^ns:.*$").unwrap().kind(),
            PatternKind::Regex(_)
        ));
        assert!(matches!(
            Pattern::compile("a.b").unwrap().kind(),
            PatternKind::Regex(_)
        ));
        assert!(matches!(
            Pattern::compile("a*b").unwrap().kind(),
            PatternKind::Regex(_)
        ));
    }

    #[test]
    fn dot_is_a_regex_wildcard_and_escapes_work() {
        check("a.b", &["a.b", "axb"], &["ab", "a.bc"]);
        check(r"a\.b", &["a.b"], &["axb"]);
        check(r"file\*", &["file*"], &["file", "filex"]);
        check(".*", &["", "anything"], &[]);
        check("a*b*c", &["abc", "a-b-c", "aXXbYYc"], &["ab", "acb"]);
    }

    #[test]
    fn invalid_regexes_fall_back_to_literal_with_star_wildcard() {
        check("a[b", &["a[b"], &["ab", "a[bc"]);
        check(
            "price($*",
            &["price($", "price($10"],
            &["price(", "price10"],
        );
        check("(x*y[", &["(xy[", "(x--y["], &["(xy", "xy["]);
        assert!(
            matches!(Pattern::compile("a[*").unwrap().kind(), PatternKind::Prefix(p) if p == "a[")
        );
        assert!(matches!(
            Pattern::compile("(x*y[").unwrap().kind(),
            PatternKind::Glob(_)
        ));
    }

    #[test]
    fn literal_prefixes_let_an_index_skip_regexes() {
        let prefix = |source: &str| {
            Pattern::compile(source)
                .unwrap()
                .literal_prefix()
                .to_owned()
        };
        assert_eq!(prefix("^user:[0-9]+$"), "user:");
        assert_eq!(prefix("^ns:.*$"), "ns:");
        assert_eq!(prefix("todo-*-done"), "todo-");
        assert_eq!(
            prefix("abc?d.*"),
            "ab",
            "an optional character is not part of it"
        );
        assert_eq!(prefix("ab{0,2}c.*"), "a");
        assert_eq!(prefix("ab+c.*"), "ab");
        assert_eq!(prefix("^(product|user):*$"), "");
        assert_eq!(
            prefix("abc|xyz.*"),
            "",
            "top-level alternation has no common prefix"
        );
        assert_eq!(prefix("ab(c|d).*"), "ab");
        assert_eq!(prefix("(x*y["), "(x", "globs use their first literal piece");
        // Every key the pattern matches starts with its prefix.
        for (source, key) in [
            ("^user:[0-9]+$", "user:42"),
            ("ab(c|d).*", "abdzz"),
            ("ab+c.*", "abbbc"),
        ] {
            let pattern = Pattern::compile(source).unwrap();
            assert!(pattern.matches(key) && key.starts_with(pattern.literal_prefix()));
        }
    }

    #[test]
    fn hostile_patterns_are_bounded() {
        assert!(Pattern::compile("").is_err());
        assert!(Pattern::compile(&"a".repeat(MAX_PATTERN_BYTES + 1)).is_err());
        // Too large to compile within the size limit: falls back to a literal match.
        let bomb = "(a{1000}){1000}";
        let compiled = Pattern::compile(bomb).unwrap();
        assert!(!matches!(compiled.kind(), PatternKind::Regex(_)));
        assert!(compiled.matches(bomb));
        // Catastrophic-backtracking shapes are linear time in the regex crate.
        let nested = Pattern::compile("^(a+)+$").unwrap();
        assert!(!nested.matches(&format!("{}b", "a".repeat(10_000))));
    }
}
