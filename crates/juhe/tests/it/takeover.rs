//! Takeover (托管) of a conversation, through the API and a real assistant connection.

use std::time::Duration;

use serde_json::{json, Value};

use crate::device_client::{create, Device};
use crate::on_both;

const APPLY: &str = "/v2/ChatMess/applyTakeOver";
const END: &str = "/v2/ChatMess/endTakeOver";
const STATE: &str = "/v2/ChatMess/GetTakeOverState";

fn decode(resvred: &Value) -> Value {
    let s = percent_encoding::percent_decode_str(resvred.as_str().unwrap())
        .decode_utf8()
        .unwrap()
        .into_owned();
    serde_json::from_str(&s).unwrap()
}

/// The conversation's GetChat records of type 12001, oldest first.
async fn takeover_records(app: &crate::helpers::TestApp, token: &str) -> Vec<Value> {
    let rows = app
        .values(
            "/v2/ChatMess/GetChat",
            token,
            json!({"wechatId": 135389, "fansKey": "wxid_fan0001", "pageSize": 100}),
        )
        .await;
    rows.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ad_chatting_sate"] == 12001)
        .cloned()
        .collect()
}

on_both! {
    async fn a_takeover_shows_in_get_chat_reaches_the_assistant_and_is_given_back(app) {
        let t = app.fixture_merchant("m").await;
        let token = create(&app, &t).await;
        let mut dev = Device::connect(&app, &token).await;
        assert_eq!(dev.account("wxid_op0001").await, 135389);

        let apply = json!({"wechat_key": 135389, "friend_key": "wxid_fan0001", "apply_key": "qkb-7",
            "apply_name": "订单系统", "apply_reason": "售后处理", "apply_source": "QKB"});
        let to = app.values(APPLY, &t.token, apply.clone()).await;
        assert_eq!(to["state"], 1, "{to}");
        assert_eq!(to["wechat_key"], "wxid_op0001");
        assert_eq!(to["apply_name"], "订单系统");
        let id = to["takeoverId"].as_i64().unwrap();

        // The assistant is told at once, as a task it answers.
        let task = dev.next_of("task", Duration::from_secs(5)).await.expect("a takeover task");
        assert_eq!(task["kind"], "takeover", "{task}");
        assert_eq!(task["payload"], json!({"fan": "wxid_fan0001", "active": true, "takeoverId": id,
            "applyName": "订单系统", "applyReason": "售后处理", "applySource": "QKB"}));
        assert_eq!(dev.result(task["taskId"].as_i64().unwrap(), true, None).await["type"], "ack");

        // GetChat shows it as a 托管消息 with the applicant.
        let recs = takeover_records(&app, &t.token).await;
        assert_eq!(recs.len(), 1, "{recs:?}");
        assert_eq!(recs[0]["ad_chatting_issend"], 1);
        assert_eq!(recs[0]["ad_chatting_content"], "申请接管");
        assert_eq!(recs[0]["ad_sermsgid"], format!("takeover-{id}-start"));
        let r = decode(&recs[0]["ad_chatting_resvred"]);
        assert_eq!((&r["key"], &r["name"], &r["reason"], &r["source"]), (&json!("qkb-7"), &json!("订单系统"), &json!("售后处理"), &json!("QKB")));

        // The same applicant again: the same takeover, nothing new. Another: refused, naming the holder.
        let again = app.values(APPLY, &t.token, json!({"wechat_key": "wxid_op0001", "friend_key": "wxid_fan0001", "apply_key": "qkb-7"})).await;
        assert_eq!(again["takeoverId"], id);
        let mut other = apply.clone();
        other["apply_key"] = json!("crm-1");
        let e = app.fails(APPLY, &t.token, other, 409, 200110).await;
        assert!(e.contains("订单系统") && e.contains("qkb-7"), "{e}");
        assert_eq!(takeover_records(&app, &t.token).await.len(), 1);
        let s = app.values(STATE, &t.token, json!({"wechat_key": "135389", "friend_key": "wxid_fan0001"})).await;
        assert_eq!((s["state"].clone(), s["current"]["takeoverId"].clone()), (json!(1), json!(id)));

        // A reconnecting assistant gets the state as a snapshot.
        dev.close().await;
        let mut dev = Device::connect(&app, &token).await;
        let snap = dev.next_of("takeover", Duration::from_secs(5)).await.expect("a snapshot frame");
        assert_eq!((&snap["account"], &snap["fan"], &snap["active"], &snap["takeoverId"]),
            (&json!("wxid_op0001"), &json!("wxid_fan0001"), &json!(true), &json!(id)));

        // Only the holder ends it; then the assistant is told and GetChat shows the end.
        let e = app.fails(END, &t.token, json!({"wechat_key": 135389, "friend_key": "wxid_fan0001", "apply_key": "crm-1"}), 409, 200110).await;
        assert!(e.starts_with("friend_key"), "{e}");
        let ended = app.values(END, &t.token, json!({"wechat_key": 135389, "friend_key": "wxid_fan0001", "apply_key": "qkb-7", "end_reason": "处理完毕"})).await;
        assert_eq!((ended["state"].clone(), ended["takeoverId"].clone(), ended["end_reason"].clone()), (json!(0), json!(id), json!("处理完毕")));
        let task = dev.next_of("task", Duration::from_secs(5)).await.expect("the end's task");
        assert_eq!((&task["kind"], &task["payload"]["active"]), (&json!("takeover"), &json!(false)));
        dev.result(task["taskId"].as_i64().unwrap(), true, None).await;
        let recs = takeover_records(&app, &t.token).await;
        assert_eq!(recs.iter().map(|r| r["ad_chatting_content"].as_str().unwrap()).collect::<Vec<_>>(), ["申请接管", "结束接管"]);

        // Ending again changes nothing and succeeds; the state has the history.
        let again = app.values(END, &t.token, json!({"wechat_key": 135389, "friend_key": "wxid_fan0001", "apply_key": "qkb-7"})).await;
        assert_eq!((again["takeoverId"].clone(), again["state"].clone()), (json!(id), json!(0)));
        assert_eq!(takeover_records(&app, &t.token).await.len(), 2);
        let s = app.values(STATE, &t.token, json!({"wechat_key": 135389, "friend_key": "wxid_fan0001"})).await;
        assert_eq!((s["state"].clone(), s["current"].clone()), (json!(0), Value::Null));
        assert_eq!(s["history"].as_array().unwrap().len(), 1);

        // No snapshot once it is given back.
        dev.close().await;
        let mut dev = Device::connect(&app, &token).await;
        assert!(dev.next_of("takeover", Duration::from_millis(700)).await.is_none());
        dev.close().await;
    }

    async fn a_takeover_needs_a_known_account_and_fan_and_is_stored_without_an_assistant(app) {
        let t = app.fixture_merchant("m").await;
        let e = app.fails(APPLY, &t.token, json!({"wechat_key": "nobody", "friend_key": "wxid_fan0001", "apply_key": "k"}), 404, 200018).await;
        assert!(e.starts_with("wechat_key"), "{e}");
        let e = app.fails(APPLY, &t.token, json!({"wechat_key": 135389, "friend_key": "wxid_nobody", "apply_key": "k"}), 404, 200009).await;
        assert!(e.starts_with("friend_key"), "{e}");
        let e = app.fails(APPLY, &t.token, json!({"wechat_key": 135389, "friend_key": "wxid_fan0001"}), 400, 200012).await;
        assert!(e.starts_with("apply_key"), "{e}");
        // No device serves the account: stored all the same (the assistant learns it on connect).
        let to = app.values(APPLY, &t.token, json!({"wechat_key": 135389, "friend_key": "wxid_fan0001", "apply_key": "k"})).await;
        assert_eq!(to["state"], 1);
        assert_eq!(takeover_records(&app, &t.token).await.len(), 1);
        let token = create(&app, &t).await;
        let mut dev = Device::connect(&app, &token).await;
        dev.account("wxid_op0001").await;
        dev.close().await;
        let mut dev = Device::connect(&app, &token).await;
        let snap = dev.next_of("takeover", Duration::from_secs(5)).await.expect("a snapshot");
        assert_eq!(snap["takeoverId"], to["takeoverId"]);
        dev.close().await;
    }
}
