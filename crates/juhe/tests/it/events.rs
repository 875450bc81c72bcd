//! Events: subscriptions, the outbox and signed deliveries to a real HTTP receiver on
//! loopback (docs/events.md).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use juhe::config::Config;
use serde_json::{json, Value};

use crate::assistant::{merchant_with_device, Assistant};
use crate::helpers::{Tenant, TestApp};
use crate::on_both_with;

/// Test timing: loopback receivers, attempts a second apart, short timeouts.
pub fn fast(cfg: &mut Config) {
    cfg.webhooks.allow_private_targets = true;
    cfg.webhooks.retry_schedule_seconds = vec![0, 1, 1, 1];
    cfg.webhooks.timeout_seconds = 2;
    cfg.webhooks.poll_ms = 200;
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Got {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub raw: Vec<u8>,
    pub body: Value,
    pub at: Instant,
}

/// What the receiver answers to its n-th request (0-based).
pub type Plan = Box<dyn Fn(usize, &Got) -> Reply + Send + Sync>;

pub enum Reply {
    Status(u16),
    Headers(u16, Vec<(&'static str, String)>),
    Sleep(Duration, u16),
}

#[derive(Clone)]
struct Rx {
    got: Arc<Mutex<Vec<Got>>>,
    plan: Arc<Plan>,
}

/// A webhook receiver on loopback.
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Got>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Receiver {
    pub async fn start(plan: Plan) -> Receiver {
        Receiver::start_on("127.0.0.1:0".parse().unwrap(), plan).await
    }

    pub async fn ok() -> Receiver {
        Receiver::start(Box::new(|_, _| Reply::Status(200))).await
    }

    pub async fn start_on(addr: SocketAddr, plan: Plan) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let state = Rx {
            got: got.clone(),
            plan: Arc::new(plan),
        };
        let app = axum::Router::new().fallback(receive).with_state(state);
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await;
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            got,
            stop,
        }
    }

    pub fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (or `within` passed); returns them all.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Got> {
        let until = Instant::now() + within;
        loop {
            let got = self.got();
            if got.len() >= n || Instant::now() >= until {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn receive(State(rx): State<Rx>, headers: HeaderMap, body: Bytes) -> Response {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let got = Got {
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp"),
        signature: h("webhook-signature"),
        raw: body.to_vec(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at: Instant::now(),
    };
    let n = {
        let mut g = rx.got.lock().unwrap();
        g.push(got.clone());
        g.len() - 1
    };
    match (rx.plan)(n, &got) {
        Reply::Status(s) => (StatusCode::from_u16(s).unwrap(), "ok").into_response(),
        Reply::Headers(s, hs) => {
            let mut r = (StatusCode::from_u16(s).unwrap(), "see headers").into_response();
            for (k, v) in hs {
                r.headers_mut().insert(k, v.parse().unwrap());
            }
            r
        }
        Reply::Sleep(d, s) => {
            tokio::time::sleep(d).await;
            (StatusCode::from_u16(s).unwrap(), "slow").into_response()
        }
    }
}

/// Subscribes `url` to `types` (empty: all).
pub async fn subscribe(app: &TestApp, t: &Tenant, url: &str, types: &[&str]) {
    let v = app
        .values(
            "/v2/Public/subscribeEvent",
            &t.token,
            json!({"url": url, "appId": "crm", "messageTypes": types}),
        )
        .await;
    assert_eq!(v, json!(true));
}

pub fn chat(id: &str, fan: &str, send: i64, text: &str) -> Value {
    json!({"msgId": id, "talker": fan, "send": send, "type": 1, "content": text, "time": 1_764_400_000})
}

pub async fn secret(app: &TestApp, t: &Tenant) -> String {
    app.values("/v2/Public/GetWebhookSecret", &t.token, json!({}))
        .await["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Whether one of the header's signatures is the message's signature under `secret`.
pub fn verifies(g: &Got, secret: &str) -> bool {
    let ts: i64 = g.timestamp.parse().unwrap();
    let want = juhe::webhooks::sign::sign(secret, &g.id, ts, &g.raw).unwrap();
    g.signature.split(' ').any(|s| s == want)
}

/// The attempt log of an event once it has at least `n` entries: the receiver sees a request
/// before the recorder has committed its attempt.
pub async fn attempts_until(app: &TestApp, t: &Tenant, event_id: &str, n: usize) -> Value {
    let until = Instant::now() + WAIT;
    loop {
        let v = app
            .values(
                "/v2/Public/GetEventAttempts",
                &t.token,
                json!({"eventId": event_id}),
            )
            .await;
        if v.as_array().map_or(0, Vec::len) >= n || Instant::now() >= until {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GetEvent once the event's first delivery is in `state` (or the wait is over).
pub async fn state_until(app: &TestApp, t: &Tenant, event_id: &str, state: &str) -> Value {
    let until = Instant::now() + WAIT;
    loop {
        let v = app
            .values(
                "/v2/Public/GetEvent",
                &t.token,
                json!({"eventId": event_id}),
            )
            .await;
        if v["deliveries"][0]["state"] == state || Instant::now() >= until {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A merchant whose device serves `wxid_op1` with fan `wxid_f1`.
async fn live(app: &TestApp) -> (Tenant, Assistant, i64) {
    let (t, token) = merchant_with_device(app, "m").await;
    let mut a = Assistant::connect(app, &token).await;
    let w = a.account("wxid_op1").await;
    a.fans("wxid_op1", &["wxid_f1", "wxid_f2"]).await;
    (t, a, w)
}

const WAIT: Duration = Duration::from_secs(25);

on_both_with! { fast;
    async fn every_reported_chat_arrives_once_signed_in_order_carrying_its_getchat_record(app) {
        let (t, mut a, w) = live(&app).await;
        let rx = Receiver::ok().await;
        subscribe(&app, &t, &rx.url, &["chat"]).await;
        let batch = json!({"type": "chats", "account": "wxid_op1", "chats": [
            chat("c1", "wxid_f1", 0, "你好"), chat("c2", "wxid_f1", 1, "您好,请讲"),
            chat("c3", "wxid_f2", 0, "在吗"), chat("c4", "wxid_f1", 0, "订单 1024 到哪了")]});
        assert_eq!(a.request(batch.clone()).await["stored"], 4);
        // The same batch again (a reconnect's re-send) stores nothing and emits nothing.
        assert_eq!(a.request(batch).await["stored"], 0);
        let got = rx.wait_for(4, WAIT).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got_after = rx.got();
        assert_eq!(got_after.len(), 4, "one delivery per new chat: {:?}", got_after.iter().map(|g| &g.id).collect::<Vec<_>>());
        let secret = secret(&app, &t).await;
        assert!(secret.starts_with("whsec_"));
        let records = app.values("/v2/ChatMess/GetChatFeed", &t.token, json!({"minChattingId": 0})).await;
        let records = records.as_array().unwrap();
        for g in &got {
            assert!(verifies(g, &secret), "signature of {}", g.id);
            assert_eq!(g.body["eventId"], json!(g.id));
            assert_eq!(g.body["eventType"], "chat");
            assert_eq!(g.body["merchantId"], json!(t.id.get()));
            let rec = &g.body["data"];
            let same = records.iter().find(|r| r["ad_chatting_id"] == rec["ad_chatting_id"]).expect("the record is in GetChat");
            assert_eq!(rec, same, "a chat event carries exactly the GetChat record");
            assert_eq!(rec.as_object().unwrap().len(), 17);
        }
        // Per conversation, sequence numbers count 1, 2, 3 without gaps.
        let seqs = |fan: &str| -> Vec<i64> {
            let mut v: Vec<i64> = got.iter().filter(|g| g.body["conversation"]["fansKey"] == fan)
                .map(|g| g.body["sequence"].as_i64().unwrap()).collect();
            v.sort();
            v
        };
        assert_eq!(seqs("wxid_f1"), [1, 2, 3]);
        assert_eq!(seqs("wxid_f2"), [1]);
        assert_eq!(got[0].body["conversation"]["ad_wechat_id"], json!(w));
        // Each event reads back through the API, delivered.
        let detail = state_until(&app, &t, &got[0].id, "succeeded").await;
        assert_eq!(detail["event"]["eventId"], json!(got[0].id));
        assert_eq!(detail["deliveries"][0]["state"], "succeeded", "{detail}");
        let list = app.values("/v2/Public/GetEventList", &t.token, json!({"eventType": "chat"})).await;
        assert_eq!(list.as_array().unwrap().len(), 4);
    }

    async fn a_failing_receiver_gets_the_same_event_id_again_until_it_answers_2xx(app) {
        let (t, mut a, _) = live(&app).await;
        let rx = Receiver::start(Box::new(|n, _| Reply::Status(if n < 2 { 500 } else { 204 }))).await;
        subscribe(&app, &t, &rx.url, &["chat"]).await;
        a.request(json!({"type": "chats", "account": "wxid_op1", "chats": [chat("r1", "wxid_f1", 0, "重试")]})).await;
        let got = rx.wait_for(3, WAIT).await;
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|g| g.id == got[0].id), "every retry carries the same webhook-id");
        assert!(got[1].at - got[0].at >= Duration::from_millis(700), "retries follow the schedule");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(rx.got().len(), 3, "nothing is sent after a 2xx");
        let attempts = attempts_until(&app, &t, &got[0].id, 3).await;
        let summary: Vec<(i64, i64, String)> = attempts.as_array().unwrap().iter()
            .map(|a| (a["attempt"].as_i64().unwrap(), a["status"].as_i64().unwrap(), a["outcome"].as_str().unwrap().to_owned())).collect();
        assert_eq!(summary, [(1, 500, "retrying".into()), (2, 500, "retrying".into()), (3, 204, "succeeded".into())]);
        assert_eq!(attempts[0]["response"], "ok");
    }

    async fn retry_after_is_honoured_and_a_redirect_is_a_failure_not_followed(app) {
        let (t, mut a, _) = live(&app).await;
        let target = Receiver::ok().await;
        let to = target.url.clone();
        let rx = Receiver::start(Box::new(move |n, _| match n {
            0 => Reply::Headers(429, vec![("retry-after", "3".into())]),
            1 => Reply::Headers(302, vec![("location", to.clone())]),
            _ => Reply::Status(200),
        })).await;
        subscribe(&app, &t, &rx.url, &["chat"]).await;
        a.request(json!({"type": "chats", "account": "wxid_op1", "chats": [chat("ra1", "wxid_f1", 0, "慢点")]})).await;
        let got = rx.wait_for(3, Duration::from_secs(30)).await;
        assert_eq!(got.len(), 3);
        assert!(got[1].at - got[0].at >= Duration::from_millis(2800), "Retry-After: 3 waited {:?}", got[1].at - got[0].at);
        assert!(target.got().is_empty(), "the redirect was not followed");
        let attempts = attempts_until(&app, &t, &got[0].id, 3).await;
        let statuses: Vec<i64> = attempts.as_array().unwrap().iter().map(|a| a["status"].as_i64().unwrap()).collect();
        assert_eq!(statuses, [429, 302, 200]);
    }

    async fn a_receiver_slower_than_the_timeout_is_a_failed_attempt_then_retried(app) {
        let (t, mut a, _) = live(&app).await;
        let rx = Receiver::start(Box::new(|n, _| if n == 0 { Reply::Sleep(Duration::from_secs(4), 200) } else { Reply::Status(200) })).await;
        subscribe(&app, &t, &rx.url, &["chat"]).await;
        a.request(json!({"type": "chats", "account": "wxid_op1", "chats": [chat("s1", "wxid_f1", 0, "超时")]})).await;
        let got = rx.wait_for(2, WAIT).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, got[1].id);
        let attempts = attempts_until(&app, &t, &got[0].id, 2).await;
        assert_eq!(attempts[0]["status"], 0, "{attempts}");
        assert_eq!(attempts[0]["outcome"], "retrying");
        assert!(attempts[0]["error"].as_str().unwrap().contains("timed out") || attempts[0]["error"].as_str().unwrap().contains("timeout"), "{attempts}");
        assert!(attempts[0]["durationMs"].as_i64().unwrap() >= 1900);
        assert_eq!(attempts[1]["outcome"], "succeeded");
    }

    async fn a_receiver_that_was_down_gets_every_event_when_it_comes_back(app) {
        let (t, mut a, _) = live(&app).await;
        // A port nothing listens on (yet).
        let addr = { let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap(); l.local_addr().unwrap() };
        subscribe(&app, &t, &format!("http://{addr}/hook"), &["chat"]).await;
        a.request(json!({"type": "chats", "account": "wxid_op1", "chats": [chat("d1", "wxid_f1", 0, "一"), chat("d2", "wxid_f1", 0, "二")]})).await;
        // Until the first attempt has failed.
        let until = Instant::now() + WAIT;
        while app.values("/v2/Public/GetEventAttempts", &t.token, json!({"eventId": format!("evt_{}_1", t.id.get())})).await == json!([]) {
            assert!(Instant::now() < until, "no attempt was made");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let rx = Receiver::start_on(addr, Box::new(|_, _| Reply::Status(200))).await;
        let got = rx.wait_for(2, WAIT).await;
        let mut seqs: Vec<i64> = got.iter().map(|g| g.body["sequence"].as_i64().unwrap()).collect();
        seqs.sort();
        assert_eq!(seqs, [1, 2]);
        let attempts = attempts_until(&app, &t, &got[0].id, 1).await;
        let first = &attempts[0];
        assert_eq!((first["status"].as_i64(), first["outcome"].as_str()), (Some(0), Some("retrying")), "{attempts}");
        assert!(first["error"].as_str().unwrap().to_lowercase().contains("connect"), "{attempts}");
    }

    async fn replay_sends_an_event_again_with_the_same_id_and_failed_events_can_be_replayed_since_a_time(app) {
        let (t, mut a, _) = live(&app).await;
        let rx = Receiver::start(Box::new(|n, _| Reply::Status(if n < 4 { 500 } else { 200 }))).await;
        subscribe(&app, &t, &rx.url, &["chat"]).await;
        let since = chrono::Utc::now().timestamp() - 1;
        a.request(json!({"type": "chats", "account": "wxid_op1", "chats": [chat("p1", "wxid_f1", 0, "重放")]})).await;
        // Four attempts, all failed: the schedule is used up.
        let got = rx.wait_for(4, WAIT).await;
        assert_eq!(got.len(), 4);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let d = state_until(&app, &t, &got[0].id, "failed").await;
        assert_eq!(d["deliveries"][0]["state"], "failed", "{d}");
        let r = app.values("/v2/Public/replayFailedEvents", &t.token, json!({"since": since})).await;
        assert_eq!(r["deliveries"], 1);
        let got = rx.wait_for(5, WAIT).await;
        assert_eq!(got[4].id, got[0].id);
        // One event, replayed by id, after it succeeded.
        let r = app.values("/v2/Public/replayEvent", &t.token, json!({"eventId": got[0].id})).await;
        assert_eq!(r["deliveries"], 1);
        let got = rx.wait_for(6, WAIT).await;
        assert_eq!(got.len(), 6);
        assert_eq!(got[5].id, got[0].id);
        let attempts = attempts_until(&app, &t, &got[0].id, 6).await;
        let numbers: Vec<i64> = attempts.as_array().unwrap().iter().map(|a| a["attempt"].as_i64().unwrap()).collect();
        assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
        app.fails("/v2/Public/replayEvent", &t.token, json!({"eventId": "evt_1_999999"}), 404, 200101).await;
    }

    async fn endpoints_are_listed_changed_and_deleted_and_a_rotated_secret_signs_beside_the_old_one(app) {
        let (t, mut a, _) = live(&app).await;
        let rx = Receiver::ok().await;
        assert_eq!(app.values("/v2/Public/registerCallbackUrl", &t.token, json!({"url": rx.url, "type": 100})).await, json!(true));
        let list = app.values("/v2/Public/GetCallbackList", &t.token, json!({})).await;
        let ep = &list[0];
        assert_eq!((ep["url"].as_str(), ep["type"].as_i64(), ep["enabled"].as_bool()), (Some(rx.url.as_str()), Some(100), Some(true)));
        assert_eq!(ep["messageTypes"].as_array().unwrap().len(), 11, "a registered URL receives every type");
        let id = ep["endpointId"].clone();
        let up = app.values("/v2/Public/updateCallback", &t.token, json!({"endpointId": id, "messageTypes": ["chat", "rpaTaskResult"]})).await;
        assert_eq!(up["messageTypes"], json!(["chat", "rpaTaskResult"]));
        let e = app.fails("/v2/Public/subscribeEvent", &t.token, json!({"url": rx.url, "messageTypes": ["chat", "nope"]}), 400, 200012).await;
        assert!(e.starts_with("messageTypes[1]"), "{e}");
        let old = secret(&app, &t).await;
        let rotated = app.values("/v2/Public/rotateWebhookSecret", &t.token, json!({"graceSeconds": 3600})).await;
        let new = rotated["secret"].as_str().unwrap().to_owned();
        assert_ne!(new, old);
        assert_eq!(rotated["previousSecret"], json!(old));
        a.request(json!({"type": "chats", "account": "wxid_op1", "chats": [chat("k1", "wxid_f1", 0, "轮换")]})).await;
        let got = rx.wait_for(1, WAIT).await;
        assert_eq!(got[0].signature.split(' ').count(), 2, "{}", got[0].signature);
        assert!(verifies(&got[0], &new) && verifies(&got[0], &old));
        // Disabled: nothing is sent; deleted: gone.
        app.values("/v2/Public/updateCallback", &t.token, json!({"endpointId": id, "enabled": false})).await;
        a.request(json!({"type": "chats", "account": "wxid_op1", "chats": [chat("k2", "wxid_f1", 0, "停用")]})).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(rx.got().len(), 1);
        assert_eq!(app.values("/v2/Public/deleteCallback", &t.token, json!({"endpointId": id})).await, json!(true));
        assert_eq!(app.values("/v2/Public/GetCallbackList", &t.token, json!({})).await, json!([]));
        app.fails("/v2/Public/deleteCallback", &t.token, json!({"endpointId": id}), 404, 200101).await;
        // Another merchant sees none of it.
        let other = app.merchant("other").await;
        assert_eq!(app.values("/v2/Public/GetCallbackList", &other.token, json!({})).await, json!([]));
        app.fails("/v2/Public/GetEvent", &other.token, json!({"eventId": got[0].id}), 400, 200012).await;
    }

    async fn two_servers_on_one_database_deliver_each_event_once(app) {
        let (t, mut a, _) = live(&app).await;
        let (_other, stop) = app.another_server(fast).await;
        let rx = Receiver::ok().await;
        subscribe(&app, &t, &rx.url, &["chat"]).await;
        for k in 0..5 {
            let chats: Vec<Value> = (0..40).map(|i| chat(&format!("t{k}-{i}"), if i % 2 == 0 { "wxid_f1" } else { "wxid_f2" }, 0, "两个进程")).collect();
            assert_eq!(a.request(json!({"type": "chats", "account": "wxid_op1", "chats": chats})).await["stored"], 40);
        }
        rx.wait_for(200, Duration::from_secs(20)).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let got = rx.got();
        let mut ids: Vec<&str> = got.iter().map(|g| g.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!((got.len(), ids.len()), (200, 200), "each event once");
        stop.cancel();
    }

    async fn actions_emit_their_events_in_their_conversation(app) {
        let (t, mut a, w) = live(&app).await;
        let rx = Receiver::ok().await;
        subscribe(&app, &t, &rx.url, &[]).await;
        // fansInfoChange: a new fan, a changed one.
        a.request(json!({"type": "fans", "account": "wxid_op1", "fans": [{"wxid": "wxid_f3", "name": "新粉丝", "state": 0}, {"wxid": "wxid_f1", "name": "改名了"}]})).await;
        // rpaTaskResult for a send the assistant confirms (and the sent message's chat event).
        let task = app.values("/v2/ChatMess/doSendPublicMes", &t.token,
            json!({"WechatId": w, "ToUserName": "wxid_f1", "MsgType": "text", "Text": "您的订单已发货"})).await;
        let frame = a.expect_type("task").await;
        assert_eq!(frame["taskId"], task["taskId"]);
        a.request(json!({"type": "taskResult", "taskId": task["taskId"], "ok": true, "msgId": "sent-1"})).await;
        // takeOverStarted / takeOverEnded.
        let take = json!({"wechat_key": w, "friend_key": "wxid_f1", "apply_key": "crm-7", "apply_name": "王五", "apply_reason": "售后", "apply_source": "QKB"});
        app.values("/v2/ChatMess/applyTakeOver", &t.token, take.clone()).await;
        app.values("/v2/ChatMess/endTakeOver", &t.token, take).await;
        let got = rx.wait_for(8, WAIT).await;
        let types: Vec<&str> = got.iter().map(|g| g.body["eventType"].as_str().unwrap()).collect();
        for ty in ["fansInfoChange", "rpaTaskResult", "chat", "takeOverStarted", "takeOverEnded"] {
            assert!(types.contains(&ty), "{ty} in {types:?}");
        }
        let fans: Vec<&Value> = got.iter().filter(|g| g.body["eventType"] == "fansInfoChange").map(|g| &g.body["data"]).collect();
        assert!(fans.iter().any(|d| d["change"] == "added" && d["fan"]["ad_friend_wenober"] == "wxid_f3"), "{fans:?}");
        assert!(fans.iter().any(|d| d["change"] == "changed" && d["fan"]["ad_friend_name"] == "改名了"), "{fans:?}");
        let result = got.iter().find(|g| g.body["eventType"] == "rpaTaskResult").unwrap();
        assert_eq!(result.body["data"]["taskId"], task["taskId"]);
        assert_eq!(result.body["data"]["state"], "succeeded");
        assert_eq!(result.body["conversation"]["fansKey"], "wxid_f1");
        let started = got.iter().find(|g| g.body["eventType"] == "takeOverStarted").unwrap();
        let ended = got.iter().find(|g| g.body["eventType"] == "takeOverEnded").unwrap();
        assert_eq!((started.body["sequence"].as_i64(), ended.body["sequence"].as_i64()), (Some(1), Some(1)), "a sequence per type");
        assert_eq!(started.body["data"]["apply_name"], "王五");
        assert_eq!(ended.body["data"]["state"], 0);
    }
}

/// A dead receiver (answering after 10 s) holds only its own 4 slots.
mod isolation {
    use super::*;

    fn capped(cfg: &mut Config) {
        fast(cfg);
        cfg.webhooks.timeout_seconds = 15;
        cfg.webhooks.per_endpoint_concurrency = 4;
    }

    on_both_with! { capped;
    async fn one_dead_endpoint_does_not_delay_another(app) {
        let (t, mut a, _) = live(&app).await;
        let dead = Receiver::start(Box::new(|_, _| Reply::Sleep(Duration::from_secs(10), 200))).await;
        let alive = Receiver::ok().await;
        subscribe(&app, &t, &dead.url, &["chat"]).await;
        subscribe(&app, &t, &alive.url, &["chat"]).await;
        let chats: Vec<Value> = (0..40).map(|i| chat(&format!("x{i}"), "wxid_f1", 0, "批量")).collect();
        let started = Instant::now();
        a.request(json!({"type": "chats", "account": "wxid_op1", "chats": chats})).await;
        let got = alive.wait_for(40, WAIT).await;
        assert_eq!(got.len(), 40);
        assert!(started.elapsed() < Duration::from_secs(5), "the healthy endpoint waited {:?}", started.elapsed());
        // The dead one holds at most its own concurrency cap of requests.
        assert!(dead.got().len() <= 4, "{}", dead.got().len());
    }
    }
}

/// `webhooks.max_per_second`: 20 deliveries a second for the process, over all endpoints.
mod rate_cap {
    use super::*;

    fn paced(cfg: &mut Config) {
        fast(cfg);
        cfg.webhooks.max_per_second = 20;
    }

    on_both_with! { paced;
    async fn a_rate_cap_spreads_deliveries_over_time_and_shares_them_between_endpoints(app) {
        let (t, mut a, _) = live(&app).await;
        let one = Receiver::ok().await;
        let two = Receiver::ok().await;
        subscribe(&app, &t, &one.url, &["chat"]).await;
        subscribe(&app, &t, &two.url, &["chat"]).await;
        let chats: Vec<Value> = (0..30).map(|i| chat(&format!("p{i}"), "wxid_f1", 0, "限速")).collect();
        let started = Instant::now();
        a.request(json!({"type": "chats", "account": "wxid_op1", "chats": chats})).await;
        let got_one = one.wait_for(30, WAIT).await;
        let got_two = two.wait_for(30, WAIT).await;
        assert_eq!((got_one.len(), got_two.len()), (30, 30), "every event arrives at both");
        // 60 deliveries at 20/s (two in a burst): about 3 s, never much less.
        let last = got_one.iter().chain(&got_two).map(|g| g.at).max().unwrap();
        assert!(last - started >= Duration::from_millis(2500), "60 deliveries took only {:?}", last - started);
        // Neither endpoint waits for the other's backlog: the first 20 arrivals are shared.
        let mut all: Vec<(Instant, u8)> = got_one.iter().map(|g| (g.at, 1)).chain(got_two.iter().map(|g| (g.at, 2))).collect();
        all.sort();
        let firsts = all.iter().take(20).filter(|(_, e)| *e == 1).count();
        assert!((5..=15).contains(&firsts), "endpoint one had {firsts} of the first 20 deliveries");
    }
    }
}

/// An endpoint is disabled after failing for `webhooks.disable_after_seconds` (2 s here).
mod disabling {
    use super::*;

    fn quick_disable(cfg: &mut Config) {
        fast(cfg);
        cfg.webhooks.disable_after_seconds = 2;
        cfg.webhooks.retry_schedule_seconds = vec![0, 1, 1, 1, 1, 1];
    }

    on_both_with! { quick_disable;
    async fn an_endpoint_that_keeps_failing_is_disabled_and_an_event_says_so(app) {
        let (t, mut a, _) = live(&app).await;
        let bad = Receiver::start(Box::new(|_, _| Reply::Status(503))).await;
        let watcher = Receiver::ok().await;
        subscribe(&app, &t, &bad.url, &["chat"]).await;
        subscribe(&app, &t, &watcher.url, &["endpointDisabled"]).await;
        a.request(json!({"type": "chats", "account": "wxid_op1", "chats": [chat("b1", "wxid_f1", 0, "坏")]})).await;
        let got = watcher.wait_for(1, Duration::from_secs(15)).await;
        assert_eq!(got.len(), 1, "an endpointDisabled event arrived");
        assert_eq!(got[0].body["eventType"], "endpointDisabled");
        assert_eq!(got[0].body["data"]["url"], json!(bad.url));
        let list = app.values("/v2/Public/GetCallbackList", &t.token, json!({})).await;
        let ep = list.as_array().unwrap().iter().find(|e| e["url"] == json!(bad.url)).unwrap().clone();
        assert_eq!(ep["enabled"], false, "{ep}");
        assert!(ep["disabledReason"].as_str().unwrap().contains("failed"));
    }
    }
}

/// The `standardwebhooks` package from PyPI verifies a delivery unchanged (and refuses a
/// tampered one). CI installs it and sets JUHE_REQUIRE_STANDARDWEBHOOKS=1; elsewhere the test
/// is skipped, saying so, when Python or the package is missing.
mod standard_verifier {
    use super::*;

    fn python_verifies(secret: &str, g: &Got, body: &[u8]) -> Option<(bool, String)> {
        use std::io::Write;
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/verify-webhook.py"
        );
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        let input = json!({"secret": secret, "body": String::from_utf8_lossy(body),
            "headers": {"webhook-id": g.id, "webhook-timestamp": g.timestamp, "webhook-signature": g.signature}});
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No module named") {
            return None;
        }
        Some((
            out.status.success(),
            format!("{}{stderr}", String::from_utf8_lossy(&out.stdout)),
        ))
    }

    on_both_with! { fast;
        async fn the_standardwebhooks_package_verifies_a_delivery_and_refuses_a_tampered_one(app) {
            let (t, mut a, _) = live(&app).await;
            let rx = Receiver::ok().await;
            subscribe(&app, &t, &rx.url, &["chat"]).await;
            a.request(json!({"type": "chats", "account": "wxid_op1", "chats": [chat("v1", "wxid_f1", 0, "验签 ✓")]})).await;
            let got = rx.wait_for(1, WAIT).await;
            let secret = secret(&app, &t).await;
            let Some((ok, out)) = python_verifies(&secret, &got[0], &got[0].raw) else {
                assert_ne!(std::env::var("JUHE_REQUIRE_STANDARDWEBHOOKS").as_deref(), Ok("1"),
                    "JUHE_REQUIRE_STANDARDWEBHOOKS=1 but python3 cannot import standardwebhooks (pip install standardwebhooks)");
                eprintln!("SKIPPED: python3 with the standardwebhooks package is not available");
                return;
            };
            assert!(ok, "standardwebhooks refused our delivery: {out}");
            assert_eq!(out.trim(), got[0].id);
            let mut tampered = got[0].raw.clone();
            let last = tampered.len() - 2;
            tampered[last] = b' ';
            let (ok, out) = python_verifies(&secret, &got[0], &tampered).unwrap();
            assert!(!ok, "a tampered body verified: {out}");
        }
    }
}

/// Without `webhooks.allow_private_targets`, callback URLs that reach loopback, private or
/// link-local addresses are refused when registered (and, in the resolver, when sent).
mod safe_targets {
    use super::*;

    crate::on_both! {
        async fn a_callback_url_reaching_a_private_address_is_refused_by_default(app) {
            let t = app.merchant("m").await;
            for url in ["http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.0.0.7/hook",
                        "http://169.254.169.254/latest/meta-data", "http://[::1]/hook", "http://192.168.1.10/x"] {
                for path in ["/v2/Public/registerCallbackUrl", "/v2/Public/subscribeEvent"] {
                    let e = app.fails(path, &t.token, json!({"url": url, "messageTypes": ["chat"]}), 400, 200012).await;
                    assert!(e.starts_with("url") && e.contains("allow_private_targets"), "{url}: {e}");
                }
            }
            for url in ["ftp://example.com/x", "not a url", ""] {
                let e = app.fails("/v2/Public/registerCallbackUrl", &t.token, json!({"url": url}), 400, 200012).await;
                assert!(e.starts_with("url"), "{url}: {e}");
            }
            assert_eq!(app.values("/v2/Public/GetCallbackList", &t.token, json!({})).await, json!([]));
            // A public address is accepted (nothing is sent: no event happened).
            assert_eq!(app.values("/v2/Public/registerCallbackUrl", &t.token, json!({"url": "https://93.184.215.14/hook"})).await, json!(true));
        }

        async fn a_name_that_resolves_to_loopback_at_delivery_time_is_not_sent_to(app) {
            let (t, mut a, _) = live(&app).await;
            let rx = Receiver::ok().await;
            // As if `localhost` had resolved to a public address when it was registered.
            let url = rx.url.replace("127.0.0.1", "localhost");
            app.store.tenant(t.id).upsert_endpoint(&url, None, None, Some("chat")).await.unwrap();
            a.request(json!({"type": "chats", "account": "wxid_op1", "chats": [chat("l1", "wxid_f1", 0, "内网")]})).await;
            let id = format!("evt_{}_1", t.id.get());
            let until = Instant::now() + WAIT;
            let attempts = loop {
                let v = app.values("/v2/Public/GetEventAttempts", &t.token, json!({"eventId": id})).await;
                if v != json!([]) { break v; }
                assert!(Instant::now() < until, "no attempt was made");
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            assert_eq!(attempts[0]["status"], 0, "{attempts}");
            assert!(attempts[0]["error"].as_str().unwrap().contains("allow_private_targets"), "{attempts}");
            assert!(rx.got().is_empty(), "nothing reached the loopback receiver");
        }
    }
}

/// Writes one real delivery of each event type to `$JUHE_EVENT_EXAMPLES` (docs/events.md's
/// examples come from here): `cargo test -p juhe --test it write_event_examples -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn write_event_examples() {
    let app = TestApp::spawn_with(crate::helpers::Db::Sqlite, fast)
        .await
        .unwrap();
    let t = app.fixture_merchant("示例商户").await;
    let device = app.store.admin().create_device(t.id, "d").await.unwrap();
    let mut a = Assistant::connect(&app, &device.device_token).await;
    assert_eq!(a.account("wxid_op0001").await, 135389);
    let rx = Receiver::ok().await;
    subscribe(&app, &t, &rx.url, &[]).await;
    let w = 135389;
    a.request(json!({"type": "chats", "account": "wxid_op0001", "chats": [
        {"msgId": "7291045581", "talker": "wxid_fan0001", "send": 0, "type": 1, "content": "请问我的订单什么时候发货?", "time": 1_796_297_400}]})).await;
    a.request(json!({"type": "fans", "account": "wxid_op0001", "fans": [{"wxid": "wxid_fan0009", "name": "陈小姐", "state": 0, "scene": 30}]})).await;
    let task = app.values("/v2/ChatMess/doSendPublicMes", &t.token,
        json!({"WechatId": w, "ToUserName": "wxid_fan0001", "MsgType": "text", "Text": "您好,已为您加急处理"})).await;
    a.expect_type("task").await;
    a.request(
        json!({"type": "taskResult", "taskId": task["taskId"], "ok": true, "msgId": "7291045590"}),
    )
    .await;
    let take = json!({"wechat_key": w, "friend_key": "wxid_fan0001", "apply_key": "crm-7", "apply_name": "王五", "apply_reason": "售后跟进", "apply_source": "QKB"});
    app.values("/v2/ChatMess/applyTakeOver", &t.token, take.clone())
        .await;
    app.values("/v2/ChatMess/endTakeOver", &t.token, take).await;
    app.values("/v2/ChatMess/ActivationConversation", &t.token, json!({"ad_wechat_id": w, "ad_friend_wenober": "wxid_fan0001",
        "staff_code": "S002", "enforceAttribution": 1, "activationType": 1, "content": "客户咨询物流,请跟进"})).await;
    rx.wait_for(12, WAIT).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut out = String::new();
    let mut seen = std::collections::BTreeSet::new();
    for g in rx.got() {
        let ty = g.body["eventType"].as_str().unwrap().to_owned();
        if seen.insert(ty.clone()) {
            out.push_str(&format!(
                "**`{ty}`**\n\n```json\n{}\n```\n\n",
                serde_json::to_string_pretty(&g.body).unwrap()
            ));
        }
    }
    let path =
        std::env::var("JUHE_EVENT_EXAMPLES").unwrap_or_else(|_| "/tmp/event-examples.md".into());
    std::fs::write(&path, out).unwrap();
    eprintln!("wrote {} event types to {path}", seen.len());
}

/// PostgreSQL keeps a deleted queue row's index entries until VACUUM, and every claim reads
/// past them: the server vacuums its queue tables itself once enough rows have died (this
/// machine's PostgreSQL runs with autovacuum off; where it is on, either may get there first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_server_vacuums_a_queue_table_once_enough_of_its_rows_have_died() {
    let Some(app) = TestApp::spawn(crate::helpers::Db::Postgres).await else {
        crate::helpers::note_postgres_skipped("vacuum");
        return;
    };
    let mut raw = app.raw().await;
    sqlx::query("INSERT INTO deliveries (merchant_id, endpoint_id, event_id, next_attempt_ms) SELECT 999, 1, g, 0 FROM generate_series(1, 30000) g")
        .execute(&mut raw).await.unwrap();
    sqlx::query("DELETE FROM deliveries WHERE merchant_id = 999")
        .execute(&mut raw)
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(40);
    loop {
        let (manual, auto, dead): (i64, i64, i64) = sqlx::query_as(
            "SELECT vacuum_count, autovacuum_count, n_dead_tup FROM pg_stat_user_tables WHERE relname = 'deliveries'")
            .fetch_one(&mut raw).await.unwrap();
        if manual + auto > 0 {
            assert!(dead < 30_000, "vacuumed, yet {dead} dead rows are counted");
            break;
        }
        assert!(
            Instant::now() < until,
            "30,000 dead deliveries were not vacuumed within 40 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
