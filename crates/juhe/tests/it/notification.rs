//! SendNotification and GetNotificationList: notices to staff, stored and read back.

use serde_json::json;

use crate::on_both;

const SEND: &str = "/v2/ChatMess/SendNotification";
const LIST: &str = "/v2/ChatMess/GetNotificationList";

on_both! {
    async fn a_notice_is_stored_once_per_staff_member_and_listed_for_each(app) {
        let t = app.fixture_merchant("m").await;
        let sent = app.values(SEND, &t.token, json!({"staff_codes": "S001, S002", "title": "售后提醒", "content": "请回访订单 1024",
            "wechat_key": "wxid_op0001", "friend_key": "wxid_fan0001"})).await;
        assert_eq!(sent["staff_codes"], json!(["S001", "S002"]));
        let ids = sent["notificationIds"].as_array().unwrap().clone();
        assert_eq!(ids.len(), 2);
        for (i, staff) in ["S001", "S002"].iter().enumerate() {
            let v = app.ok(LIST, &t.token, json!({"staff_code": staff})).await;
            let rows = v["values"].as_array().unwrap();
            assert_eq!(rows.len(), 1, "{v}");
            let n = &rows[0];
            assert_eq!((&n["notificationId"], &n["title"], &n["content"], &n["source"], &n["ad_wechat_id"], &n["friend_key"]),
                (&ids[i], &json!("售后提醒"), &json!("请回访订单 1024"), &json!("api"), &json!(135389), &json!("wxid_fan0001")));
            assert_eq!(v["page"]["total"], 1);
        }
        // Read incrementally: nothing after the last one seen.
        let more = app.values(LIST, &t.token, json!({"staff_code": "S001", "minId": ids[0]})).await;
        assert_eq!(more, json!([]));
        // A notice without a conversation, as an array of recipients.
        app.values(SEND, &t.token, json!({"staff_codes": ["S001"], "title": "周会", "content": "周五 10 点"})).await;
        let rows = app.values(LIST, &t.token, json!({"staff_code": "S001", "pageSize": 10})).await;
        assert_eq!(rows.as_array().unwrap().iter().map(|r| r["title"].as_str().unwrap()).collect::<Vec<_>>(), ["售后提醒", "周会"]);
        assert_eq!(rows[1]["ad_wechat_id"], json!(null));
    }

    async fn an_unknown_recipient_is_named_and_nothing_is_stored(app) {
        let t = app.fixture_merchant("m").await;
        let e = app.fails(SEND, &t.token, json!({"staff_codes": ["S001", "S999"], "title": "x", "content": "y"}), 404, 200010).await;
        assert!(e.starts_with("staff_codes") && e.contains("S999"), "{e}");
        assert_eq!(app.values(LIST, &t.token, json!({"staff_code": "S001"})).await, json!([]));
        let cases = [
            (json!({"title": "x", "content": "y"}), "staff_codes"),
            (json!({"staff_codes": [], "title": "x", "content": "y"}), "staff_codes"),
            (json!({"staff_codes": "S001", "content": "y"}), "title"),
            (json!({"staff_codes": "S001", "title": "x"}), "content"),
            (json!({"staff_codes": "S001", "title": "x", "content": "y", "friend_key": "wxid_fan0001"}), "wechat_key"),
        ];
        for (body, field) in cases {
            let e = app.fails(SEND, &t.token, body.clone(), 400, 200012).await;
            assert!(e.starts_with(field), "{body}: {e}");
        }
        let e = app.fails(LIST, &t.token, json!({}), 400, 200012).await;
        assert!(e.starts_with("staff_code"), "{e}");
    }
}
