//! Keeps the error section of `docs/PROTOCOL.md` true to the code.
//!
//! Clients match on error codes and texts, so the protocol reference lists every one
//! of them, and a text that changes in the code without the reference would silently
//! mislead them. This test reads the reference and the sources of `ripplekv-proto`,
//! `ripplekv-core` and `ripplekv-server` and checks three things:
//! 1. the error table: for every variant of [`Error`] (found in `error.rs` itself, so
//!    a new variant cannot be forgotten), a row holds its `status()` together with its
//!    `client_message()`; variants with fields are built with a sentinel value that
//!    stands for a placeholder, so only the fixed part of the text is compared;
//! 2. the 400 catalogue: every 400 reason written as a literal in those sources
//!    (`invalid("…")`, `Invalid("…")`, `bad_request("…")`, with or without `format!`,
//!    the `reply::error(400, …)` texts of the WebSocket layer, and the plain `String`
//!    errors of the request parsers in `request.rs`, `rest.rs` and `fields.rs`) is listed there,
//!    and every text listed there still exists in the code;
//! 3. the other fixed texts a client can see, WebSocket close reasons, appear in the
//!    doc (every refusal, HTTP and credential ones included, is an `Error` variant and
//!    so is checked by 1).
//!
//! Format placeholders are normalised on both sides: `{anything}` becomes `{}` and a
//! Debug placeholder `{x:?}` becomes `"{}"` (strings print quoted), so the doc may name
//! its placeholders as it likes. Texts are compared as whole `code spans`. Sources are
//! scanned with a small lexer that knows comments, strings, raw strings and char
//! literals, and skips `#[cfg(test)] mod` blocks, whose texts no client sees.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ripplekv_core::Error;

/// A number that stands for a placeholder in the texts of variants with fields.
const SENTINEL: u64 = 4_242_424_242;

/// Heading text of the section holding the table of `Error` variants.
const ERROR_TABLE: &str = "Error table";
/// Heading text of the section listing every 400 reason.
const CATALOGUE: &str = "400 catalogue";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("cannot read {path:?}: {err}"))
}

fn doc() -> String {
    read(&workspace().join("docs/PROTOCOL.md"))
}

/// One value of every variant, by name. Variants with fields get the sentinel.
fn representatives() -> Vec<(&'static str, Error)> {
    vec![
        ("Invalid", Error::Invalid(SENTINEL.to_string())),
        ("Unprocessable", Error::Unprocessable(SENTINEL.to_string())),
        ("NotFound", Error::NotFound),
        ("Forbidden", Error::Forbidden),
        ("Conflict", Error::Conflict { current: SENTINEL }),
        (
            "RateLimited",
            Error::RateLimited {
                retry_after_ms: SENTINEL,
            },
        ),
        ("Unavailable", Error::Unavailable),
        ("Internal", Error::Internal(format!("detail {SENTINEL}"))),
        ("MissingCredentials", Error::MissingCredentials),
        ("InvalidApiKey", Error::InvalidApiKey),
        ("InvalidToken", Error::InvalidToken),
        ("TooManyConnections", Error::TooManyConnections),
        (
            "TooManySnapshots",
            Error::TooManySnapshots {
                limit: SENTINEL as usize,
            },
        ),
        (
            "BodyTooLarge",
            Error::BodyTooLarge {
                limit: SENTINEL as usize,
            },
        ),
        ("NoSuchRoute", Error::NoSuchRoute),
        ("MethodNotAllowed", Error::MethodNotAllowed),
        (
            "NotWebSocket",
            Error::NotWebSocket {
                detail: SENTINEL.to_string(),
                upgrade_required: true,
            },
        ),
    ]
}

// ---------------------------------------------------------------------------------
// Reading the doc.

/// The lines of the section whose heading contains `title`, up to the next heading of
/// the same or a higher level.
fn section<'a>(doc: &'a str, title: &str) -> Vec<&'a str> {
    let level = |line: &str| {
        let hashes = line.bytes().take_while(|&b| b == b'#').count();
        (hashes > 0 && line[hashes..].starts_with(' ')).then_some(hashes)
    };
    let mut lines = doc.lines();
    let Some(own) = lines
        .by_ref()
        .find_map(|line| level(line).filter(|_| line.contains(title)))
    else {
        panic!("docs/PROTOCOL.md has no heading containing {title:?}");
    };
    lines
        .take_while(|line| level(line).is_none_or(|other| other > own))
        .collect()
}

/// The contents of the `code spans` of a piece of markdown.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The cells of a table row, or `None` for other lines and separator rows.
fn cells(line: &str) -> Option<Vec<&str>> {
    let row = line.trim().strip_prefix('|')?;
    let row = row.strip_suffix('|').unwrap_or(row);
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    let separator = cells
        .iter()
        .all(|cell| !cell.is_empty() && cell.chars().all(|c| matches!(c, '-' | ':')));
    (!separator).then_some(cells)
}

/// Placeholders to `{}` (Debug ones to `"{}"`), `{{` and `}}` to braces.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut inner = String::new();
                for next in chars.by_ref() {
                    if next == '}' {
                        break;
                    }
                    inner.push(next);
                }
                out.push_str(if inner.ends_with(":?") {
                    "\"{}\""
                } else {
                    "{}"
                });
            }
            other => out.push(other),
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// Reading the sources.

/// A piece of Rust source: code with whitespace and comments removed, or the decoded
/// value of a string literal.
#[derive(Debug, PartialEq)]
enum Token {
    Code(String),
    Literal(String),
}

/// Splits Rust source into code and string literals. Good enough for this
/// repository's sources: comments (nested too), char and byte literals, lifetimes,
/// normal, byte and raw strings, escapes and line continuations.
fn lex(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut code = String::new();
    let mut i = 0;
    let flush = |code: &mut String, tokens: &mut Vec<Token>| {
        if !code.is_empty() {
            tokens.push(Token::Code(std::mem::take(code)));
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let raw = matches!(word.as_str(), "r" | "br" | "cr")
                && matches!(chars.get(i), Some('"' | '#'));
            if raw {
                flush(&mut code, &mut tokens);
                let (value, end) = raw_string(&chars, i);
                tokens.push(Token::Literal(value));
                i = end;
            } else if matches!(word.as_str(), "b" | "c") && chars.get(i) == Some(&'"') {
                flush(&mut code, &mut tokens);
                let (value, end) = string(&chars, i);
                tokens.push(Token::Literal(value));
                i = end;
            } else {
                code.push_str(&word);
            }
        } else if c == '"' {
            flush(&mut code, &mut tokens);
            let (value, end) = string(&chars, i);
            tokens.push(Token::Literal(value));
            i = end;
        } else if c == '\'' {
            // A char literal ('x', '\n', '"') or a lifetime ('a).
            let end = if next == Some('\\') {
                (i + 2..chars.len())
                    .find(|&j| chars[j] == '\'')
                    .map(|j| j + 1)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            let end = end.unwrap_or(i + 1);
            code.extend(&chars[i..end]);
            i = end;
        } else {
            code.push(c);
            i += 1;
        }
    }
    flush(&mut code, &mut tokens);
    tokens
}

/// A normal string starting at the `"` at `at`: its value and the index after it.
fn string(chars: &[char], at: usize) -> (String, usize) {
    let mut value = String::new();
    let mut i = at + 1;
    while i < chars.len() {
        match chars[i] {
            '"' => return (value, i + 1),
            '\\' => {
                i += 1;
                match chars.get(i) {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some('r') => value.push('\r'),
                    Some('0') => value.push('\0'),
                    Some('x') => {
                        let hex: String = chars[i + 1..i + 3].iter().collect();
                        let byte = u8::from_str_radix(&hex, 16).expect("a \\x escape");
                        value.push(char::from(byte));
                        i += 2;
                    }
                    Some('u') => {
                        let close = (i..chars.len())
                            .find(|&j| chars[j] == '}')
                            .expect("a \\u{...} escape");
                        let hex: String = chars[i + 2..close].iter().collect();
                        let code = u32::from_str_radix(&hex, 16).expect("a \\u escape");
                        value.push(char::from_u32(code).expect("a scalar value"));
                        i = close;
                    }
                    Some('\n') => {
                        // A line continuation: the newline and the indent go away.
                        while chars.get(i + 1).is_some_and(|c| c.is_whitespace()) {
                            i += 1;
                        }
                    }
                    Some(&other) => value.push(other),
                    None => break,
                }
                i += 1;
            }
            other => {
                value.push(other);
                i += 1;
            }
        }
    }
    panic!("unterminated string literal")
}

/// A raw string whose `#`s or `"` start at `at`: its value and the index after it.
fn raw_string(chars: &[char], at: usize) -> (String, usize) {
    let hashes = chars[at..].iter().take_while(|&&c| c == '#').count();
    let body = at + hashes + 1;
    let closing: Vec<char> = std::iter::once('"')
        .chain(std::iter::repeat_n('#', hashes))
        .collect();
    let end = (body..chars.len())
        .find(|&j| chars[j..].starts_with(&closing))
        .expect("a terminated raw string");
    (chars[body..end].iter().collect(), end + closing.len())
}

/// One source file as code with literal markers, its test module cut off.
struct Source {
    /// Relative to the workspace root, for messages.
    path: String,
    /// Code without whitespace; literal `n` is written `\u{1}n\u{2}`.
    code: String,
    literals: Vec<String>,
}

impl Source {
    fn load(root: &Path, path: &Path) -> Source {
        let mut code = String::new();
        let mut literals = Vec::new();
        for token in lex(&read(path)) {
            match token {
                Token::Code(text) => code.push_str(&text),
                Token::Literal(value) => {
                    let _ = write!(code, "\u{1}{}\u{2}", literals.len());
                    literals.push(value);
                }
            }
        }
        if let Some(tests) = code.find("#[cfg(test)]mod") {
            code.truncate(tests);
        }
        let relative = path.strip_prefix(root).unwrap_or(path);
        Source {
            path: relative.display().to_string().replace('\\', "/"),
            code,
            literals,
        }
    }

    /// Every literal still in the code: (code before it, the literal, code after it).
    fn uses(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.code.match_indices('\u{1}').map(|(at, _)| {
            let close = at + self.code[at..].find('\u{2}').expect("a closed marker");
            let index: usize = self.code[at + 1..close].parse().expect("a marker index");
            (
                &self.code[..at],
                self.literals[index].as_str(),
                &self.code[close + 1..],
            )
        })
    }

    /// The literal whose marker starts `code`, if one does.
    fn literal_at(&self, code: &str) -> Option<&str> {
        let rest = code.strip_prefix('\u{1}')?;
        let index: usize = rest[..rest.find('\u{2}')?].parse().ok()?;
        self.literals.get(index).map(String::as_str)
    }

    fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// Every `.rs` file under the `src` directories of the crates whose texts clients see.
/// The sources of the HPKV faces, whose reasons PROTOCOL.md catalogues.
fn sources() -> Vec<Source> {
    let socketio = workspace().join(SOCKETIO_SOURCES);
    sources_in(&["crates/proto/src", "crates/core/src", "crates/server/src"])
        .into_iter()
        .filter(|source| !workspace().join(&source.path).starts_with(&socketio))
        .collect()
}

/// The sources of the socket.io face, whose own reasons docs/collections.md catalogues.
const SOCKETIO_SOURCES: &str = "crates/server/src/socketio";

fn sources_in(dirs: &[&str]) -> Vec<Source> {
    let root = workspace();
    let mut files = Vec::new();
    for dir in dirs {
        collect_rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    files.iter().map(|path| Source::load(&root, path)).collect()
}

fn collect_rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|err| panic!("cannot list {dir:?}: {err}"));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect_rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The request parsers return their 400 reasons as plain `String`s, not as
/// `Error::invalid`: in these files every `format!`, `Err`, `ok_or` and
/// `.to_owned()` literal is such a reason. (`reply.rs` and `snapshot.rs`, also in
/// `ripplekv-proto`, hold reply shapes and the backup format instead.)
fn is_request_parser(source: &Source) -> bool {
    source.path.starts_with("crates/proto/")
        && matches!(source.file_name(), "request.rs" | "rest.rs" | "fields.rs")
}

/// How a text was recognised in the sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// `invalid("…")`, `Invalid("…")`, with or without `format!`.
    Invalid,
    /// `bad_request("…")` of the REST routes, with or without `format!`.
    BadRequest,
    /// `reply::error(400, "…")` of the WebSocket layer.
    SocketReply,
    /// `let text = format!("…")` sent as `reply::error(400, &text, …)`.
    SocketText,
    /// A `String` reason of the request parsers.
    Parser,
    /// A parser reason rewritten by `.replace("…", "…")` (request texts for bodies).
    Rewritten,
    /// A WebSocket close reason.
    CloseReason,
}

/// A client-visible text found in the sources, normalised, and where it is.
#[derive(Debug, Clone)]
struct Found {
    text: String,
    origin: String,
    rule: Rule,
}

/// Every 400 reason written as a literal in the sources.
fn bad_request_texts(sources: &[Source]) -> Vec<Found> {
    let mut found = Vec::new();
    for source in sources {
        let sends_text = source.code.contains("reply::error(400,&text");
        let mut rewrites = Vec::new();
        for (before, literal, after) in source.uses() {
            let ends = |openers: &[&str]| openers.iter().any(|opener| before.ends_with(opener));
            let rule = if ends(&[
                "invalid(",
                "Invalid(",
                "invalid(format!(",
                "Invalid(format!(",
            ]) {
                Some(Rule::Invalid)
            } else if ends(&["bad_request(", "bad_request(format!("]) {
                Some(Rule::BadRequest)
            } else if ends(&["reply::error(400,"]) {
                Some(Rule::SocketReply)
            } else if sends_text && ends(&["lettext=format!("]) {
                Some(Rule::SocketText)
            } else if is_request_parser(source)
                && (ends(&["format!(", "Err(", "ok_or("]) || after.starts_with(".to_owned()"))
            {
                Some(Rule::Parser)
            } else {
                None
            };
            if let Some(rule) = rule {
                found.push(Found {
                    text: normalise(literal),
                    origin: source.path.clone(),
                    rule,
                });
            }
            if is_request_parser(source) && before.ends_with(".replace(") {
                if let Some(to) = after
                    .strip_prefix(',')
                    .and_then(|rest| source.literal_at(rest))
                {
                    rewrites.push((literal.to_owned(), to.to_owned()));
                }
            }
        }
        for (from, to) in rewrites {
            let rewritten: Vec<Found> = found
                .iter()
                .filter(|f| f.rule == Rule::Parser && f.text.contains(&from))
                .map(|f| Found {
                    text: f.text.replace(&from, &to),
                    origin: format!("{}, rewritten in {}", f.origin, source.path),
                    rule: Rule::Rewritten,
                })
                .collect();
            found.extend(rewritten);
        }
    }
    found
}

/// The other fixed texts a client can see: WebSocket close reasons. (Every refusal,
/// HTTP ones and credentials included, is an `Error` variant, checked with the table.)
fn other_client_texts(sources: &[Source]) -> Vec<Found> {
    let mut found = Vec::new();
    for source in sources {
        for (before, literal, _) in source.uses() {
            let close = before.ends_with(',')
                && before
                    .rfind("close(CLOSE_")
                    .is_some_and(|at| !before[at..].contains(')'));
            if close || before.ends_with("letreason=") {
                found.push(Found {
                    text: normalise(literal),
                    origin: source.path.clone(),
                    rule: Rule::CloseReason,
                });
            }
        }
    }
    found
}

/// Fails unless every rule recognised something: a rule that finds nothing means the
/// scanner no longer understands the code, and the checks would pass vacuously.
fn assert_every_rule_found_something(found: &[Found], rules: &[Rule]) {
    let idle: Vec<&Rule> = rules
        .iter()
        .filter(|rule| !found.iter().any(|f| f.rule == **rule))
        .collect();
    assert!(
        idle.is_empty(),
        "the source scan recognised nothing for {idle:?}: the code changed shape, so \
         update the scanner in crates/core/tests/protocol_doc.rs"
    );
}

// ---------------------------------------------------------------------------------
// The checks.

/// The variant names of `pub enum Error`, read from its source.
fn error_variants() -> Vec<String> {
    let source = read(&workspace().join("crates/core/src/error.rs"));
    let body = source
        .split_once("pub enum Error {")
        .expect("crates/core/src/error.rs defines pub enum Error")
        .1;
    body.lines()
        .take_while(|line| line.trim() != "}")
        .filter_map(|line| {
            let line = line.trim();
            line.starts_with(|c: char| c.is_ascii_uppercase()).then(|| {
                line.chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect()
            })
        })
        .collect()
}

#[test]
fn every_error_variant_is_in_the_error_table_with_its_status_and_text() {
    let representatives = representatives();
    let variants = error_variants();
    assert!(!variants.is_empty(), "no variants found in pub enum Error");
    let unknown: Vec<&String> = variants
        .iter()
        .filter(|name| !representatives.iter().any(|(known, _)| known == name))
        .collect();
    assert!(
        unknown.is_empty(),
        "Error variants {unknown:?} have no representative value in \
         crates/core/tests/protocol_doc.rs: add one, and a row with its status and text \
         to the {ERROR_TABLE:?} of docs/PROTOCOL.md"
    );

    let doc = doc();
    let rows: Vec<Vec<&str>> = section(&doc, ERROR_TABLE)
        .into_iter()
        .filter_map(cells)
        .collect();
    let mut missing = Vec::new();
    for (name, error) in &representatives {
        let status = error.status().to_string();
        let text = normalise(&error.client_message().replace(&SENTINEL.to_string(), "{}"));
        let listed = rows.iter().any(|row| {
            row.iter().any(|cell| cell.trim_matches('`') == status)
                && row
                    .iter()
                    .flat_map(|cell| code_spans(cell))
                    .any(|span| normalise(span) == text)
        });
        if !listed {
            missing.push(format!(
                "Error::{name}: no row holds status {status} together with `{text}`"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "the {ERROR_TABLE:?} of docs/PROTOCOL.md disagrees with crates/core/src/error.rs:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_400_reason_of_the_code_is_in_the_catalogue_and_nothing_else_is() {
    let found = bad_request_texts(&sources());
    assert_every_rule_found_something(
        &found,
        &[
            Rule::Invalid,
            Rule::BadRequest,
            Rule::SocketReply,
            Rule::SocketText,
            Rule::Parser,
            Rule::Rewritten,
        ],
    );
    let doc = doc();
    let catalogue = section(&doc, CATALOGUE);
    let listed: Vec<String> = catalogue
        .iter()
        .flat_map(|line| code_spans(line))
        .map(normalise)
        .collect();
    let mut problems = Vec::new();
    for reason in &found {
        if !listed.contains(&reason.text) {
            problems.push(format!(
                "missing `{}` (a 400 reason in {})",
                reason.text, reason.origin
            ));
        }
    }
    // The first cell of each catalogue row names a reason; it must still exist.
    for line in &catalogue {
        let Some(first) = cells(line).and_then(|row| row.first().copied()) else {
            continue;
        };
        for span in code_spans(first) {
            let text = normalise(span);
            if !found.iter().any(|reason| reason.text == text) {
                problems.push(format!(
                    "lists `{text}`, which is no 400 reason in crates/{{proto,core,server}}/src"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the {CATALOGUE:?} of docs/PROTOCOL.md disagrees with the code:\n{}",
        problems.join("\n")
    );
}

/// Heading text of docs/collections.md's list of the socket.io face's own 400 reasons.
const SOCKETIO_CATALOGUE: &str = "400 catalogue of the socket.io face";

#[test]
fn every_400_reason_of_the_socketio_face_is_in_a_catalogue_and_its_own_lists_nothing_else() {
    let found = bad_request_texts(&sources_in(&[SOCKETIO_SOURCES, "crates/collections/src"]));
    assert_every_rule_found_something(&found, &[Rule::Invalid]);
    let own = section_spans(
        &read(&workspace().join("docs/collections.md")),
        SOCKETIO_CATALOGUE,
    );
    let protocol = section_spans(&doc(), CATALOGUE);
    let mut problems = Vec::new();
    for reason in &found {
        if !own.contains(&reason.text) && !protocol.contains(&reason.text) {
            problems.push(format!(
                "missing `{}` (a 400 reason in {})",
                reason.text, reason.origin
            ));
        }
    }
    for text in &own {
        if !found.iter().any(|reason| reason.text == *text) {
            problems.push(format!(
                "lists `{text}`, which the socket.io face never says"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the {SOCKETIO_CATALOGUE:?} of docs/collections.md disagrees with the code:\n{}",
        problems.join("\n")
    );
}

/// The texts in the first cell of each row of a catalogue section, normalised.
fn section_spans(doc: &str, title: &str) -> Vec<String> {
    section(doc, title)
        .iter()
        .filter_map(|line| cells(line).and_then(|row| row.first().copied()))
        .flat_map(code_spans)
        .map(normalise)
        .collect()
}

#[test]
fn every_other_client_visible_text_is_in_the_doc() {
    let found = other_client_texts(&sources());
    assert_every_rule_found_something(&found, &[Rule::CloseReason]);
    let doc = doc();
    let spans: Vec<String> = code_spans(&doc).into_iter().map(normalise).collect();
    let missing: Vec<String> = found
        .iter()
        .filter(|text| !spans.contains(&text.text))
        .map(|text| {
            format!(
                "missing `{}` ({:?} in {})",
                text.text, text.rule, text.origin
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/PROTOCOL.md lacks client-visible texts of the code:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_scanner_reads_rust_as_the_checks_need() {
    let tokens = lex(concat!(
        "let a = '\"'; let b = b'\"'; fn f<'a>(x: &'a str) {}\n",
        "// a \"comment\"\n/* nested /* \"too\" */ */\n",
        "invalid(\"plain\"); x(r#\"raw \"quoted\"\"#);\n",
        "y(\"one \\\n        two {n:?} \\u{e9}\");\n",
    ));
    let literals: Vec<&str> = tokens
        .iter()
        .filter_map(|token| match token {
            Token::Literal(value) => Some(value.as_str()),
            Token::Code(_) => None,
        })
        .collect();
    assert_eq!(literals, ["plain", "raw \"quoted\"", "one two {n:?} é"]);
    assert_eq!(
        tokens.first(),
        Some(&Token::Code(
            "leta='\"';letb=b'\"';fnf<'a>(x:&'astr){}invalid(".to_owned()
        ))
    );
    assert_eq!(
        normalise("got {n:?}, {} and {{x}} of {max}"),
        "got \"{}\", {} and {x} of {}"
    );
    assert_eq!(cells("|---|:--:|"), None);
    assert_eq!(
        cells("| 404 | `Record not found` |"),
        Some(vec!["404", "`Record not found`"])
    );
    assert_eq!(code_spans("a `b` c `d`"), ["b", "d"]);
}
