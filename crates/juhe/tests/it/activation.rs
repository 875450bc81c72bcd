//! ActivationConversation (激活会话): who may activate a fan, what enforcing does, the notice
//! it delivers, and how GetActivationListByStaff counts activations.

use serde_json::{json, Value};

use crate::device_client::{create, Device};
use crate::on_both;

const ACTIVATE: &str = "/v2/ChatMess/ActivationConversation";

fn count_of(rows: &Value, staff: &str) -> i64 {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["ad_staff_code"] == staff)
        .map(|r| r["activationCount"].as_i64().unwrap())
        .unwrap_or(-1)
}

async fn fan_owner(app: &crate::helpers::TestApp, token: &str) -> Value {
    let fans = app
        .values(
            "/v2/Friend/GetFansList",
            token,
            json!({"wechatId": 135389, "fansKey": "wxid_fan0001"}),
        )
        .await;
    fans[0]["ad_staff_code"].clone()
}

on_both! {
    async fn only_the_owner_activates_unless_attribution_is_enforced_which_moves_the_fan(app) {
        let t = app.fixture_merchant("m").await;
        // S002 does not own wxid_fan0001 (S001 does): refused, naming the owner, nothing stored.
        let e = app.fails(ACTIVATE, &t.token, json!({"ad_wechat_id": 135389, "ad_friend_wenober": "wxid_fan0001", "staff_code": "S002", "enforceAttribution": 0}), 409, 200110).await;
        assert!(e.starts_with("staff_code") && e.contains("S001"), "{e}");

        // The owner activates, with a reminder delivered to it as a notice.
        let a = app.values(ACTIVATE, &t.token, json!({"ad_wechat_id": "135389", "ad_friend_wenober": "wxid_fan0001", "staff_code": "S001",
            "enforceAttribution": 0, "activationType": 1, "content": "客户咨询物流,请跟进", "switchSession": 1})).await;
        assert_eq!((a["previous_staff_code"].clone(), a["switchSession"].clone()), (json!("S001"), json!(1)));
        let note = a["notificationId"].as_i64().expect("a notice for activationType 1");
        let notes = app.values("/v2/ChatMess/GetNotificationList", &t.token, json!({"staff_code": "S001"})).await;
        assert_eq!(notes.as_array().unwrap().len(), 1);
        assert_eq!((notes[0]["notificationId"].as_i64(), &notes[0]["content"], &notes[0]["source"], &notes[0]["friend_key"]),
            (Some(note), &json!("客户咨询物流,请跟进"), &json!("activation"), &json!("wxid_fan0001")));

        // Enforced, by the account's original id: the fan moves to S002.
        let a = app.values(ACTIVATE, &t.token, json!({"ad_original_nober": "wxid_op0001", "ad_friend_wenober": "wxid_fan0001", "staff_code": "S002", "enforceAttribution": 1})).await;
        assert_eq!((a["previous_staff_code"].clone(), a["notificationId"].clone()), (json!("S001"), Value::Null));
        assert_eq!(fan_owner(&app, &t.token).await, "S002");
        let e = app.fails(ACTIVATE, &t.token, json!({"ad_wechat_id": 135389, "ad_friend_wenober": "wxid_fan0001", "staff_code": "S001"}), 409, 200110).await;
        assert!(e.contains("S002"), "{e}");

        // Bad requests name their field and store nothing.
        let cases = [
            (json!({"ad_wechat_id": 135389, "ad_friend_wenober": "wxid_fan0001", "staff_code": "S999", "enforceAttribution": 1}), 404, 200010, "staff_code"),
            (json!({"ad_friend_wenober": "wxid_fan0001", "staff_code": "S001"}), 400, 200012, "ad_wechat_id"),
            (json!({"ad_wechat_id": 135389, "ad_friend_wenober": "wxid_nobody", "staff_code": "S001", "enforceAttribution": 1}), 404, 200009, "ad_friend_wenober"),
            (json!({"ad_wechat_id": 135389, "ad_friend_wenober": "wxid_fan0001", "staff_code": "S002", "activationType": 2}), 400, 200012, "content"),
            (json!({"ad_wechat_id": 135389, "ad_friend_wenober": "wxid_fan0001", "staff_code": "S002", "enforceAttribution": 3}), 400, 200012, "enforceAttribution"),
            (json!({"ad_wechat_id": 1, "ad_friend_wenober": "wxid_fan0001", "staff_code": "S002"}), 404, 200018, "ad_wechat_id"),
        ];
        for (body, status, code, field) in cases {
            let e = app.fails(ACTIVATE, &t.token, body.clone(), status, code).await;
            assert!(e.starts_with(field), "{body}: {e}");
        }
        assert_eq!(fan_owner(&app, &t.token).await, "S002");
    }

    async fn a_retry_with_the_same_idempotency_key_activates_once(app) {
        let t = app.fixture_merchant("m").await;
        let body = json!({"ad_wechat_id": 135389, "ad_friend_wenober": "wxid_fan0001", "staff_code": "S001", "activationType": 1, "content": "跟进"});
        let send = || app.http.post(format!("{}{}", app.base, ACTIVATE)).bearer_auth(&t.token).header("Idempotency-Key", "act-1").json(&body).send();
        let first: Value = send().await.unwrap().json().await.unwrap();
        let r = send().await.unwrap();
        assert_eq!(r.headers().get("idempotent-replayed").unwrap(), "true");
        let again: Value = r.json().await.unwrap();
        assert_eq!(first["values"], again["values"]);
        let notes = app.values("/v2/ChatMess/GetNotificationList", &t.token, json!({"staff_code": "S001"})).await;
        assert_eq!(notes.as_array().unwrap().len(), 1);
    }

    async fn get_activation_list_by_staff_counts_a_fan_once_per_staff_and_day_whether_chats_or_the_api_activated_it(app) {
        let t = app.fixture_merchant("m").await;
        let token = create(&app, &t).await;
        let mut dev = Device::connect(&app, &token).await;
        dev.account("wxid_op0001").await;
        let now = chrono::Utc::now().timestamp();
        // S001 writes to wxid_fan0001 after a long silence: an activation the chats show…
        let ack = dev.report(json!({"type": "chats", "account": "wxid_op0001", "chats": [
            {"msgId": "act-chat-1", "talker": "wxid_fan0001", "send": 1, "type": 1, "content": "好久不见", "time": now - 5, "staffCode": "S001"}]})).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        // …and activates the same fan through the API: still one fan for S001 today.
        app.values(ACTIVATE, &t.token, json!({"ad_wechat_id": 135389, "ad_friend_wenober": "wxid_fan0001", "staff_code": "S001"})).await;
        // S002 takes wxid_fan0001 over (enforced) and activates it twice: one fan.
        for _ in 0..2 {
            app.values(ACTIVATE, &t.token, json!({"ad_wechat_id": 135389, "ad_friend_wenober": "wxid_fan0001", "staff_code": "S002", "enforceAttribution": 1})).await;
        }
        let rows = app.values("/v2/Report/GetActivationListByStaff", &t.token, json!({"time": now, "ad_departid": -1})).await;
        assert_eq!((count_of(&rows, "S001"), count_of(&rows, "S002")), (1, 1), "{rows}");
        // Another day counts none of them.
        let rows = app.values("/v2/Report/GetActivationListByStaff", &t.token, json!({"time": now - 3 * 86400, "ad_departid": -1})).await;
        assert_eq!((count_of(&rows, "S001"), count_of(&rows, "S002")), (0, 0), "{rows}");
        dev.close().await;
    }
}
