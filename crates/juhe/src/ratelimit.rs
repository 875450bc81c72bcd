//! Rate limiting: per merchant (GCRA token bucket via `governor`), and on authentication
//! (token issues per client and per source address, failed bearer tokens per source
//! address). In-process: with several Juhe processes behind a load balancer each enforces
//! its own share.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::{AuthConfig, RateLimitConfig};
use crate::store::MerchantId;

pub struct Limiter {
    inner: Option<RateLimiter<MerchantId, DefaultKeyedStateStore<MerchantId>, DefaultClock>>,
    clock: DefaultClock,
}

impl Limiter {
    pub fn new(cfg: &RateLimitConfig) -> Limiter {
        let inner = NonZeroU32::new(cfg.per_second).map(|rate| {
            let burst = NonZeroU32::new(cfg.burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Limiter {
            inner,
            clock: DefaultClock::default(),
        }
    }

    /// `None` if the request may proceed, else the whole seconds to wait (at least 1).
    pub fn check(&self, m: MerchantId) -> Option<u64> {
        let limiter = self.inner.as_ref()?;
        match limiter.check_key(&m) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).map(|s| s.max(1))
            }
        }
    }
}

/// A keyed GCRA bucket that can be looked at without spending: failed authentication must
/// be refused *before* the credentials are checked once a source is over its limit (else a
/// guesser still learns which guess was right), yet only failures may spend.
///
/// In memory and per process, like [`Limiter`]; keys whose bucket has refilled are dropped
/// when the map grows, so a scan from many addresses cannot grow it without bound.
pub struct Bucket<K> {
    /// Time one request adds to the bucket: 1 / rate.
    interval: Duration,
    /// How far ahead of now the bucket may run: (burst - 1) intervals.
    tolerance: Duration,
    state: Mutex<HashMap<K, Instant>>,
}

/// Keys kept before refilled ones are swept.
const SWEEP_AT: usize = 10_000;

impl<K: Eq + Hash + Clone> Bucket<K> {
    /// `None` when `per_minute` is 0 (the limit is off).
    pub fn per_minute(per_minute: u32, burst: u32) -> Option<Bucket<K>> {
        let rate = NonZeroU32::new(per_minute)?;
        let interval = Duration::from_secs(60) / rate.get();
        Some(Bucket {
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
            state: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Instant>> {
        // The map holds no invariant a panicking holder could break half-way.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whole seconds to wait (at least 1) if `key` is over its limit; spends nothing.
    pub fn blocked(&self, key: &K) -> Option<u64> {
        let now = Instant::now();
        let tat = *self.lock().get(key)?;
        wait_secs(tat, now, self.tolerance)
    }

    /// Spends one request for `key`; `Some(wait)` if it was over the limit (then nothing is spent).
    pub fn spend(&self, key: &K) -> Option<u64> {
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= SWEEP_AT && !map.contains_key(key) {
            map.retain(|_, tat| *tat > now);
        }
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        if let Some(w) = wait_secs(tat, now, self.tolerance) {
            return Some(w);
        }
        map.insert(key.clone(), tat + self.interval);
        None
    }
}

fn wait_secs(tat: Instant, now: Instant, tolerance: Duration) -> Option<u64> {
    let ahead = tat.saturating_duration_since(now);
    if ahead <= tolerance {
        return None;
    }
    let wait = ahead - tolerance;
    Some((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))
}

/// The limits on authentication: token issues per client and per source address, and
/// failed bearer tokens per source address (see `[auth]` in the configuration).
pub struct AuthLimits {
    pub token_per_client: Option<Bucket<String>>,
    pub token_per_ip: Option<Bucket<IpAddr>>,
    pub failed_auth_per_ip: Option<Bucket<IpAddr>>,
}

impl AuthLimits {
    pub fn new(cfg: &AuthConfig) -> AuthLimits {
        AuthLimits {
            token_per_client: Bucket::per_minute(
                cfg.token_per_client_per_minute,
                cfg.token_per_client_burst,
            ),
            token_per_ip: Bucket::per_minute(cfg.token_per_ip_per_minute, cfg.token_per_ip_burst),
            failed_auth_per_ip: Bucket::per_minute(
                cfg.failed_auth_per_ip_per_minute,
                cfg.failed_auth_per_ip_burst,
            ),
        }
    }
}

/// At most `max` requests of one kind running at once per merchant: expensive requests
/// (reports) of one merchant cannot take every database connection and core from the others.
pub struct ConcurrencyCap {
    max: usize,
    running: Mutex<HashMap<MerchantId, usize>>,
}

/// A running request's place under the cap; released when dropped (also on panic or
/// cancellation, since dropping is all it takes).
pub struct CapPermit {
    cap: std::sync::Arc<ConcurrencyCap>,
    m: MerchantId,
}

impl ConcurrencyCap {
    /// `max` 0 means no cap.
    pub fn new(max: usize) -> std::sync::Arc<ConcurrencyCap> {
        std::sync::Arc::new(ConcurrencyCap {
            max,
            running: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<MerchantId, usize>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A permit, or `None` when the merchant already runs `max` of these requests.
    pub fn try_acquire(self: &std::sync::Arc<Self>, m: MerchantId) -> Option<CapPermit> {
        let mut running = self.lock();
        let n = running.entry(m).or_insert(0);
        if self.max > 0 && *n >= self.max {
            return None;
        }
        *n += 1;
        Some(CapPermit {
            cap: self.clone(),
            m,
        })
    }
}

impl Drop for CapPermit {
    fn drop(&mut self) {
        let mut running = self.cap.lock();
        if let Some(n) = running.get_mut(&self.m) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_concurrency_cap_admits_max_per_merchant_and_frees_a_place_on_drop() {
        let cap = ConcurrencyCap::new(2);
        let (a, b) = (MerchantId::from_db(1), MerchantId::from_db(2));
        let p1 = cap.try_acquire(a).unwrap();
        let _p2 = cap.try_acquire(a).unwrap();
        assert!(cap.try_acquire(a).is_none());
        assert!(
            cap.try_acquire(b).is_some(),
            "another merchant is not capped"
        );
        drop(p1);
        assert!(cap.try_acquire(a).is_some());
        assert!(ConcurrencyCap::new(0).try_acquire(a).is_some());
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_and_peeking_spends_nothing() {
        let b: Bucket<u8> = Bucket::per_minute(60, 3).unwrap();
        for _ in 0..10 {
            assert_eq!(b.blocked(&1), None);
        }
        for _ in 0..3 {
            assert_eq!(b.spend(&1), None);
        }
        assert_eq!(b.spend(&1), Some(1));
        assert_eq!(b.blocked(&1), Some(1));
        assert_eq!(b.blocked(&2), None, "another key is unaffected");
        assert_eq!(b.spend(&2), None);
    }

    #[test]
    fn a_zero_rate_turns_the_limit_off() {
        assert!(Bucket::<u8>::per_minute(0, 5).is_none());
    }
}
