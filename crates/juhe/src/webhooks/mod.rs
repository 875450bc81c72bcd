//! Webhook delivery (docs/events.md): the dispatcher that sends the outbox's events to the
//! merchants' callback URLs, signed with Standard Webhooks headers.
//!
//! Every process runs one. It claims due deliveries per endpoint with a lease (a row's
//! `next_attempt_ms` pushed past the attempt's timeout; `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL), so several processes on one database share the work and a process that dies
//! leaves rows that become due again. Each endpoint has its own concurrency cap and its own
//! claim, so a slow or dead receiver holds only its own slots. Attempts are recorded in
//! batches by one recorder task, which also frees the slots and reschedules failures.
//! Wake-ups: in-process after every commit (`Store::events_changed`), `LISTEN juhe_events`
//! on PostgreSQL, and a slow poll behind both.

pub mod payload;
pub mod sign;
pub mod target;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::FixedOffset;
use rand::Rng;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::WebhooksConfig;
use crate::store::events::{now_ms, Attempted, Claimed, EndpointRow, Outcome};
use crate::store::{MerchantId, Store};

/// Longest response excerpt kept in the attempt log.
const EXCERPT: usize = 1024;
/// Most deliveries claimed for one endpoint in one statement, and most held in memory
/// beyond its free slots.
const MAX_PAGE: usize = 500;
/// How long the loaded endpoint list is trusted before it is read again.
const ENDPOINTS_TTL: Duration = Duration::from_secs(1);

type Key = (i64, i64);

/// Deliveries claimed for one endpoint and not started yet, oldest first; and how many
/// were started lately, which sizes the next claim.
#[derive(Default)]
struct Held {
    queue: VecDeque<Claimed>,
    /// Start of the current one-second window (Unix ms), deliveries started in it, and in
    /// the window before.
    window: (i64, usize, usize),
}

impl Held {
    /// Deliveries started per second lately.
    fn rate(&mut self, now: i64) -> usize {
        self.roll(now);
        self.window.2.max(self.window.1)
    }

    fn started(&mut self, now: i64, n: usize) {
        self.roll(now);
        self.window.1 += n;
    }

    fn roll(&mut self, now: i64) {
        let (start, cur, _) = self.window;
        if now - start >= 2000 {
            self.window = (now, 0, 0);
        } else if now - start >= 1000 {
            self.window = (start + 1000, 0, cur);
        }
    }
}

/// `webhooks.max_per_second`: a token bucket holding a tenth of a second of deliveries, so
/// a capped drain starts them in small, even steps rather than one burst a second.
struct Pace {
    per_second: f64,
    tokens: f64,
    at: Instant,
    /// Set by a round that left claimed deliveries unstarted for want of tokens: the loop
    /// then waits for the bucket rather than for a wake-up.
    held_back: bool,
}

impl Pace {
    fn new(per_second: u32) -> Option<Pace> {
        (per_second > 0).then(|| Pace {
            per_second: per_second as f64,
            tokens: Pace::burst(per_second as f64),
            at: Instant::now(),
            held_back: false,
        })
    }

    fn burst(per_second: f64) -> f64 {
        (per_second / 10.0).max(1.0)
    }

    /// Whole deliveries that may start now.
    fn available(&mut self) -> usize {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(Pace::burst(self.per_second));
        self.at = now;
        self.tokens as usize
    }

    fn take(&mut self, n: usize) {
        self.tokens -= n as f64;
    }

    /// How long until a hundredth of a second's worth (at least one) may start.
    fn wait(&self) -> Duration {
        let want = (self.per_second / 100.0).max(1.0);
        Duration::from_secs_f64(((want - self.tokens) / self.per_second).max(0.001))
    }
}

/// The merchants' signing secrets, read once per endpoint reload instead of per claim.
#[derive(Default)]
struct Secrets(HashMap<i64, Arc<[String]>>);

impl Secrets {
    async fn get(&mut self, store: &Store, m: MerchantId) -> Result<Arc<[String]>, sqlx::Error> {
        if let Some(s) = self.0.get(&m.get()) {
            return Ok(s.clone());
        }
        let s: Arc<[String]> = store
            .signing_secrets(m, sign::generate_secret)
            .await?
            .into();
        self.0.insert(m.get(), s.clone());
        Ok(s)
    }
}

/// This process's webhook dispatcher.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    metrics: Arc<crate::metrics::Metrics>,
    cfg: WebhooksConfig,
    offset: FixedOffset,
    client: reqwest::Client,
    /// Deliveries in flight per (merchant, endpoint).
    inflight: Mutex<HashMap<Key, usize>>,
    global: Arc<Semaphore>,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        cfg: WebhooksConfig,
        offset: FixedOffset,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<Dispatcher> {
        let mut client = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_seconds))
            .connect_timeout(Duration::from_secs(cfg.timeout_seconds.min(10)))
            // A redirect is a failed delivery: following one would send the signed event
            // somewhere the merchant did not register (and past the target check).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Juhe-Webhooks/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(cfg.per_endpoint_concurrency);
        if !cfg.allow_private_targets {
            client = client.dns_resolver(target::public_only());
        }
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                store,
                metrics,
                offset,
                client: client.build()?,
                inflight: Mutex::new(HashMap::new()),
                global: Arc::new(Semaphore::new(cfg.max_concurrency)),
                cfg,
            }),
        })
    }

    /// Starts the dispatcher's tasks; the returned handle ends after `token` is cancelled
    /// and the attempts in flight have been recorded (or `drain` has passed).
    pub fn spawn(&self, token: CancellationToken) -> tokio::task::JoinHandle<()> {
        let (done_tx, done_rx) = mpsc::channel::<Attempted>(self.inner.cfg.max_concurrency * 2);
        let recorder = tokio::spawn(self.clone().record_loop(done_rx));
        let listener = tokio::spawn(self.clone().listen_loop(token.clone()));
        let pruner = tokio::spawn(self.clone().prune_loop(token.clone()));
        let this = self.clone();
        tokio::spawn(async move {
            this.claim_loop(token, done_tx).await;
            // The claim loop has dropped its sender; the recorder ends when the deliveries
            // in flight have sent their attempts (each is bounded by the timeout).
            let _ = recorder.await;
            listener.abort();
            pruner.abort();
        })
    }

    /// Frees one of the endpoint's slots and wakes the claim loop.
    fn release(&self, m: MerchantId, endpoint_id: i64) {
        if let Some(n) = self.inflight().get_mut(&(m.get(), endpoint_id)) {
            *n = n.saturating_sub(1);
        }
        self.inner.store.events_changed();
    }

    fn inflight(&self) -> std::sync::MutexGuard<'_, HashMap<Key, usize>> {
        self.inner
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    async fn claim_loop(self, token: CancellationToken, done: mpsc::Sender<Attempted>) {
        let wake = self.inner.store.events_wake();
        let poll = Duration::from_millis(self.inner.cfg.poll_ms);
        let mut endpoints: Vec<(MerchantId, EndpointRow)> = Vec::new();
        let mut loaded: Option<(Instant, u64)> = None;
        let mut held: HashMap<Key, Held> = HashMap::new();
        let mut secrets = Secrets::default();
        let mut pace = Pace::new(self.inner.cfg.max_per_second);
        // Where the next round starts: under a cap, each endpoint gets its turn to go first.
        let mut first = 0usize;
        loop {
            let version = self.inner.store.endpoints_version();
            if loaded.is_none_or(|(t, v)| t.elapsed() >= ENDPOINTS_TTL || v != version) {
                match self.inner.store.enabled_endpoints().await {
                    Ok(e) => {
                        endpoints = e;
                        loaded = Some((Instant::now(), version));
                        // Signing secrets are read again with the endpoints (a rotation in
                        // this process bumps the version; in another, it is seen within the
                        // reload interval, and the old secret keeps signing meanwhile).
                        secrets.0.clear();
                        // What is held for an endpoint that was disabled or deleted goes
                        // back: it waits in the database like the rest of its deliveries.
                        let gone: Vec<Key> = held
                            .keys()
                            .filter(|k| {
                                !endpoints
                                    .iter()
                                    .any(|(m, ep)| (m.get(), ep.endpoint_id) == **k)
                            })
                            .copied()
                            .collect();
                        let mut back = Vec::new();
                        for k in gone {
                            if let Some(h) = held.remove(&k) {
                                back.extend(h.queue);
                            }
                        }
                        self.give_back(back).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading webhook endpoints failed; retrying")
                    }
                }
            }
            first = first.wrapping_add(1);
            let again = match self
                .round(
                    &endpoints,
                    first,
                    &mut held,
                    &mut secrets,
                    pace.as_mut(),
                    &done,
                )
                .await
            {
                Ok(again) => again,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming deliveries failed; retrying");
                    false
                }
            };
            if let Some(p) = pace.as_ref().filter(|p| p.held_back) {
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = tokio::time::sleep(p.wait()) => {}
                }
                if !token.is_cancelled() {
                    continue;
                }
            }
            if again && !token.is_cancelled() {
                continue;
            }
            tokio::select! {
                _ = token.cancelled() => {}
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
            if token.is_cancelled() {
                // Held deliveries were never sent: due again at once, for another process
                // or the next start, instead of after their lease.
                let back: Vec<Claimed> = held.drain().flat_map(|(_, h)| h.queue).collect();
                self.give_back(back).await;
                return;
            }
        }
    }

    /// Undoes the claims of deliveries that were never sent (logged, not returned: if it
    /// fails, their leases bring them back a little later).
    async fn give_back(&self, back: Vec<Claimed>) {
        if back.is_empty() {
            return;
        }
        if let Err(e) = self.inner.store.release_deliveries(&back, now_ms()).await {
            tracing::warn!(error = %e, n = back.len(), "releasing held deliveries failed; their leases will");
        }
    }

    /// One pass over the endpoints, from the `first`-th on: fills each endpoint's free slots
    /// from what it holds, claiming a page when that runs short, and starts the deliveries,
    /// no more than `pace` allows (its `held_back` says whether the cap held some back).
    /// Returns whether some endpoint may have more due work right now.
    async fn round(
        &self,
        endpoints: &[(MerchantId, EndpointRow)],
        first: usize,
        held: &mut HashMap<Key, Held>,
        secrets: &mut Secrets,
        mut pace: Option<&mut Pace>,
        done: &mpsc::Sender<Attempted>,
    ) -> Result<bool, sqlx::Error> {
        let cap = self.inner.cfg.per_endpoint_concurrency;
        let timeout_ms = self.inner.cfg.timeout_seconds as i64 * 1000;
        let lease_ms = timeout_ms + 5000;
        let mut again = false;
        let mut stale = Vec::new();
        if let Some(p) = pace.as_mut() {
            p.held_back = false;
        }
        let skip = if endpoints.is_empty() {
            0
        } else {
            first % endpoints.len()
        };
        for (m, ep) in endpoints[skip..].iter().chain(&endpoints[..skip]) {
            let key = (m.get(), ep.endpoint_id);
            let busy = self.inflight().get(&key).copied().unwrap_or(0);
            let mut free = cap
                .saturating_sub(busy)
                .min(self.inner.global.available_permits());
            if free == 0 {
                continue;
            }
            // Under the cap, fewer than the free slots may start; the loop then waits for
            // the bucket rather than for a wake-up, if what was held back is already here.
            let mut limited = false;
            if let Some(p) = pace.as_mut() {
                let allowed = p.available();
                if allowed < free {
                    limited = true;
                    free = allowed;
                }
                if free == 0 {
                    p.held_back |= held.get(&key).is_some_and(|h| !h.queue.is_empty());
                    continue;
                }
            }
            let h = held.entry(key).or_default();
            let now = now_ms();
            // A held delivery is sent only while its lease still covers a whole attempt
            // and a second to spare; past that another process may take it over.
            while h
                .queue
                .front()
                .is_some_and(|c| c.lease_ms - now < timeout_ms + 1000)
            {
                stale.extend(h.queue.pop_front());
            }
            // Hold about a quarter of a second of this endpoint's recent rate beyond its
            // free slots: one claim then serves many deliveries (each claim is a write
            // transaction, and one per freed slot bounded PostgreSQL near 1,500/s), while a
            // slow endpoint, whose rate is low, holds nothing it would not send at once.
            let extra = (h.rate(now) / 4).min(MAX_PAGE);
            if h.queue.len() < free + extra / 2
                && self
                    .inner
                    .store
                    .has_due_delivery(*m, ep.endpoint_id, now)
                    .await?
            {
                let want = (free + extra - h.queue.len()).clamp(1, MAX_PAGE);
                let claimed = self
                    .inner
                    .store
                    .claim_deliveries(*m, ep.endpoint_id, want as i64, now, now + lease_ms)
                    .await?;
                if claimed.len() == want {
                    again = true;
                }
                h.queue.extend(claimed);
            }
            if h.queue.is_empty() {
                continue;
            }
            let secrets = secrets.get(&self.inner.store, *m).await?;
            let n = free.min(h.queue.len());
            if let Some(p) = pace.as_mut() {
                p.take(n);
                p.held_back |= limited && h.queue.len() > n;
            }
            h.started(now, n);
            *self.inflight().entry(key).or_default() += n;
            for c in h.queue.drain(..n) {
                let Ok(permit) = self.inner.global.clone().acquire_owned().await else {
                    return Ok(false);
                };
                let this = self.clone();
                let url = ep.url.clone();
                let secrets = secrets.clone();
                let done = done.clone();
                tokio::spawn(async move {
                    let a = this.attempt(&c, &url, &secrets).await;
                    // The endpoint's slot is free once its request is over (the row stays
                    // leased until the recorder reschedules or deletes it, so it cannot be
                    // claimed twice); the global permit is held until the recorder has the
                    // attempt, so a recorder that falls behind slows the claims down.
                    this.release(a.merchant, a.endpoint_id);
                    // The recorder outlives every sender; a send fails only at shutdown,
                    // when the lease brings the delivery back later.
                    let _ = done.send(a).await;
                    drop(permit);
                });
            }
        }
        if !stale.is_empty() {
            self.give_back(stale).await;
            again = true;
        }
        Ok(again)
    }

    /// Sends one delivery and says what came of it.
    async fn attempt(&self, c: &Claimed, url: &str, secrets: &[String]) -> Attempted {
        let cfg = &self.inner.cfg;
        let id = payload::event_key(c.merchant, c.event.event_id);
        let body = payload::render(c.merchant, &c.event, self.inner.offset);
        let started_ms = now_ms();
        let started = Instant::now();
        let (status, retry_after, error, response) = match self.send(url, &id, body, secrets).await
        {
            Ok((status, retry_after, excerpt)) => (status, retry_after, None, Some(excerpt)),
            Err(e) => (0, None, Some(e), None),
        };
        let duration_ms = started.elapsed().as_millis() as i64;
        let outcome = if (200..300).contains(&status) {
            Outcome::Succeeded
        } else if c.attempt as usize >= cfg.retry_schedule_seconds.len() {
            Outcome::Failed
        } else {
            let delay_ms = match retry_after {
                Some(s) => s.min(86_400) * 1000,
                None => jittered(cfg.retry_schedule_seconds[c.attempt as usize]),
            };
            Outcome::Retry(now_ms() + delay_ms as i64)
        };
        self.inner
            .metrics
            .webhook_attempts
            .get_or_create(&crate::metrics::AttemptLabels {
                outcome: outcome.name().to_owned(),
            })
            .inc();
        let level_ok = outcome == Outcome::Succeeded;
        if level_ok {
            tracing::debug!(event = %id, url, status, duration_ms, "delivered");
        } else {
            tracing::info!(event = %id, url, status, duration_ms, attempt = c.attempt, error = error.as_deref().unwrap_or(""), outcome = ?outcome, "delivery failed");
        }
        Attempted {
            merchant: c.merchant,
            endpoint_id: c.endpoint_id,
            event_id: c.event.event_id,
            total: c.total,
            lease_ms: c.lease_ms,
            attempted_ms: started_ms,
            duration_ms,
            status: status as i64,
            outcome,
            error,
            response,
        }
    }

    /// POSTs the signed body. `Ok((status, Retry-After seconds, response excerpt))`.
    async fn send(
        &self,
        url: &str,
        id: &str,
        body: Vec<u8>,
        secrets: &[String],
    ) -> Result<(u16, Option<u64>, String), String> {
        let t = target::parse(url)?;
        if !self.inner.cfg.allow_private_targets {
            target::check_literal(&t.url)?;
        }
        let ts = chrono::Utc::now().timestamp();
        let signature = sign::signature_header(secrets, id, ts, &body);
        let resp = self
            .inner
            .client
            .post(t.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let excerpt = excerpt(resp).await;
        Ok((status, retry_after, excerpt))
    }

    async fn record_loop(self, mut rx: mpsc::Receiver<Attempted>) {
        let disable_after = self.inner.cfg.disable_after_seconds;
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < 500 {
                match rx.try_recv() {
                    Ok(a) => batch.push(a),
                    Err(_) => break,
                }
            }
            let mut wait = Duration::from_millis(100);
            loop {
                let before = crate::store::now() - disable_after;
                match self.inner.store.record_attempts(&batch, before).await {
                    Ok(disabled) => {
                        if !disabled.is_empty() {
                            // The claim loop gives back what it holds for them.
                            self.inner.store.endpoints_changed();
                        }
                        for (m, ep) in disabled {
                            tracing::warn!(merchant = %m, endpoint = ep, "webhook endpoint disabled: it kept failing");
                        }
                        break;
                    }
                    Err(e) => {
                        // Not recorded, the leases bring the deliveries back; but keep
                        // trying for a while, so a database blip does not cause resends.
                        tracing::warn!(error = %e, "recording delivery attempts failed; retrying");
                        if wait > Duration::from_secs(10) {
                            break;
                        }
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                }
            }
            // Failures are rescheduled and successes gone: there may be work again.
            self.inner.store.events_changed();
        }
    }

    async fn listen_loop(self, token: CancellationToken) {
        let mut listener = match self.inner.store.event_listener().await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN for events failed; relying on the poll");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                n = listener.recv() => match n {
                    Ok(_) => self.inner.store.events_changed(),
                    Err(e) => {
                        tracing::warn!(error = %e, "event notifications interrupted");
                        tokio::time::sleep(Duration::from_millis(self.inner.cfg.poll_ms)).await;
                    }
                }
            }
        }
    }

    async fn prune_loop(self, token: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tick.tick() => {}
            }
            let before = now_ms() - self.inner.cfg.retention_days * 86_400_000;
            match self.inner.store.prune_events(before).await {
                Ok((0, 0)) => {}
                Ok((events, attempts)) => {
                    tracing::info!(events, attempts, "old events and attempts pruned")
                }
                Err(e) => tracing::warn!(error = %e, "pruning events failed; retrying later"),
            }
        }
    }
}

/// `delay` seconds, ±20 %, in milliseconds: retries of many events that failed together
/// do not all come back in the same instant.
fn jittered(delay_s: u64) -> u64 {
    if delay_s == 0 {
        return 0;
    }
    let ms = delay_s * 1000;
    let spread = ms / 5;
    rand::thread_rng().gen_range(ms - spread..=ms + spread)
}

/// `Retry-After`: delay seconds, or an HTTP date.
fn parse_retry_after(v: &str) -> Option<u64> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(s);
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some((at.timestamp() - chrono::Utc::now().timestamp()).max(0) as u64)
}

/// The start of a response body, as text.
async fn excerpt(mut resp: reqwest::Response) -> String {
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < EXCERPT {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c),
            _ => break,
        }
    }
    buf.truncate(EXCERPT);
    String::from_utf8_lossy(&buf).into_owned()
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(7));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(0));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn jitter_stays_within_a_fifth_of_the_delay() {
        assert_eq!(jittered(0), 0);
        for _ in 0..100 {
            let d = jittered(5);
            assert!((4000..=6000).contains(&d), "{d}");
        }
    }
}
