//! Key patterns, as used by token access patterns and subscriptions (PROTOCOL.md A5).
//!
//! The rule: a pattern is a regular expression in which every `*` not preceded by `.`
//! or `\` means `.*`, matched against the whole key. So `sub-test-*`, `^product:*$`,
//! `^(product|user):*$`, `^user:[0-9]+$`, `^ns:.*$` and plain keys all mean what their
//! authors expect. A pattern that does not compile falls back to a literal match in
//! which `*` is the only wildcard. Either way the `*` wildcard matches any run of
//! characters, line breaks included, so the prefix, regex and glob forms of a pattern
//! agree on every key (an explicit `.` keeps its regex meaning).
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
pub const MAX_COMPILED_BYTES: usize = 256 * 1024;

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
        let (kind, literal_prefix) = match classify_plain(source) {
            Some(plain) => (plain, String::new()),
            None => match compile_regex(source) {
                Some((regex, prefix)) => (PatternKind::Regex(regex), prefix),
                None => {
                    let glob = glob(source);
                    let prefix = match &glob {
                        PatternKind::Glob(pieces) => pieces.first().cloned().unwrap_or_default(),
                        _ => String::new(),
                    };
                    (glob, prefix)
                }
            },
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

/// The regex a pattern means, and the literal text every key it matches starts
/// with; `None` when it is not a valid regex (or too large), so the glob rule applies.
///
/// The pattern is parsed on its own and anchored as a syntax tree, not by pasting it
/// into `^(?:...)$`: pasted, `a)|(b` would close the group early and leave `(b)$`
/// unanchored at the start (matching any key ending in "b"), and an `(?x)` comment
/// would swallow the closing `)$`.
///
/// Every `*` not after `.` or `\` becomes a wildcard that also crosses line breaks,
/// so `a*` (run as a prefix) and `a*b` (run as a regex) agree on keys holding `\n`.
/// Only wildcards the regex parser sees as a real `.` get that flag: a `*` inside a
/// character class (`[a*]`) or an `(?x)` comment stays the plain text it was.
fn compile_regex(source: &str) -> Option<(Regex, String)> {
    use regex_syntax::hir::{Hir, Look};
    let (expanded, inserted) = expand_stars(source);
    let ast = regex_syntax::ast::parse::Parser::new()
        .parse(&expanded)
        .ok()?;
    let dots = regex_syntax::ast::visit(&ast, Dots(Vec::new())).ok()?;
    let mut rewritten = String::with_capacity(expanded.len() + 8 * inserted.len());
    for (at, c) in expanded.char_indices() {
        if inserted.binary_search(&at).is_ok() && dots.binary_search(&at).is_ok() {
            rewritten.push_str("(?s:.)");
        } else {
            rewritten.push(c);
        }
    }
    let hir = regex_syntax::Parser::new().parse(&rewritten).ok()?;
    let anchored = Hir::concat(vec![Hir::look(Look::Start), hir, Hir::look(Look::End)]);
    let regex = RegexBuilder::new(&anchored.to_string())
        .size_limit(MAX_COMPILED_BYTES)
        .dfa_size_limit(MAX_COMPILED_BYTES)
        .build()
        .ok()?;
    Some((regex, literal_prefix_of(&anchored)))
}

/// Collects the offsets of every `.` (any character) node of a regex, in order.
struct Dots(Vec<usize>);

impl regex_syntax::ast::Visitor for Dots {
    type Output = Vec<usize>;
    type Err = std::convert::Infallible;

    fn finish(mut self) -> Result<Vec<usize>, Self::Err> {
        self.0.sort_unstable();
        Ok(self.0)
    }

    fn visit_pre(&mut self, ast: &regex_syntax::ast::Ast) -> Result<(), Self::Err> {
        if let regex_syntax::ast::Ast::Dot(span) = ast {
            self.0.push(span.start.offset);
        }
        Ok(())
    }
}

/// The literal text every match of a regex starts with: the longest common prefix
/// of the prefix literals the regex engine itself would extract, which accounts for
/// alternations, optional parts, case folding and `(?x)` comments. Cut back to whole
/// characters, since literals are bytes.
fn literal_prefix_of(hir: &regex_syntax::hir::Hir) -> String {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let literals = Extractor::new().kind(ExtractKind::Prefix).extract(hir);
    let bytes = literals.longest_common_prefix().unwrap_or_default();
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(err) => String::from_utf8_lossy(&bytes[..err.valid_up_to()]).into_owned(),
    }
}

/// Replaces every `*` not preceded by `.` or `\` with `.*`; also returns the offsets
/// (in the result) of the `.` of each `.*` it wrote, in order.
fn expand_stars(source: &str) -> (String, Vec<usize>) {
    let mut expanded = String::with_capacity(source.len() + 8);
    let mut inserted = Vec::new();
    let mut previous = None;
    for c in source.chars() {
        if c == '*' && !matches!(previous, Some('.' | '\\')) {
            inserted.push(expanded.len());
            expanded.push_str(".*");
        } else {
            expanded.push(c);
        }
        previous = Some(c);
    }
    (expanded, inserted)
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
    // Both ends are checked before slicing: only a key that really ends with `last`
    // is cut at a char boundary there (a multi-byte last character may not be).
    if !key.starts_with(first.as_str())
        || !key.ends_with(last.as_str())
        || key.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &key[first.len()..key.len() - last.len()];
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
    fn glob_fallback_does_not_cut_inside_a_character() {
        // Found by the property tests: "*[" is a glob with last piece "[", and the
        // key's end was sliced before checking it ended with "[", which panicked when
        // the key's last character was wider than "[" (here 4 bytes).
        check("*[", &["[", "\u{10350}["], &["\u{10350}", "é", ""]);
        check("é*(", &["é(", "éé("], &["é", "\u{10350}", "éé"]);
    }

    #[test]
    fn star_wildcard_crosses_line_breaks_in_every_form() {
        // Found by the property tests: `a*` (a prefix) matched "a\nb" but `a*b*c` (a
        // regex, where the star had become a newline-blind `.*`) refused "ab\nc".
        check("a*", &["a\nb"], &["\na"]);
        check("a*b*c", &["ab\nc", "a\nb\nc"], &["ab\n"]);
        check("^(x|y):*$", &["x:\n"], &["z:\n"]);
        check("a[b*", &["a[b\n"], &["a[\n"]);
        // An explicit dot keeps its regex meaning; a star inside a class is literal.
        check("^ns:.*$", &["ns:x"], &["ns:\n"]);
        check("a[*]", &["a*"], &["a\n", "a(", "as"]);
    }

    #[test]
    fn literal_prefix_sees_through_extended_mode_comments() {
        // Found by the property tests: in `(?x)` mode `#` starts a comment, so the
        // `(` below is not a group and `|cd` is a top-level alternative; the old text
        // scan gave the prefix "ab", and the hub would never offer "cd" to it.
        let pattern = Pattern::compile("ab(?x)#(\n|cd").unwrap();
        assert!(pattern.matches("cd"));
        assert_eq!(pattern.literal_prefix(), "");
        assert_eq!(Pattern::compile("(abc).*").unwrap().literal_prefix(), "abc");
    }

    #[test]
    fn a_pattern_cannot_break_out_of_its_anchors() {
        // Found by fuzzing: pasted into "^(?:...)$", "x)|(.*" became the valid regex
        // "^(?:x)|(.*)$", whose second branch matches every key. On its own it is not
        // a regex (unbalanced parentheses), so it is the literal text it looks like.
        check("x)|(.*", &["x)|(.*", "x)|(.-anything"], &["anything", "x"]);
        check("a)|(b", &["a)|(b"], &["b", "zzb", "a"]);
        // An (?x) comment running to the end no longer swallows the closing anchors.
        check("(?x)ab # comment", &["ab"], &["ab # comment", "abc"]);
        assert!(matches!(
            Pattern::compile("(?x)ab # comment").unwrap().kind(),
            PatternKind::Regex(_)
        ));
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
