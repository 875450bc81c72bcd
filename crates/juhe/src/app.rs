//! Application bootstrap: storage, router and server, started in-process so tests can run
//! the real thing on port 0. One cancellation token is the shutdown path for every task.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::{router, AppState};
use crate::store::{redact, Store};

pub struct Application {
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
}

impl Application {
    /// Opens the store (applying migrations) and binds the listener.
    pub async fn build(cfg: Config) -> anyhow::Result<Application> {
        let store = Store::open(&cfg.database_url, cfg.db_max_connections).await?;
        tracing::info!(database = %redact(&cfg.database_url), backend = ?store.backend(), "store ready");
        Application::with_store(cfg, store).await
    }

    /// Like [`Application::build`] with an already opened store.
    pub async fn with_store(cfg: Config, store: Store) -> anyhow::Result<Application> {
        let addr = cfg.listen_addr()?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let state = AppState::new(store, cfg)?;
        Ok(Application {
            listener,
            state,
            shutdown: CancellationToken::new(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Cancelling this token stops the server (after draining in-flight requests).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then drains for up to the configured
    /// grace period. Background tasks added later (outbox workers, the assistant gateway)
    /// hang off the same token.
    pub async fn run(self) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let grace = Duration::from_secs(self.state.cfg.shutdown.grace_seconds);
        let store = self.state.store.clone();
        let token = self.shutdown.clone();
        tokio::spawn(sweep_expired_tokens(
            store.clone(),
            Duration::from_secs(self.state.cfg.auth.expired_token_sweep_seconds),
            token.clone(),
        ));
        tokio::spawn(crate::store::upkeep::run(store.clone(), token.clone()));
        let hub = self.state.gateway.clone();
        hub.spawn_background(token.clone());
        tokio::spawn(crate::core::bulk_run::run_loop(
            store.clone(),
            hub.clone(),
            self.state.cfg.gateway.clone(),
            token.clone(),
        ));
        let dispatcher = crate::webhooks::Dispatcher::new(
            store.clone(),
            self.state.cfg.webhooks.clone(),
            self.state.offset,
            self.state.metrics.clone(),
        )?
        .spawn(token.clone());
        let app = router(self.state);
        tracing::info!(%addr, "listening");
        // Connect info gives the per-address authentication limits their key.
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        // No Nagle: the assistant protocol and the API answer with small writes, and on
        // loopback Nagle's wait for the peer's delayed ACK added ~40 ms to a send's round
        // trip (docs/benchmarks.md, issue 6).
        use axum::serve::ListenerExt;
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "setting TCP_NODELAY failed");
            }
        });
        let server = axum::serve(listener, app).with_graceful_shutdown({
            let token = token.clone();
            async move { token.cancelled().await }
        });
        let mut serving = tokio::spawn(async move { server.await });
        // `biased`: when shutdown is requested the server finishes at the same moment, and the
        // shutdown branch must win so the drain is logged and bounded.
        let early = tokio::select! {
            biased;
            _ = token.cancelled() => None,
            joined = &mut serving => Some(joined),
        };
        if let Some(joined) = early {
            hub.stop();
            store.close().await;
            joined
                .context("server task panicked")?
                .context("server failed")?;
            anyhow::bail!("server stopped unexpectedly");
        }
        tracing::info!("shutting down: draining in-flight requests");
        // Assistant connections are not requests: close them (1001) so they reconnect to
        // another process, instead of holding the drain for the whole grace period.
        hub.stop();
        match tokio::time::timeout(grace, serving).await {
            Ok(joined) => joined
                .context("server task panicked")?
                .context("server failed")?,
            Err(_) => tracing::warn!(
                grace_seconds = grace.as_secs(),
                "in-flight requests did not finish within the grace period"
            ),
        }
        hub.drained(Duration::from_secs(3)).await;
        // Attempts in flight are recorded before the store closes (each is bounded by the
        // delivery timeout); past the grace, their leases bring them back after a restart.
        if tokio::time::timeout(grace, dispatcher).await.is_err() {
            tracing::warn!("webhook deliveries in flight did not finish within the grace period");
        }
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Deletes expired tokens every `every` until shutdown. A sweeper rather than a delete on
/// each token issue: token issues are what an attacker can drive, a timer is not.
async fn sweep_expired_tokens(store: Store, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store
            .admin()
            .delete_expired_tokens(crate::store::now())
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "expired tokens deleted"),
            Err(e) => tracing::warn!(error = %e, "deleting expired tokens failed; retrying later"),
        }
    }
}

/// Status of a forced exit: the conventional 128 + SIGINT, so a supervisor sees that the
/// process did not stop cleanly.
pub const FORCED_EXIT_STATUS: i32 = 130;

/// SIGTERM and Ctrl-C, registered at creation (see [`shutdown_signal`] for why) and
/// receivable more than once.
pub struct ShutdownSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    pub fn register() -> ShutdownSignals {
        ShutdownSignals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    /// Resolves at the next SIGTERM or Ctrl-C.
    pub async fn next(&mut self) {
        let ctrl_c = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await
            }
        };
        #[cfg(unix)]
        let term = async {
            match &mut self.term {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
    }

    /// The first signal cancels `token` (drain and stop); a second one ends the process at
    /// once with [`FORCED_EXIT_STATUS`], for an operator whose drain is stuck on a request
    /// that will not finish. The store is not closed then: SQLite's WAL keeps what was
    /// committed, and the next start recovers it.
    pub fn spawn_handler(mut self, token: CancellationToken) {
        tokio::spawn(async move {
            self.next().await;
            token.cancel();
            self.next().await;
            tracing::error!("second shutdown signal: exiting without waiting for the drain");
            std::process::exit(FORCED_EXIT_STATUS);
        });
    }
}

/// Resolves when SIGTERM or Ctrl-C arrives. The SIGTERM handler is registered when this
/// is called, not when first polled, so call it before the listener accepts anything: a
/// SIGTERM that races start-up must still mean "drain and stop", not "die".
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut signals = ShutdownSignals::register();
    async move { signals.next().await }
}

/// Initialises logging: readable text by default, JSON lines with `json`.
pub fn init_logging(format: crate::config::LogFormat, default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    use std::io::IsTerminal;
    // Colour only on a terminal: escape codes in log files and journald are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        crate::config::LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        crate::config::LogFormat::Text => builder.try_init(),
    };
}
