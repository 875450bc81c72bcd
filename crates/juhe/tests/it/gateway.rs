//! The assistant gateway over real WebSockets: what assistants report reaches the v2 API
//! once, tasks reach the assistant at least once, and no frame can break a connection or
//! reach another tenant's data.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::assistant::{merchant_with_device, Assistant};
use crate::helpers::TestApp;
use crate::on_both;

async fn chats_of(app: &TestApp, token: &str, wechat_id: i64, fan: &str) -> Vec<Value> {
    app.values(
        "/v2/ChatMess/GetChat",
        token,
        json!({"wechatId": wechat_id, "fansKey": fan, "pageSize": 1000}),
    )
    .await
    .as_array()
    .unwrap()
    .clone()
}

fn chat(id: &str, fan: &str, send: i64, text: &str) -> Value {
    json!({"msgId": id, "talker": fan, "send": send, "type": 1, "content": text, "time": 1_764_400_000})
}

/// A gateway without pacing, so tests do not wait a second per task.
async fn unpaced(db: crate::helpers::Db) -> Option<TestApp> {
    TestApp::spawn_with(db, |c| {
        c.gateway.send_interval_ms = 0;
        c.gateway.poll_ms = 100;
    })
    .await
}

async fn send_text(app: &TestApp, token: &str, wechat_id: i64, fan: &str, text: &str) -> Value {
    app.values(
        "/v2/ChatMess/doSendPublicMes",
        token,
        json!({"WechatId": wechat_id.to_string(), "ToUserName": fan, "RelationType": 0, "MsgType": "text", "Text": text}),
    )
    .await
}

on_both! {
    async fn what_an_assistant_reports_is_readable_through_the_v2_api(app) {
        let (t, token) = merchant_with_device(&app, "m").await;
        let mut a = Assistant::connect(&app, &token).await;
        assert_eq!(a.welcome["protocol"], 1);
        let w = a.account("wxid_op1").await;
        a.fans("wxid_op1", &["wxid_f1", "wxid_f2"]).await;
        let ack = a.request(json!({"type": "chats", "account": "wxid_op1", "chats": [
            chat("m1", "wxid_f1", 0, "你好,在吗?"),
            chat("m2", "wxid_f1", 1, "在的,请问有什么可以帮您?"),
            {"msgId": "m3", "talker": "wxid_f1", "send": 0, "type": 49, "content": "a(https://x.example/p)",
             "resvred": {"title": "商品", "url": "https://x.example/p"}, "time": 1_764_400_010},
        ]})).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        assert_eq!(ack["stored"], 3);
        let got = chats_of(&app, &t.token, w, "wxid_f1").await;
        assert_eq!(got.len(), 3);
        assert_eq!(got[1]["ad_chatting_issend"], 1);
        let link = got.iter().find(|c| c["ad_sermsgid"] == "m3").unwrap();
        assert_eq!(link["ad_chatting_sate"], 49);
        let decoded = percent_encoding::percent_decode_str(link["ad_chatting_resvred"].as_str().unwrap()).decode_utf8().unwrap().to_string();
        assert_eq!(serde_json::from_str::<Value>(&decoded).unwrap()["title"], "商品");
        let fans = app.values("/v2/Friend/GetFansList", &t.token, json!({"wechatId": w, "pageSize": 100})).await;
        assert_eq!(fans.as_array().unwrap().len(), 2);
        let calls = a.request(json!({"type": "calls", "account": "wxid_op1", "calls": [
            {"type": "voip_voice", "fan": "wxid_f1", "staffCode": "", "start": 1_764_400_100, "duration": 63, "voiceUrl": "https://x.example/c.mp3"}]})).await;
        assert_eq!(calls["stored"], 1, "{calls}");
        let again = a.request(json!({"type": "calls", "account": "wxid_op1", "calls": [
            {"type": "voip_voice", "fan": "wxid_f1", "staffCode": "", "start": 1_764_400_100, "duration": 63, "voiceUrl": "https://x.example/c.mp3"}]})).await;
        assert_eq!(again["duplicates"], 1, "{again}");
    }

    async fn chats_sent_again_after_a_reconnect_are_stored_once(app) {
        let (t, token) = merchant_with_device(&app, "m").await;
        let mut a = Assistant::connect(&app, &token).await;
        let w = a.account("wxid_op1").await;
        let batch = json!({"type": "chats", "account": "wxid_op1", "chats": [chat("r1", "wxid_f1", 0, "一"), chat("r2", "wxid_f1", 0, "二")]});
        assert_eq!(a.request(batch.clone()).await["stored"], 2);
        drop(a);
        let mut b = Assistant::connect(&app, &token).await;
        let ack = b.request(batch).await;
        assert_eq!((ack["stored"].as_i64(), ack["duplicates"].as_i64()), (Some(0), Some(2)), "{ack}");
        assert_eq!(chats_of(&app, &t.token, w, "wxid_f1").await.len(), 2);
    }

    async fn a_device_cannot_write_into_another_device_or_another_merchant(app) {
        let (t, token1) = merchant_with_device(&app, "m").await;
        let token2 = app.store.admin().create_device(t.id, "second").await.unwrap().device_token;
        let (other, token3) = merchant_with_device(&app, "other").await;
        let mut a = Assistant::connect(&app, &token1).await;
        let w = a.account("wxid_op1").await;
        // The merchant's second device cannot claim or write the first one's account.
        let mut b = Assistant::connect(&app, &token2).await;
        let claim = b.request(json!({"type": "account", "account": "wxid_op1"})).await;
        assert_eq!((claim["type"].as_str(), claim["code"].as_str()), (Some("error"), Some("forbidden")), "{claim}");
        let write = b.request(json!({"type": "chats", "account": "wxid_op1", "chats": [chat("x1", "wxid_f1", 0, "冒充")]})).await;
        assert_eq!(write["code"], "forbidden", "{write}");
        // Another merchant's device with the same WeChat id gets its own account.
        let mut c = Assistant::connect(&app, &token3).await;
        let w3 = c.account("wxid_op1").await;
        assert_eq!(c.request(json!({"type": "chats", "account": "wxid_op1", "chats": [chat("x1", "wxid_f1", 0, "别家")]})).await["stored"], 1);
        assert!(chats_of(&app, &t.token, w, "wxid_f1").await.is_empty(), "nothing reached the first merchant");
        assert_eq!(chats_of(&app, &other.token, w3, "wxid_f1").await.len(), 1);
        // Tasks: the first merchant cannot send through the other merchant's account id.
        let (status, body) = app.post("/v2/ChatMess/doSendPublicMes", &t.token,
            json!({"WechatId": w3 + 1000, "ToUserName": "wxid_f1", "MsgType": "text", "Text": "x"})).await;
        assert_eq!(status, 404, "{body}");
    }

    async fn malformed_frames_get_error_frames_and_the_connection_keeps_working(app) {
        let (_t, token) = merchant_with_device(&app, "m").await;
        let mut a = Assistant::connect(&app, &token).await;
        a.account("wxid_op1").await;
        let cases: Vec<(Message, &str)> = vec![
            (Message::Text("not json".into()), "bad_frame"),
            (Message::Text("[1,2]".into()), "bad_frame"),
            (Message::Text("{\"id\":1}".into()), "invalid"),
            (Message::Text("{\"type\":\"bogus\",\"id\":2}".into()), "unknown_type"),
            (Message::Binary(vec![1u8, 2, 3].into()), "bad_frame"),
            (Message::Text(json!({"type": "chats", "id": 3, "account": "wxid_op1", "chats": [{"msgId": "a\u{0}b", "talker": "f", "send": 0, "type": 1, "time": 1}]}).to_string().into()), "invalid"),
            (Message::Text(json!({"type": "chats", "id": 4, "account": "wxid_op1", "chats": [{"msgId": "a", "talker": "f", "send": "zero", "type": 1, "time": 1}]}).to_string().into()), "invalid"),
            (Message::Text(json!({"type": "chats", "id": 5, "account": "wxid_op1", "chats": [{"msgId": "a", "talker": "f", "send": 0, "type": 1, "time": 1e300}]}).to_string().into()), "invalid"),
            (Message::Text(json!({"type": "chats", "id": 6, "account": "wxid_nobody", "chats": []}).to_string().into()), "unknown_account"),
            (Message::Text(json!({"type": "taskResult", "id": 7, "taskId": 999_999, "ok": true}).to_string().into()), "unknown_task"),
            (Message::Text(format!("{{\"type\":\"ping\",\"pad\":\"{}\"}}", "x".repeat(1_100_000)).into()), "too_large"),
        ];
        for (m, code) in cases {
            a.send_raw(m).await;
            let f = a.expect_type("error").await;
            assert_eq!(f["code"], code, "{f}");
        }
        let bad_field = a.request(json!({"type": "chats", "account": "wxid_op1", "chats": [chat("ok1", "wxid_f1", 0, "好"), {"msgId": "", "talker": "f", "send": 0, "type": 1, "time": 1}]})).await;
        assert_eq!(bad_field["field"], "chats[1].msgId", "{bad_field}");
        a.send(json!({"type": "ping"})).await;
        a.expect_type("pong").await;
        let ok = a.request(json!({"type": "chats", "account": "wxid_op1", "chats": [chat("ok1", "wxid_f1", 0, "好")]})).await;
        assert_eq!(ok["stored"], 1, "the refused batch wrote nothing, so ok1 is new: {ok}");
    }

    async fn random_frames_never_take_the_gateway_down(app) {
        use rand::{Rng, SeedableRng};
        let (_t, token) = merchant_with_device(&app, "m").await;
        let mut a = Assistant::connect(&app, &token).await;
        a.account("wxid_op1").await;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let types = ["account", "fans", "chats", "calls", "taskResult", "ping", "", "x"];
        let values = [json!(null), json!(-1), json!(1e308), json!("字"), json!([]), json!({}), json!(9_223_372_036_854_775_807i64), json!("wxid_op1"), json!(true)];
        for i in 0..200 {
            let mut f = serde_json::Map::new();
            f.insert("type".into(), json!(types[rng.gen_range(0..types.len())]));
            f.insert("id".into(), json!(i));
            for key in ["account", "chats", "fans", "calls", "taskId", "ok", "msgId", "talker", "send", "time", "wxid"] {
                if rng.gen_bool(0.5) {
                    let v = if key == "chats" || key == "fans" || key == "calls" {
                        json!([{ "msgId": values[rng.gen_range(0..values.len())], "talker": values[rng.gen_range(0..values.len())], "send": values[rng.gen_range(0..values.len())], "type": values[rng.gen_range(0..values.len())], "time": values[rng.gen_range(0..values.len())], "wxid": values[rng.gen_range(0..values.len())], "fan": values[rng.gen_range(0..values.len())], "start": values[rng.gen_range(0..values.len())] }])
                    } else {
                        values[rng.gen_range(0..values.len())].clone()
                    };
                    f.insert(key.into(), v);
                }
            }
            a.send(Value::Object(f)).await;
            let answer = a.next().await.expect("the connection stays open");
            assert!(["ack", "error", "pong"].contains(&answer["type"].as_str().unwrap_or("")), "{answer}");
            if answer["type"] == "error" {
                assert!(answer["code"].is_string() && answer["message"].is_string(), "{answer}");
            }
        }
        a.send(json!({"type": "ping"})).await;
        a.expect_type("pong").await;
        let health = app.http.get(format!("{}/healthz", app.base)).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }

    async fn a_sent_message_reaches_the_assistant_and_its_result_puts_it_in_getchat_once(app) {
        let Some(app) = unpaced(app.db()).await else { return };
        let (t, token) = merchant_with_device(&app, "m").await;
        let mut a = Assistant::connect(&app, &token).await;
        let w = a.account("wxid_op1").await;
        a.fans("wxid_op1", &["wxid_f1"]).await;
        let task = send_text(&app, &t.token, w, "wxid_f1", "您好,订单已发货").await;
        assert!(task["state"] == "pending" || task["state"] == "delivered", "{task}");
        let id = task["taskId"].as_i64().unwrap();
        let frame = a.expect_type("task").await;
        assert_eq!(frame["taskId"], id);
        assert_eq!(frame["kind"], "sendMessage");
        assert_eq!(frame["payload"]["text"], "您好,订单已发货");
        assert_eq!(frame["payload"]["to"], "wxid_f1");
        let r = a.request(json!({"type": "taskResult", "taskId": id, "ok": true, "msgId": "sent-1"})).await;
        assert_eq!(r["state"], "succeeded", "{r}");
        let got = app.values("/v2/ChatMess/GetTaskResult", &t.token, json!({"taskId": id})).await;
        assert_eq!(got["state"], "succeeded");
        let chats = chats_of(&app, &t.token, w, "wxid_f1").await;
        assert_eq!(chats.len(), 1);
        assert_eq!(chats[0]["ad_chatting_issend"], 1);
        assert_eq!(chats[0]["ad_chatting_content"], "您好,订单已发货");
        assert_eq!(got["ad_chatting_id"], chats[0]["ad_chatting_id"]);
        // The echo the assistant reports afterwards is the same message, not a second one.
        let echo = a.request(json!({"type": "chats", "account": "wxid_op1", "chats": [chat("sent-1", "wxid_f1", 1, "您好,订单已发货")]})).await;
        assert_eq!(echo["duplicates"], 1, "{echo}");
        // A repeated result changes nothing.
        let again = a.request(json!({"type": "taskResult", "taskId": id, "ok": false, "code": "late"})).await;
        assert_eq!(again["duplicate"], true, "{again}");
        assert_eq!(chats_of(&app, &t.token, w, "wxid_f1").await.len(), 1);
    }

    async fn a_burst_of_results_sent_at_once_is_answered_in_order_each_as_if_it_came_alone(app) {
        // The server stores results that arrive together in one transaction; the answers
        // must not show it.
        let Some(app) = unpaced(app.db()).await else { return };
        let (t, token) = merchant_with_device(&app, "m").await;
        let mut a = Assistant::connect(&app, &token).await;
        let w = a.account("wxid_op1").await;
        a.fans("wxid_op1", &["wxid_f1"]).await;
        let mut ids = Vec::new();
        for i in 0..4 {
            ids.push(send_text(&app, &t.token, w, "wxid_f1", &format!("第{i}条")).await["taskId"].as_i64().unwrap());
        }
        for _ in 0..4 {
            a.expect_type("task").await;
        }
        let burst = [
            json!({"type": "taskResult", "id": 101, "taskId": ids[0], "ok": true, "msgId": "s0"}),
            json!({"type": "taskResult", "id": 102, "taskId": ids[1], "ok": true}),
            json!({"type": "taskResult", "id": 103, "taskId": ids[0], "ok": false, "code": "late"}),
            json!({"type": "taskResult", "id": 104, "taskId": 999_999, "ok": true, "msgId": "x"}),
            json!({"type": "ping"}),
            json!({"type": "taskResult", "id": 106, "taskId": ids[2], "ok": true, "msgId": "s2"}),
            json!({"type": "taskResult", "id": 107, "taskId": ids[3], "ok": false, "code": "not_friend"}),
        ];
        for f in &burst {
            a.send(f.clone()).await;
        }
        let mut answers = Vec::new();
        while answers.len() < burst.len() {
            let f = a.next().await.expect("an answer");
            if ["ack", "error", "pong"].contains(&f["type"].as_str().unwrap_or("")) {
                answers.push(f);
            }
        }
        let got: Vec<(Value, Value)> = answers.iter().map(|f| (f["type"].clone(), f["id"].clone())).collect();
        assert_eq!(got, vec![
            (json!("ack"), json!(101)), (json!("error"), json!(102)), (json!("ack"), json!(103)),
            (json!("error"), json!(104)), (json!("pong"), Value::Null), (json!("ack"), json!(106)),
            (json!("ack"), json!(107)),
        ], "{answers:?}");
        assert_eq!(answers[0]["state"], "succeeded", "{}", answers[0]);
        assert_eq!((answers[1]["code"].as_str(), answers[1]["field"].as_str()), (Some("invalid"), Some("msgId")), "{}", answers[1]);
        assert_eq!(answers[2]["duplicate"], true, "the second result of a task in one burst is a repeat: {}", answers[2]);
        assert_eq!(answers[3]["code"], "unknown_task", "{}", answers[3]);
        assert_eq!(answers[6]["state"], "failed", "{}", answers[6]);
        // Each stored send links to its own GetChat record; the refused one is untouched.
        let chats = chats_of(&app, &t.token, w, "wxid_f1").await;
        let texts: Vec<&str> = chats.iter().map(|c| c["ad_chatting_content"].as_str().unwrap()).collect();
        assert_eq!(texts, vec!["第0条", "第2条"], "{chats:?}");
        for (task, chat) in [(ids[0], &chats[0]), (ids[2], &chats[1])] {
            let r = app.values("/v2/ChatMess/GetTaskResult", &t.token, json!({"taskId": task})).await;
            assert_eq!(r["ad_chatting_id"], chat["ad_chatting_id"], "{r}");
        }
        let r = app.values("/v2/ChatMess/GetTaskResult", &t.token, json!({"taskId": ids[1]})).await;
        assert_eq!(r["state"], "delivered", "a refused result leaves its task open: {r}");
        let late = a.request(json!({"type": "taskResult", "taskId": ids[1], "ok": true, "msgId": "s1"})).await;
        assert_eq!(late["state"], "succeeded", "{late}");
    }

    async fn a_failed_send_is_readable_by_its_task_id(app) {
        let Some(app) = unpaced(app.db()).await else { return };
        let (t, token) = merchant_with_device(&app, "m").await;
        let mut a = Assistant::connect(&app, &token).await;
        let w = a.account("wxid_op1").await;
        a.fans("wxid_op1", &["wxid_f1"]).await;
        let id = send_text(&app, &t.token, w, "wxid_f1", "x").await["taskId"].as_i64().unwrap();
        a.expect_type("task").await;
        a.request(json!({"type": "taskResult", "taskId": id, "ok": false, "code": "not_friend", "message": "对方不是你的好友"})).await;
        let got = app.values("/v2/ChatMess/GetTaskResult", &t.token, json!({"taskId": id})).await;
        assert_eq!((got["state"].as_str(), got["resultCode"].as_str()), (Some("failed"), Some("not_friend")), "{got}");
        assert!(chats_of(&app, &t.token, w, "wxid_f1").await.is_empty());
    }

    async fn a_retried_send_with_the_same_idempotency_key_is_one_task(app) {
        let Some(app) = unpaced(app.db()).await else { return };
        let (t, token) = merchant_with_device(&app, "m").await;
        let mut a = Assistant::connect(&app, &token).await;
        let w = a.account("wxid_op1").await;
        a.fans("wxid_op1", &["wxid_f1"]).await;
        let body = json!({"WechatId": w, "ToUserName": "wxid_f1", "MsgType": "text", "Text": "一次"});
        let mut ids = Vec::new();
        for _ in 0..3 {
            let r = app.http.post(format!("{}/v2/ChatMess/doSendPublicMes", app.base))
                .bearer_auth(&t.token).header("Idempotency-Key", "send-1").json(&body).send().await.unwrap();
            let v: Value = r.json().await.unwrap();
            ids.push(v["values"]["taskId"].as_i64().unwrap());
        }
        assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
        a.expect_type("task").await;
        a.send(json!({"type": "ping"})).await;
        let f = a.expect_type("pong").await;
        assert!(a.seen.iter().all(|s| s["type"] != "task"), "one task only, {f}");
    }

    async fn a_task_not_answered_before_a_disconnect_is_delivered_again(app) {
        let Some(app) = unpaced(app.db()).await else { return };
        let (t, token) = merchant_with_device(&app, "m").await;
        let mut a = Assistant::connect(&app, &token).await;
        let w = a.account("wxid_op1").await;
        a.fans("wxid_op1", &["wxid_f1"]).await;
        let id = send_text(&app, &t.token, w, "wxid_f1", "重发").await["taskId"].as_i64().unwrap();
        assert_eq!(a.expect_type("task").await["attempt"], 1);
        drop(a);
        // Sent while offline: waits in the queue.
        let id2 = send_text(&app, &t.token, w, "wxid_f1", "离线时").await["taskId"].as_i64().unwrap();
        let mut b = Assistant::connect(&app, &token).await;
        let first = b.expect_type("task").await;
        assert_eq!((first["taskId"].as_i64(), first["attempt"].as_i64()), (Some(id), Some(2)), "{first}");
        let second = b.expect_type("task").await;
        assert_eq!(second["taskId"].as_i64(), Some(id2));
        b.request(json!({"type": "taskResult", "taskId": id, "ok": true, "msgId": "m-1"})).await;
        b.request(json!({"type": "taskResult", "taskId": id2, "ok": true, "msgId": "m-2"})).await;
        assert_eq!(chats_of(&app, &t.token, w, "wxid_f1").await.len(), 2);
    }

    async fn tasks_for_an_account_that_stays_offline_expire_as_failed(app) {
        let Some(app) = TestApp::spawn_with(app.db(), |c| {
            c.gateway.task_ttl_seconds = 1;
            c.gateway.poll_ms = 100;
        }).await else { return };
        let (t, token) = merchant_with_device(&app, "m").await;
        let mut a = Assistant::connect(&app, &token).await;
        let w = a.account("wxid_op1").await;
        a.fans("wxid_op1", &["wxid_f1"]).await;
        drop(a);
        let id = send_text(&app, &t.token, w, "wxid_f1", "过期").await["taskId"].as_i64().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = app.values("/v2/ChatMess/GetTaskResult", &t.token, json!({"taskId": id})).await;
            if got["state"] == "failed" {
                assert_eq!(got["resultCode"], "expired");
                break;
            }
            assert!(Instant::now() < deadline, "the task never expired: {got}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn tasks_of_one_account_are_paced(app) {
        let Some(app) = TestApp::spawn_with(app.db(), |c| {
            c.gateway.send_interval_ms = 600;
            c.gateway.poll_ms = 100;
        }).await else { return };
        let (t, token) = merchant_with_device(&app, "m").await;
        let mut a = Assistant::connect(&app, &token).await;
        let w = a.account("wxid_op1").await;
        a.fans("wxid_op1", &["wxid_f1"]).await;
        for i in 0..3 {
            send_text(&app, &t.token, w, "wxid_f1", &format!("第{i}条")).await;
        }
        let mut at = Vec::new();
        let mut order = Vec::new();
        for _ in 0..3 {
            let f = a.expect_type("task").await;
            at.push(Instant::now());
            order.push(f["payload"]["text"].as_str().unwrap().to_owned());
        }
        assert_eq!(order, ["第0条", "第1条", "第2条"]);
        for pair in at.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= Duration::from_millis(500), "tasks came {gap:?} apart");
        }
    }

    async fn a_revoked_device_is_disconnected_and_cannot_connect_again(app) {
        let Some(app) = unpaced(app.db()).await else { return };
        let (t, _) = merchant_with_device(&app, "m").await;
        let d = app.store.admin().create_device(t.id, "to revoke").await.unwrap();
        let mut a = Assistant::connect(&app, &d.device_token).await;
        a.account("wxid_op9").await;
        assert!(app.store.admin().revoke_device(t.id, d.device_id).await.unwrap());
        let started = Instant::now();
        let close = a.expect_type("close").await;
        assert_eq!(close["code"], 4001);
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(a.seen.iter().any(|f| f["code"] == "revoked"));
        assert!(Assistant::try_connect(&app, &d.device_token).await.is_err());
    }

    async fn the_upgrade_without_a_valid_device_token_is_refused_with_the_envelope(app) {
        let r = app.http.get(format!("{}/assistant/ws", app.base))
            .header("Connection", "Upgrade").header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13").header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .bearer_auth("dev_nope").send().await.unwrap();
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errmsg"], 10003);
        assert!(Assistant::try_connect(&app, "").await.is_err());
    }

    async fn a_second_connection_of_the_same_device_replaces_the_first(app) {
        let (_t, token) = merchant_with_device(&app, "m").await;
        let mut a = Assistant::connect(&app, &token).await;
        let mut b = Assistant::connect(&app, &token).await;
        let close = a.expect_type("close").await;
        assert_eq!(close["code"], 4002);
        b.send(json!({"type": "ping"})).await;
        b.expect_type("pong").await;
    }

    async fn sending_checks_the_message_and_that_an_assistant_serves_the_account(app) {
        let t = app.fixture_merchant("m").await;
        // The fixture's account 135389 exists but no device serves it.
        let (status, body) = app.post("/v2/ChatMess/doSendPublicMes", &t.token,
            json!({"WechatId": 135389, "ToUserName": "wxid_fan0001", "MsgType": "text", "Text": "x"})).await;
        assert_eq!((status, body["errmsg"].as_i64()), (409, Some(200109)), "{body}");
        for (body, field) in [
            (json!({"WechatId": 135389, "ToUserName": "wxid_fan0001", "MsgType": "gif", "Text": "x"}), "MsgType"),
            (json!({"WechatId": 135389, "ToUserName": "wxid_fan0001", "MsgType": "image"}), "Url"),
            (json!({"WechatId": 135389, "ToUserName": "wxid_fan0001", "MsgType": "link", "Url": "https://x"}), "Title"),
            (json!({"ToUserName": "wxid_fan0001", "MsgType": "text", "Text": "x"}), "WechatId"),
            (json!({"WechatId": 135389, "ToUserName": "wxid_fan0001", "RelationType": 5, "MsgType": "text", "Text": "x"}), "RelationType"),
        ] {
            let (status, v) = app.post("/v2/ChatMess/doSendPublicMes", &t.token, body).await;
            assert_eq!(status, 400, "{v}");
            assert!(v["errdesc"].as_str().unwrap().contains(field), "{v}");
        }
        let (status, v) = app.post("/v2/ChatMess/doSendPublicMes", &t.token,
            json!({"WechatId": 135389, "ToUserName": "wxid_stranger", "MsgType": "text", "Text": "x"})).await;
        assert_eq!((status, v["errmsg"].as_i64()), (404, Some(200009)), "{v}");
        let (status, v) = app.post("/v2/ChatMess/GetTaskResult", &t.token, json!({"taskId": 42})).await;
        assert_eq!((status, v["errmsg"].as_i64()), (404, Some(200101)), "{v}");
    }
}
