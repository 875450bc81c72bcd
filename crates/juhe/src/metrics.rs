//! Prometheus metrics, kept in a registry owned by the application (not a global), so
//! several servers in one test process do not share counters.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::Store;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
    pub errmsg: i64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    /// succeeded, retrying or failed.
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    /// Webhook delivery attempts made by this process, by outcome.
    pub webhook_attempts: Family<AttemptLabels, Counter>,
    /// Deliveries still to be made (all processes), refreshed at scrape time.
    pub webhook_pending: Gauge,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub pool_connections: Family<PoolLabels, Gauge>,
    pub pool_idle: Family<PoolLabels, Gauge>,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms … ~4 s: GetChat is expected in the low milliseconds.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.00025, 2.0, 15,
    ))
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("juhe");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let pool_connections = Family::<PoolLabels, Gauge>::default();
        let pool_idle = Family::<PoolLabels, Gauge>::default();
        let webhook_attempts = Family::<AttemptLabels, Counter>::default();
        let webhook_pending = Gauge::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts by outcome (succeeded, retrying, failed)",
            webhook_attempts.clone(),
        );
        registry.register(
            "webhook_deliveries_pending",
            "Webhook deliveries still to be made, over all processes",
            webhook_pending.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route, status and result code (errmsg)",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Open database connections by pool",
            pool_connections.clone(),
        );
        registry.register(
            "db_pool_idle_connections",
            "Idle database connections by pool",
            pool_idle.clone(),
        );
        Arc::new(Metrics {
            registry,
            webhook_attempts,
            webhook_pending,
            requests,
            latency,
            pool_connections,
            pool_idle,
        })
    }

    /// The text exposition, with pool gauges refreshed at scrape time.
    pub fn render(&self, store: &Store) -> String {
        for (name, size, idle) in store.pool_stats() {
            let l = PoolLabels {
                pool: name.to_owned(),
            };
            self.pool_connections.get_or_create(&l).set(i64::from(size));
            self.pool_idle.get_or_create(&l).set(i64::from(idle));
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
