//! `juhe bench events`: webhook delivery against a receiver in this process, the server as a
//! `juhe serve` child (its memory measured alone).
//!
//! 1. A backlog of `--backlog` chat events is written into the outbox with the endpoint
//!    disabled, the server starts, GetChat is measured alone, then the endpoint is enabled
//!    and the drain is timed (deliveries/s) while GetChat keeps running and the server's
//!    RSS is sampled.
//! 2. Then a simulated assistant reports chats at `--rate` per second for `--seconds`; each
//!    is timed from its report to its arrival at the receiver.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};

use crate::bench_gateway::{connect, pct, report_accounts, setup, Server};
use juhe::config::Config;
use juhe::store::chats::NewChat;
use juhe::store::events::EndpointChange;

#[derive(clap::Args, Debug, Clone)]
pub struct EventsArgs {
    /// Chat events waiting in the outbox when the endpoint is enabled.
    #[arg(long, default_value_t = 100_000)]
    pub backlog: usize,
    /// Then: chats per second reported by a simulated assistant, each timed to its arrival.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// How long the reporting at `--rate` lasts.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrent GetChat callers beside the drain (0: none).
    #[arg(long, default_value_t = 8)]
    pub getchat_concurrency: usize,
    /// How long GetChat is measured, alone and then from the start of the drain.
    #[arg(long, default_value_t = 5)]
    pub getchat_seconds: u64,
}

#[derive(Default)]
struct Received {
    count: AtomicU64,
    latency: Mutex<Option<Histogram<u64>>>,
}

async fn receive(
    axum::extract::State(rx): axum::extract::State<Arc<Received>>,
    body: Bytes,
) -> &'static str {
    rx.count.fetch_add(1, Ordering::Relaxed);
    // Timed chats carry their report time: content "t=<unix micros>".
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        if let Some(t) = v["data"]["ad_chatting_content"]
            .as_str()
            .and_then(|c| c.strip_prefix("t="))
            .and_then(|t| t.parse::<i64>().ok())
        {
            let now = chrono::Utc::now().timestamp_micros();
            if let Some(h) = rx.latency.lock().unwrap().as_mut() {
                let _ = h.record((now - t).max(0) as u64);
            }
        }
    }
    "ok"
}

#[derive(Serialize)]
struct EventsReport {
    backend: String,
    backlog: usize,
    backlog_write_seconds: f64,
    drain_seconds: f64,
    deliveries_per_second: f64,
    /// While the GetChat callers run (the first seconds of the drain).
    deliveries_per_second_beside_getchat: f64,
    /// After the GetChat callers have stopped: the dispatcher alone.
    deliveries_per_second_alone: Option<f64>,
    server_rss_mb_before: Option<f64>,
    server_rss_mb_peak_during_drain: Option<f64>,
    getchat_per_second_alone: f64,
    getchat_per_second_during_drain: f64,
    rate: u64,
    timed_chats: u64,
    timed_arrived: u64,
    report_to_arrival_ms_p50: f64,
    report_to_arrival_ms_p99: f64,
    report_to_arrival_ms_max: f64,
}

/// GetChat calls per second over `within`, by `n` closed-loop callers.
async fn getchat_rate(base: &str, token: &str, n: usize, within: Duration) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + within;
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..n {
        let (http, done, url, token) = (
            http.clone(),
            done.clone(),
            format!("{base}/v2/ChatMess/GetChat"),
            token.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let body = json!({"wechatId": 900001, "fansKey": format!("ev_fan{}", i % 50), "pageSize": 50});
                if let Ok(r) = http.post(&url).bearer_auth(&token).json(&body).send().await {
                    if r.status().is_success() && r.bytes().await.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / within.as_secs_f64()
}

pub async fn events(args: EventsArgs, mut cfg: Config) -> anyhow::Result<()> {
    cfg.webhooks.allow_private_targets = true;
    let (store, m, tokens, (client_id, secret)) = setup(&cfg, 1).await?;
    let t = store.tenant(m);
    juhe::core::import::import(
        t,
        &crate::bench::one_account_org(900001, "evbench", "事件压测", "ev_fan", 1000),
        cfg.offset()?,
        &|_| {},
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;

    // The receiver.
    let rx = Arc::new(Received::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new().fallback(receive).with_state(rx.clone());
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await;
    });
    let ep = t.upsert_endpoint(&url, None, None, Some("chat")).await?;

    // The backlog, written while no server runs, then held by disabling the endpoint.
    let started = Instant::now();
    let mut written = 0;
    while written < args.backlog {
        let n = (args.backlog - written).min(5000);
        let chats: Vec<NewChat> = (written..written + n)
            .map(|i| NewChat {
                wechat_id: 900001,
                talker: format!("ev_fan{}", i % 1000),
                issend: (i % 2) as i64,
                msg_type: 1,
                content: format!("积压消息 {i}"),
                resvred: None,
                sermsgid: format!("ev-backlog-{i}"),
                chat_time: 1_796_000_000 + i as i64,
                staff_code: None,
                voice_txt: None,
                expand: String::new(),
            })
            .collect();
        juhe::core::chats::record(t, &chats)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        written += n;
    }
    let backlog_write_seconds = started.elapsed().as_secs_f64();
    t.update_endpoint(
        ep.endpoint_id,
        &EndpointChange {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .await?;
    eprintln!(
        "backlog of {} events written in {backlog_write_seconds:.1} s",
        args.backlog
    );

    let server = Server::start(
        &cfg.database_url,
        &[
            ("JUHE_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true".into()),
            ("JUHE_WEBHOOKS__PER_ENDPOINT_CONCURRENCY", "64".into()),
            ("JUHE_WEBHOOKS__POLL_MS", "100".into()),
        ],
    )
    .await?;
    let http = reqwest::Client::new();
    let tok: Value = http
        .post(format!("{}/connect/token", server.base()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "Ls.Qkl.PublicApi"),
            ("client_id", client_id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await?
        .json()
        .await?;
    let token = tok["access_token"].as_str().context("no token")?.to_owned();
    let base = server.base().to_owned();
    let window = Duration::from_secs(args.getchat_seconds.max(1));
    let alone = getchat_rate(&base, &token, args.getchat_concurrency, window).await;
    let rss_before = server.rss_mb();

    // The drain.
    t.update_endpoint(
        ep.endpoint_id,
        &EndpointChange {
            enabled: Some(true),
            ..Default::default()
        },
    )
    .await?;
    let drain_start = Instant::now();
    let target = args.backlog as u64;
    let gc = {
        let (base, token, n) = (base.clone(), token.clone(), args.getchat_concurrency);
        tokio::spawn(async move { getchat_rate(&base, &token, n, window).await })
    };
    let mut peak: Option<f64> = None;
    // (when, deliveries so far) at the end of the GetChat window.
    let mut beside: Option<(Duration, u64)> = None;
    while rx.count.load(Ordering::Relaxed) < target {
        if beside.is_none() && gc.is_finished() {
            beside = Some((drain_start.elapsed(), rx.count.load(Ordering::Relaxed)));
        }
        if drain_start.elapsed() > Duration::from_secs(1800) {
            anyhow::bail!("the backlog did not drain within 30 minutes");
        }
        if let Some(r) = server.rss_mb() {
            peak = Some(peak.map_or(r, |p: f64| p.max(r)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain_seconds = drain_start.elapsed().as_secs_f64();
    let (beside_rate, alone_rate) = match beside {
        Some((at, n)) => (
            n as f64 / at.as_secs_f64(),
            (drain_seconds - at.as_secs_f64() > 1.0)
                .then(|| (target - n) as f64 / (drain_seconds - at.as_secs_f64())),
        ),
        None => (target as f64 / drain_seconds, None),
    };
    let during = gc.await.unwrap_or(0.0);
    eprintln!("drained {target} in {drain_seconds:.1} s");

    // Timed chats through the gateway.
    *rx.latency.lock().unwrap() = Some(Histogram::new(3)?);
    let before_timed = rx.count.load(Ordering::Relaxed);
    let (mut ws, _) = connect(&server.ws_url(), &tokens[0]).await?;
    report_accounts(&mut ws, &["wxid_evbench".to_owned()]).await?;
    let (mut sink, mut stream) = ws.split();
    let drain_acks = tokio::spawn(async move { while stream.next().await.is_some() {} });
    let per_tick = (args.rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let mut sent = 0u64;
    while Instant::now() < end {
        tick.tick().await;
        let now = chrono::Utc::now().timestamp_micros();
        let chats: Vec<Value> = (0..per_tick)
            .map(|k| json!({"msgId": format!("ev-timed-{sent}-{k}"), "talker": format!("ev_fan{}", (sent + k) % 1000),
                "send": 0, "type": 1, "content": format!("t={now}"), "time": now / 1_000_000}))
            .collect();
        let frame = json!({"type": "chats", "id": format!("c{sent}"), "account": "wxid_evbench", "chats": chats});
        send_split(&mut sink, &frame).await?;
        sent += per_tick;
    }
    let until = Instant::now() + Duration::from_secs(10);
    while rx.count.load(Ordering::Relaxed) < before_timed + sent && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drain_acks.abort();
    let arrived = rx.count.load(Ordering::Relaxed) - before_timed;
    let h = rx.latency.lock().unwrap().take().context("histogram")?;
    server.stop().await;
    stop.cancel();
    let report = EventsReport {
        backend: format!("{:?}", store.backend()).to_lowercase(),
        backlog: args.backlog,
        backlog_write_seconds,
        drain_seconds,
        deliveries_per_second: target as f64 / drain_seconds,
        deliveries_per_second_beside_getchat: beside_rate,
        deliveries_per_second_alone: alone_rate,
        server_rss_mb_before: rss_before,
        server_rss_mb_peak_during_drain: peak,
        getchat_per_second_alone: alone,
        getchat_per_second_during_drain: during,
        rate: args.rate,
        timed_chats: sent,
        timed_arrived: arrived,
        report_to_arrival_ms_p50: pct(&h, 0.5),
        report_to_arrival_ms_p99: pct(&h, 0.99),
        report_to_arrival_ms_max: h.max() as f64 / 1000.0,
    };
    store.close().await;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

async fn send_split(
    sink: &mut futures_util::stream::SplitSink<
        crate::bench_gateway::Ws,
        tokio_tungstenite::tungstenite::Message,
    >,
    v: &Value,
) -> anyhow::Result<()> {
    use futures_util::SinkExt;
    sink.send(tokio_tungstenite::tungstenite::Message::Text(
        v.to_string().into(),
    ))
    .await?;
    Ok(())
}
