//! Pacing requests: the client-side rate limit (a token bucket) and the wait a
//! server's 429 asks for.

use std::time::{Duration, Instant};

/// The delay a 429 message asks for ("retry after N ms"), or one second.
pub(crate) fn retry_hint(message: &str) -> Duration {
    message
        .split_whitespace()
        .skip_while(|word| *word != "after")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .map_or(Duration::from_secs(1), Duration::from_millis)
}

/// A token bucket for the client-side rate limit.
#[derive(Debug)]
pub(crate) struct Bucket {
    rate: f64,
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    pub(crate) fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Bucket {
            rate,
            tokens: rate,
            updated: Instant::now(),
        }
    }

    /// Takes a token; returns how long to wait before using it.
    pub(crate) fn take(&mut self) -> Duration {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.updated).as_secs_f64() * self.rate)
            .min(self.rate);
        self.updated = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_hints() {
        assert_eq!(
            retry_hint("Rate limit exceeded; retry after 250 ms"),
            Duration::from_millis(250)
        );
        assert_eq!(retry_hint("slow down"), Duration::from_secs(1));
    }

    #[test]
    fn bucket_spaces_requests() {
        let mut bucket = Bucket::new(10);
        for _ in 0..10 {
            assert_eq!(bucket.take(), Duration::ZERO);
        }
        assert!(
            bucket.take() > Duration::ZERO,
            "the 11th request within a second waits"
        );
    }
}
