//! Token-bucket rate limits, keyed by who is asking.
//!
//! Each subject (an API key, a token, a client IP) has a bucket holding up to `burst`
//! requests that refills at `per_second`. A request takes one; an empty bucket refuses
//! it and says how long until one is back, which becomes the 429's retry hint. Limits
//! are off unless configured: HPKV clients treat any 429 as a failure.
//!
//! Buckets live in one map behind a mutex; a check is a hash lookup and a little
//! arithmetic. The map is bounded: when it is full ([`MAX_SUBJECTS`]), buckets that
//! have refilled completely are dropped (their subjects are idle, so forgetting them
//! changes nothing), at most once a second so a flood of new subjects cannot make
//! every request scan the map. If every bucket is in use, a new subject is refused
//! until some refill: an attacker with many addresses can delay newcomers, but can
//! neither grow memory nor reset anyone's bucket. IPv6 clients are counted per /64,
//! the block one host usually owns.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ripplekv_core::Error;

/// Subjects remembered before idle buckets are dropped.
const MAX_SUBJECTS: usize = 100_000;
/// Least time between two sweeps of idle buckets.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Slowest rate accepted, so a retry hint always fits in a `Duration`.
const MIN_RATE: f64 = 0.001;

/// A rate: requests per second, and how many may come at once after a quiet period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once above the rate.
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
            .filter(|rate: &f64| rate.is_finite() && *rate >= MIN_RATE)
            .ok_or_else(|| format!("rate limit {text:?}: expected RATE or RATE:BURST with RATE at least {MIN_RATE} requests per second"))?;
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

/// Who a rate limit is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Subject {
    /// The n-th configured API key (the key itself is not kept here).
    ApiKey(usize),
    /// A token, by the MAC that ends it: unique per token, and not the grant itself.
    Token([u8; 32]),
    /// A client address (IPv6 by /64, see [`Subject::client`]), for HTTP routes and
    /// upgrades.
    Ip(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Subject {
    /// The subject for a client address: IPv4 as is, IPv6 by its /64 prefix.
    pub(crate) fn client(ip: IpAddr) -> Subject {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Subject::Ip(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Subject::Ip(IpAddr::V6(prefix.into()))
                }
            },
            v4 => Subject::Ip(v4),
        }
    }
}

/// Rate limits for one kind of subject; a no-op when not configured.
#[derive(Debug)]
pub(crate) struct RateLimiter<K = Subject> {
    limit: Option<RateLimit>,
    buckets: Mutex<Buckets<K>>,
}

#[derive(Debug)]
struct Buckets<K> {
    by_subject: HashMap<K, Bucket>,
    last_sweep: Option<Instant>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub(crate) fn new(limit: Option<RateLimit>) -> Self {
        RateLimiter {
            limit,
            buckets: Mutex::new(Buckets {
                by_subject: HashMap::new(),
                last_sweep: None,
            }),
        }
    }

    /// Takes one request from `subject`'s bucket, or refuses it with a 429 that says
    /// how long until it may retry.
    pub(crate) fn check(&self, subject: &K) -> Result<(), Error> {
        self.check_at(subject, Instant::now())
            .map_err(|wait| Error::RateLimited {
                retry_after_ms: retry_after_ms(wait),
            })
    }

    fn check_at(&self, subject: &K, now: Instant) -> Result<(), Duration> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let burst = f64::from(limit.burst);
        let mut guard = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let buckets = &mut *guard;
        if buckets.by_subject.len() >= MAX_SUBJECTS && !buckets.by_subject.contains_key(subject) {
            let due = buckets
                .last_sweep
                .is_none_or(|last| now.saturating_duration_since(last) >= SWEEP_INTERVAL);
            if due {
                buckets.last_sweep = Some(now);
                buckets
                    .by_subject
                    .retain(|_, bucket| refilled(bucket, limit, now) < burst);
            }
            if buckets.by_subject.len() >= MAX_SUBJECTS {
                return Err(SWEEP_INTERVAL);
            }
        }
        let bucket = buckets.by_subject.entry(subject.clone()).or_insert(Bucket {
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
            .by_subject
            .len()
    }
}

fn refilled(bucket: &Bucket, limit: RateLimit, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
    (bucket.tokens + elapsed * limit.per_second).min(f64::from(limit.burst))
}

/// A retry hint in whole milliseconds, never 0.
fn retry_after_ms(wait: Duration) -> u64 {
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
        for bad in ["", "0", "1e-30", "-1", "x", "10:0", "10:-2", "NaN", "inf"] {
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
    fn the_subject_map_stays_bounded_and_is_never_reset() {
        let limiter = limiter("1:1");
        let now = Instant::now();
        for subject in 0..MAX_SUBJECTS as u32 {
            assert!(limiter.check_at(&subject, now).is_ok());
        }
        // Full of subjects that are all in use: a newcomer waits, nobody is forgotten.
        let newcomer = MAX_SUBJECTS as u32;
        assert_eq!(limiter.check_at(&newcomer, now), Err(SWEEP_INTERVAL));
        assert!(
            limiter.check_at(&0, now).is_err(),
            "subject 0 kept its empty bucket"
        );
        assert_eq!(limiter.subjects(), MAX_SUBJECTS);
        // Once the others have refilled (gone idle), a sweep makes room.
        let later = now + Duration::from_secs(2);
        assert!(limiter.check_at(&newcomer, later).is_ok());
        assert!(limiter.subjects() < MAX_SUBJECTS);
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_block() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(
            Subject::client(ip("2001:db8:1:2:aaaa::1")),
            Subject::client(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            Subject::client(ip("2001:db8:1:2::1")),
            Subject::client(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            Subject::client(ip("::ffff:192.0.2.7")),
            Subject::Ip(ip("192.0.2.7"))
        );
    }
}
