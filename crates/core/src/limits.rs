//! Size and content rules for keys and values (PROTOCOL.md A3).
//!
//! Keys are 1..=`max_key_bytes` bytes of UTF-8 without U+0000 (so every backend,
//! PostgreSQL text included, can hold them); values are non-empty strings of at most
//! `max_value_bytes`. RANGE bounds are checked more loosely: paging clients append
//! U+0000 to the last key, so bounds may contain it and may be one byte longer.

use crate::Error;

/// The default largest value, in bytes.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 64 * 1024;
/// The default longest key, in bytes.
pub const DEFAULT_MAX_KEY_BYTES: usize = 512;
/// RANGE page size when the client gives none.
pub const DEFAULT_RANGE_LIMIT: usize = 100;
/// Largest RANGE page; larger requests are clamped to it.
pub const MAX_RANGE_LIMIT: usize = 1000;

/// The configured limits on keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest key, in bytes of UTF-8.
    pub max_key_bytes: usize,
    /// Largest value, in bytes of UTF-8.
    pub max_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: DEFAULT_MAX_KEY_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

impl Limits {
    /// Checks a key that will be read or written.
    pub fn check_key(&self, key: &str) -> Result<(), Error> {
        if key.is_empty() {
            return Err(Error::invalid("Key must not be empty"));
        }
        if key.len() > self.max_key_bytes {
            return Err(Error::invalid(format!(
                "Key is {} bytes; the limit is {} bytes",
                key.len(),
                self.max_key_bytes
            )));
        }
        if key.contains('\0') {
            return Err(Error::invalid("Key must not contain U+0000"));
        }
        Ok(())
    }

    /// Checks a value that will be stored (or appended, or merged into a stored one).
    pub fn check_value(&self, value: &str) -> Result<(), Error> {
        if value.is_empty() {
            return Err(Error::invalid("Value must not be empty"));
        }
        if value.len() > self.max_value_bytes {
            return Err(Error::invalid(format!(
                "Value is {} bytes; the limit is {} bytes",
                value.len(),
                self.max_value_bytes
            )));
        }
        Ok(())
    }

    /// Checks one bound of a RANGE request. U+0000 is allowed, and one extra byte, so
    /// that "last key + \u{0}" paging works on keys of the maximum length.
    pub fn check_range_bound(&self, name: &str, bound: &str) -> Result<(), Error> {
        if bound.is_empty() {
            return Err(Error::invalid(format!("{name} must not be empty")));
        }
        if bound.len() > self.max_key_bytes + 1 {
            return Err(Error::invalid(format!(
                "{name} is {} bytes; the limit is {} bytes",
                bound.len(),
                self.max_key_bytes + 1
            )));
        }
        Ok(())
    }

    /// Turns a client's optional page size into the one used: default 100, clamped to 1000.
    pub fn range_limit(requested: Option<i64>) -> Result<usize, Error> {
        match requested {
            None => Ok(DEFAULT_RANGE_LIMIT),
            Some(n) if n < 1 => Err(Error::invalid(format!(
                "limit must be a positive integer, got {n}"
            ))),
            Some(n) => Ok(usize::try_from(n).map_or(MAX_RANGE_LIMIT, |n| n.min(MAX_RANGE_LIMIT))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let limits = Limits::default();
        assert!(limits.check_key("a").is_ok());
        assert!(limits.check_key("user:1/ !@#$%^&*()").is_ok());
        assert!(limits.check_key(&"k".repeat(512)).is_ok());
        assert!(limits.check_key(&"k".repeat(513)).is_err());
        assert!(limits.check_key("").is_err());
        assert!(limits.check_key("a\0b").is_err());
    }

    #[test]
    fn values() {
        let limits = Limits::default();
        assert!(limits.check_value("x").is_ok());
        assert!(limits.check_value(&"v".repeat(65536)).is_ok());
        let err = limits.check_value(&"v".repeat(102_400)).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("102400"));
        assert!(limits.check_value("").is_err());
    }

    #[test]
    fn range_bounds_allow_nul_and_one_extra_byte() {
        let limits = Limits::default();
        let paged = format!("{}\0", "k".repeat(512));
        assert!(limits.check_range_bound("key", &paged).is_ok());
        assert!(limits.check_range_bound("endKey", "").is_err());
    }

    #[test]
    fn range_limit_defaults_and_clamps() {
        assert_eq!(Limits::range_limit(None), Ok(100));
        assert_eq!(Limits::range_limit(Some(5)), Ok(5));
        assert_eq!(Limits::range_limit(Some(5000)), Ok(1000));
        assert_eq!(Limits::range_limit(Some(i64::MAX)), Ok(1000));
        assert!(Limits::range_limit(Some(0)).is_err());
        assert!(Limits::range_limit(Some(-3)).is_err());
    }
}
