//! `juhe simulate`: an assistant (助手) simulator, the client side of
//! docs/assistant-protocol.md. It plays one device with a few operating accounts and their
//! fans, reports chats at a chosen rate, executes tasks, and drops and resumes its
//! connection on request, so the gateway can be demonstrated, tested and benchmarked
//! without a phone.
//!
//! Everything the simulator reports is kept until the server acknowledges it and is sent
//! again after a reconnect; counts are of distinct acknowledged items (chats by `msgId`,
//! fans by wxid, tasks by id), so a re-send is never counted twice.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use anyhow::bail;
use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

/// Most unacknowledged frames on one connection (the protocol's pipelining limit).
const MAX_UNACKED: usize = 32;
/// Most chats in one `chats` frame: large enough for high rates, small enough that one
/// frame is one short transaction on the server.
const CHATS_PER_FRAME: usize = 200;
/// How often buffered chats are flushed into frames (and new ones generated).
const FLUSH_EVERY: Duration = Duration::from_millis(25);
/// Chats generated but not yet acknowledged beyond which generation pauses: a server that
/// cannot keep up (or is away) must not make the simulator's memory grow without bound.
const MAX_BACKLOG: usize = 50_000;
/// How long a stopping simulator waits for the acknowledgements of what it already sent.
const DRAIN: Duration = Duration::from_secs(10);

/// What to simulate. See `juhe simulate --help` for the meaning of each field.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// `http://host:port`, `ws://host:port` or the full `/assistant/ws` URL.
    pub server: String,
    pub device_token: String,
    pub accounts: usize,
    pub fans: usize,
    /// Chat messages per second, all accounts together; 0 reports none.
    pub rate: f64,
    pub task_latency: Duration,
    /// Share of send tasks (0..1) answered with `ok:false, code:"simulated_failure"`.
    pub task_failure_rate: f64,
    /// Chance (0..1) that a fan answers a message sent to it by a task.
    pub reply_probability: f64,
    pub drop_every: Option<Duration>,
    pub duration: Option<Duration>,
    pub seed: u64,
    /// A progress line on stderr every few seconds.
    pub progress: bool,
}

impl SimConfig {
    /// A quiet simulator of `accounts` × `fans` with no chat traffic, tasks answered at once.
    pub fn new(server: impl Into<String>, device_token: impl Into<String>) -> SimConfig {
        SimConfig {
            server: server.into(),
            device_token: device_token.into(),
            accounts: 3,
            fans: 20,
            rate: 0.0,
            task_latency: Duration::from_millis(200),
            task_failure_rate: 0.0,
            reply_probability: 0.3,
            drop_every: None,
            duration: None,
            seed: 1,
            progress: false,
        }
    }
}

/// What the simulator did: distinct acknowledged items, and how often it reconnected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub messages_reported: u64,
    pub fans_reported: u64,
    pub tasks_executed: u64,
    pub tasks_failed: u64,
    pub reconnects: u64,
}

/// The original id (`account` in frames) of the simulator's `n`-th operating account
/// (from 1), stable for a seed and a device.
pub fn account_wxid(seed: u64, device_id: i64, n: usize) -> String {
    format!("wxid_sim{seed}_{device_id}_{n}")
}

/// One simulated device. Build it with a [`SimConfig`], then [`Simulator::run`] it.
pub struct Simulator {
    cfg: SimConfig,
}

impl Simulator {
    pub fn new(cfg: SimConfig) -> Simulator {
        Simulator { cfg }
    }

    /// Runs until `shutdown` is cancelled or `duration` has passed, then waits (briefly)
    /// for the acknowledgements of what was sent and returns the counts. Fails when the
    /// token is refused or revoked, or when a newer connection of the same device
    /// replaced this one: retrying cannot help then.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<Summary> {
        let url = ws_url(&self.cfg.server)?;
        let stop = shutdown.child_token();
        if let Some(d) = self.cfg.duration {
            let s = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                s.cancel();
            });
        }
        let mut st = State::new(self.cfg);
        let mut backoff = Duration::from_secs(1);
        let mut connections = 0u64;
        let result = loop {
            if stop.is_cancelled() {
                break Ok(());
            }
            let ws = tokio::select! {
                _ = stop.cancelled() => break Ok(()),
                ws = connect(&url, &st.cfg.device_token) => ws,
            };
            let end = match ws {
                Ok(ws) => {
                    connections += 1;
                    st.summary.reconnects = connections - 1;
                    st.session(ws, &stop).await
                }
                Err(Refused(e)) => break Err(e),
                Err(Retry(e)) => End::Lost(format!("{e:#}")),
            };
            match end {
                End::Stopped => break Ok(()),
                End::Fatal(e) => break Err(e),
                End::Dropped => {
                    // A deliberate drop: back at once, as a phone regaining its network.
                    st.last_welcomed = None;
                    backoff = Duration::from_secs(1);
                }
                End::Lost(why) => {
                    // A connection that got as far as the welcome worked: start over at 1 s.
                    if st.last_welcomed.take().is_some() {
                        backoff = Duration::from_secs(1);
                    }
                    if st.cfg.progress {
                        eprintln!("simulate: connection lost ({why}); reconnecting in {backoff:?}");
                    }
                    let jitter = st.rng.gen_range(0.8..1.2);
                    tokio::select! {
                        _ = stop.cancelled() => break Ok(()),
                        _ = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        };
        st.progress_line();
        result.map(|()| st.summary)
    }
}

/// The WebSocket URL of the gateway for a `--server` value.
fn ws_url(server: &str) -> anyhow::Result<String> {
    let s = server.trim().trim_end_matches('/');
    let rest = if let Some(r) = s.strip_prefix("http://") {
        format!("ws://{r}")
    } else if s.starts_with("ws://") {
        s.to_owned()
    } else if s.starts_with("https://") || s.starts_with("wss://") {
        bail!("the simulator speaks plain ws:// only; run it against http:// (e.g. through a local port)")
    } else {
        format!("ws://{s}")
    };
    let after_host = &rest["ws://".len()..];
    Ok(if after_host.contains('/') {
        rest
    } else {
        format!("{rest}/assistant/ws")
    })
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

enum ConnectError {
    /// The token was refused: retrying cannot help.
    Refused(anyhow::Error),
    Retry(anyhow::Error),
}
use ConnectError::{Refused, Retry};

async fn connect(url: &str, token: &str) -> Result<Ws, ConnectError> {
    let mut req = url
        .into_client_request()
        .map_err(|e| Refused(anyhow::Error::new(e).context(format!("bad server URL {url}"))))?;
    let auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        Refused(anyhow::anyhow!(
            "the device token has characters a header cannot carry"
        ))
    })?;
    req.headers_mut().insert("authorization", auth);
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("juhe.assistant.v1"),
    );
    let attempt = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_with_config(req, None, true),
    )
    .await;
    match attempt {
        Err(_) => Err(Retry(anyhow::anyhow!("connecting to {url} timed out"))),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(resp))) if resp.status() == 401 => {
            Err(Refused(anyhow::anyhow!(
                "the server refused the device token (HTTP 401): it is unknown or revoked"
            )))
        }
        Ok(Err(e)) => Err(Retry(
            anyhow::Error::new(e).context(format!("connecting to {url}")),
        )),
    }
}

/// Why a session ended.
enum End {
    /// Shutdown or duration: the run is over.
    Stopped,
    /// `--drop-every`: the simulator cut the connection on purpose.
    Dropped,
    /// The server closed or the network failed: reconnect with back-off.
    Lost(String),
    /// Closed with 4001 (revoked) or 4002 (replaced): stop.
    Fatal(anyhow::Error),
}

/// What acknowledging a frame adds to the counts.
#[derive(Debug, Clone)]
enum Credit {
    None,
    Fans(Vec<(usize, usize)>),
    Chats(Vec<String>),
    Task { task_id: i64, ok: bool },
}

#[derive(Debug, Clone)]
struct Frame {
    id: u64,
    text: String,
    credit: Credit,
}

#[derive(Debug, Clone)]
struct Fan {
    wxid: String,
    group: bool,
}

#[derive(Debug, Clone)]
struct Account {
    wxid: String,
    nick: String,
    fans: Vec<Fan>,
    /// Fan reports, generated once, sent on the first connection.
    fan_reports: Vec<Value>,
}

/// A task being executed: answered when its latency has passed.
#[derive(Debug, Clone)]
struct Running {
    kind: String,
    account: String,
    payload: Value,
}

/// A task's answer, kept so that a re-delivered task gets the same one.
#[derive(Debug, Clone)]
struct Answer {
    ok: bool,
    msg_id: Option<String>,
    code: Option<&'static str>,
    message: Option<&'static str>,
    time: i64,
}

#[derive(Debug)]
enum Event {
    TaskDone(i64),
    /// A fan answers: (account index, talker, text).
    Reply(usize, String, String),
    /// A frame the server was too busy to store, to send again.
    Resend(Frame),
}

struct State {
    cfg: SimConfig,
    rng: StdRng,
    /// Distinguishes this run's message ids from an earlier run's with the same seed.
    run_nonce: String,
    next_frame: u64,
    next_msg: u64,
    accounts: Vec<Account>,
    account_index: HashMap<String, usize>,
    /// Frames not yet sent on the current connection, in order.
    outq: VecDeque<Frame>,
    /// Frames sent on the current connection and not yet acknowledged, by id.
    unacked: BTreeMap<u64, Frame>,
    /// Chats generated and not yet in a frame, per account.
    buffers: Vec<Vec<(String, Value)>>,
    /// Items generated and not yet acknowledged (for the backlog bound).
    backlog: usize,
    gen_credit: f64,
    acked_msgs: HashSet<String>,
    acked_fans: HashSet<(usize, usize)>,
    tasks_ok: HashSet<i64>,
    tasks_failed: HashSet<i64>,
    running: HashMap<i64, Running>,
    answered: HashMap<i64, Answer>,
    events: Vec<(Instant, Event)>,
    takeovers: HashMap<(String, String), bool>,
    summary: Summary,
    started: std::time::Instant,
    welcomed_once: bool,
    /// Set when a session got its welcome (resets the back-off).
    last_welcomed: Option<()>,
    /// Frames the server refused for good (a bug in the simulator or the server).
    refused_frames: u64,
}

impl State {
    fn new(cfg: SimConfig) -> State {
        let rng = StdRng::seed_from_u64(cfg.seed);
        let run_nonce = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        );
        State {
            cfg,
            rng,
            run_nonce,
            next_frame: 1,
            next_msg: 1,
            accounts: Vec::new(),
            account_index: HashMap::new(),
            outq: VecDeque::new(),
            unacked: BTreeMap::new(),
            buffers: Vec::new(),
            backlog: 0,
            gen_credit: 0.0,
            acked_msgs: HashSet::new(),
            acked_fans: HashSet::new(),
            tasks_ok: HashSet::new(),
            tasks_failed: HashSet::new(),
            running: HashMap::new(),
            answered: HashMap::new(),
            events: Vec::new(),
            takeovers: HashMap::new(),
            summary: Summary::default(),
            started: std::time::Instant::now(),
            welcomed_once: false,
            last_welcomed: None,
            refused_frames: 0,
        }
    }

    fn update_summary(&mut self) {
        self.summary.messages_reported = self.acked_msgs.len() as u64;
        self.summary.fans_reported = self.acked_fans.len() as u64;
        self.summary.tasks_executed = self.tasks_ok.len() as u64;
        self.summary.tasks_failed = self.tasks_failed.len() as u64;
    }

    fn progress_line(&mut self) {
        self.update_summary();
        if self.cfg.progress {
            let s = self.summary;
            eprintln!(
                "simulate: {:.0}s  messages {}  fans {}  tasks ok {} failed {}  reconnects {}  queued {}  refused frames {}",
                self.started.elapsed().as_secs_f64(),
                s.messages_reported,
                s.fans_reported,
                s.tasks_executed,
                s.tasks_failed,
                s.reconnects,
                self.backlog,
                self.refused_frames,
            );
        }
    }

    fn frame(&mut self, mut v: Value, credit: Credit) -> Frame {
        let id = self.next_frame;
        self.next_frame += 1;
        v["id"] = json!(id);
        Frame {
            id,
            text: v.to_string(),
            credit,
        }
    }

    fn fresh_msg_id(&mut self) -> String {
        let n = self.next_msg;
        self.next_msg += 1;
        format!("sim{}_{}_{n}", self.cfg.seed, self.run_nonce)
    }

    /// Builds the device's accounts and fans the first time a welcome names the device.
    fn build_world(&mut self, device_id: i64) {
        let mut rng = StdRng::seed_from_u64(self.cfg.seed ^ (device_id as u64).rotate_left(32));
        for a in 0..self.cfg.accounts {
            let wxid = account_wxid(self.cfg.seed, device_id, a + 1);
            let nick = format!(
                "{}{}",
                pick(&mut rng, SHOP_NAMES),
                pick(&mut rng, DESK_NAMES)
            );
            let mut fans = Vec::with_capacity(self.cfg.fans);
            let mut reports = Vec::with_capacity(self.cfg.fans);
            let now = unix_now();
            for f in 0..self.cfg.fans {
                // About one conversation in ten is a group chat, as on a real service account.
                let group = self.cfg.fans >= 5 && f % 10 == 9;
                let (fan_wxid, name) = if group {
                    (
                        format!("{}{:03}{:05}@chatroom", 20_000 + device_id, a + 1, f + 1),
                        format!(
                            "{}{}",
                            pick(&mut rng, GROUP_PREFIXES),
                            pick(&mut rng, GROUP_SUFFIXES)
                        ),
                    )
                } else {
                    (
                        format!("{wxid}_f{}", f + 1),
                        format!(
                            "{}{}",
                            pick(&mut rng, SURNAMES),
                            pick(&mut rng, GIVEN_NAMES)
                        ),
                    )
                };
                let mut tags: Vec<&str> = Vec::new();
                for t in TAGS {
                    if rng.gen_bool(0.15) {
                        tags.push(t);
                    }
                }
                let mut r = json!({
                    "wxid": fan_wxid,
                    "name": name,
                    "photo": format!("https://media.example.com/avatar/{:08x}.jpg", rng.gen::<u32>()),
                    "tags": tags,
                    "scene": weighted(&mut rng, SCENES),
                    "state": 0,
                    "kind": if group { 1 } else { 0 },
                    "addTime": now - rng.gen_range(3_600..90 * 86_400),
                });
                if !group {
                    r["alias"] = json!(format!(
                        "{}{}",
                        pick(&mut rng, ALIASES),
                        rng.gen_range(10..9999)
                    ));
                    if rng.gen_bool(0.3) {
                        r["remark"] = json!(format!("{}-{}", name, pick(&mut rng, REMARKS)));
                    }
                }
                fans.push(Fan {
                    wxid: fan_wxid,
                    group,
                });
                reports.push(r);
            }
            self.account_index.insert(wxid.clone(), a);
            self.accounts.push(Account {
                wxid,
                nick,
                fans,
                fan_reports: reports,
            });
        }
        self.buffers = vec![Vec::new(); self.accounts.len()];
    }

    /// One connection: welcome, accounts online, re-send what was not acknowledged, then
    /// report, answer tasks and ping until it ends.
    async fn session(&mut self, ws: Ws, stop: &CancellationToken) -> End {
        let (mut sink, mut stream) = ws.split();
        let welcome = match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
            Err(_) => return End::Lost("no welcome within 10 s".into()),
            Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<Value>(t.as_str()) {
                Ok(v) if v["type"] == "welcome" => v,
                _ => return End::Lost(format!("expected a welcome, got {t}")),
            },
            Ok(Some(Ok(Message::Close(c)))) => return closed(c),
            Ok(other) => return End::Lost(format!("expected a welcome, got {other:?}")),
        };
        self.last_welcomed = Some(());
        let device_id = welcome["deviceId"].as_i64().unwrap_or(0);
        let heartbeat = welcome["heartbeatSeconds"].as_u64().unwrap_or(30).max(1);
        let max_batch = welcome["maxBatch"].as_u64().unwrap_or(1000).max(1) as usize;
        let batch = CHATS_PER_FRAME.min(max_batch);
        if !self.welcomed_once {
            self.welcomed_once = true;
            self.build_world(device_id);
            // Fans follow the accounts (queued below, in front of them) on the first connection.
            for a in 0..self.accounts.len() {
                let reports = std::mem::take(&mut self.accounts[a].fan_reports);
                for (chunk_no, chunk) in reports.chunks(max_batch.min(500)).enumerate() {
                    let base = chunk_no * max_batch.min(500);
                    let credit = Credit::Fans((0..chunk.len()).map(|i| (a, base + i)).collect());
                    let f = self.frame(
                        json!({"type": "fans", "account": self.accounts[a].wxid, "fans": chunk}),
                        credit,
                    );
                    self.outq.push_back(f);
                }
            }
        }
        // Unacknowledged frames of the last connection go first, in their order, behind
        // this connection's account reports (an account must be online before its tasks).
        let old: Vec<Frame> = std::mem::take(&mut self.unacked).into_values().collect();
        for f in old.into_iter().rev() {
            self.outq.push_front(f);
        }
        for a in (0..self.accounts.len()).rev() {
            let acc = &self.accounts[a];
            let v = json!({"type": "account", "account": acc.wxid, "wechatNo": acc.wxid.replace("wxid_", "kf_"), "nick": acc.nick, "kind": 0, "online": true});
            let f = self.frame(v, Credit::None);
            self.outq.push_front(f);
        }

        let mut ping = tokio::time::interval(Duration::from_millis(heartbeat * 500));
        ping.reset();
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        let mut progress = tokio::time::interval(Duration::from_secs(5));
        progress.reset();
        let mut last_gen = Instant::now();
        let drop_at = self.cfg.drop_every.map(|d| Instant::now() + d);
        let mut draining: Option<Instant> = None;
        loop {
            // Send while the pipeline has room.
            while self.unacked.len() < MAX_UNACKED {
                let Some(f) = self.outq.pop_front() else {
                    break;
                };
                if let Err(e) = sink.send(Message::text(f.text.clone())).await {
                    self.outq.push_front(f);
                    return End::Lost(format!("sending failed: {e}"));
                }
                self.unacked.insert(f.id, f);
            }
            if let Some(deadline) = draining {
                if self.outq.is_empty() && self.unacked.is_empty() || Instant::now() >= deadline {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code: CloseCode::Normal,
                            reason: "simulation over".into(),
                        })))
                        .await;
                    let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
                    return End::Stopped;
                }
            }
            let next_event = self.events.iter().map(|(at, _)| *at).min();
            tokio::select! {
                biased;
                _ = stop.cancelled(), if draining.is_none() => {
                    // Stop making news; send what is buffered and wait for its acks.
                    self.flush_buffers(batch, true);
                    draining = Some(Instant::now() + DRAIN);
                }
                _ = sleep_until(drop_at), if draining.is_none() => {
                    // Abrupt: no close frame, as when a phone loses its network.
                    drop(sink);
                    drop(stream);
                    return End::Dropped;
                }
                m = stream.next() => match m {
                    None => return End::Lost("the server closed the connection".into()),
                    Some(Err(e)) => return End::Lost(e.to_string()),
                    Some(Ok(Message::Close(c))) => return closed(c),
                    Some(Ok(Message::Text(t))) => {
                        if let Err(end) = self.on_frame(t.as_str()) {
                            return end;
                        }
                    }
                    Some(Ok(_)) => {}
                },
                _ = ping.tick() => {
                    if let Err(e) = sink.send(Message::text(r#"{"type":"ping"}"#)).await {
                        return End::Lost(format!("sending failed: {e}"));
                    }
                }
                _ = flush.tick(), if draining.is_none() => {
                    let now = Instant::now();
                    self.generate(now.duration_since(last_gen));
                    last_gen = now;
                    self.flush_buffers(batch, true);
                }
                _ = sleep_until(next_event), if draining.is_none() => self.run_events(batch),
                _ = progress.tick() => self.progress_line(),
                _ = sleep_until(draining) => {}
            }
        }
    }

    /// Handles one server frame; `Err` ends the session.
    fn on_frame(&mut self, text: &str) -> Result<(), End> {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return Ok(());
        };
        match v["type"].as_str().unwrap_or("") {
            "ack" => {
                if let Some(f) = v["id"].as_u64().and_then(|id| self.unacked.remove(&id)) {
                    self.credit(f.credit);
                }
            }
            "error" => self.on_error(&v),
            "task" => self.on_task(&v),
            "cancel" => {
                let task_id = v["taskId"].as_i64().unwrap_or(0);
                if self.running.remove(&task_id).is_some() {
                    self.answer(
                        task_id,
                        Answer {
                            ok: false,
                            msg_id: None,
                            code: Some("cancelled"),
                            message: Some("cancelled before it was executed"),
                            time: unix_now(),
                        },
                    );
                }
            }
            "takeover" => {
                let key = (
                    v["account"].as_str().unwrap_or("").to_owned(),
                    v["fan"].as_str().unwrap_or("").to_owned(),
                );
                self.takeovers
                    .insert(key, v["active"].as_bool().unwrap_or(false));
            }
            // Pongs only prove the connection is alive; welcome was handled at the start.
            _ => {}
        }
        Ok(())
    }

    fn credit(&mut self, c: Credit) {
        match c {
            Credit::None => {}
            Credit::Fans(fans) => {
                self.backlog = self.backlog.saturating_sub(fans.len());
                self.acked_fans.extend(fans);
            }
            Credit::Chats(ids) => {
                self.backlog = self.backlog.saturating_sub(ids.len());
                self.acked_msgs.extend(ids);
            }
            Credit::Task { task_id, ok } => {
                if ok {
                    self.tasks_ok.insert(task_id);
                } else {
                    self.tasks_failed.insert(task_id);
                }
            }
        }
    }

    fn on_error(&mut self, v: &Value) {
        let code = v["code"].as_str().unwrap_or("");
        let frame = v["id"].as_u64().and_then(|id| self.unacked.remove(&id));
        match frame {
            Some(f) if code == "busy" => {
                // Nothing was stored; the protocol asks for the same frame again later.
                let at = Instant::now() + Duration::from_secs(1);
                self.events.push((at, Event::Resend(f)));
            }
            Some(f) => {
                // A refusal is final for this frame: it is a bug to report, not to retry.
                self.refused_frames += 1;
                if let Credit::Chats(ids) = &f.credit {
                    self.backlog = self.backlog.saturating_sub(ids.len());
                }
                eprintln!("simulate: the server refused frame {}: {v}", f.id);
            }
            None => eprintln!("simulate: server error: {v}"),
        }
    }

    fn on_task(&mut self, v: &Value) {
        let Some(task_id) = v["taskId"].as_i64() else {
            return;
        };
        if let Some(a) = self.answered.get(&task_id).cloned() {
            // Re-delivered after a reconnect: executed once, answered again.
            self.queue_answer(task_id, &a);
            return;
        }
        if self.running.contains_key(&task_id) {
            return;
        }
        let kind = v["kind"].as_str().unwrap_or("").to_owned();
        if !matches!(kind.as_str(), "sendMessage" | "bulkSendItem" | "takeover") {
            self.answer(
                task_id,
                Answer {
                    ok: false,
                    msg_id: None,
                    code: Some("unsupported"),
                    message: Some("the simulator does not know this task kind"),
                    time: unix_now(),
                },
            );
            return;
        }
        self.running.insert(
            task_id,
            Running {
                kind,
                account: v["account"].as_str().unwrap_or("").to_owned(),
                payload: v["payload"].clone(),
            },
        );
        let at = Instant::now() + self.cfg.task_latency;
        self.events.push((at, Event::TaskDone(task_id)));
    }

    fn answer(&mut self, task_id: i64, a: Answer) {
        self.queue_answer(task_id, &a);
        self.answered.insert(task_id, a);
    }

    fn queue_answer(&mut self, task_id: i64, a: &Answer) {
        let mut v = json!({"type": "taskResult", "taskId": task_id, "ok": a.ok, "time": a.time});
        if let Some(m) = &a.msg_id {
            v["msgId"] = json!(m);
        }
        if let Some(c) = a.code {
            v["code"] = json!(c);
        }
        if let Some(m) = a.message {
            v["message"] = json!(m);
        }
        let f = self.frame(v, Credit::Task { task_id, ok: a.ok });
        self.outq.push_back(f);
    }

    fn run_events(&mut self, batch: usize) {
        let now = Instant::now();
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.events.len() {
            if self.events[i].0 <= now {
                due.push(self.events.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
        for e in due {
            match e {
                Event::TaskDone(id) => self.finish_task(id),
                Event::Reply(a, talker, text) => {
                    let msg_id = self.fresh_msg_id();
                    let item = json!({"msgId": msg_id, "talker": talker, "send": 0, "type": 1, "content": text, "time": unix_now()});
                    self.backlog += 1;
                    self.buffers[a].push((msg_id, item));
                }
                Event::Resend(f) => self.outq.push_back(f),
            }
        }
        self.flush_buffers(batch, true);
    }

    fn finish_task(&mut self, task_id: i64) {
        let Some(task) = self.running.remove(&task_id) else {
            return; // cancelled meanwhile
        };
        let sends = task.kind != "takeover";
        if sends
            && self
                .rng
                .gen_bool(self.cfg.task_failure_rate.clamp(0.0, 1.0))
        {
            self.answer(
                task_id,
                Answer {
                    ok: false,
                    msg_id: None,
                    code: Some("simulated_failure"),
                    message: Some("模拟发送失败"),
                    time: unix_now(),
                },
            );
            return;
        }
        let msg_id = sends.then(|| self.fresh_msg_id());
        let now = unix_now();
        self.answer(
            task_id,
            Answer {
                ok: true,
                msg_id: msg_id.clone(),
                code: None,
                message: None,
                time: now,
            },
        );
        let (Some(msg_id), Some(&a)) = (msg_id, self.account_index.get(&task.account)) else {
            return;
        };
        let to = task.payload["to"].as_str().unwrap_or("").to_owned();
        if to.is_empty() {
            return;
        }
        // The echo a real assistant reports when it sees its own message in WeChat: the
        // same msgId as the result, so the server stores it once.
        let items: Vec<Value> = if task.kind == "bulkSendItem" {
            task.payload["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        } else {
            vec![task.payload.clone()]
        };
        for (i, m) in items.iter().enumerate() {
            let id = if i == 0 {
                msg_id.clone()
            } else {
                format!("{msg_id}#{i}")
            };
            let (ty, content) = echo_parts(m);
            let item = json!({"msgId": id, "talker": to, "send": 1, "type": ty, "content": content, "time": now});
            self.backlog += 1;
            self.buffers[a].push((id, item));
        }
        let to_fan =
            task.kind == "sendMessage" && task.payload["relationType"].as_i64().unwrap_or(0) == 0;
        if to_fan
            && self
                .rng
                .gen_bool(self.cfg.reply_probability.clamp(0.0, 1.0))
        {
            let sent = task.payload["text"].as_str().unwrap_or("");
            let text = reply_text(&mut self.rng, sent);
            let delay = Duration::from_millis(self.rng.gen_range(300..1500));
            self.events
                .push((Instant::now() + delay, Event::Reply(a, to, text)));
        }
    }

    /// Adds the chats `rate` asks for in `elapsed`, unless the backlog is full.
    fn generate(&mut self, elapsed: Duration) {
        if self.cfg.rate <= 0.0 || self.accounts.is_empty() {
            return;
        }
        // At most a second's worth at once: after a pause the simulator resumes its pace
        // instead of catching up in one burst.
        self.gen_credit =
            (self.gen_credit + self.cfg.rate * elapsed.as_secs_f64()).min(self.cfg.rate.max(1.0));
        let n = self.gen_credit.floor() as usize;
        self.gen_credit -= n as f64;
        if self.backlog + n > MAX_BACKLOG {
            return;
        }
        let now = unix_now();
        for _ in 0..n {
            let a = self.rng.gen_range(0..self.accounts.len());
            if self.accounts[a].fans.is_empty() {
                continue;
            }
            let f = self.rng.gen_range(0..self.accounts[a].fans.len());
            let msg_id = self.fresh_msg_id();
            let fan = self.accounts[a].fans[f].clone();
            let item = chat_item(&mut self.rng, &msg_id, &fan, now);
            self.backlog += 1;
            self.buffers[a].push((msg_id, item));
        }
    }

    /// Moves buffered chats into frames: full frames always, the rest when `all`.
    fn flush_buffers(&mut self, batch: usize, all: bool) {
        for a in 0..self.buffers.len() {
            while self.buffers[a].len() >= batch || (all && !self.buffers[a].is_empty()) {
                let take = self.buffers[a].len().min(batch);
                let chunk: Vec<(String, Value)> = self.buffers[a].drain(..take).collect();
                let (ids, items): (Vec<String>, Vec<Value>) = chunk.into_iter().unzip();
                let v = json!({"type": "chats", "account": self.accounts[a].wxid, "chats": items});
                let f = self.frame(v, Credit::Chats(ids));
                self.outq.push_back(f);
            }
        }
    }
}

fn closed(c: Option<CloseFrame>) -> End {
    let Some(c) = c else {
        return End::Lost("the server closed the connection".into());
    };
    let code = u16::from(c.code);
    match code {
        4001 => End::Fatal(anyhow::anyhow!(
            "the device token was revoked (close 4001); ask the operator for a new one"
        )),
        4002 => End::Fatal(anyhow::anyhow!(
            "replaced by a newer connection of the same device (close 4002)"
        )),
        _ => End::Lost(format!("closed by the server: {code} {}", c.reason)),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.gen_range(0..items.len())]
}

fn weighted<T: Copy>(rng: &mut StdRng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.gen_range(0..total);
    for (t, w) in items {
        if x < *w {
            return *t;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

fn hex(rng: &mut StdRng, len: usize) -> String {
    (0..len)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// One reported chat: mostly text, then images, voice, links, files, mini-programs and
/// cards, in both directions; in a group the writer is named in `sender`.
fn chat_item(rng: &mut StdRng, msg_id: &str, fan: &Fan, now: i64) -> Value {
    let send = if rng.gen_bool(0.45) { 1 } else { 0 };
    let ty = weighted(rng, CHAT_TYPES);
    let mut item =
        json!({"msgId": msg_id, "talker": fan.wxid, "send": send, "type": ty, "time": now});
    let (content, resvred): (String, Option<Value>) = match ty {
        3 => (format!("imgs[img_{}]", hex(rng, 12)), None),
        34 => {
            let key = format!("voice_{}", hex(rng, 10));
            let resvred =
                json!({"downloadKey": key, "type": -1, "videoLen": rng.gen_range(1..=59)});
            if rng.gen_bool(0.5) {
                item["voiceText"] =
                    json!(pick(rng, if send == 1 { STAFF_LINES } else { FAN_LINES }));
            }
            (format!("audio[{key}]"), Some(resvred))
        }
        49 => {
            let (title, base) = pick(rng, LINKS);
            let url = format!("{base}{}", rng.gen_range(100_000..1_000_000));
            let resvred = json!({"title": title, "url": url, "desc": "点击查看详情"});
            (format!("a({url})"), Some(resvred))
        }
        496 => {
            let resvred = json!({"title": pick(rng, FILES), "totalLen": rng.gen_range(8_192..5_242_880), "url": ""});
            (format!("file[file_{}]", hex(rng, 10)), Some(resvred))
        }
        4933 => {
            let (display, title) = pick(rng, MINI_PROGRAMS);
            let resvred = json!({"displayName": display, "title": title, "downloadKey": format!("mini_{}", hex(rng, 8))});
            (format!("[小程序]{title}"), Some(resvred))
        }
        42 => {
            let nick = format!("{}{}", pick(rng, SURNAMES), pick(rng, GIVEN_NAMES));
            (format!("MP[{nick}]"), Some(json!({"nickname": nick})))
        }
        _ => {
            let line = if send == 1 {
                pick(rng, STAFF_LINES)
            } else {
                pick(rng, FAN_LINES)
            };
            (line.to_owned(), None)
        }
    };
    item["content"] = json!(content);
    if let Some(r) = resvred {
        item["resvred"] = r;
    }
    if fan.group && send == 0 {
        item["sender"] = json!(format!("wxid_member{:04}", rng.gen_range(1..500)));
    }
    item
}

/// The GetChat type and content of a message a task sent, for its echo.
fn echo_parts(m: &Value) -> (i64, String) {
    let s = |k: &str| m[k].as_str().unwrap_or("").to_owned();
    match m["msgType"].as_str().unwrap_or("text") {
        "image" => (3, format!("imgs[{}]", s("url"))),
        "video" => (43, s("url")),
        "file" => (496, format!("file[{}]", s("title"))),
        "link" => (49, format!("a({})", s("url"))),
        "miniprogram" => (4933, format!("[小程序]{}", s("title"))),
        "card" => (42, format!("MP[{}]", s("title"))),
        _ => (1, s("text")),
    }
}

/// What a fan answers to a message it was sent.
fn reply_text(rng: &mut StdRng, sent: &str) -> String {
    let short: String = sent.chars().take(12).collect();
    if !short.is_empty() && rng.gen_bool(0.5) {
        format!("收到「{short}」,{}", pick(rng, REPLY_TAILS))
    } else {
        pick(rng, REPLIES).to_owned()
    }
}

const CHAT_TYPES: &[(i64, u32)] = &[
    (1, 70),
    (3, 9),
    (34, 6),
    (49, 5),
    (496, 3),
    (4933, 4),
    (42, 3),
];

const SCENES: &[(i64, u32)] = &[
    (1, 3),
    (3, 15),
    (6, 2),
    (8, 4),
    (13, 6),
    (14, 15),
    (15, 18),
    (17, 14),
    (30, 21),
];

const SURNAMES: &[&str] = &[
    "张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "高", "罗", "郑", "梁", "谢", "宋", "唐", "许",
];

const GIVEN_NAMES: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "秀英", "浩然", "子涵", "欣怡", "梓萱", "宇轩", "思远", "雨桐", "佳怡", "俊杰", "晓燕", "志强",
];

const ALIASES: &[&str] = &[
    "xiaomei", "ahua", "lucky", "sunny", "tom", "amy", "dudu", "kiki", "leo", "momo",
];

const TAGS: &[&str] = &[
    "VIP",
    "复购",
    "新客",
    "潜在客户",
    "已成交",
    "售后",
    "宝妈",
    "团购",
];

const REMARKS: &[&str] = &["老客户", "杭州", "批发", "需回访", "朋友介绍", "直播间"];

const SHOP_NAMES: &[&str] = &["小美", "优选", "鲜果", "良品", "暖暖", "好物"];

const DESK_NAMES: &[&str] = &["客服", "售后", "店长", "顾问"];

const GROUP_PREFIXES: &[&str] = &["会员福利", "新品试用", "宝妈交流", "团购", "老客户"];

const GROUP_SUFFIXES: &[&str] = &["1群", "2群", "VIP群", "内部群"];

const FAN_LINES: &[&str] = &[
    "你好,在吗?",
    "我的订单什么时候发货?",
    "这个还有货吗?",
    "能便宜一点吗?",
    "快递到哪里了?三天了还没动静",
    "尺码偏大还是偏小?",
    "收到了,质量不错👍",
    "可以开发票吗?",
    "地址填错了,还能改吗?",
    "好的,谢谢",
    "有优惠券吗?",
    "什么时候有活动?",
];

const STAFF_LINES: &[&str] = &[
    "您好,很高兴为您服务~",
    "亲,今天下午就发货哦",
    "有的,现在下单48小时内发出",
    "麻烦提供一下订单号,我帮您查询",
    "尺码是标准的,按平时穿的选就可以",
    "可以的,开票信息发我一下",
    "已经帮您修改好了",
    "这周末有满减活动,到时提醒您",
    "不客气,有问题随时找我",
];

const REPLIES: &[&str] = &[
    "好的,收到",
    "谢谢!",
    "明白了",
    "嗯嗯,知道了",
    "好的,我看一下",
    "👌",
];

const REPLY_TAILS: &[&str] = &["谢谢!", "我看看", "好的", "稍等我确认一下"];

const LINKS: &[(&str, &str)] = &[
    ("双十一会员专享价", "https://shop.example.com/p/"),
    ("新品上市 | 春季限定", "https://shop.example.com/new/"),
    ("物流查询", "https://express.example.com/q/"),
];

const FILES: &[&str] = &["产品手册.pdf", "报价单.xlsx", "售后政策.docx", "尺码表.png"];

const MINI_PROGRAMS: &[(&str, &str)] = &[
    ("小美商城", "爆款直降 限时抢购"),
    ("会员中心", "领取您的会员积分"),
    ("快递100", "查看物流详情"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_values_become_the_gateway_url() {
        assert_eq!(
            ws_url("http://127.0.0.1:5001").unwrap(),
            "ws://127.0.0.1:5001/assistant/ws"
        );
        assert_eq!(
            ws_url("127.0.0.1:5001/").unwrap(),
            "ws://127.0.0.1:5001/assistant/ws"
        );
        assert_eq!(
            ws_url("ws://h:1/assistant/ws").unwrap(),
            "ws://h:1/assistant/ws"
        );
        assert!(ws_url("https://h").is_err());
    }
}
