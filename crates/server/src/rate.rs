//! Token-bucket rate limits, keyed by who is asking.
//!
//! Each subject (an API key, a token, a client IP) has a bucket holding up to `burst`
//! requests that refills at `per_second`. A request takes one; an empty bucket refuses
//! it and says how long until one is back, which becomes the 429's retry hint. Limits
//! are off unless configured: HPKV clients treat any 429 as a failure.
//!
//! Buckets live in one map behind a mutex; a check is a hash lookup and a little
//! arithmetic. The map is bounded: when it grows past [`MAX_SUBJECTS`], buckets that
//! have refilled completely (their subjects are idle, so forgetting them changes
//! nothing) are dropped, and if that is not enough the map is emptied, which at worst
//! grants a burst again rather than letting memory grow with every address seen.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Subjects remembered before idle buckets are dropped.
const MAX_SUBJECTS: usize = 100_000;

/// A rate: requests per second, and how many may come at once after a quiet period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl FromStr for RateLimit {
    type Err = String;

    /// Parses `RATE` or `RATE:BURST` (requests per second; burst defaults to the rate).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (rate, burst) = match text.split_once(':') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (text, None),
        };
        let per_second: f64 = rate
            .trim()
            .parse()
            .ok()
            .filter(|rate: &f64| rate.is_finite() && *rate > 0.0)
            .ok_or_else(|| format!("rate limit {text:?}: expected RATE or RATE:BURST with RATE > 0 requests per second"))?;
        let burst = match burst {
            Some(burst) => burst
                .trim()
                .parse()
                .ok()
                .filter(|burst: &u32| *burst > 0)
                .ok_or_else(|| format!("rate limit {text:?}: BURST must be a positive integer"))?,
            None => per_second.ceil().min(f64::from(u32::MAX)) as u32,
        };
        Ok(RateLimit { per_second, burst })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.per_second, self.burst)
    }
}

/// Who a rate limit is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Subject {
    /// The n-th configured API key (the key itself is not kept here).
    ApiKey(usize),
    /// A token, by the MAC that ends it: unique per token, and not the grant itself.
    Token([u8; 32]),
    /// A client address, for HTTP routes and upgrades.
    Ip(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Rate limits for one kind of subject; a no-op when not configured.
#[derive(Debug)]
pub(crate) struct RateLimiter<K = Subject> {
    limit: Option<RateLimit>,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub(crate) fn new(limit: Option<RateLimit>) -> Self {
        RateLimiter {
            limit,
            buckets: Mutex::default(),
        }
    }

    /// Takes one request from `subject`'s bucket, or says how long until it may retry.
    pub(crate) fn check(&self, subject: &K) -> Result<(), Duration> {
        self.check_at(subject, Instant::now())
    }

    fn check_at(&self, subject: &K, now: Instant) -> Result<(), Duration> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let burst = f64::from(limit.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_SUBJECTS && !buckets.contains_key(subject) {
            buckets.retain(|_, bucket| refilled(bucket, limit, now) < burst);
            if buckets.len() >= MAX_SUBJECTS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(subject.clone()).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        bucket.tokens = refilled(bucket, limit, now);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / limit.per_second;
            Err(Duration::from_secs_f64(wait).max(Duration::from_millis(1)))
        }
    }

    #[cfg(test)]
    fn subjects(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

fn refilled(bucket: &Bucket, limit: RateLimit, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
    (bucket.tokens + elapsed * limit.per_second).min(f64::from(limit.burst))
}

/// A retry hint in whole milliseconds, never 0.
pub(crate) fn retry_after_ms(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(text: &str) -> RateLimiter<u32> {
        RateLimiter::new(Some(text.parse().unwrap()))
    }

    #[test]
    fn parses_rate_and_burst() {
        assert_eq!(
            "10".parse::<RateLimit>().unwrap(),
            RateLimit {
                per_second: 10.0,
                burst: 10
            }
        );
        assert_eq!("0.5:3".parse::<RateLimit>().unwrap().burst, 3);
        assert_eq!("0.5".parse::<RateLimit>().unwrap().burst, 1);
        for bad in ["", "0", "-1", "x", "10:0", "10:-2", "NaN", "inf"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_burst_is_granted_then_requests_wait_for_the_refill() {
        let limiter = limiter("10:3");
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at(&1, start).is_ok());
        }
        let wait = limiter.check_at(&1, start).unwrap_err();
        assert!(
            (Duration::from_millis(99)..=Duration::from_millis(101)).contains(&wait),
            "{wait:?}"
        );
        // Another subject has its own bucket.
        assert!(limiter.check_at(&2, start).is_ok());
        // After the hinted wait, exactly one more request is allowed.
        let later = start + wait;
        assert!(limiter.check_at(&1, later).is_ok());
        assert!(limiter.check_at(&1, later).is_err());
        // A long pause refills to the burst, not beyond.
        let much_later = later + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.check_at(&1, much_later).is_ok());
        }
        assert!(limiter.check_at(&1, much_later).is_err());
    }

    #[test]
    fn no_limit_means_no_refusal() {
        let limiter = RateLimiter::<u32>::new(None);
        for _ in 0..10_000 {
            assert!(limiter.check(&1).is_ok());
        }
        assert_eq!(limiter.subjects(), 0, "nothing is remembered when off");
    }

    #[test]
    fn the_subject_map_stays_bounded() {
        let limiter = limiter("1:1");
        let now = Instant::now();
        for subject in 0..(MAX_SUBJECTS as u32 + 10) {
            let _ = limiter.check_at(&subject, now);
        }
        assert!(limiter.subjects() <= MAX_SUBJECTS);
    }
}
