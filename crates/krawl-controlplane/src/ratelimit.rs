//! Per-agent token buckets: `per_second` requests on average, bursts up to `burst`.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A request rate: `per_second` on average with bursts of up to `burst` requests.
/// Parsed from `RATE` or `RATE/BURST` (e.g. `10` or `5/20`); the burst defaults to the rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl FromStr for RateLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (rate, burst) = match s.split_once('/') {
            Some((r, b)) => (r, Some(b)),
            None => (s, None),
        };
        let per_second: f64 = rate.trim().parse().map_err(|_| {
            format!("rate limit {s:?}: expected RATE or RATE/BURST, e.g. 10 or 5/20")
        })?;
        if !per_second.is_finite() || per_second <= 0.0 {
            return Err(format!(
                "rate limit {s:?}: the rate must be a positive number of requests per second"
            ));
        }
        let burst = match burst {
            Some(b) => b
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|b| *b >= 1)
                .ok_or_else(|| {
                    format!("rate limit {s:?}: the burst must be a whole number >= 1")
                })?,
            None => per_second.ceil().max(1.0) as u32,
        };
        Ok(RateLimit { per_second, burst })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.per_second, self.burst)
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// One token bucket per agent id, in memory (a restart refills every bucket).
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; `Err(wait)` says how long until one is available.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let burst = f64::from(self.limit.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: burst,
            refilled_at: now,
        });
        let elapsed = now.duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.limit.per_second).min(burst);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - bucket.tokens;
            // A tiny configured rate (`1e-20`) would overflow `Duration` (a panic in
            // `from_secs_f64`); such a wait is as good as forever.
            Err(Duration::try_from_secs_f64(missing / self.limit.per_second)
                .unwrap_or(Duration::MAX))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rate_and_burst() {
        assert_eq!(
            "10".parse(),
            Ok(RateLimit {
                per_second: 10.0,
                burst: 10
            })
        );
        assert_eq!(
            "0.5/3".parse(),
            Ok(RateLimit {
                per_second: 0.5,
                burst: 3
            })
        );
        assert!("0".parse::<RateLimit>().is_err());
        assert!("x/2".parse::<RateLimit>().is_err());
        assert!("1/0".parse::<RateLimit>().is_err());
    }

    #[test]
    fn bucket_allows_the_burst_then_refuses() {
        let rl = RateLimiter::new(RateLimit {
            per_second: 1.0,
            burst: 2,
        });
        assert!(rl.check("a").is_ok());
        assert!(rl.check("a").is_ok());
        let wait = rl.check("a").err();
        assert!(wait.is_some_and(|w| w <= Duration::from_secs(1)));
        assert!(rl.check("b").is_ok(), "buckets are per agent");
    }

    #[test]
    fn a_tiny_rate_refuses_without_overflowing() {
        let limit: RateLimit = "1e-20/1".parse().unwrap_or_else(|e| panic!("{e}"));
        let rl = RateLimiter::new(limit);
        assert!(rl.check("a").is_ok());
        assert_eq!(rl.check("a").err(), Some(Duration::MAX));
    }
}
