//! Configuration: compiled-in defaults, then an optional TOML file, then `JUHE_*`
//! environment variables, then command-line overrides. Validated once at start so a
//! typo fails loudly instead of surfacing as odd behaviour under load.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

use anyhow::{bail, Context};
use chrono::FixedOffset;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Top-level configuration keys, for filtering `JUHE_*` variables.
const SECTIONS: [&str; 13] = [
    "listen",
    "database_url",
    "db_max_connections",
    "utc_offset",
    "log_format",
    "log_filter",
    "auth",
    "rate_limit",
    "api",
    "report",
    "shutdown",
    "gateway",
    "webhooks",
];

/// The commented default configuration, printed by `juhe default-config`.
pub const DEFAULT_CONFIG: &str = include_str!("config.default.toml");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub database_url: String,
    pub db_max_connections: u32,
    pub utc_offset: String,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    pub api: ApiConfig,
    pub report: ReportConfig,
    pub shutdown: ShutdownConfig,
    pub gateway: GatewayConfig,
    pub webhooks: WebhooksConfig,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub token_ttl_seconds: i64,
    pub token_per_client_per_minute: u32,
    pub token_per_client_burst: u32,
    pub token_per_ip_per_minute: u32,
    pub token_per_ip_burst: u32,
    pub failed_auth_per_ip_per_minute: u32,
    pub failed_auth_per_ip_burst: u32,
    pub expired_token_sweep_seconds: u64,
    pub token_cache_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub max_page_size: i64,
    pub default_page_size: i64,
    pub max_body_bytes: usize,
    pub idempotency_ttl_seconds: i64,
    /// A request still running after this long is answered with the envelope (200108).
    pub request_timeout_seconds: u64,
    /// Expensive requests (reports, counts) one merchant may run at once; 0 = no cap.
    pub max_concurrent_expensive: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    pub activation_idle_hours: i64,
    pub reply_window_hours: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    pub grace_seconds: u64,
}

/// The assistant gateway (docs/assistant-protocol.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Assistants send at least a ping this often; silent for 3x this, they are dropped.
    pub heartbeat_seconds: u64,
    pub max_frame_bytes: usize,
    /// Most items in one reported batch (fans, chats, calls).
    pub max_batch: usize,
    /// Most tasks handed to one connection without a result.
    pub max_inflight_tasks: i64,
    /// Least time between two tasks handed to one operating account, in milliseconds.
    pub send_interval_ms: i64,
    /// A task without a result this long after it was created fails with `expired`.
    pub task_ttl_seconds: i64,
    /// How often each process looks for due tasks, revoked devices and expired tasks
    /// (the fallback behind in-process wake-ups and PostgreSQL's LISTEN/NOTIFY).
    pub poll_ms: u64,
    /// Frames the server queues for one connection before it stops taking tasks for it.
    pub outbound_queue: usize,
}

/// Event delivery to callback URLs (docs/events.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// A delivery that has not answered within this is a failed attempt.
    pub timeout_seconds: u64,
    /// Delay before each attempt after an event is written (the first is normally 0); its
    /// length is the number of attempts. Each delay gets ±20 % jitter.
    pub retry_schedule_seconds: Vec<u64>,
    /// Send to loopback, private and link-local addresses (development and tests only).
    pub allow_private_targets: bool,
    /// Deliveries in flight at once in this process, over all endpoints.
    pub max_concurrency: usize,
    /// Deliveries in flight at once to one endpoint, per process.
    pub per_endpoint_concurrency: usize,
    /// Most deliveries started per second by this process, over all endpoints (0: no cap).
    pub max_per_second: u32,
    /// An endpoint whose every delivery failed for this long is disabled.
    pub disable_after_seconds: i64,
    /// Events and attempts older than this are deleted (pending deliveries are kept).
    pub retention_days: i64,
    /// How long the previous secret keeps signing after a rotation.
    pub secret_grace_seconds: i64,
    /// How often each process looks for due deliveries besides its wake-ups.
    pub poll_ms: u64,
}

/// Values given on the command line; they win over every other source.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

impl Config {
    /// Loads the layered configuration. `file` is optional; a named file that does not
    /// exist is an error (a silently ignored config file is a classic outage).
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Toml::string(DEFAULT_CONFIG));
        if let Some(path) = file {
            if !path.exists() {
                bail!("config file {} does not exist", path.display());
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig
            // Only JUHE_* variables that name a setting: others (JUHE_CONFIG, the test
            // suite's JUHE_TEST_*) are not configuration, while a misspelt key in the
            // file is refused by `deny_unknown_fields`.
            .merge(Env::prefixed("JUHE_").split("__").filter(|k| {
                SECTIONS.contains(
                    &k.as_str()
                        .to_ascii_lowercase()
                        .split(".")
                        .next()
                        .unwrap_or(""),
                )
            }))
            .merge(Serialized::defaults(overrides));
        let cfg: Config = fig.extract().context("invalid configuration")?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Defaults only, with overrides: what tests and the demo start from.
    pub fn defaults_with(overrides: &Overrides) -> anyhow::Result<Config> {
        let cfg: Config = Figment::from(Toml::string(DEFAULT_CONFIG))
            .merge(Serialized::defaults(overrides))
            .extract()
            .context("invalid configuration")?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.listen_addr()?;
        self.offset()?;
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            bail!(
                "database_url must start with sqlite:// or postgres:// (got {:?})",
                self.database_url
            );
        }
        if self.db_max_connections == 0 {
            bail!("db_max_connections must be at least 1");
        }
        if self.auth.token_ttl_seconds < 60 {
            bail!("auth.token_ttl_seconds must be at least 60");
        }
        for (rate, burst, name) in [
            (
                self.auth.token_per_client_per_minute,
                self.auth.token_per_client_burst,
                "auth.token_per_client_burst",
            ),
            (
                self.auth.token_per_ip_per_minute,
                self.auth.token_per_ip_burst,
                "auth.token_per_ip_burst",
            ),
            (
                self.auth.failed_auth_per_ip_per_minute,
                self.auth.failed_auth_per_ip_burst,
                "auth.failed_auth_per_ip_burst",
            ),
        ] {
            if rate > 0 && burst == 0 {
                bail!("{name} must be at least 1 when its limit is on");
            }
        }
        let w = &self.webhooks;
        if w.timeout_seconds == 0 || w.timeout_seconds > 300 {
            bail!("webhooks.timeout_seconds must be between 1 and 300");
        }
        if w.retry_schedule_seconds.is_empty() || w.retry_schedule_seconds.len() > 50 {
            bail!("webhooks.retry_schedule_seconds must list between 1 and 50 delays");
        }
        if w.retry_schedule_seconds.iter().any(|d| *d > 7 * 86_400) {
            bail!("webhooks.retry_schedule_seconds: each delay must be at most 604800 (7 days)");
        }
        if w.max_concurrency == 0 || w.per_endpoint_concurrency == 0 {
            bail!(
                "webhooks.max_concurrency and webhooks.per_endpoint_concurrency must be at least 1"
            );
        }
        if w.disable_after_seconds < 1 {
            bail!("webhooks.disable_after_seconds must be at least 1");
        }
        if w.retention_days < 1 {
            bail!("webhooks.retention_days must be at least 1");
        }
        if w.secret_grace_seconds < 0 {
            bail!("webhooks.secret_grace_seconds must not be negative");
        }
        if w.poll_ms == 0 {
            bail!("webhooks.poll_ms must be at least 1");
        }
        let g = &self.gateway;
        if g.heartbeat_seconds == 0 || g.max_frame_bytes < 1024 || g.max_batch == 0 {
            bail!("gateway.heartbeat_seconds, gateway.max_batch must be at least 1 and gateway.max_frame_bytes at least 1024");
        }
        if g.max_inflight_tasks < 1 || g.send_interval_ms < 0 || g.task_ttl_seconds < 1 {
            bail!("gateway.max_inflight_tasks and gateway.task_ttl_seconds must be at least 1, gateway.send_interval_ms at least 0");
        }
        if g.poll_ms < 10 || g.outbound_queue < 8 {
            bail!("gateway.poll_ms must be at least 10 and gateway.outbound_queue at least 8");
        }
        if self.auth.expired_token_sweep_seconds == 0 {
            bail!("auth.expired_token_sweep_seconds must be at least 1");
        }
        // Another process's revocation waits this long to reach this one: a minute is
        // already long for "revoked" to mean "still works".
        if self.auth.token_cache_ms > 60_000 {
            bail!("auth.token_cache_ms must be at most 60000 (0 turns the cache off)");
        }
        if self.api.max_page_size < 1
            || self.api.default_page_size < 1
            || self.api.default_page_size > self.api.max_page_size
        {
            bail!("api.default_page_size must be between 1 and api.max_page_size");
        }
        if self.api.max_body_bytes < 1024 {
            bail!("api.max_body_bytes must be at least 1024");
        }
        if self.api.request_timeout_seconds < 1 {
            bail!("api.request_timeout_seconds must be at least 1");
        }
        if self.rate_limit.per_second > 0 && self.rate_limit.burst == 0 {
            bail!("rate_limit.burst must be at least 1 when rate limiting is on");
        }
        if !(1..=24 * 366).contains(&self.report.activation_idle_hours) {
            bail!("report.activation_idle_hours must be between 1 and 8784");
        }
        if !(1..=24 * 366).contains(&self.report.reply_window_hours) {
            bail!("report.reply_window_hours must be between 1 and 8784");
        }
        Ok(())
    }

    /// The address to bind. Host names (`localhost:5001`) are resolved here, once, so a
    /// name that does not resolve fails the start instead of the first request.
    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        if let Ok(a) = self.listen.parse() {
            return Ok(a);
        }
        let expected = || {
            format!(
                "listen must be HOST:PORT such as 127.0.0.1:5001, [::1]:5001 or localhost:5001 (got {:?})",
                self.listen
            )
        };
        let (host, port) = self.listen.rsplit_once(':').with_context(expected)?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            bail!(expected());
        }
        let mut addrs: Vec<SocketAddr> = self
            .listen
            .to_socket_addrs()
            .with_context(|| format!("{}: cannot resolve {host:?}", expected()))?
            .collect();
        // `localhost` often resolves to ::1 first; IPv4 is what most clients try first.
        addrs.sort_by_key(|a| !a.is_ipv4());
        addrs
            .into_iter()
            .next()
            .with_context(|| format!("{}: {host:?} resolves to no address", expected()))
    }

    pub fn offset(&self) -> anyhow::Result<FixedOffset> {
        parse_offset(&self.utc_offset).with_context(|| {
            format!(
                "utc_offset must be an offset from UTC such as +08:00, +8, +0800, -05:30 or UTC (got {:?})",
                self.utc_offset
            )
        })
    }
}

/// Accepts the spellings people actually write: `+08:00`, `+8`, `+08`, `+0800`, `-5:30`,
/// `UTC`/`Z`. A bare number without a sign is refused: `8` and `-8` are too easy to confuse.
fn parse_offset(s: &str) -> Option<FixedOffset> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("utc") || s.eq_ignore_ascii_case("z") || s == "+00:00" {
        return FixedOffset::east_opt(0);
    }
    let s = s
        .strip_prefix("UTC")
        .or_else(|| s.strip_prefix("utc"))
        .unwrap_or(s);
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) if !h.is_empty() && h.len() <= 2 && m.len() == 2 => (h, m),
        Some(_) => return None,
        None if rest.len() <= 2 => (rest, "0"),
        None if rest.len() == 4 => rest.split_at(2),
        None => return None,
    };
    let h: i32 = h.parse().ok()?;
    let m: i32 = m.parse().ok()?;
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_valid() {
        Config::defaults_with(&Overrides::default()).unwrap();
    }

    #[test]
    fn a_misspelt_key_in_the_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("juhe-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("juhe.toml");
        std::fs::write(&path, "[rate_limit]\nper_secnd = 1\n").unwrap();
        let err = format!(
            "{:#}",
            Config::load(Some(&path), &Overrides::default()).unwrap_err()
        );
        assert!(err.contains("per_secnd"), "{err}");
    }

    #[test]
    fn offsets_parse_with_sign_and_reject_nonsense() {
        assert_eq!(parse_offset("+08:00").unwrap().local_minus_utc(), 8 * 3600);
        assert_eq!(
            parse_offset("-05:30").unwrap().local_minus_utc(),
            -(5 * 3600 + 1800)
        );
        assert!(parse_offset("08:00").is_none());
        assert!(parse_offset("+25:00").is_none());
    }

    #[test]
    fn offsets_accept_the_usual_short_spellings() {
        for (s, secs) in [
            ("+8", 8 * 3600),
            ("+08", 8 * 3600),
            ("+0800", 8 * 3600),
            ("+08:00", 8 * 3600),
            ("-5:30", -(5 * 3600 + 1800)),
            ("-0530", -(5 * 3600 + 1800)),
            ("UTC", 0),
            ("Z", 0),
            ("UTC+8", 8 * 3600),
        ] {
            assert_eq!(
                parse_offset(s).map(|o| o.local_minus_utc()),
                Some(secs),
                "{s}"
            );
        }
        for s in ["8", "+", "+123", "+08:0", "+8h", "+08:60", "", "+１"] {
            assert!(parse_offset(s).is_none(), "{s}");
        }
    }

    #[test]
    fn a_bad_offset_names_the_expected_format() {
        let mut cfg = Config::defaults_with(&Overrides::default()).unwrap();
        cfg.utc_offset = "8".into();
        let err = format!("{:#}", cfg.validate().unwrap_err());
        assert!(err.contains("+08:00") && err.contains("\"8\""), "{err}");
    }

    #[test]
    fn listen_accepts_host_names() {
        let mut cfg = Config::defaults_with(&Overrides::default()).unwrap();
        cfg.listen = "localhost:5001".into();
        let a = cfg.listen_addr().unwrap();
        assert!(a.ip().is_loopback() && a.port() == 5001, "{a}");
        cfg.listen = "[::1]:7".into();
        assert_eq!(cfg.listen_addr().unwrap().port(), 7);
        for bad in [
            "localhost",
            "localhost:99999",
            ":5001",
            "no-such-host.invalid:5001",
        ] {
            cfg.listen = bad.into();
            let err = format!("{:#}", cfg.listen_addr().unwrap_err());
            assert!(err.contains("HOST:PORT"), "{bad}: {err}");
        }
    }
}
