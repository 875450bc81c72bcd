//! Bulk sends run: a saved task whose time has come is executed item by item through the
//! assistant, its progress and per-fan results are readable, and deleting it stops it.

use std::time::Duration;

use serde_json::{json, Value};

use crate::device_client::{create, Device};
use crate::helpers::{Tenant, TestApp};
use crate::on_both;

const SAVE: &str = "/v2/BulkSend/SaveBulkSendTask";
const PROGRESS: &str = "/v2/BulkSend/GetBulkSendTaskProgress";
const ITEMS: &str = "/v2/BulkSend/GetBulkSendTaskItems";

/// A connected device serving wxid_op0001 (135389) with three more valid fans.
async fn device(app: &TestApp, t: &Tenant) -> Device {
    let token = create(app, t).await;
    let mut dev = Device::connect(app, &token).await;
    dev.account("wxid_op0001").await;
    dev.fans("wxid_op0001", &["wxid_bf1", "wxid_bf2", "wxid_bf3"])
        .await;
    dev
}

async fn save(app: &TestApp, t: &Tenant, interval: i64) -> i64 {
    app.values(SAVE, &t.token, json!({"task_name": "双十一提醒", "wechat_ids": [135389],
        // A fan of no listed account is skipped.
        "fans_keys": ["wxid_bf1", "wxid_bf2", "wxid_bf3", "wxid_nobody"],
        "send_time": "2024-01-01 10:00:00", "interval_seconds": interval,
        "task_content": [{"type": "0", "data": {"content": "活动今晚开始"}},
                         {"type": "4", "data": {"title": "会场", "url": "https://shop.example/s"}}]}))
        .await
        .as_i64()
        .unwrap()
}

async fn progress_until(app: &TestApp, t: &Tenant, id: i64, state: i64) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = app
            .values(PROGRESS, &t.token, json!({"ad_bulk_send_id": id}))
            .await;
        if last["state"] == state {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("bulk send {id} never reached state {state}: {last}");
}

on_both! {
    async fn a_due_bulk_send_runs_item_by_item_through_the_assistant_and_reports_per_fan(app) {
        let t = app.fixture_merchant("m").await;
        let mut dev = device(&app, &t).await;
        let id = save(&app, &t, 1).await;
        let mut fans = Vec::new();
        for i in 0..3 {
            let task = dev.next_of("task", Duration::from_secs(10)).await.expect("a bulk item");
            assert_eq!(task["kind"], "bulkSendItem", "{task}");
            let p = &task["payload"];
            assert_eq!(p["bulkTaskId"], id);
            assert_eq!(p["items"], json!([{"msgType": "text", "text": "活动今晚开始"}, {"msgType": "link", "url": "https://shop.example/s", "title": "会场"}]));
            fans.push(p["to"].as_str().unwrap().to_owned());
            let task_id = task["taskId"].as_i64().unwrap();
            // The second fan is not a friend any more.
            let ack = if i == 1 { dev.result(task_id, false, None).await } else { dev.result(task_id, true, Some(&format!("bulk-msg-{i}"))).await };
            assert_eq!(ack["type"], "ack", "{ack}");
        }
        assert_eq!(fans, ["wxid_bf1", "wxid_bf2", "wxid_bf3"]);
        let p = progress_until(&app, &t, id, 2).await;
        assert_eq!((p["total"].clone(), p["sent"].clone(), p["failed"].clone(), p["pending"].clone(), p["stateName"].clone()),
            (json!(3), json!(2), json!(1), json!(0), json!("finished")), "{p}");
        // The saved task says so too, once the scheduler has seen it.
        let mut state = Value::Null;
        for _ in 0..50 {
            state = app.values("/v2/BulkSend/GetBulkSendTask", &t.token, json!({"ad_bulk_send_id": id})).await["state"].clone();
            if state == 2 { break; }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(state, 2);

        let items = app.values(ITEMS, &t.token, json!({"ad_bulk_send_id": id})).await;
        let items = items.as_array().unwrap();
        assert_eq!(items.iter().map(|r| r["friend_key"].as_str().unwrap()).collect::<Vec<_>>(), ["wxid_bf1", "wxid_bf2", "wxid_bf3"]);
        assert_eq!(items.iter().map(|r| r["stateName"].as_str().unwrap()).collect::<Vec<_>>(), ["succeeded", "failed", "succeeded"]);
        assert_eq!(items[1]["result_code"], "not_friend");
        // Paced: the third fan was scheduled two intervals after the first.
        let at = |r: &Value| crate::helpers::ts(r["scheduledTime"].as_str().unwrap());
        assert!(at(&items[2]) - at(&items[0]) >= 2, "{items:?}");
        // The sent messages are in GetChat, linked from the item.
        let chat_id = items[0]["ad_chatting_id"].as_i64().expect("the sent message's record");
        let chats = app.values("/v2/ChatMess/GetChat", &t.token, json!({"wechatId": 135389, "fansKey": "wxid_bf1"})).await;
        let sent: Vec<&Value> = chats.as_array().unwrap().iter().filter(|c| c["ad_chatting_issend"] == 1).collect();
        assert_eq!(sent.len(), 2, "{chats}");
        assert_eq!((sent[0]["ad_chatting_id"].as_i64(), &sent[0]["ad_chatting_content"]), (Some(chat_id), &json!("活动今晚开始")));
        let failed = app.values(ITEMS, &t.token, json!({"ad_bulk_send_id": id, "state": 3})).await;
        assert_eq!(failed.as_array().unwrap().len(), 1);
        app.fails(PROGRESS, &t.token, json!({"ad_bulk_send_id": 999999}), 404, 200101).await;
        dev.close().await;
    }

    async fn deleting_a_running_bulk_send_cancels_what_was_not_sent(app) {
        let t = app.fixture_merchant("m").await;
        let mut dev = device(&app, &t).await;
        let id = save(&app, &t, 5).await;
        let task = dev.next_of("task", Duration::from_secs(10)).await.expect("the first item");
        dev.result(task["taskId"].as_i64().unwrap(), true, Some("bulk-del-0")).await;
        let running = app.values(PROGRESS, &t.token, json!({"ad_bulk_send_id": id})).await;
        assert_eq!((running["state"].clone(), running["sent"].clone(), running["pending"].clone()), (json!(1), json!(1), json!(2)), "{running}");

        app.values("/v2/BulkSend/DeleteBulkSendTask", &t.token, json!({"ad_bulk_send_id": id})).await;
        let p = app.values(PROGRESS, &t.token, json!({"ad_bulk_send_id": id})).await;
        assert_eq!((p["state"].clone(), p["deleted"].clone(), p["sent"].clone(), p["cancelled"].clone()), (json!(3), json!(true), json!(1), json!(2)), "{p}");
        // The assistant gets nothing more of it.
        assert!(dev.next_of("task", Duration::from_secs(7)).await.is_none());
        let items = app.values(ITEMS, &t.token, json!({"ad_bulk_send_id": id, "state": 4})).await;
        assert_eq!(items.as_array().unwrap().iter().map(|r| r["result_code"].as_str().unwrap()).collect::<Vec<_>>(), ["cancelled", "cancelled"]);
        dev.close().await;
    }

    async fn a_bulk_send_to_an_account_no_assistant_serves_fails_its_items_and_finishes(app) {
        let t = app.fixture_merchant("m").await;
        let id = app.values(SAVE, &t.token, json!({"task_name": "x", "wechat_ids": [135389], "fans_keys": ["wxid_fan0001"],
            "task_content": [{"type": "0", "data": {"content": "hi"}}]})).await.as_i64().unwrap();
        let p = progress_until(&app, &t, id, 2).await;
        assert_eq!((p["total"].clone(), p["failed"].clone()), (json!(1), json!(1)), "{p}");
        let items = app.values(ITEMS, &t.token, json!({"ad_bulk_send_id": id})).await;
        assert_eq!(items[0]["result_code"], "no_assistant");
    }
}
