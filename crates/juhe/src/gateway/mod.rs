//! The assistant gateway: RPA assistants (助手) connect over WebSocket, report what happens
//! in WeChat and execute tasks (docs/assistant-protocol.md).
//!
//! One task per connection (`conn.rs`). The [`Hub`] knows which devices this process holds
//! and wakes a connection when work for it is committed: directly when the task was
//! written in this process, through PostgreSQL's LISTEN/NOTIFY when another process wrote
//! it, and by a slow poll when both are missed. Tasks live in the database, never only in
//! memory, so a crash or a reconnect loses none.

mod conn;
pub mod frames;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;
use crate::error::{ApiError, Code};
use crate::http::AppState;
use crate::store::devices::DeviceAuth;
use crate::store::{MerchantId, Store};

/// What the rest of the server asks of one connection.
#[derive(Debug)]
enum Control {
    /// Close with this WebSocket close code and reason.
    Close(u16, &'static str),
    /// Drop a task the assistant was given (cancelled or expired).
    Forget { task_id: i64, cancel: bool },
    /// Send this frame as it is (a takeover state change).
    Frame(serde_json::Value),
}

struct Entry {
    serial: u64,
    wake: Arc<Notify>,
    control: mpsc::Sender<Control>,
}

type Key = (i64, i64);

/// The devices connected to this process.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    cfg: GatewayConfig,
    conns: Mutex<HashMap<Key, Entry>>,
    next_serial: std::sync::atomic::AtomicU64,
    stop: CancellationToken,
}

fn key(m: MerchantId, device_id: i64) -> Key {
    (m.get(), device_id)
}

impl Hub {
    pub fn new(store: Store, cfg: GatewayConfig) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                store,
                cfg,
                conns: Mutex::new(HashMap::new()),
                next_serial: Default::default(),
                stop: CancellationToken::new(),
            }),
        }
    }

    /// Wakes the device's connection, if this process holds it, to look for due tasks.
    /// Call after the transaction that enqueued them committed.
    pub fn wake(&self, m: MerchantId, device_id: i64) {
        if let Some(e) = self.conns().get(&key(m, device_id)) {
            e.wake.notify_one();
        }
    }

    /// Tells the device's connection (if held here) that a task it was given is cancelled.
    pub fn cancel(&self, m: MerchantId, device_id: i64, task_id: i64) {
        self.control(
            m,
            device_id,
            Control::Forget {
                task_id,
                cancel: true,
            },
        );
    }

    /// Sends a state frame (e.g. a takeover change) to the device's connection, if held
    /// here. Best effort: durable state reaches the device as a task or on reconnect.
    pub fn send_frame(&self, m: MerchantId, device_id: i64, frame: serde_json::Value) {
        self.control(m, device_id, Control::Frame(frame));
    }

    /// Number of assistant connections held by this process.
    pub fn connections(&self) -> usize {
        self.conns().len()
    }

    /// Whether this process holds the device's connection.
    pub fn is_connected(&self, m: MerchantId, device_id: i64) -> bool {
        self.conns().contains_key(&key(m, device_id))
    }

    /// Closes every connection (code 1001) and stops the background loops.
    pub fn stop(&self) {
        self.inner.stop.cancel();
    }

    /// Waits (at most `within`) until every connection has finished closing, so their last
    /// writes (accounts marked offline) happen before the store closes.
    pub async fn drained(&self, within: Duration) {
        let until = tokio::time::Instant::now() + within;
        while self.connections() > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Connections that have not finished their own goodbye (thousands of them each
        // take a write) are marked offline together, before the store closes under them.
        let left: Vec<Key> = self.conns().keys().copied().collect();
        if !left.is_empty() {
            tracing::info!(
                devices = left.len(),
                "marking the remaining assistants offline"
            );
            if let Err(e) = self.inner.store.devices_offline(&left).await {
                tracing::warn!(error = %e, "marking the remaining assistants offline failed");
            }
        }
    }

    fn control(&self, m: MerchantId, device_id: i64, c: Control) {
        if let Some(e) = self.conns().get(&key(m, device_id)) {
            // A full control queue means the connection is stuck; it will be dropped by its
            // heartbeat, and the state reaches the device again on reconnect.
            let _ = e.control.try_send(c);
        }
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        // A panic while holding this lock cannot leave the map half-changed (single
        // insert/remove), so a poisoned lock is still usable.
        self.inner.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection of `auth`, replacing (closing) an older one of the same
    /// device. Returns its serial, wake-up and control receiver.
    fn register(&self, auth: DeviceAuth) -> (u64, Arc<Notify>, mpsc::Receiver<Control>) {
        let serial = self
            .inner
            .next_serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let wake = Arc::new(Notify::new());
        let (tx, rx) = mpsc::channel(64);
        let old = self.conns().insert(
            key(auth.merchant, auth.device_id),
            Entry {
                serial,
                wake: wake.clone(),
                control: tx,
            },
        );
        if let Some(old) = old {
            let _ = old
                .control
                .try_send(Control::Close(4002, "replaced by a newer connection"));
        }
        (serial, wake, rx)
    }

    /// Removes the connection unless a newer one of the same device replaced it; returns
    /// whether it was still the device's current connection.
    fn unregister(&self, auth: DeviceAuth, serial: u64) -> bool {
        let mut conns = self.conns();
        if conns
            .get(&key(auth.merchant, auth.device_id))
            .is_some_and(|e| e.serial == serial)
        {
            conns.remove(&key(auth.merchant, auth.device_id));
            true
        } else {
            false
        }
    }

    /// The background loops of the gateway: the fallback poll (due tasks, revocations,
    /// expiry) and, on PostgreSQL, the LISTEN connection. They end with `stop` or `token`.
    pub fn spawn_background(&self, token: CancellationToken) {
        let hub = self.clone();
        let t = token.clone();
        tokio::spawn(async move { hub.poll_loop(t).await });
        let hub = self.clone();
        tokio::spawn(async move { hub.listen_loop(token).await });
    }

    async fn poll_loop(self, token: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.inner.cfg.poll_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut revoked_after = crate::store::now() - 1;
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = self.inner.stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.poll_once(&mut revoked_after).await {
                tracing::warn!(error = %e, "gateway poll failed; retrying");
            }
        }
    }

    async fn poll_once(&self, revoked_after: &mut i64) -> Result<(), sqlx::Error> {
        let store = &self.inner.store;
        let since = *revoked_after;
        *revoked_after = crate::store::now() - 1;
        for d in store.revoked_since(since).await? {
            self.control(d.merchant, d.device_id, Control::Close(4001, "revoked"));
        }
        for (m, task) in store.expire_tasks(1000).await? {
            tracing::info!(merchant = %m, task_id = task.task_id, "task expired");
            self.control(
                m,
                task.device_id,
                Control::Forget {
                    task_id: task.task_id,
                    cancel: true,
                },
            );
        }
        if !self.conns().is_empty() {
            for (m, d) in store.devices_with_due_tasks().await? {
                self.wake(m, d);
            }
        }
        Ok(())
    }

    async fn listen_loop(self, token: CancellationToken) {
        let mut listener = match self.inner.store.task_listener().await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN for tasks failed; relying on the poll");
                return;
            }
        };
        loop {
            let n = tokio::select! {
                _ = token.cancelled() => return,
                _ = self.inner.stop.cancelled() => return,
                n = listener.recv() => n,
            };
            match n {
                Ok(n) => {
                    let mut parts = n.payload().split(':');
                    if let (Some(Ok(m)), Some(Ok(d))) = (
                        parts.next().map(str::parse::<i64>),
                        parts.next().map(str::parse::<i64>),
                    ) {
                        if let Some(e) = self.conns().get(&(m, d)) {
                            e.wake.notify_one();
                        }
                    }
                }
                Err(e) => {
                    // PgListener reconnects by itself on the next recv; the poll covers the gap.
                    tracing::warn!(error = %e, "task notifications interrupted");
                    tokio::time::sleep(Duration::from_millis(self.inner.cfg.poll_ms)).await;
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct WsQuery {
    access_token: Option<String>,
}

/// The gateway's routes: `GET /assistant/ws`.
pub fn router() -> Router<AppState> {
    Router::new().route("/assistant/ws", get(upgrade))
}

async fn upgrade(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|s| s.trim().to_owned())
        .or(q.access_token);
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(ApiError::new(
            Code::TokenMissing,
            "Authorization: Bearer <deviceToken> is required",
        ));
    };
    let Some(auth) = st.store.device_by_token(&token).await? else {
        return Err(ApiError::new(
            Code::TokenInvalid,
            "the device token is unknown or revoked",
        ));
    };
    let offered = headers
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == "juhe.assistant.v1"));
    let mut ws = ws
        // Larger than the protocol's limit, so an oversized frame gets an error frame
        // instead of a dropped connection; beyond this the connection is dropped.
        .max_message_size(st.cfg.gateway.max_frame_bytes.saturating_mul(4))
        .max_frame_size(st.cfg.gateway.max_frame_bytes.saturating_mul(4))
        // tungstenite's defaults (128 KiB read buffer, 128 KiB write buffer) cost ~150 KiB
        // per idle connection; frames are small and bursts grow the buffers on demand.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024);
    if offered {
        ws = ws.protocols(["juhe.assistant.v1"]);
    }
    let hub = st.gateway.clone();
    Ok(ws
        .on_upgrade(move |socket| conn::serve(socket, hub, auth))
        .into_response())
}

/// The takeover state frames sent on connect (docs/assistant-protocol.md §6): one per
/// conversation of the device's accounts that is taken over now.
async fn takeover_snapshot(
    store: &Store,
    auth: DeviceAuth,
) -> Result<Vec<serde_json::Value>, sqlx::Error> {
    let open = store
        .tenant(auth.merchant)
        .open_takeovers_of_device(auth.device_id)
        .await?;
    Ok(open
        .iter()
        .map(crate::core::takeover::snapshot_frame)
        .collect())
}
