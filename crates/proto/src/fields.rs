//! Reading the fields of a request or REST body, with errors that name the field and
//! say what was wrong: shared by the WebSocket request parser and the REST bodies.

use serde_json::value::RawValue;

pub(crate) fn string_field(name: &str, raw: Option<&RawValue>) -> Result<String, String> {
    let raw = raw.ok_or_else(|| format!("Missing field '{name}'"))?;
    serde_json::from_str(raw.get()).map_err(|_| string_error(name, raw.get()))
}

/// Why a field that should be a string did not decode as one. The outer parse has
/// already checked the string's syntax (escapes, control characters), so a JSON string
/// fails here only when a `\u` escape is a lone UTF-16 surrogate (`"\ud800"`), which
/// no Unicode text can hold. serde_json words that variously ("unexpected end of hex
/// escape"), so it is said plainly here rather than as "not a string".
pub(crate) fn string_error(name: &str, text: &str) -> String {
    match json_kind(text) {
        "a string" => not_unicode(name),
        kind => format!("Field '{name}' must be a string, got {kind}"),
    }
}

/// The error for a JSON string field that escapes a lone surrogate.
pub(crate) fn not_unicode(name: &str) -> String {
    format!(
        "Field '{name}' is not valid Unicode: a \\u escape is a lone surrogate \
         (U+D800 to U+DFFF without its pair)"
    )
}

/// A JSON number that is a 64-bit signed integer; everything else is named precisely.
pub(crate) fn integer(name: &str, raw: &RawValue) -> Result<i64, String> {
    let text = raw.get();
    match serde_json::from_str::<serde_json::Number>(text) {
        Ok(number) if number.is_i64() => Ok(number.as_i64().unwrap_or_default()),
        // The literal as sent: a huge integer would otherwise print as "1e+23".
        Ok(number) if number.is_u64() || looks_integral(text) => Err(format!(
            "Field '{name}' is out of range: {} does not fit in a 64-bit signed integer",
            text.trim()
        )),
        // JSON (like JavaScript and JSON Schema) does not tell 5 from 5.0 or 5e0, and
        // some clients always write numbers as floats: an integral value is an integer,
        // as far as a double holds integers exactly (2^53).
        Ok(number) if number.as_f64().is_some_and(is_exact_integer) => {
            Ok(number.as_f64().unwrap_or_default() as i64)
        }
        Ok(number) if number.as_f64().is_some_and(|value| value.fract() == 0.0) => Err(format!(
            "Field '{name}' is out of range: {} is too large to be exact unless written as a plain integer",
            text.trim()
        )),
        Ok(number) => Err(format!("Field '{name}' must be an integer, got {number}")),
        Err(_) if json_kind(text) == "a number" => Err(format!(
            "Field '{name}' is out of range: {text} does not fit in a 64-bit signed integer"
        )),
        Err(_) => Err(format!(
            "Field '{name}' must be an integer, got {}",
            json_kind(text)
        )),
    }
}

/// True for a float holding an integer that a double represents exactly.
fn is_exact_integer(value: f64) -> bool {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    value.fract() == 0.0 && value.abs() <= EXACT
}

/// True for number literals without fraction or exponent (large ones parse as f64).
fn looks_integral(text: &str) -> bool {
    !text.contains(['.', 'e', 'E'])
}

pub(crate) fn json_kind(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

pub(crate) fn describe_json_error(text: &str, err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => format!("Invalid JSON: {err}"),
        Category::Data if !text.trim_start().starts_with('{') => {
            format!("Request must be a JSON object, got {}", json_kind(text))
        }
        Category::Data => format!("Invalid request: {err}"),
    }
}

/// An optional array of strings (`null` counts as absent).
pub(crate) fn string_list(name: &str, raw: Option<&RawValue>) -> Result<Vec<String>, String> {
    match raw {
        None => Ok(Vec::new()),
        Some(raw) => serde_json::from_str::<Option<Vec<String>>>(raw.get())
            .map(Option::unwrap_or_default)
            .map_err(|_| list_error(name, raw)),
    }
}

/// Why a field is not an array of strings. The outer parse accepted its text, so if
/// every element is a JSON string, one of them escapes a lone surrogate: say so rather
/// than name a type that is right.
fn list_error(name: &str, raw: &RawValue) -> String {
    let all_strings = serde_json::from_str::<Vec<&RawValue>>(raw.get())
        .is_ok_and(|items| items.iter().all(|item| item.get().starts_with('"')));
    if all_strings {
        not_unicode(name)
    } else {
        format!("Field '{name}' must be an array of strings")
    }
}
