//! API keys and the credentials a request presents.
//!
//! Keys are compared in constant time so response timing reveals nothing about a key.
//! A WebSocket upgrade may carry `?apiKey=`, `?token=` or the `x-api-key` header; REST
//! routes use the header. Tokens arrive with real-time subscriptions; until then any
//! token is refused with 403, the code HPKV clients expect for a bad token.

use axum::http::{HeaderMap, StatusCode};
use subtle::ConstantTimeEq;

use crate::urlcode;

/// The configured API keys.
#[derive(Debug)]
pub(crate) struct ApiKeys(Vec<String>);

impl ApiKeys {
    pub(crate) fn new(keys: Vec<String>) -> Self {
        ApiKeys(keys)
    }

    /// True when `candidate` is one of the keys. Every key is compared, in constant
    /// time per key, so the answer's timing does not depend on which key matched.
    pub(crate) fn accepts(&self, candidate: &str) -> bool {
        self.0.iter().fold(false, |found, key| {
            found | bool::from(key.as_bytes().ct_eq(candidate.as_bytes()))
        })
    }
}

/// Why a request was refused, with the status and message it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    MissingCredentials,
    InvalidApiKey,
    InvalidToken,
}

impl Refusal {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Refusal::MissingCredentials | Refusal::InvalidApiKey => StatusCode::UNAUTHORIZED,
            Refusal::InvalidToken => StatusCode::FORBIDDEN,
        }
    }

    pub(crate) fn message(self) -> &'static str {
        match self {
            Refusal::MissingCredentials => {
                "Missing API key: send the x-api-key header (or ?apiKey= / ?token= on /ws)"
            }
            Refusal::InvalidApiKey => "Invalid API key",
            Refusal::InvalidToken => "Invalid or expired token",
        }
    }
}

/// Checks the `x-api-key` header of a REST request.
pub(crate) fn check_header(keys: &ApiKeys, headers: &HeaderMap) -> Result<(), Refusal> {
    let key = headers
        .get("x-api-key")
        .ok_or(Refusal::MissingCredentials)?
        .to_str()
        .map_err(|_| Refusal::InvalidApiKey)?;
    if keys.accepts(key) {
        Ok(())
    } else {
        Err(Refusal::InvalidApiKey)
    }
}

/// Checks the credentials of a WebSocket upgrade: `?token=`, `?apiKey=`, or the header.
pub(crate) fn check_upgrade(
    keys: &ApiKeys,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    let params = urlcode::query_pairs(query.unwrap_or(""));
    if params.iter().any(|(name, _)| name == "token") {
        return Err(Refusal::InvalidToken);
    }
    match params.iter().find(|(name, _)| name == "apiKey") {
        Some((_, key)) if keys.accepts(key) => Ok(()),
        Some(_) => Err(Refusal::InvalidApiKey),
        None => check_header(keys, headers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly() {
        let keys = ApiKeys::new(vec!["alpha".into(), "beta".into()]);
        assert!(keys.accepts("alpha"));
        assert!(keys.accepts("beta"));
        assert!(!keys.accepts("alph"));
        assert!(!keys.accepts("alphaa"));
        assert!(!keys.accepts(""));
    }

    #[test]
    fn upgrade_credentials() {
        let keys = ApiKeys::new(vec!["k1".into()]);
        let none = HeaderMap::new();
        assert_eq!(check_upgrade(&keys, Some("apiKey=k1"), &none), Ok(()));
        assert_eq!(
            check_upgrade(&keys, Some("apiKey=nope"), &none),
            Err(Refusal::InvalidApiKey)
        );
        assert_eq!(
            check_upgrade(&keys, Some("token=abc"), &none),
            Err(Refusal::InvalidToken)
        );
        assert_eq!(
            check_upgrade(&keys, None, &none),
            Err(Refusal::MissingCredentials)
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "k1".parse().unwrap());
        assert_eq!(check_upgrade(&keys, None, &headers), Ok(()));
    }
}
