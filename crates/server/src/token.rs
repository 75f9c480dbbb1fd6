//! Signed, stateless WebSocket tokens (PROTOCOL.md A5).
//!
//! A token is `base64url(payload || HMAC-SHA256(secret, payload))` without padding,
//! where the payload is a small JSON object: the subscribe patterns, the access
//! pattern, and the expiry. Any node holding the secret can verify a token; nothing is
//! stored. Changing one byte breaks the MAC, so forged or altered tokens are refused.
//!
//! Verified tokens are compiled once (their patterns turned into matchers) and cached
//! by token text, so a token reused by many connections is never recompiled.
//!
//! Rotating the secret: a server started with a new secret and the old one as
//! `previous` signs with the new one and still accepts tokens signed with the old one
//! until the grace period ends, so clients holding old tokens are not cut off at once.
//! A token accepted through the previous secret is valid until its own expiry or the
//! end of the grace period, whichever comes first.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use ripplekv_core::{Error, Pattern};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;
const MAC_BYTES: usize = 32;
/// Compiled tokens kept; the cache is emptied when it reaches this size.
const CACHE_CAPACITY: usize = 10_000;
/// Most subscribe patterns one token may carry.
pub(crate) const MAX_TOKEN_PATTERNS: usize = 1000;

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// Keys and patterns whose changes are pushed to the connection.
    #[serde(rename = "s")]
    pub(crate) subscribe: Vec<String>,
    /// Keys the connection may read and write; `None` allows none.
    #[serde(rename = "a")]
    pub(crate) access: Option<String>,
    /// Expiry, in milliseconds since the Unix epoch.
    #[serde(rename = "e")]
    pub(crate) expires_ms: u64,
}

/// A verified token with its patterns compiled.
#[derive(Debug)]
pub(crate) struct CompiledToken {
    pub(crate) subscribe: Vec<Pattern>,
    pub(crate) access: Option<Pattern>,
    /// When the token stops being accepted, in milliseconds since the Unix epoch.
    pub(crate) expires_ms: u64,
    /// The token's MAC: identifies it (for rate limits) without holding its grants.
    pub(crate) mac: [u8; MAC_BYTES],
    /// For a token signed with the previous secret: when the grace period ends, and
    /// with it every connection the token opened.
    pub(crate) retires_at_ms: Option<u64>,
}

/// A secret being retired: still accepted for verification until `until_ms`.
#[derive(Debug)]
struct Previous {
    secret: Vec<u8>,
    until_ms: u64,
}

/// Issues and verifies tokens with one secret (and perhaps the one it replaced).
#[derive(Debug)]
pub(crate) struct Tokens {
    secret: Vec<u8>,
    previous: Option<Previous>,
    lifetime: Duration,
    cache: RwLock<HashMap<String, Arc<CompiledToken>>>,
}

impl Tokens {
    pub(crate) fn new(secret: Vec<u8>, lifetime: Duration) -> Self {
        Tokens {
            secret,
            previous: None,
            lifetime,
            cache: RwLock::default(),
        }
    }

    /// Also accepts tokens signed with `secret` until `until_ms`.
    pub(crate) fn with_previous(mut self, secret: Vec<u8>, until_ms: u64) -> Self {
        self.previous = Some(Previous { secret, until_ms });
        self
    }

    fn mac(secret: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!())
    }

    /// Issues a token for the given grants, valid from `now_ms` for the lifetime.
    pub(crate) fn issue(
        &self,
        subscribe: Vec<String>,
        access: Option<String>,
        now_ms: u64,
    ) -> Result<String, Error> {
        if subscribe.len() > MAX_TOKEN_PATTERNS {
            return Err(Error::invalid(format!(
                "A token may carry at most {MAX_TOKEN_PATTERNS} subscribe keys and patterns"
            )));
        }
        for pattern in subscribe.iter().chain(access.iter()) {
            Pattern::compile(pattern)?;
        }
        let lifetime_ms = u64::try_from(self.lifetime.as_millis()).unwrap_or(u64::MAX);
        let claims = Claims {
            subscribe,
            access,
            expires_ms: now_ms.saturating_add(lifetime_ms),
        };
        let mut bytes = serde_json::to_vec(&claims).map_err(Error::internal)?;
        let mut mac = Self::mac(&self.secret);
        mac.update(&bytes);
        bytes.extend_from_slice(&mac.finalize().into_bytes());
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Verifies a token and returns it compiled; `None` if forged, malformed or expired.
    pub(crate) fn verify(&self, token: &str, now_ms: u64) -> Option<Arc<CompiledToken>> {
        let cached = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned();
        let compiled = match cached {
            Some(compiled) => compiled,
            None => {
                let compiled = Arc::new(self.verify_uncached(token, now_ms)?);
                let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
                cache.insert(token.to_owned(), Arc::clone(&compiled));
                compiled
            }
        };
        (now_ms < compiled.expires_ms).then_some(compiled)
    }

    fn verify_uncached(&self, token: &str, now_ms: u64) -> Option<CompiledToken> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let split = bytes.len().checked_sub(MAC_BYTES)?;
        let (payload, tag) = bytes.split_at(split);
        let signed_by = |secret: &[u8]| {
            let mut mac = Self::mac(secret);
            mac.update(payload);
            mac.verify_slice(tag).is_ok() // constant-time comparison
        };
        let accepted_until = if signed_by(&self.secret) {
            None
        } else {
            match &self.previous {
                Some(previous) if now_ms < previous.until_ms && signed_by(&previous.secret) => {
                    Some(previous.until_ms)
                }
                _ => return None,
            }
        };
        let claims: Claims = serde_json::from_slice(payload).ok()?;
        Some(CompiledToken {
            subscribe: claims
                .subscribe
                .iter()
                .map(|source| Pattern::compile(source))
                .collect::<Result<_, _>>()
                .ok()?,
            access: claims
                .access
                .as_deref()
                .map(Pattern::compile)
                .transpose()
                .ok()?,
            expires_ms: claims.expires_ms.min(accepted_until.unwrap_or(u64::MAX)),
            mac: tag.try_into().ok()?,
            retires_at_ms: accepted_until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(b"secret".to_vec(), Duration::from_secs(60))
    }

    #[test]
    fn issued_tokens_verify_and_grant_what_they_say() {
        let tokens = tokens();
        let token = tokens
            .issue(
                vec!["user:1".into(), "todos-*".into()],
                Some("^user:*$".into()),
                1_000,
            )
            .unwrap();
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let compiled = tokens.verify(&token, 2_000).unwrap();
        assert_eq!(compiled.subscribe.len(), 2);
        assert!(compiled.access.as_ref().unwrap().matches("user:7"));
        assert_eq!(compiled.expires_ms, 61_000);
    }

    #[test]
    fn expired_tokens_are_refused_even_when_cached() {
        let tokens = tokens();
        let token = tokens.issue(vec![], None, 0).unwrap();
        assert!(tokens.verify(&token, 59_999).is_some());
        assert!(tokens.verify(&token, 60_000).is_none());
    }

    #[test]
    fn any_changed_byte_is_refused() {
        let tokens = tokens();
        let token = tokens.issue(vec!["k".into()], Some("k".into()), 0).unwrap();
        let mut bytes = token.clone().into_bytes();
        for at in 0..bytes.len() {
            let original = bytes[at];
            bytes[at] = if original == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes.clone()).unwrap();
            assert!(
                tokens.verify(&altered, 1).is_none(),
                "byte {at} altered still verifies"
            );
            bytes[at] = original;
        }
        let other = Tokens::new(b"other secret".to_vec(), Duration::from_secs(60));
        assert!(
            other.verify(&token, 1).is_none(),
            "another secret must not verify it"
        );
        assert!(tokens.verify("", 1).is_none());
        assert!(tokens.verify("not base64!", 1).is_none());
    }

    #[test]
    fn a_previous_secret_is_accepted_until_the_grace_period_ends() {
        let old = Tokens::new(b"old".to_vec(), Duration::from_secs(60));
        let old_token = old.issue(vec![], Some("k".into()), 0).unwrap();
        let rotated = Tokens::new(b"new".to_vec(), Duration::from_secs(60))
            .with_previous(b"old".to_vec(), 30_000);
        // Accepted during the grace period, but only until it ends, even from the cache.
        let compiled = rotated.verify(&old_token, 1_000).unwrap();
        assert_eq!(compiled.expires_ms, 30_000);
        assert_eq!(compiled.retires_at_ms, Some(30_000));
        assert!(rotated.verify(&old_token, 29_999).is_some());
        assert!(rotated.verify(&old_token, 30_000).is_none());
        // Uncached, after the grace period: refused outright.
        let late = Tokens::new(b"new".to_vec(), Duration::from_secs(60))
            .with_previous(b"old".to_vec(), 30_000);
        assert!(late.verify(&old_token, 30_001).is_none());
        // New tokens are signed with the new secret only.
        let new_token = rotated.issue(vec![], None, 0).unwrap();
        assert!(old.verify(&new_token, 1).is_none());
        assert_eq!(
            rotated.verify(&new_token, 40_000).unwrap().expires_ms,
            60_000
        );
        // A secret that is neither is refused.
        let stranger = Tokens::new(b"x".to_vec(), Duration::from_secs(60));
        assert!(rotated
            .verify(&stranger.issue(vec![], None, 0).unwrap(), 1)
            .is_none());
    }

    #[test]
    fn too_many_patterns_are_refused() {
        let many = vec!["k".to_owned(); MAX_TOKEN_PATTERNS + 1];
        assert_eq!(tokens().issue(many, None, 0).unwrap_err().status(), 400);
    }
}
