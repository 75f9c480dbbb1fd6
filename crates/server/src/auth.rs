//! API keys, tokens, and who a connection is.
//!
//! Keys are compared in constant time so response timing reveals nothing about a key.
//! A WebSocket upgrade may carry `?apiKey=`, `?token=` or the `x-api-key` header; REST
//! routes use the header. A bad or expired token is refused with 403 (what HPKV clients
//! look for), a missing or bad API key with 401.

use std::sync::Arc;

use axum::http::HeaderMap;
use ripplekv_core::{now_ms, Error};
use subtle::ConstantTimeEq;

use crate::hub::Access;
use crate::rate::Subject;
use crate::token::{CompiledToken, Tokens};
use crate::urlcode;

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub(crate) enum Principal {
    /// Connected with the n-th configured API key: may do anything.
    ApiKey(usize),
    /// Connected with a token: its access pattern and subscriptions.
    Token(Arc<CompiledToken>),
}

impl Principal {
    /// Whom the connection's requests are counted against for rate limits.
    pub(crate) fn subject(&self) -> Subject {
        match self {
            Principal::ApiKey(index) => Subject::ApiKey(*index),
            Principal::Token(token) => Subject::Token(token.mac),
        }
    }

    /// What the connection may read and write.
    pub(crate) fn access(&self) -> Access {
        match self {
            Principal::ApiKey(_) => Access::All,
            Principal::Token(token) => token
                .access
                .clone()
                .map_or(Access::Nothing, Access::Pattern),
        }
    }
}

impl Access {
    /// 403 unless the key may be touched.
    pub(crate) fn check(&self, key: &str) -> Result<(), Error> {
        if self.allows(key) {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }
}

/// The configured API keys.
#[derive(Debug)]
pub(crate) struct ApiKeys(Vec<String>);

impl ApiKeys {
    pub(crate) fn new(keys: Vec<String>) -> Self {
        ApiKeys(keys)
    }

    /// Which of the keys `candidate` is, if any. Every key is compared, in constant
    /// time per key, so the answer's timing does not depend on which key matched.
    pub(crate) fn find(&self, candidate: &str) -> Option<usize> {
        self.0.iter().enumerate().fold(None, |found, (index, key)| {
            let equal = bool::from(key.as_bytes().ct_eq(candidate.as_bytes()));
            found.or(equal.then_some(index))
        })
    }
}

/// Checks the `x-api-key` header of a REST request; returns which key it is.
pub(crate) fn check_header(keys: &ApiKeys, headers: &HeaderMap) -> Result<usize, Error> {
    let key = headers
        .get("x-api-key")
        .ok_or(Error::MissingCredentials)?
        .to_str()
        .map_err(|_| Error::InvalidApiKey)?;
    keys.find(key).ok_or(Error::InvalidApiKey)
}

/// Checks the credentials of a WebSocket upgrade: `?token=`, `?apiKey=`, or the header.
pub(crate) fn check_upgrade(
    keys: &ApiKeys,
    tokens: &Tokens,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Principal, Error> {
    let params = urlcode::query_pairs(query.unwrap_or(""));
    if let Some((_, token)) = params.iter().find(|(name, _)| name == "token") {
        return tokens
            .verify(token, now_ms())
            .map(Principal::Token)
            .ok_or(Error::InvalidToken);
    }
    match params.iter().find(|(name, _)| name == "apiKey") {
        Some((_, key)) => keys
            .find(key)
            .map(Principal::ApiKey)
            .ok_or(Error::InvalidApiKey),
        None => check_header(keys, headers).map(Principal::ApiKey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly() {
        let keys = ApiKeys::new(vec!["alpha".into(), "beta".into()]);
        assert_eq!(keys.find("alpha"), Some(0));
        assert_eq!(keys.find("beta"), Some(1));
        assert_eq!(keys.find("alph"), None);
        assert_eq!(keys.find("alphaa"), None);
        assert_eq!(keys.find(""), None);
    }

    #[test]
    fn upgrade_credentials() {
        let keys = ApiKeys::new(vec!["k1".into()]);
        let tokens = Tokens::new(b"s".to_vec(), std::time::Duration::from_secs(60));
        let none = HeaderMap::new();
        let check = |query: Option<&str>, headers: &HeaderMap| {
            check_upgrade(&keys, &tokens, query, headers).map(|p| matches!(p, Principal::ApiKey(0)))
        };
        assert_eq!(check(Some("apiKey=k1"), &none), Ok(true));
        assert_eq!(check(Some("apiKey=nope"), &none), Err(Error::InvalidApiKey));
        assert_eq!(check(Some("token=abc"), &none), Err(Error::InvalidToken));
        assert_eq!(check(None, &none), Err(Error::MissingCredentials));
        let token = tokens.issue(vec![], Some("k*".into()), now_ms()).unwrap();
        assert_eq!(check(Some(&format!("token={token}")), &none), Ok(false));
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "k1".parse().unwrap());
        assert_eq!(check(None, &headers), Ok(true));
    }
}
