//! One assistant connection: reads report frames in order and acknowledges each after its
//! transaction commits; hands over due tasks with pacing and a bound on those in flight.
//!
//! Back-pressure both ways: the next frame is read only when the previous one is stored
//! and its answer queued, so a slow database slows the assistant (TCP) instead of growing a
//! queue; and the outbound queue is bounded, so a slow assistant gets no more tasks while
//! it is full instead of making the server buffer them.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::frames::{self, FrameError};
use super::{Control, Hub};
use crate::core::tasks::{ResultIn, ResultOutcome};
use crate::core::{self, Rejection};
use crate::store::chats::NewChat;
use crate::store::devices::{AccountClaim, AccountReport, CallReport, DeviceAuth, FanReport};
use crate::store::tasks::{state_name, TaskResult, TaskRow};
use crate::store::Tenant;

/// Consecutive refused frames after which the connection is closed (4000).
const MAX_ERRORS_IN_A_ROW: u32 = 100;
/// Frames read without waiting after one that left a result to store: bounds how long
/// the first result of a burst waits for the transaction it shares.
const MAX_DRAIN: usize = 256;

pub(super) async fn serve(socket: WebSocket, hub: Hub, auth: DeviceAuth) {
    let (serial, wake, control) = hub.register(auth);
    tracing::info!(merchant = %auth.merchant, device = auth.device_id, "assistant connected");
    let (sink, stream) = socket.split();
    let (out_tx, out_rx) = mpsc::channel::<Message>(hub.inner.cfg.outbound_queue);
    let writer = tokio::spawn(write_loop(sink, out_rx));
    let mut c = Conn {
        hub: hub.clone(),
        auth,
        out: out_tx,
        accounts: HashMap::new(),
        inflight: HashSet::new(),
        next_due: None,
        errors_in_a_row: 0,
        results: Vec::new(),
    };
    let end = c.run(stream, wake, control).await;
    if let Some((code, reason)) = end {
        let _ = c
            .out
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
    }
    drop(c.out);
    // The writer ends when its queue is drained and closed; do not wait on a dead peer.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    // A connection replaced by a newer one of the same device leaves the accounts online:
    // they are the newer connection's now.
    if !hub.unregister(auth, serial) {
        tracing::info!(merchant = %auth.merchant, device = auth.device_id, "assistant connection replaced");
        return;
    }
    if let Err(e) = hub
        .inner
        .store
        .tenant(auth.merchant)
        .device_disconnected(auth.device_id)
        .await
    {
        // After shutdown has closed the store, `Hub::drained` has marked it offline.
        if matches!(e, sqlx::Error::PoolClosed) {
            tracing::debug!("store closed before the device was marked offline");
        } else {
            tracing::warn!(error = %e, "marking the device's accounts offline failed");
        }
    }
    tracing::info!(merchant = %auth.merchant, device = auth.device_id, "assistant disconnected");
}

async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Message>,
) {
    while let Some(m) = rx.recv().await {
        let closing = matches!(m, Message::Close(_));
        if sink.send(m).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}

struct Conn {
    hub: Hub,
    auth: DeviceAuth,
    out: mpsc::Sender<Message>,
    /// The device's accounts: original id → `ad_wechat_id`.
    accounts: HashMap<String, i64>,
    /// Tasks handed to this connection without a result yet.
    inflight: HashSet<i64>,
    /// When the next paced or scheduled task becomes due.
    next_due: Option<Instant>,
    errors_in_a_row: u32,
    /// Task results read but not yet stored, with their frame ids: a burst of results that
    /// is already in the socket's buffer is stored in one transaction.
    results: Vec<(Option<Value>, ResultIn)>,
}

type Stream = futures_util::stream::SplitStream<WebSocket>;

impl Conn {
    fn tenant(&self) -> Tenant<'_> {
        self.hub.inner.store.tenant(self.auth.merchant)
    }

    /// Serves until the peer leaves or the server closes; returns the close to send.
    async fn run(
        &mut self,
        mut stream: Stream,
        wake: std::sync::Arc<tokio::sync::Notify>,
        mut control: mpsc::Receiver<Control>,
    ) -> Option<(u16, &'static str)> {
        let cfg = self.hub.inner.cfg.clone();
        if let Err(e) = self.start().await {
            tracing::warn!(error = %e, "starting an assistant session failed");
            return Some((1011, "try again later"));
        }
        let silence = Duration::from_secs(cfg.heartbeat_seconds.saturating_mul(3));
        let mut last_frame = Instant::now();
        let mut check = tokio::time::interval(Duration::from_secs(cfg.heartbeat_seconds.max(1)));
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = self.hub.inner.stop.clone();
        loop {
            let due = self.next_due;
            tokio::select! {
                biased;
                _ = stop.cancelled() => return Some((1001, "server shutting down")),
                c = control.recv() => match c {
                    Some(Control::Close(code, reason)) => {
                        if code == 4001 {
                            self.send(json!({"type": "error", "id": null, "code": "revoked", "message": "the device token was revoked"})).await;
                        }
                        return Some((code, reason));
                    }
                    Some(Control::Forget { task_id, cancel }) => {
                        if self.inflight.remove(&task_id) && cancel {
                            self.send(json!({"type": "cancel", "taskId": task_id})).await;
                        }
                        self.dispatch().await;
                    }
                    Some(Control::Frame(f)) => self.send(f).await,
                    None => return Some((1011, "server error")),
                },
                m = stream.next() => {
                    let Some(Ok(m)) = m else { return None };
                    last_frame = Instant::now();
                    if let Some(end) = self.on_message(m).await {
                        self.flush_results().await;
                        return end;
                    }
                    // Frames already here are read before the results are stored, so a burst
                    // of results shares one transaction; nothing waits for more to come.
                    let mut drained = 0;
                    while !self.results.is_empty() && drained < MAX_DRAIN {
                        let Some(next) = stream.next().now_or_never() else { break };
                        let Some(Ok(m)) = next else {
                            self.flush_results().await;
                            return None;
                        };
                        drained += 1;
                        if let Some(end) = self.on_message(m).await {
                            self.flush_results().await;
                            return end;
                        }
                    }
                    self.flush_results().await;
                }
                _ = wake.notified() => {
                    if self.wants_more() {
                        self.dispatch().await;
                    }
                }
                _ = sleep_until(due) => {
                    self.next_due = None;
                    self.dispatch().await;
                }
                _ = check.tick() => {
                    if last_frame.elapsed() > silence {
                        return Some((4003, "heartbeat timeout"));
                    }
                }
            }
        }
    }

    /// Handles one message; `Some` when the connection ends (with the close to send, if
    /// any).
    async fn on_message(&mut self, m: Message) -> Option<Option<(u16, &'static str)>> {
        match m {
            Message::Text(t) => {
                if let Some(close) = self.on_text(t.as_str()).await {
                    return Some(Some(close));
                }
            }
            Message::Binary(_) => {
                self.refuse(
                    None,
                    FrameError::new(
                        "bad_frame",
                        "binary messages are not part of the protocol; send JSON text",
                    ),
                )
                .await;
            }
            Message::Close(_) => return Some(None),
            // Pings are answered by the WebSocket layer.
            Message::Ping(_) | Message::Pong(_) => {}
        }
        if self.errors_in_a_row > MAX_ERRORS_IN_A_ROW {
            return Some(Some((4000, "too many protocol errors")));
        }
        None
    }

    /// Welcome, the device's accounts, tasks it was given but never answered, takeover
    /// state, then whatever is due.
    async fn start(&mut self) -> Result<(), sqlx::Error> {
        let cfg = &self.hub.inner.cfg;
        let welcome = json!({
            "type": "welcome",
            "protocol": 1,
            "deviceId": self.auth.device_id,
            "merchantId": self.auth.merchant.get(),
            "heartbeatSeconds": cfg.heartbeat_seconds,
            "maxFrameBytes": cfg.max_frame_bytes,
            "maxBatch": cfg.max_batch,
            "maxInflightTasks": cfg.max_inflight_tasks,
            "serverTime": crate::store::now(),
        });
        self.send(welcome).await;
        let t = self.tenant();
        let accounts = t.device_accounts(self.auth.device_id).await?;
        let again = t.redeliver_tasks(self.auth.device_id).await?;
        self.accounts = accounts.into_iter().map(|(id, o)| (o, id)).collect();
        for task in again {
            self.inflight.insert(task.task_id);
            self.send(task_frame(&task)).await;
        }
        for f in super::takeover_snapshot(&self.hub.inner.store, self.auth).await? {
            self.send(f).await;
        }
        self.dispatch().await;
        Ok(())
    }

    /// Whether at least half of the in-flight window is free (or the window is tiny).
    fn wants_more(&self) -> bool {
        let max = self.hub.inner.cfg.max_inflight_tasks;
        (self.inflight.len() as i64) * 2 <= max || self.inflight.len() < 2
    }

    /// Hands over due tasks while there is room (in flight and in the outbound queue).
    async fn dispatch(&mut self) {
        let cfg = &self.hub.inner.cfg;
        let room = cfg.max_inflight_tasks - self.inflight.len() as i64;
        let queue_room = self.out.capacity() as i64 - 8;
        let n = room.min(queue_room);
        if n <= 0 {
            return;
        }
        let claimed = match self
            .tenant()
            .claim_tasks(self.auth.device_id, cfg.send_interval_ms, n)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "taking tasks failed; retrying on the next poll");
                return;
            }
        };
        tracing::debug!(device = self.auth.device_id, tasks = claimed.tasks.len(), next_due = ?claimed.next_due_ms, "dispatch");
        for task in &claimed.tasks {
            self.inflight.insert(task.task_id);
            self.send(task_frame(task)).await;
        }
        self.next_due = claimed.next_due_ms.map(|ms| {
            let wait = (ms - crate::store::tasks::now_ms()).clamp(0, 3_600_000) as u64;
            Instant::now() + Duration::from_millis(wait)
        });
    }

    async fn send(&self, v: Value) {
        // Waits while the outbound queue is full: a slow reader slows this connection only.
        let _ = self.out.send(Message::Text(v.to_string().into())).await;
    }

    /// Answers a frame with an error, after the answers of the results read before it.
    async fn refuse(&mut self, id: Option<Value>, e: FrameError) {
        self.flush_results().await;
        self.refuse_now(id, e).await;
    }

    async fn refuse_now(&mut self, id: Option<Value>, e: FrameError) {
        self.errors_in_a_row += 1;
        let mut f = json!({"type": "error", "id": id, "code": e.code, "message": e.message});
        if let Some(field) = e.field {
            f["field"] = Value::String(field);
        }
        self.send(f).await;
    }

    async fn ack(&mut self, id: Option<Value>, mut extra: Value) {
        self.errors_in_a_row = 0;
        extra["type"] = json!("ack");
        extra["id"] = id.unwrap_or(Value::Null);
        self.send(extra).await;
    }

    /// Handles one text frame; returns a close when the connection must end.
    async fn on_text(&mut self, text: &str) -> Option<(u16, &'static str)> {
        let cfg = &self.hub.inner.cfg;
        if text.len() > cfg.max_frame_bytes {
            let max = cfg.max_frame_bytes;
            self.refuse(
                None,
                FrameError::new("too_large", format!("frames are at most {max} bytes")),
            )
            .await;
            return None;
        }
        let v: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                self.refuse(
                    None,
                    FrameError::new("bad_frame", "a frame is a JSON object"),
                )
                .await;
                return None;
            }
            Err(e) => {
                self.refuse(None, FrameError::new("bad_frame", format!("not JSON: {e}")))
                    .await;
                return None;
            }
        };
        let id = v
            .get("id")
            .filter(|i| i.is_string() || i.is_number())
            .cloned();
        let Some(kind) = v.get("type").and_then(Value::as_str).map(str::to_owned) else {
            self.refuse(id, FrameError::invalid("type", "is required (a string)"))
                .await;
            return None;
        };
        if let Err(e) = frames::check_values(&v) {
            self.refuse(id, e).await;
            return None;
        }
        if kind == "taskResult" {
            match parse_result(v) {
                Ok(item) => self.results.push((id, item)),
                Err(e) => self.refuse(id, e).await,
            }
            return None;
        }
        // Answers go out in the order of the frames.
        self.flush_results().await;
        let outcome = match kind.as_str() {
            "ping" => {
                self.errors_in_a_row = 0;
                self.send(json!({"type": "pong", "serverTime": crate::store::now()}))
                    .await;
                return None;
            }
            "account" => self.on_account(v).await,
            "fans" => self.on_fans(v).await,
            "chats" => self.on_chats(v).await,
            "calls" => self.on_calls(v).await,
            other => Err(FrameError::new(
                "unknown_type",
                format!("unknown frame type {other:?}"),
            )),
        };
        match outcome {
            Ok(extra) => self.ack(id, extra).await,
            Err(e) => self.refuse(id, e).await,
        }
        None
    }

    /// The account a frame names, if this device serves it.
    async fn account(&self, name: &str) -> Result<i64, FrameError> {
        frames::ident("account", name)?;
        if let Some(id) = self.accounts.get(name) {
            return Ok(*id);
        }
        // Not this device's: say whether another device serves it, without telling which.
        let other = self.tenant().wechat_by_original(name).await.map_err(busy)?;
        Err(match other {
            Some(_) => FrameError {
                code: "forbidden",
                field: Some("account".into()),
                message: format!("operating account {name:?} is served by another device"),
            },
            None => FrameError {
                code: "unknown_account",
                field: Some("account".into()),
                message: format!("report the account {name:?} with an `account` frame first"),
            },
        })
    }

    fn batch_len(&self, field: &str, n: usize) -> Result<(), FrameError> {
        let max = self.hub.inner.cfg.max_batch;
        if n > max {
            return Err(FrameError {
                code: "too_large",
                field: Some(field.into()),
                message: format!("at most {max} items per frame"),
            });
        }
        Ok(())
    }

    async fn on_account(&mut self, v: Value) -> Result<Value, FrameError> {
        let f: frames::AccountFrame = frames::parse(v)?;
        frames::ident("account", &f.account)?;
        let kind = f.kind.unwrap_or(0);
        if kind != 0 && kind != 3 {
            return Err(FrameError::invalid(
                "kind",
                "must be 0 (personal WeChat) or 3 (WeCom)",
            ));
        }
        for (field, s) in [("wechatNo", &f.wechat_no), ("nick", &f.nick)] {
            frames::short(field, s.as_deref())?;
        }
        let report = AccountReport {
            wechat_nober: f
                .wechat_no
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| f.account.clone()),
            nick: f.nick.clone().unwrap_or_default(),
            original_nober: f.account.clone(),
            wechat_lei: kind,
            online: f.online.unwrap_or(true),
        };
        match self
            .tenant()
            .report_account(self.auth.device_id, &report)
            .await
            .map_err(busy)?
        {
            AccountClaim::OtherDevice => Err(FrameError {
                code: "forbidden",
                field: Some("account".into()),
                message: format!(
                    "operating account {:?} is served by another device",
                    f.account
                ),
            }),
            AccountClaim::Served { wechat_id, created } => {
                self.accounts.insert(f.account, wechat_id);
                // Tasks may have waited for this account to come online.
                self.dispatch().await;
                Ok(json!({"wechatId": wechat_id, "created": created}))
            }
        }
    }

    async fn on_fans(&mut self, v: Value) -> Result<Value, FrameError> {
        let f: frames::FansFrame = frames::parse(v)?;
        let wechat_id = self.account(&f.account).await?;
        self.batch_len("fans", f.fans.len())?;
        let mut reports = Vec::with_capacity(f.fans.len());
        for (i, fan) in f.fans.into_iter().enumerate() {
            let at = |name: &str| format!("fans[{i}].{name}");
            frames::ident(&at("wxid"), &fan.wxid)?;
            for (name, s) in [
                ("alias", &fan.alias),
                ("name", &fan.name),
                ("photo", &fan.photo),
            ] {
                frames::short(at(name), s.as_deref())?;
            }
            if let Some(s) = fan.state {
                if ![0, 1, 4, 5, 6].contains(&s) {
                    return Err(FrameError::invalid(at("state"), "must be 0, 1, 4, 5 or 6"));
                }
            }
            if let Some(k) = fan.kind {
                if !(0..=3).contains(&k) {
                    return Err(FrameError::invalid(at("kind"), "must be 0, 1, 2 or 3"));
                }
            }
            if let Some(s) = fan.scene {
                if !(0..=1_000_000).contains(&s) {
                    return Err(FrameError::invalid(at("scene"), "is out of range"));
                }
            }
            if let Some(t) = fan.add_time {
                frames::time(&at("addTime"), t)?;
            }
            if fan.tags.as_ref().is_some_and(|t| t.len() > 100) {
                return Err(FrameError::invalid(at("tags"), "at most 100 tags"));
            }
            let state = fan.state.or(fan.deleted.then_some(4));
            reports.push(FanReport {
                wenober: fan.wxid,
                uwenober: fan.alias,
                name: fan.name,
                photo: fan.photo,
                remark: fan.remark,
                tags: fan
                    .tags
                    .map(|t| serde_json::to_string(&t).unwrap_or_else(|_| "[]".into())),
                scene: fan.scene,
                state,
                isflock: fan.kind,
                addtime: fan.add_time,
            });
        }
        let t = self.tenant();
        let mut tx = t.begin().await.map_err(busy)?;
        let (created, updated) = t
            .report_fans_in(&mut tx, wechat_id, &reports)
            .await
            .map_err(busy)?;
        tx.commit().await.map_err(busy)?;
        Ok(json!({"created": created, "updated": updated}))
    }

    async fn on_chats(&mut self, v: Value) -> Result<Value, FrameError> {
        let f: frames::ChatsFrame = frames::parse(v)?;
        let wechat_id = self.account(&f.account).await?;
        self.batch_len("chats", f.chats.len())?;
        let n = f.chats.len();
        let mut chats = Vec::with_capacity(n);
        for (i, c) in f.chats.into_iter().enumerate() {
            let at = |name: &str| format!("chats[{i}].{name}");
            frames::ident(&at("msgId"), &c.msg_id)?;
            frames::ident(&at("talker"), &c.talker)?;
            frames::time(&at("time"), c.time)?;
            if !(0..=1_000_000).contains(&c.msg_type) {
                return Err(FrameError::invalid(at("type"), "is not a message type"));
            }
            let resvred = match c.resvred {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.is_empty() => None,
                Some(Value::String(s)) => Some(s),
                Some(o @ Value::Object(_)) => Some(
                    percent_encoding::utf8_percent_encode(
                        &o.to_string(),
                        percent_encoding::NON_ALPHANUMERIC,
                    )
                    .to_string(),
                ),
                Some(_) => {
                    return Err(FrameError::invalid(
                        at("resvred"),
                        "must be a JSON object or its url-encoded string",
                    ))
                }
            };
            let expand = match &c.sender {
                Some(s) => json!({"sender": s}).to_string(),
                None => String::new(),
            };
            chats.push(NewChat {
                wechat_id,
                talker: c.talker,
                issend: c.send,
                msg_type: c.msg_type,
                content: c.content,
                resvred,
                sermsgid: c.msg_id,
                chat_time: c.time,
                staff_code: c.staff_code.filter(|s| !s.is_empty()),
                voice_txt: c.voice_text.filter(|s| !s.is_empty()),
                expand,
            });
        }
        let ids = core::chats::record(self.tenant(), &chats)
            .await
            .map_err(rejection)?;
        Ok(json!({"stored": ids.len(), "duplicates": n - ids.len()}))
    }

    async fn on_calls(&mut self, v: Value) -> Result<Value, FrameError> {
        let f: frames::CallsFrame = frames::parse(v)?;
        let wechat_id = self.account(&f.account).await?;
        self.batch_len("calls", f.calls.len())?;
        let mut calls = Vec::with_capacity(f.calls.len());
        for (i, c) in f.calls.into_iter().enumerate() {
            let at = |name: &str| format!("calls[{i}].{name}");
            if c.msg_type != "meeting_voice_call" && c.msg_type != "voip_voice" {
                return Err(FrameError::invalid(
                    at("type"),
                    "must be meeting_voice_call or voip_voice",
                ));
            }
            frames::ident(&at("fan"), &c.fan)?;
            frames::time(&at("start"), c.start)?;
            if !(0..=86_400 * 7).contains(&c.duration) {
                return Err(FrameError::invalid(at("duration"), "is out of range"));
            }
            calls.push(CallReport {
                msg_type: c.msg_type,
                fans_key: c.fan,
                staff_code: c.staff_code,
                start_time: c.start,
                duration: c.duration,
                voice_url: c.voice_url,
            });
        }
        let t = self.tenant();
        let mut tx = t.begin().await.map_err(busy)?;
        let (stored, dups) = t
            .report_calls_in(&mut tx, wechat_id, &calls)
            .await
            .map_err(busy)?;
        tx.commit().await.map_err(busy)?;
        Ok(json!({"stored": stored, "duplicates": dups}))
    }

    /// Stores the results read so far in one transaction and answers each; then refills
    /// the window.
    async fn flush_results(&mut self) {
        if self.results.is_empty() {
            return;
        }
        let (ids, items): (Vec<Option<Value>>, Vec<ResultIn>) =
            std::mem::take(&mut self.results).into_iter().unzip();
        let outcomes =
            match core::tasks::record_results(self.tenant(), self.auth.device_id, &items).await {
                Ok(o) => o,
                Err(r) => {
                    let e = rejection(r);
                    for id in ids {
                        self.refuse_now(id, e.clone()).await;
                    }
                    return;
                }
            };
        for ((id, item), out) in ids.into_iter().zip(items).zip(outcomes) {
            self.inflight.remove(&item.task_id);
            match out {
                ResultOutcome::Unknown => self.refuse_now(id, unknown_task(item.task_id)).await,
                ResultOutcome::Refused(r) => self.refuse_now(id, rejection(r)).await,
                ResultOutcome::Duplicate(row) => {
                    self.ack(
                        id,
                        json!({"state": state_name(row.state), "duplicate": true}),
                    )
                    .await
                }
                ResultOutcome::Recorded(row) => {
                    tracing::debug!(
                        task_id = row.task_id,
                        state = state_name(row.state),
                        "task finished"
                    );
                    self.ack(id, json!({"state": state_name(row.state)})).await
                }
            }
        }
        // Refill once half the window is free, not after every result: each refill is a
        // write transaction, and a busy assistant answers many results per refill.
        if self.wants_more() {
            self.dispatch().await;
        }
    }
}

/// A `taskResult` frame, checked (nothing read from the database yet).
fn parse_result(v: Value) -> Result<ResultIn, FrameError> {
    let f: frames::TaskResultFrame = frames::parse(v)?;
    if let Some(t) = f.time {
        frames::time("time", t)?;
    }
    for (name, s) in [
        ("code", &f.code),
        ("message", &f.message),
        ("msgId", &f.msg_id),
    ] {
        frames::short(name, s.as_deref())?;
    }
    Ok(ResultIn {
        task_id: f.task_id,
        result: TaskResult {
            ok: f.ok,
            code: f.code.filter(|s| !s.is_empty()),
            message: f.message,
            sermsgid: f.msg_id.filter(|s| !s.trim().is_empty()),
        },
        sent_at: f.time.unwrap_or_else(crate::store::now),
    })
}

fn unknown_task(id: i64) -> FrameError {
    FrameError {
        code: "unknown_task",
        field: Some("taskId".into()),
        message: format!("no task {id} for this device"),
    }
}

/// A database failure: nothing was stored; the assistant sends the frame again later.
fn busy(e: sqlx::Error) -> FrameError {
    tracing::warn!(error = %e, "an assistant frame could not be stored");
    FrameError::new(
        "busy",
        "the server could not store this frame now; send it again later",
    )
}

fn rejection(r: Rejection) -> FrameError {
    match r {
        Rejection::Db(e) => busy(e),
        Rejection::Invalid { field, problem } => FrameError::invalid(field, problem),
        other => FrameError::new("invalid", other.to_string()),
    }
}

pub(super) fn task_frame(t: &TaskRow) -> Value {
    json!({
        "type": "task",
        "taskId": t.task_id,
        "account": t.account,
        "kind": t.kind,
        "attempt": t.attempts,
        "createdAt": t.created_at,
        "expiresAt": t.expires_at,
        "payload": serde_json::from_str::<Value>(&t.payload).unwrap_or(Value::Null),
    })
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
