//! Configuration: compiled-in defaults, then an optional TOML file, then `JUHE_*`
//! environment variables, then command-line overrides. Validated once at start so a
//! typo fails loudly instead of surfacing as odd behaviour under load.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context};
use chrono::FixedOffset;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Top-level configuration keys, for filtering `JUHE_*` variables.
const SECTIONS: [&str; 11] = [
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
    /// A request still running after this long is answered with the envelope (200107).
    pub request_timeout_seconds: u64,
    /// Expensive requests (reports, counts) one merchant may run at once; 0 = no cap.
    pub max_concurrent_expensive: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    pub activation_idle_hours: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    pub grace_seconds: u64,
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
        if self.report.activation_idle_hours < 1 {
            bail!("report.activation_idle_hours must be at least 1");
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listen.parse().with_context(|| {
            format!(
                "listen must be an address like 127.0.0.1:5001 (got {:?})",
                self.listen
            )
        })
    }

    pub fn offset(&self) -> anyhow::Result<FixedOffset> {
        parse_offset(&self.utc_offset).with_context(|| {
            format!(
                "utc_offset must look like +08:00 (got {:?})",
                self.utc_offset
            )
        })
    }
}

fn parse_offset(s: &str) -> Option<FixedOffset> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
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
}
