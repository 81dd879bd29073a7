//! Rate limits against abuse: new connections per source address, PUBLISH packets per
//! client. Both are token buckets holding one second's worth of tokens.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens a second, at most `rate` saved up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub(crate) fn new(rate: u32, now: Instant) -> Bucket {
        Bucket {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.at = now;
    }

    /// Takes a token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes a token, possibly one not there yet: how long to wait until it is.
    pub(crate) fn take(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.rate
    }
}

/// Connections per second per source address.
#[derive(Debug)]
pub(crate) struct ConnectionRate {
    rate: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// Beyond this many tracked addresses, those with a full bucket are forgotten.
const TRACKED: usize = 10_000;

impl ConnectionRate {
    /// `rate` 0: no limit.
    pub(crate) fn new(rate: u32) -> ConnectionRate {
        ConnectionRate {
            rate,
            buckets: Mutex::default(),
        }
    }

    /// Whether `peer` may open another connection now.
    pub(crate) fn admit(&self, peer: IpAddr, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= TRACKED {
            buckets.retain(|_, b| !b.is_full(now));
        }
        buckets
            .entry(peer)
            .or_insert_with(|| Bucket::new(self.rate, now))
            .try_take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let start = Instant::now();
        let limit = ConnectionRate::new(3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!((0..3).all(|_| limit.admit(a, start)));
        assert!(!limit.admit(a, start));
        assert!(limit.admit(b, start), "per address");
        assert!(!limit.admit(a, start + Duration::from_millis(200)));
        assert!(limit.admit(a, start + Duration::from_millis(400)));
        assert!(ConnectionRate::new(0).admit(a, start));
    }

    #[test]
    fn waiting_for_tokens() {
        let start = Instant::now();
        let mut bucket = Bucket::new(10, start);
        for _ in 0..10 {
            assert_eq!(bucket.take(start), Duration::ZERO);
        }
        let wait = bucket.take(start);
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        let wait = bucket.take(start);
        assert!(
            wait > Duration::from_millis(190) && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
    }
}
