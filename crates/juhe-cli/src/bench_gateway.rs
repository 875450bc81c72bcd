//! Gateway benchmarks: `juhe bench gateway-ingest`, `gateway-connections` and
//! `gateway-send`. The server runs as a child process (`juhe serve`), as in production, so
//! its memory is measured alone; the simulated assistants run in this process.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use juhe::config::Config;
use juhe::store::{MerchantId, Store};

#[derive(clap::Args, Debug, Clone)]
pub struct GatewayIngestArgs {
    /// Assistant connections (devices).
    #[arg(long, default_value_t = 8)]
    pub assistants: usize,
    /// Operating accounts per assistant.
    #[arg(long, default_value_t = 4)]
    pub accounts: usize,
    /// Fans per account (the conversations messages go to).
    #[arg(long, default_value_t = 100)]
    pub fans: usize,
    /// Messages per `chats` frame.
    #[arg(long, default_value_t = 200)]
    pub batch: usize,
    /// Frames each assistant keeps unacknowledged.
    #[arg(long, default_value_t = 4)]
    pub inflight: usize,
    /// Total messages per second to offer; 0 = as fast as acknowledgements come.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Use this running server (its database must be --database / JUHE_DATABASE_URL)
    /// instead of starting one.
    #[arg(long)]
    pub server: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct GatewayConnectionsArgs {
    /// Assistant connections to hold open.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Seconds to hold them (each pings every heartbeat/2).
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// The server's gateway.heartbeat_seconds.
    #[arg(long, default_value_t = 30)]
    pub heartbeat: u64,
}

#[derive(clap::Args, Debug, Clone)]
pub struct GatewaySendArgs {
    /// doSendPublicMes calls per second.
    #[arg(long, default_value_t = 500)]
    pub rate: u64,
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Operating accounts of the one assistant (sends are spread over them).
    #[arg(long, default_value_t = 20)]
    pub accounts: usize,
}

/// A `juhe serve` child process on a free loopback port.
pub(crate) struct Server {
    child: Option<tokio::process::Child>,
    pid: Option<u32>,
    base: String,
}

impl Server {
    pub(crate) async fn start(db_url: &str, env: &[(&str, String)]) -> anyhow::Result<Server> {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("JUHE_DATABASE_URL", db_url)
            .env("JUHE_LOG_FILTER", "warn")
            .env("JUHE_RATE_LIMIT__PER_SECOND", "0")
            .env("JUHE_AUTH__TOKEN_PER_IP_PER_MINUTE", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("starting juhe serve")?;
        let pid = child.id();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("the server did not start within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Server {
            child: Some(child),
            pid,
            base,
        })
    }

    fn external(base: &str) -> Server {
        Server {
            child: None,
            pid: None,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn rss_mb(&self) -> Option<f64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    }

    pub(crate) fn ws_url(&self) -> String {
        format!("{}/assistant/ws", self.base.replacen("http://", "ws://", 1))
    }

    pub(crate) async fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = c.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            let _ = tokio::time::timeout(Duration::from_secs(20), c.wait()).await;
        }
    }
}

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(url: &str, token: &str) -> anyhow::Result<(Ws, Value)> {
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse()?);
    // No Nagle, as the simulator (and any assistant that answers tasks at once) does.
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true).await?;
    let welcome = next_json(&mut ws).await?.context("closed before welcome")?;
    Ok((ws, welcome))
}

pub(crate) async fn next_json(ws: &mut Ws) -> anyhow::Result<Option<Value>> {
    while let Some(m) = ws.next().await {
        match m? {
            Message::Text(t) => return Ok(Some(serde_json::from_str(t.as_str())?)),
            Message::Close(_) => return Ok(None),
            _ => {}
        }
    }
    Ok(None)
}

pub(crate) async fn send(ws: &mut Ws, v: &Value) -> anyhow::Result<()> {
    ws.send(Message::Text(v.to_string().into())).await?;
    Ok(())
}

/// Reports accounts (waiting for each ack).
pub(crate) async fn report_accounts(ws: &mut Ws, names: &[String]) -> anyhow::Result<()> {
    for (i, n) in names.iter().enumerate() {
        send(
            ws,
            &json!({"type": "account", "id": format!("a{i}"), "account": n, "nick": "压测"}),
        )
        .await?;
        loop {
            let f = next_json(ws).await?.context("closed")?;
            if f["type"] == "ack" || f["type"] == "error" {
                if f["type"] == "error" {
                    bail!("account refused: {f}");
                }
                break;
            }
        }
    }
    Ok(())
}

pub(crate) async fn setup(
    cfg: &Config,
    devices: usize,
) -> anyhow::Result<(Store, MerchantId, Vec<String>, (String, String))> {
    let store = Store::open(&cfg.database_url, cfg.db_max_connections).await?;
    let admin = store.admin();
    let creds = admin
        .create_merchant(&format!(
            "gw-bench-{}",
            chrono::Utc::now().timestamp_millis()
        ))
        .await?;
    let m = admin
        .merchant(creds.merchant_id)
        .await?
        .context("merchant vanished")?;
    let mut tokens = Vec::with_capacity(devices);
    for i in 0..devices {
        tokens.push(
            admin
                .create_device(m, &format!("bench-{i}"))
                .await?
                .device_token,
        );
    }
    Ok((store, m, tokens, (creds.client_id, creds.client_secret)))
}

pub(crate) fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

#[derive(Serialize)]
struct IngestReport {
    backend: String,
    assistants: usize,
    batch: usize,
    offered_rate: u64,
    seconds: f64,
    messages: u64,
    messages_per_second: f64,
    /// Frame sent → ack (the ack is sent after the commit: visible to GetChat from then).
    ack_ms_p50: f64,
    ack_ms_p99: f64,
    ack_ms_max: f64,
    server_rss_mb: Option<f64>,
    stored_in_database: i64,
}

pub async fn gateway_ingest(args: GatewayIngestArgs, cfg: Config) -> anyhow::Result<()> {
    let (store, _m, tokens, _) = setup(&cfg, args.assistants).await?;
    let before = store.admin().count_all_chats().await?;
    let server = match &args.server {
        Some(url) => Server::external(url),
        None => Server::start(&cfg.database_url, &[]).await?,
    };
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let messages = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::new();
    let per_assistant_rate = args.rate as f64 / args.assistants as f64;
    for (d, token) in tokens.iter().enumerate() {
        let (url, token) = (server.ws_url(), token.clone());
        let (hist, messages, measuring, stop) = (
            hist.clone(),
            messages.clone(),
            measuring.clone(),
            stop.clone(),
        );
        let a = args.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = connect(&url, &token).await?;
            let accounts: Vec<String> = (0..a.accounts).map(|i| format!("wxid_gw_{d}_{i}")).collect();
            report_accounts(&mut ws, &accounts).await?;
            let mut sent: HashMap<u64, (Instant, usize)> = HashMap::new();
            let mut seq: u64 = 0;
            let started = Instant::now();
            let mut offered: f64 = 0.0;
            loop {
                while sent.len() < a.inflight && !stop.is_cancelled() {
                    if per_assistant_rate > 0.0 {
                        let due = started + Duration::from_secs_f64(offered / per_assistant_rate);
                        if due > Instant::now() {
                            break;
                        }
                    }
                    seq += 1;
                    let acct = &accounts[(seq as usize) % accounts.len()];
                    let now = chrono::Utc::now().timestamp();
                    let chats: Vec<Value> = (0..a.batch)
                        .map(|i| {
                            let fan = (seq as usize * 7 + i) % a.fans;
                            json!({"msgId": format!("{d}-{seq}-{i}"), "talker": format!("wxid_fan_{fan}"),
                                   "send": (i % 3 == 0) as i64, "type": 1, "content": "您好,请问这款还有货吗?", "time": now})
                        })
                        .collect();
                    send(&mut ws, &json!({"type": "chats", "id": seq, "account": acct, "chats": chats})).await?;
                    sent.insert(seq, (Instant::now(), a.batch));
                    offered += a.batch as f64;
                }
                if stop.is_cancelled() && sent.is_empty() {
                    break;
                }
                let wait = if per_assistant_rate > 0.0 && sent.len() < a.inflight {
                    let due = started + Duration::from_secs_f64(offered / per_assistant_rate);
                    due.saturating_duration_since(Instant::now())
                } else {
                    Duration::from_secs(5)
                };
                let f = match tokio::time::timeout(wait, next_json(&mut ws)).await {
                    Err(_) => continue,
                    Ok(f) => f?.context("server closed")?,
                };
                if f["type"] == "ack" {
                    if let Some((t0, n)) = f["id"].as_u64().and_then(|i| sent.remove(&i)) {
                        if measuring.load(Ordering::Relaxed) {
                            let us = t0.elapsed().as_micros() as u64;
                            let _ = hist.lock().unwrap().record(us.max(1));
                            messages.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    }
                } else if f["type"] == "error" {
                    bail!("frame refused: {f}");
                }
            }
            anyhow::Ok(())
        }));
    }
    // Warm-up, then measure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    let mut peak_rss: Option<f64> = None;
    while t0.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak_rss = max_opt(peak_rss, server.rss_mb());
    }
    measuring.store(false, Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let n = messages.load(Ordering::Relaxed);
    stop.cancel();
    for t in tasks {
        t.await??;
    }
    let h = hist.lock().unwrap().clone();
    let stored = store.admin().count_all_chats().await? - before;
    let report = IngestReport {
        backend: format!("{:?}", store.backend()),
        assistants: args.assistants,
        batch: args.batch,
        offered_rate: args.rate,
        seconds: secs,
        messages: n,
        messages_per_second: n as f64 / secs,
        ack_ms_p50: pct(&h, 0.5),
        ack_ms_p99: pct(&h, 0.99),
        ack_ms_max: h.max() as f64 / 1000.0,
        server_rss_mb: peak_rss,
        stored_in_database: stored,
    };
    println!("{}", serde_json::to_string(&report)?);
    server.stop().await;
    store.close().await;
    Ok(())
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[derive(Serialize)]
struct ConnectionsReport {
    backend: String,
    connections: usize,
    connected: usize,
    seconds_held: f64,
    pongs: u64,
    server_rss_mb_idle: Option<f64>,
    server_rss_mb_peak: Option<f64>,
    kb_per_connection: Option<f64>,
}

pub async fn gateway_connections(args: GatewayConnectionsArgs, cfg: Config) -> anyhow::Result<()> {
    let (store, _m, tokens, _) = setup(&cfg, args.connections).await?;
    let server = Server::start(
        &cfg.database_url,
        &[(
            "JUHE_GATEWAY__HEARTBEAT_SECONDS",
            args.heartbeat.to_string(),
        )],
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = server.rss_mb();
    let pongs = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(100));
    let mut tasks = Vec::new();
    for token in tokens {
        let (url, pongs, connected, stop, gate) = (
            server.ws_url(),
            pongs.clone(),
            connected.clone(),
            stop.clone(),
            gate.clone(),
        );
        let every = Duration::from_secs((args.heartbeat / 2).max(1));
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await?;
            let (mut ws, _) = connect(&url, &token).await?;
            drop(permit);
            connected.fetch_add(1, Ordering::Relaxed);
            // Spread the pings over the interval.
            let offset =
                Duration::from_millis(rand::random::<u64>() % every.as_millis().max(1) as u64);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => send(&mut ws, &json!({"type": "ping"})).await?,
                    f = next_json(&mut ws) => match f? {
                        Some(f) if f["type"] == "pong" => { pongs.fetch_add(1, Ordering::Relaxed); }
                        Some(_) => {}
                        None => bail!("the server closed a connection"),
                    },
                }
            }
            let _ = ws.close(None).await;
            anyhow::Ok(())
        }));
    }
    let t0 = Instant::now();
    let mut peak: Option<f64> = None;
    while t0.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = max_opt(peak, server.rss_mb());
    }
    let held = connected.load(Ordering::Relaxed) as usize;
    stop.cancel();
    let mut failed = 0;
    for t in tasks {
        if !matches!(t.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    let report = ConnectionsReport {
        backend: format!("{:?}", store.backend()),
        connections: args.connections,
        connected: held.saturating_sub(failed),
        seconds_held: t0.elapsed().as_secs_f64(),
        pongs: pongs.load(Ordering::Relaxed),
        server_rss_mb_idle: idle,
        server_rss_mb_peak: peak,
        kb_per_connection: match (idle, peak) {
            (Some(i), Some(p)) if held > 0 => Some((p - i) * 1024.0 / held as f64),
            _ => None,
        },
    };
    println!("{}", serde_json::to_string(&report)?);
    server.stop().await;
    store.close().await;
    Ok(())
}

#[derive(Serialize)]
struct SendReport {
    backend: String,
    rate: u64,
    seconds: f64,
    sends: u64,
    completed: u64,
    /// doSendPublicMes answered (task stored).
    http_ms_p50: f64,
    http_ms_p99: f64,
    /// doSendPublicMes sent → the assistant's result acknowledged (the message committed to
    /// GetChat).
    round_trip_ms_p50: f64,
    round_trip_ms_p99: f64,
    round_trip_ms_max: f64,
}

pub async fn gateway_send(args: GatewaySendArgs, cfg: Config) -> anyhow::Result<()> {
    let (store, m, tokens, (client_id, secret)) = setup(&cfg, 1).await?;
    let server = Server::start(
        &cfg.database_url,
        &[
            ("JUHE_GATEWAY__SEND_INTERVAL_MS", "0".into()),
            ("JUHE_GATEWAY__MAX_INFLIGHT_TASKS", "256".into()),
        ],
    )
    .await?;
    let (mut ws, _) = connect(&server.ws_url(), &tokens[0]).await?;
    let accounts: Vec<String> = (0..args.accounts)
        .map(|i| format!("wxid_send_{i}"))
        .collect();
    report_accounts(&mut ws, &accounts).await?;
    for (i, a) in accounts.iter().enumerate() {
        send(&mut ws, &json!({"type": "fans", "id": format!("f{i}"), "account": a, "fans": [{"wxid": "wxid_customer", "name": "顾客"}]})).await?;
        next_json(&mut ws).await?;
    }
    let ids: Vec<i64> = store
        .tenant(m)
        .device_accounts(1)
        .await?
        .into_iter()
        .map(|(w, _)| w)
        .collect();
    let http = reqwest::Client::new();
    let tok: Value = http
        .post(format!("{}/connect/token", server.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ])
        .send()
        .await?
        .json()
        .await?;
    let token = tok["access_token"].as_str().context("no token")?.to_owned();
    // taskId → when its send started / when its result was acknowledged.
    let started: Arc<Mutex<HashMap<i64, Instant>>> = Default::default();
    let acked: Arc<Mutex<HashMap<i64, Instant>>> = Default::default();
    let rt = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let http_h = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let completed = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    // The assistant: answers every task at once, and measures when its result is committed.
    let assistant = {
        let (started, acked, rt, completed, stop) = (
            started.clone(),
            acked.clone(),
            rt.clone(),
            completed.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            loop {
                let f = tokio::select! {
                    _ = stop.cancelled() => break,
                    f = next_json(&mut ws) => f?.context("server closed")?,
                };
                if f["type"] == "task" {
                    let id = f["taskId"].as_i64().unwrap_or_default();
                    send(&mut ws, &json!({"type": "taskResult", "id": id, "taskId": id, "ok": true, "msgId": format!("sent-{id}")})).await?;
                } else if f["type"] == "ack" && f["state"] == "succeeded" {
                    let id = f["id"].as_i64().unwrap_or_default();
                    let now = Instant::now();
                    completed.fetch_add(1, Ordering::Relaxed);
                    match started.lock().unwrap().remove(&id) {
                        Some(t0) => {
                            let _ = rt
                                .lock()
                                .unwrap()
                                .record((t0.elapsed().as_micros() as u64).max(1));
                        }
                        None => {
                            acked.lock().unwrap().insert(id, now);
                        }
                    }
                }
            }
            anyhow::Ok(())
        })
    };
    let sends = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let t0 = Instant::now();
    let mut n = 0usize;
    let mut inflight = Vec::new();
    while t0.elapsed() < Duration::from_secs(args.seconds) {
        tick.tick().await;
        n += 1;
        let body = json!({"WechatId": ids[n % ids.len()], "ToUserName": "wxid_customer", "MsgType": "text", "Text": format!("订单{n}已发货")});
        let (http, base, token) = (http.clone(), server.base.clone(), token.clone());
        let (started, acked, rt, http_h, sends) = (
            started.clone(),
            acked.clone(),
            rt.clone(),
            http_h.clone(),
            sends.clone(),
        );
        inflight.push(tokio::spawn(async move {
            let s = Instant::now();
            let r: Value = http
                .post(format!("{base}/v2/ChatMess/doSendPublicMes"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await?
                .json()
                .await?;
            let _ = http_h
                .lock()
                .unwrap()
                .record((s.elapsed().as_micros() as u64).max(1));
            sends.fetch_add(1, Ordering::Relaxed);
            let id = r["values"]["taskId"].as_i64().context("no taskId")?;
            let done = acked.lock().unwrap().remove(&id);
            match done {
                Some(t1) => {
                    let _ = rt
                        .lock()
                        .unwrap()
                        .record((t1.duration_since(s).as_micros() as u64).max(1));
                }
                None => {
                    started.lock().unwrap().insert(id, s);
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in inflight {
        t.await??;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let _ = assistant.await;
    let secs = t0.elapsed().as_secs_f64();
    let rt = rt.lock().unwrap().clone();
    let hh = http_h.lock().unwrap().clone();
    let report = SendReport {
        backend: format!("{:?}", store.backend()),
        rate: args.rate,
        seconds: secs,
        sends: sends.load(Ordering::Relaxed),
        completed: completed.load(Ordering::Relaxed),
        http_ms_p50: pct(&hh, 0.5),
        http_ms_p99: pct(&hh, 0.99),
        round_trip_ms_p50: pct(&rt, 0.5),
        round_trip_ms_p99: pct(&rt, 0.99),
        round_trip_ms_max: rt.max() as f64 / 1000.0,
    };
    println!("{}", serde_json::to_string(&report)?);
    server.stop().await;
    store.close().await;
    Ok(())
}
