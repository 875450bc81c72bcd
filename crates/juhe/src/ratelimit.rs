//! Per-merchant request rate limiting (GCRA token bucket via `governor`). In-process: with
//! several Juhe processes behind a load balancer each enforces its own share.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::RateLimitConfig;
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
