//! Percent-decoding of paths and query strings, as HPKV clients encode them.
//!
//! Record keys in paths are decoded exactly once. Query strings are form-decoded
//! (`+` is a space); the RANGE bounds are then decoded once more, leniently, because a
//! popular client encodes them twice: only valid `%XX` runs are decoded and `+` stays.

use percent_encoding::percent_decode_str;

/// Decodes a path segment once. `None` if the result is not UTF-8.
pub(crate) fn decode_path(raw: &str) -> Option<String> {
    percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|text| text.into_owned())
}

/// Splits and form-decodes a query string into name/value pairs. Pairs whose bytes
/// are not UTF-8 after decoding are kept raw rather than dropped.
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(name), form_decode(value))
        })
        .collect()
}

fn form_decode(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map_or_else(|_| raw.to_owned(), |text| text.into_owned())
}

/// The second, lenient decoding of a RANGE bound: valid `%XX` runs only, `+` kept.
/// If the result would not be UTF-8 the input is returned unchanged.
pub(crate) fn decode_lenient(text: &str) -> String {
    percent_decode_str(text)
        .decode_utf8()
        .map_or_else(|_| text.to_owned(), |decoded| decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decode_once() {
        assert_eq!(decode_path("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(decode_path("a%252F").as_deref(), Some("a%2F"));
        assert_eq!(decode_path("a+b").as_deref(), Some("a+b"));
        assert_eq!(decode_path("%E2%9C%93").as_deref(), Some("✓"));
        assert_eq!(decode_path("%FF"), None);
    }

    #[test]
    fn query_pairs_form_decode() {
        assert_eq!(
            query_pairs("a=1&b=x+y&c=%2B&d&e="),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "+".into()),
                ("d".into(), "".into()),
                ("e".into(), "".into()),
            ]
        );
    }

    #[test]
    fn double_encoded_bounds() {
        // encodeURIComponent then URLSearchParams: "a b+c/✓%" travels as below.
        let once = &query_pairs("startKey=a%2520b%252Bc%252F%25E2%259C%2593%2525")[0].1;
        assert_eq!(once, "a%20b%2Bc%2F%E2%9C%93%25");
        assert_eq!(decode_lenient(once), "a b+c/✓%");
        // Invalid escapes and '+' survive the lenient pass.
        assert_eq!(decode_lenient("100%zz+1%"), "100%zz+1%");
        assert_eq!(decode_lenient("%FF"), "%FF");
    }
}
