//! HTTP load generator behind `juhe bench getchat`.
//!
//! It drives `POST /v2/ChatMess/GetChat` over real loopback HTTP/1.1 with
//! keep-alive connections. The generator usually shares a small machine with
//! the server it measures, so the hot path is kept deliberately cheap: bodies
//! and `Authorization` headers are prepared once, responses are only scanned
//! for a success marker instead of being parsed, and every worker owns its
//! histogram so recording a latency never takes a lock.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// One request to send: a bearer token and a pre-serialized JSON body.
///
/// The body is a `String` rather than `bytes::Bytes` because `bytes` is not a
/// direct dependency of this crate; cloning a short JSON string per request is
/// negligible next to the HTTP round trip.
#[derive(Clone, Debug)]
pub struct Target {
    pub token: String,
    pub body: String,
}

#[derive(Clone, Debug)]
pub enum Mode {
    /// Closed loop: `concurrency` workers send back-to-back for `duration`; measures max throughput.
    ClosedLoop { concurrency: usize },
    /// Open loop at a fixed rate (requests/s) for `duration`, latency measured from the scheduled send time (no coordinated omission).
    FixedRate { rate: u64, max_in_flight: usize },
}

#[derive(Clone, Debug)]
pub struct LoadPlan {
    /// Full URL of the endpoint, e.g. `http://127.0.0.1:8080/v2/ChatMess/GetChat`.
    pub url: String,
    pub mode: Mode,
    pub duration: Duration,
    pub warmup: Duration,
}

/// Outcome of a run. Only requests whose (scheduled) start falls after the
/// warmup are counted.
///
/// `requests` includes failed ones; `requests_per_sec` is therefore offered
/// load, and `errors` says how much of it failed. Latency percentiles cover
/// successful requests only, so a fast-failing server cannot make latency look
/// good.
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    pub requests: u64,
    pub errors: u64,
    pub elapsed_secs: f64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LoadReport {
    /// One human-readable line, suitable for a terminal.
    pub fn summary_line(&self) -> String {
        format!(
            "{} requests ({} errors) in {:.2}s = {:.1} req/s; latency p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            self.requests,
            self.errors,
            self.elapsed_secs,
            self.requests_per_sec,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms,
        )
    }
}

/// Marker the server's envelope carries on success. Scanning for it is far
/// cheaper than deserializing a chat page per request.
const SUCCEED_MARKER: &[u8] = br#""succeed":true"#;

/// A request stuck longer than this is counted as failed so one hung
/// connection cannot stall a closed-loop worker for the rest of the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long after the planned end in-flight (or, in fixed-rate mode, overdue)
/// requests may still finish before the run gives up on them.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Histogram range in microseconds: 1 µs up to a minute, 3 significant digits.
const HIST_LOW_US: u64 = 1;
const HIST_HIGH_US: u64 = 60_000_000;
const HIST_SIGFIG: u8 = 3;

/// Sends the requests described by `plan`, cycling through `targets`
/// round-robin, and returns once `warmup + duration` has passed and the
/// in-flight requests have drained (at most [`DRAIN_GRACE`] later).
pub async fn run(plan: &LoadPlan, targets: Arc<Vec<Target>>) -> anyhow::Result<LoadReport> {
    if targets.is_empty() {
        bail!("load plan needs at least one target");
    }
    if plan.duration.is_zero() {
        bail!("load plan duration must be greater than zero");
    }
    match plan.mode {
        Mode::ClosedLoop { concurrency: 0 } => bail!("closed-loop concurrency must be at least 1"),
        Mode::FixedRate { rate: 0, .. } => bail!("fixed rate must be at least 1 request/s"),
        Mode::FixedRate {
            max_in_flight: 0, ..
        } => bail!("fixed-rate max_in_flight must be at least 1"),
        _ => {}
    }
    let url = reqwest::Url::parse(&plan.url)
        .with_context(|| format!("invalid load target URL {:?}", plan.url))?;
    let prepared = targets
        .iter()
        .map(Prepared::new)
        .collect::<anyhow::Result<Vec<_>>>()?;

    let client = reqwest::Client::builder()
        // A proxy configured in the environment would measure the proxy, not Juhe.
        .no_proxy()
        // Small request/response pairs would otherwise wait on Nagle + delayed ACK.
        .tcp_nodelay(true)
        .connect_timeout(REQUEST_TIMEOUT)
        .build()
        .context("building HTTP client for load generation")?;

    let start = Instant::now();
    let measure_start = start
        .checked_add(plan.warmup)
        .context("warmup is too long")?;
    let end = measure_start
        .checked_add(plan.duration)
        .context("duration is too long")?;
    let shared = Arc::new(Shared {
        client,
        url,
        targets: prepared,
        next_target: AtomicUsize::new(0),
        next_slot: AtomicU64::new(0),
        error_logged: AtomicBool::new(false),
        start,
        measure_start,
        end,
        hard_deadline: end + DRAIN_GRACE,
    });

    let mut workers = JoinSet::new();
    match plan.mode {
        Mode::ClosedLoop { concurrency } => {
            for _ in 0..concurrency {
                workers.spawn(closed_loop_worker(Arc::clone(&shared)));
            }
        }
        Mode::FixedRate {
            rate,
            max_in_flight,
        } => {
            // Workers beyond the total number of slots would exit immediately.
            let total_slots = slots_before(plan.warmup + plan.duration, rate);
            let worker_count = usize::try_from(total_slots)
                .unwrap_or(usize::MAX)
                .clamp(1, max_in_flight);
            for _ in 0..worker_count {
                workers.spawn(fixed_rate_worker(Arc::clone(&shared), rate));
            }
        }
    }

    let mut total = WorkerStats::new();
    while let Some(joined) = workers.join_next().await {
        let stats = joined.context("load generator worker panicked")?;
        total.merge(&stats)?;
    }

    if let Mode::FixedRate { rate, .. } = plan.mode {
        // Slots the workers never reached before the hard deadline are load the
        // server was supposed to receive; silently dropping them would flatter it.
        let scheduled = slots_before(plan.warmup + plan.duration, rate)
            .saturating_sub(slots_before(plan.warmup, rate));
        let unsent = scheduled.saturating_sub(total.requests);
        if unsent > 0 {
            tracing::warn!(
                unsent,
                "fixed-rate schedule fell behind; unsent requests are counted as errors"
            );
            total.requests += unsent;
            total.errors += unsent;
        }
    }

    Ok(total.into_report(measure_start, plan.duration))
}

/// A target with its headers prepared once, off the hot path.
struct Prepared {
    auth: HeaderValue,
    body: String,
}

impl Prepared {
    fn new(target: &Target) -> anyhow::Result<Self> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", target.token))
            .context("target token is not a valid header value")?;
        // Keeps tokens out of any debug output of requests.
        auth.set_sensitive(true);
        Ok(Self {
            auth,
            body: target.body.clone(),
        })
    }
}

struct Shared {
    client: reqwest::Client,
    url: reqwest::Url,
    targets: Vec<Prepared>,
    next_target: AtomicUsize,
    next_slot: AtomicU64,
    error_logged: AtomicBool,
    start: Instant,
    measure_start: Instant,
    end: Instant,
    hard_deadline: Instant,
}

enum Outcome {
    Success,
    Failure,
    /// The hard deadline passed; the worker must stop.
    Abandoned,
}

impl Shared {
    async fn send(&self, target: &Prepared) -> Outcome {
        let deadline = (Instant::now() + REQUEST_TIMEOUT).min(self.hard_deadline);
        let request = self
            .client
            .post(self.url.clone())
            .header(AUTHORIZATION, target.auth.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(target.body.clone());
        let exchange = async {
            let response = request.send().await?;
            let status = response.status();
            // Reading the body even on failure lets hyper return the
            // connection to the pool instead of closing it.
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok((status, body))) => {
                if status == StatusCode::OK && contains(&body, SUCCEED_MARKER) {
                    Outcome::Success
                } else {
                    self.log_first_error(|| {
                        format!(
                            "HTTP {status}, body starts with {:?}",
                            String::from_utf8_lossy(&body[..body.len().min(200)])
                        )
                    });
                    Outcome::Failure
                }
            }
            Ok(Err(err)) => {
                self.log_first_error(|| format!("transport error: {err}"));
                Outcome::Failure
            }
            Err(_) if deadline >= self.hard_deadline => Outcome::Abandoned,
            Err(_) => {
                self.log_first_error(|| format!("no response within {REQUEST_TIMEOUT:?}"));
                Outcome::Failure
            }
        }
    }

    /// A broken server fails every request; one example is enough to diagnose it
    /// and logging each one would cost more than the requests themselves.
    fn log_first_error(&self, describe: impl FnOnce() -> String) {
        if !self.error_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(url = %self.url, "load request failed (further failures are only counted): {}", describe());
        }
    }
}

async fn closed_loop_worker(shared: Arc<Shared>) -> WorkerStats {
    let mut stats = WorkerStats::new();
    loop {
        let sent = Instant::now();
        if sent >= shared.end {
            break;
        }
        let index = shared.next_target.fetch_add(1, Ordering::Relaxed) % shared.targets.len();
        let outcome = shared.send(&shared.targets[index]).await;
        let done = Instant::now();
        if sent >= shared.measure_start {
            stats.record(&outcome, done - sent, done);
        }
        if matches!(outcome, Outcome::Abandoned) {
            break;
        }
    }
    stats
}

/// Workers claim schedule slots in order, so a worker that is still waiting
/// for a slow response simply leaves the next slot to another worker, and when
/// all are busy the backlog shows up as latency measured from the slot time.
async fn fixed_rate_worker(shared: Arc<Shared>, rate: u64) -> WorkerStats {
    let mut stats = WorkerStats::new();
    loop {
        let slot = shared.next_slot.fetch_add(1, Ordering::Relaxed);
        let scheduled = shared.start + slot_offset(slot, rate);
        if scheduled >= shared.end {
            break;
        }
        // An idle worker is woken by tokio's 1 ms-resolution timer, so charging
        // the wake-up slack to the server would inflate every sub-millisecond
        // latency. Only a worker that was busy (the slot was already due) was
        // held back by the server, and then the wait counts.
        let origin = if Instant::now() < scheduled {
            tokio::time::sleep_until(scheduled).await;
            Instant::now()
        } else {
            scheduled
        };
        let index = usize::try_from(slot % shared.targets.len() as u64).unwrap_or(0);
        let outcome = shared.send(&shared.targets[index]).await;
        let done = Instant::now();
        if scheduled >= shared.measure_start {
            stats.record(&outcome, done - origin, done);
        }
        if matches!(outcome, Outcome::Abandoned) {
            break;
        }
    }
    stats
}

/// Time of slot `n` relative to the start; integer maths keeps long runs from
/// drifting the way accumulated float intervals would.
fn slot_offset(n: u64, rate: u64) -> Duration {
    let nanos = u128::from(n) * 1_000_000_000 / u128::from(rate);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Number of slots whose offset is strictly before `t`, i.e. `ceil(t * rate)`.
fn slots_before(t: Duration, rate: u64) -> u64 {
    let scaled = t.as_nanos() * u128::from(rate);
    u64::try_from(scaled.div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

struct WorkerStats {
    hist: Histogram<u64>,
    requests: u64,
    errors: u64,
    last_done: Option<Instant>,
}

impl WorkerStats {
    fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(HIST_LOW_US, HIST_HIGH_US, HIST_SIGFIG)
                .expect("constant histogram bounds are valid"),
            requests: 0,
            errors: 0,
            last_done: None,
        }
    }

    fn record(&mut self, outcome: &Outcome, latency: Duration, done: Instant) {
        self.requests += 1;
        self.last_done = Some(self.last_done.map_or(done, |t| t.max(done)));
        match outcome {
            Outcome::Success => {
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.hist.saturating_record(micros.max(HIST_LOW_US));
            }
            Outcome::Failure | Outcome::Abandoned => self.errors += 1,
        }
    }

    fn merge(&mut self, other: &WorkerStats) -> anyhow::Result<()> {
        self.hist
            .add(&other.hist)
            .context("merging latency histograms")?;
        self.requests += other.requests;
        self.errors += other.errors;
        self.last_done = match (self.last_done, other.last_done) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Ok(())
    }

    fn into_report(self, measure_start: Instant, planned: Duration) -> LoadReport {
        // Requests started near the end finish a little after it; never report
        // less than the planned window, or a sparse fixed-rate run would divide
        // by a single latency and claim an absurd rate.
        let elapsed = self
            .last_done
            .map_or(planned, |t| t.saturating_duration_since(measure_start))
            .max(planned);
        let elapsed_secs = elapsed.as_secs_f64();
        let ms = |us: u64| us as f64 / 1000.0;
        let quantile = |q: f64| {
            if self.hist.is_empty() {
                0.0
            } else {
                ms(self.hist.value_at_quantile(q))
            }
        };
        LoadReport {
            requests: self.requests,
            errors: self.errors,
            elapsed_secs,
            requests_per_sec: self.requests as f64 / elapsed_secs,
            p50_ms: quantile(0.50),
            p90_ms: quantile(0.90),
            p99_ms: quantile(0.99),
            max_ms: if self.hist.is_empty() {
                0.0
            } else {
                ms(self.hist.max())
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, StatusCode as AxumStatus};
    use axum::routing::post;
    use axum::Router;
    use std::collections::HashMap;
    use std::sync::Mutex;

    const PATH: &str = "/v2/ChatMess/GetChat";

    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}{PATH}")
    }

    /// Answers like GetChat when the request carries a bearer token and a JSON
    /// body, and tallies which tokens it saw.
    async fn healthy_server() -> (String, Arc<Mutex<HashMap<String, u64>>>) {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let tally = Arc::clone(&seen);
        let app = Router::new().route(
            PATH,
            post(move |headers: HeaderMap, body: String| {
                let tally = Arc::clone(&tally);
                async move {
                    let token = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .map(str::to_owned);
                    let json = headers
                        .get("content-type")
                        .is_some_and(|v| v == "application/json");
                    let ok = match token {
                        Some(token) if json && body.starts_with('{') => {
                            *tally.lock().unwrap().entry(token).or_insert(0) += 1;
                            true
                        }
                        _ => false,
                    };
                    (
                        [("content-type", "application/json")],
                        format!(r#"{{"succeed":{ok},"errorCode":0,"data":[]}}"#),
                    )
                }
            }),
        );
        (serve(app).await, seen)
    }

    fn targets(n: usize) -> Arc<Vec<Target>> {
        Arc::new(
            (0..n)
                .map(|i| Target {
                    token: format!("token-{i}"),
                    body: format!(r#"{{"chatId":{i},"page":1}}"#),
                })
                .collect(),
        )
    }

    fn plan(url: String, mode: Mode, secs: f64) -> LoadPlan {
        LoadPlan {
            url,
            mode,
            duration: Duration::from_secs_f64(secs),
            warmup: Duration::ZERO,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closed_loop_against_a_healthy_server_completes_requests_without_errors() {
        let (url, _) = healthy_server().await;
        let mut plan = plan(url, Mode::ClosedLoop { concurrency: 8 }, 1.0);
        plan.warmup = Duration::from_millis(200);
        let report = run(&plan, targets(3)).await.unwrap();
        println!("closed loop self-test: {}", report.summary_line());
        assert!(report.requests > 0, "{report:?}");
        assert_eq!(report.errors, 0, "{report:?}");
        assert!(
            report.elapsed_secs >= 1.0 && report.elapsed_secs < 2.0,
            "{report:?}"
        );
        assert!(
            report.p50_ms > 0.0 && report.p50_ms <= report.p99_ms,
            "{report:?}"
        );
        assert!(report.p99_ms <= report.max_ms, "{report:?}");
        assert!(report.summary_line().contains("req/s"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fixed_rate_sends_about_the_requested_number_of_requests_round_robin() {
        let (url, seen) = healthy_server().await;
        let mode = Mode::FixedRate {
            rate: 200,
            max_in_flight: 16,
        };
        let report = run(&plan(url, mode, 1.0), targets(2)).await.unwrap();
        println!("fixed rate self-test: {}", report.summary_line());
        assert_eq!(report.errors, 0, "{report:?}");
        assert!(
            (150..=250).contains(&report.requests),
            "expected ~200 requests: {report:?}"
        );
        let seen = seen.lock().unwrap();
        let (a, b) = (seen["token-0"], seen["token-1"]);
        assert!(a.abs_diff(b) <= 1, "targets not used round-robin: {seen:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn warmup_requests_are_not_counted() {
        let (url, seen) = healthy_server().await;
        let mut plan = plan(
            url,
            Mode::FixedRate {
                rate: 100,
                max_in_flight: 4,
            },
            0.5,
        );
        plan.warmup = Duration::from_millis(500);
        let report = run(&plan, targets(1)).await.unwrap();
        let served: u64 = seen.lock().unwrap().values().sum();
        assert_eq!(
            served, 100,
            "server should see warmup and measured requests"
        );
        assert_eq!(report.requests, 50, "{report:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_errors_are_counted_as_failures() {
        let app = Router::new().route(
            PATH,
            post(|| async { (AxumStatus::INTERNAL_SERVER_ERROR, r#"{"succeed":true}"#) }),
        );
        let url = serve(app).await;
        for mode in [
            Mode::ClosedLoop { concurrency: 2 },
            Mode::FixedRate {
                rate: 100,
                max_in_flight: 4,
            },
        ] {
            let report = run(&plan(url.clone(), mode, 0.3), targets(1))
                .await
                .unwrap();
            assert!(report.requests > 0, "{report:?}");
            assert_eq!(report.errors, report.requests, "{report:?}");
            assert_eq!(report.max_ms, 0.0, "failures must not enter the histogram");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_ok_response_without_succeed_true_counts_as_a_failure() {
        let app = Router::new().route(
            PATH,
            post(|| async { r#"{"succeed":false,"errorCode":40001}"# }),
        );
        let url = serve(app).await;
        let report = run(
            &plan(url, Mode::ClosedLoop { concurrency: 2 }, 0.3),
            targets(1),
        )
        .await
        .unwrap();
        assert!(report.requests > 0, "{report:?}");
        assert_eq!(report.errors, report.requests, "{report:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_server_yields_errors_instead_of_hanging() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{PATH}", listener.local_addr().unwrap());
        drop(listener);
        let started = std::time::Instant::now();
        let mode = Mode::FixedRate {
            rate: 50,
            max_in_flight: 2,
        };
        let report = run(&plan(url, mode, 0.3), targets(1)).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(report.errors > 0, "{report:?}");
        assert_eq!(report.errors, report.requests, "{report:?}");
    }

    #[tokio::test]
    async fn invalid_plans_are_rejected() {
        let url = "http://127.0.0.1:9/x".to_owned();
        let closed = |concurrency| Mode::ClosedLoop { concurrency };
        assert!(run(&plan(url.clone(), closed(1), 0.1), targets(0))
            .await
            .is_err());
        assert!(run(&plan(url.clone(), closed(0), 0.1), targets(1))
            .await
            .is_err());
        assert!(run(&plan(url.clone(), closed(1), 0.0), targets(1))
            .await
            .is_err());
        let zero_rate = Mode::FixedRate {
            rate: 0,
            max_in_flight: 1,
        };
        assert!(run(&plan(url.clone(), zero_rate, 0.1), targets(1))
            .await
            .is_err());
        assert!(run(&plan("not a url".into(), closed(1), 0.1), targets(1))
            .await
            .is_err());
    }

    #[test]
    fn the_schedule_spaces_slots_evenly_and_counts_them_exactly() {
        assert_eq!(slot_offset(0, 200), Duration::ZERO);
        assert_eq!(slot_offset(1, 200), Duration::from_millis(5));
        assert_eq!(slot_offset(3, 3), Duration::from_secs(1));
        assert_eq!(slots_before(Duration::from_secs(1), 200), 200);
        assert_eq!(slots_before(Duration::from_millis(1), 3), 1);
        assert_eq!(slots_before(Duration::ZERO, 3), 0);
    }
}
