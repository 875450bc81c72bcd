//! `juhe simulate` against the real gateway over real WebSockets: what the simulator says
//! it reported is exactly what the open API shows, also across dropped connections; tasks
//! are executed once and answered; the command prints one JSON line.

#[path = "../../juhe/tests/it/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use helpers::{Db, Tenant, TestApp};
use juhe::store::tasks::{NewTask, TaskRow};
use juhe_cli::simulate::{SimConfig, Simulator, Summary};

/// A server whose gateway looks for due tasks often and paces sends lightly, so task tests
/// take milliseconds instead of the production second.
async fn app() -> TestApp {
    TestApp::spawn_with(Db::Sqlite, |c| {
        c.gateway.poll_ms = 50;
        c.gateway.send_interval_ms = 10;
    })
    .await
    .unwrap()
}

async fn device(app: &TestApp, t: &Tenant) -> (i64, String) {
    let d = app
        .store
        .admin()
        .create_device(t.id, "模拟器")
        .await
        .unwrap();
    (d.device_id, d.device_token)
}

fn sim(app: &TestApp, token: &str) -> SimConfig {
    let mut c = SimConfig::new(app.base.clone(), token);
    c.accounts = 2;
    c.fans = 12;
    c.task_latency = Duration::from_millis(50);
    c.seed = 7;
    c
}

/// Every chat record of the merchant, through the feed.
async fn feed(app: &TestApp, t: &Tenant) -> Vec<Value> {
    let mut out = Vec::new();
    let mut min = 0;
    loop {
        let v = app
            .ok(
                "/v2/ChatMess/GetChatFeed",
                &t.token,
                json!({"minChattingId": min, "pageSize": 1000}),
            )
            .await;
        let rows = v["values"].as_array().unwrap().clone();
        if rows.is_empty() {
            return out;
        }
        min = v["page"]["nextMinChattingId"].as_i64().unwrap();
        out.extend(rows);
    }
}

fn sermsgids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["ad_sermsgid"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Polls `f` until it returns `Some`, for at most `secs` seconds.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    secs: u64,
    mut f: impl FnMut() -> F,
) -> T {
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "condition not met within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The simulator's accounts, once it has reported them: original id → wechat id.
async fn accounts(app: &TestApp, t: &Tenant, device_id: i64, n: usize) -> HashMap<String, i64> {
    eventually(10, || async {
        let a = app
            .store
            .tenant(t.id)
            .device_accounts(device_id)
            .await
            .unwrap();
        (a.len() == n).then(|| a.into_iter().map(|(id, o)| (o, id)).collect())
    })
    .await
}

async fn send_task(app: &TestApp, t: &Tenant, wechat_id: i64, to: &str, text: &str) -> i64 {
    let tenant = app.store.tenant(t.id);
    let mut tx = tenant.begin().await.unwrap();
    let payload = json!({"to": to, "relationType": 0, "msgType": "text", "text": text});
    let task = NewTask {
        wechat_id,
        kind: "sendMessage".into(),
        payload: payload.to_string(),
        fan_key: Some(to.to_owned()),
        bulk_task_id: None,
        not_before_ms: 0,
        ttl_seconds: 600,
    };
    let e = juhe::core::tasks::enqueue_in(tenant, &mut tx, &task)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    e.task_id
}

async fn finished(app: &TestApp, t: &Tenant, task_id: i64) -> TaskRow {
    eventually(10, || async {
        let row = app.store.tenant(t.id).task(task_id).await.unwrap().unwrap();
        row.finished_at.is_some().then_some(row)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_counts_exactly_the_chats_and_fans_the_open_api_shows() {
    let app = app().await;
    let t = app.merchant("m").await;
    let (_, token) = device(&app, &t).await;
    let mut c = sim(&app, &token);
    c.rate = 500.0;
    c.duration = Some(Duration::from_secs(2));
    let s = Simulator::new(c)
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert!(s.messages_reported > 300, "{s:?}");
    assert_eq!(s.fans_reported, 24, "{s:?}");
    assert_eq!(s.reconnects, 0);
    let rows = feed(&app, &t).await;
    assert_eq!(rows.len() as u64, s.messages_reported);
    let ids: BTreeSet<String> = sermsgids(&rows).into_iter().collect();
    assert_eq!(ids.len(), rows.len(), "a message was stored twice");
    let fans = app
        .values("/v2/Friend/GetFansCount", &t.token, json!({}))
        .await;
    assert_eq!(fans, s.fans_reported, "{fans}");
    // A realistic mix: mostly text, and the other types of the brief, in both directions.
    let types: BTreeSet<i64> = rows
        .iter()
        .map(|r| r["ad_chatting_sate"].as_i64().unwrap())
        .collect();
    for ty in [1, 3, 34, 49, 496, 4933, 42] {
        assert!(types.contains(&ty), "no type {ty} in {types:?}");
    }
    let sent = rows.iter().filter(|r| r["ad_chatting_issend"] == 1).count();
    assert!(sent > 0 && sent < rows.len());
    let text = rows.iter().find(|r| r["ad_chatting_sate"] == 1).unwrap()["ad_chatting_content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_resume_and_no_message_is_stored_twice_or_lost() {
    let app = app().await;
    let t = app.merchant("m").await;
    let (_, token) = device(&app, &t).await;
    let mut c = sim(&app, &token);
    c.rate = 800.0;
    c.drop_every = Some(Duration::from_millis(400));
    c.duration = Some(Duration::from_secs(3));
    let s = Simulator::new(c)
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert!(s.reconnects >= 2, "{s:?}");
    let rows = feed(&app, &t).await;
    let ids = sermsgids(&rows);
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "a re-sent message was stored twice"
    );
    assert_eq!(rows.len() as u64, s.messages_reported, "{s:?}");
    // Message ids end in a sequence number: every number up to the last is there, so no
    // message generated before a drop went missing.
    let mut seq: Vec<u64> = ids
        .iter()
        .map(|i| i.rsplit('_').next().unwrap().parse().unwrap())
        .collect();
    seq.sort_unstable();
    assert_eq!(seq, (1..=seq.len() as u64).collect::<Vec<_>>());
    assert_eq!(s.fans_reported, 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_task_is_executed_once_shows_in_getchat_and_the_fan_answers() {
    let app = app().await;
    let t = app.merchant("m").await;
    let (device_id, token) = device(&app, &t).await;
    let mut c = sim(&app, &token);
    c.reply_probability = 1.0;
    let stop = CancellationToken::new();
    let run = tokio::spawn(Simulator::new(c).run(stop.clone()));
    let accts = accounts(&app, &t, device_id, 2).await;
    let wechat_id = accts[&juhe_cli::simulate::account_wxid(7, device_id, 1)];
    let fan = format!("{}_f1", juhe_cli::simulate::account_wxid(7, device_id, 1));
    let task_id = send_task(&app, &t, wechat_id, &fan, "您好,订单已发货").await;
    let row = finished(&app, &t, task_id).await;
    assert_eq!(
        juhe::store::tasks::state_name(row.state),
        "succeeded",
        "{row:?}"
    );
    let sent_id = row.sermsgid.clone().unwrap();
    let body = json!({"wechatId": wechat_id, "fansKey": fan, "minChattingId": 0, "pageSize": "50", "pageIndex": "1"});
    let chat = eventually(10, || async {
        let v = app
            .values("/v2/ChatMess/GetChat", &t.token, body.clone())
            .await;
        let rows = v.as_array().unwrap().clone();
        // No chat traffic in this run (rate 0): a received message is the fan's answer.
        let answered = rows.iter().any(|r| r["ad_chatting_issend"] == 0);
        answered.then_some(rows)
    })
    .await;
    let sent: Vec<&Value> = chat
        .iter()
        .filter(|r| r["ad_sermsgid"] == sent_id.as_str())
        .collect();
    assert_eq!(
        sent.len(),
        1,
        "the sent message and its echo are one record"
    );
    assert_eq!(sent[0]["ad_chatting_issend"], 1);
    assert_eq!(sent[0]["ad_chatting_content"], "您好,订单已发货");
    stop.cancel();
    let s: Summary = run.await.unwrap().unwrap();
    assert_eq!((s.tasks_executed, s.tasks_failed), (1, 0), "{s:?}");
    // The echo and the fan's answer are chats the simulator reported.
    assert_eq!(feed(&app, &t).await.len() as u64, s.messages_reported);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_failure_rate_one_a_send_task_fails_with_simulated_failure_and_sends_nothing() {
    let app = app().await;
    let t = app.merchant("m").await;
    let (device_id, token) = device(&app, &t).await;
    let mut c = sim(&app, &token);
    c.task_failure_rate = 1.0;
    let stop = CancellationToken::new();
    let run = tokio::spawn(Simulator::new(c).run(stop.clone()));
    let accts = accounts(&app, &t, device_id, 2).await;
    let wechat_id = accts[&juhe_cli::simulate::account_wxid(7, device_id, 2)];
    let fan = format!("{}_f2", juhe_cli::simulate::account_wxid(7, device_id, 2));
    let task_id = send_task(&app, &t, wechat_id, &fan, "在吗").await;
    let row = finished(&app, &t, task_id).await;
    assert_eq!(
        juhe::store::tasks::state_name(row.state),
        "failed",
        "{row:?}"
    );
    assert_eq!(row.result_code.as_deref(), Some("simulated_failure"));
    assert!(row.chat_id.is_none());
    stop.cancel();
    let s = run.await.unwrap().unwrap();
    assert_eq!((s.tasks_executed, s.tasks_failed), (0, 1), "{s:?}");
    assert!(feed(&app, &t).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_redelivered_after_a_drop_is_executed_once() {
    let app = app().await;
    let t = app.merchant("m").await;
    let (device_id, token) = device(&app, &t).await;
    let mut c = sim(&app, &token);
    // Slower to execute than the connection lives: the task is handed over again on the
    // next connection while the first execution is still running.
    c.task_latency = Duration::from_millis(900);
    c.drop_every = Some(Duration::from_millis(300));
    c.reply_probability = 0.0;
    let stop = CancellationToken::new();
    let run = tokio::spawn(Simulator::new(c).run(stop.clone()));
    let accts = accounts(&app, &t, device_id, 2).await;
    let wechat_id = accts[&juhe_cli::simulate::account_wxid(7, device_id, 1)];
    let fan = format!("{}_f3", juhe_cli::simulate::account_wxid(7, device_id, 1));
    let task_id = send_task(&app, &t, wechat_id, &fan, "一次就好").await;
    let row = finished(&app, &t, task_id).await;
    assert_eq!(juhe::store::tasks::state_name(row.state), "succeeded");
    stop.cancel();
    let s = run.await.unwrap().unwrap();
    assert!(s.reconnects > 0, "{s:?}");
    assert!(row.attempts > 1, "the task was not re-delivered: {row:?}");
    assert_eq!(s.tasks_executed, 1, "{s:?}");
    let rows = feed(&app, &t).await;
    let sends = rows
        .iter()
        .filter(|r| r["ad_chatting_issend"] == 1 && r["ad_chatting_content"] == "一次就好")
        .count();
    assert_eq!(sends, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_device_token_stops_the_simulator_with_a_clear_error() {
    let app = app().await;
    let c = sim(&app, "dev_not_a_token");
    let e = tokio::time::timeout(
        Duration::from_secs(10),
        Simulator::new(c).run(CancellationToken::new()),
    )
    .await
    .expect("a refused token must not be retried forever")
    .unwrap_err();
    assert!(e.to_string().contains("401"), "{e:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn juhe_simulate_with_a_duration_prints_exactly_one_json_line() {
    let app = app().await;
    let t = app.merchant("m").await;
    let (_, token) = device(&app, &t).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_juhe"))
        .args([
            "simulate",
            "--server",
            &app.base,
            "--device-token",
            &token,
            "--accounts",
            "1",
            "--fans",
            "5",
            "--rate",
            "50",
            "--duration",
            "1.5",
        ])
        .env_remove("JUHE_DATABASE_URL")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let v: Value = serde_json::from_str(lines[0]).unwrap();
    let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "messagesReported",
            "fansReported",
            "tasksExecuted",
            "tasksFailed",
            "reconnects"
        ])
    );
    assert_eq!(v["fansReported"], 5);
    assert!(v["messagesReported"].as_u64().unwrap() > 20, "{v}");
    assert_eq!(
        feed(&app, &t).await.len() as u64,
        v["messagesReported"].as_u64().unwrap()
    );
}

/// The number after `"key": ` in a printed command line.
fn number_after(line: &str, key: &str) -> i64 {
    let at = line.find(&format!("\"{key}\": ")).unwrap() + key.len() + 4;
    line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_a_simulated_assistant_whose_chats_arrive_while_the_user_watches() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/demo.db", dir.path().display());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_juhe"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .env("JUHE_DATABASE_URL", &db)
        .env_remove("JUHE_LISTEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            let done = l.starts_with("API reference");
            banner.push(l);
            if done {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no banner: {banner:?}");
    let text = banner.join("\n");
    let base = text
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    let creds_at = text.find("Demo merchant credentials:\n").unwrap() + 27;
    let creds_end = creds_at + text[creds_at..].find("\n}").unwrap() + 2;
    let creds: Value = serde_json::from_str(&text[creds_at..creds_end]).unwrap();
    let feed_line = banner
        .iter()
        .find(|l| l.contains("/v2/ChatMess/GetChatFeed"))
        .unwrap_or_else(|| panic!("no live feed in the banner: {text}"));
    assert!(
        banner
            .iter()
            .any(|l| l.contains("/v2/ChatMess/doSendPublicMes")),
        "{text}"
    );
    let live = number_after(feed_line, "wechatId");
    let http = reqwest::Client::new();
    let tok: Value = http
        .post(format!("{base}/connect/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "Ls.Qkl.PublicApi"),
            ("client_id", creds["clientId"].as_str().unwrap()),
            ("client_secret", creds["clientSecret"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap().to_owned();
    // The live account's chats grow while we watch: several within a few seconds.
    let grown = eventually(30, || async {
        let v: Value = http
            .post(format!("{base}/v2/ChatMess/GetChatFeed"))
            .bearer_auth(&token)
            .json(&json!({"wechatId": live, "minChattingId": 0, "pageSize": 1000}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let n = v["values"].as_array().map_or(0, Vec::len);
        (n >= 3).then_some(n)
    })
    .await;
    assert!(grown >= 3);
    let _ = tokio::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .await;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the demo did not stop after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}
