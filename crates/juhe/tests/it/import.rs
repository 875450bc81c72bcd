use juhe::store::import::ImportError;
use serde_json::{json, Value};

use crate::helpers::{fixture, Tenant, TestApp};
use crate::on_both;

/// Damages one record of the fixture.
type Spoil = fn(&mut Value);

async fn snapshot(app: &TestApp, t: &Tenant) -> Vec<Value> {
    let mut out = Vec::new();
    for (path, body) in [
        ("/v2/System/GetDepartGroupList", json!({})),
        ("/v2/System/GetAllStaffList", json!({"pageSize": 1000})),
        ("/v2/Friend/GetFansList", json!({"pageSize": 1000})),
        ("/v2/AdManage/GetAdList", json!({"pageSize": 1000})),
        (
            "/v2/ChatMess/GetChat",
            json!({"wechatId": 135389, "fansKey": "wxid_fan0001", "pageSize": 1000}),
        ),
    ] {
        out.push(app.values(path, &t.token, body).await);
    }
    out
}

on_both! {
    async fn importing_the_same_file_twice_changes_nothing(app) {
        let t = app.merchant("m").await;
        let f: juhe::store::import::ImportFile = serde_json::from_value(fixture()).unwrap();
        let off = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
        let first = juhe::core::import::import(app.store.tenant(t.id), &f, off, &|_| {}).await.unwrap();
        assert_eq!(first["chats"].changed, 8);
        assert_eq!(first["fans"].changed, 3);
        let before = snapshot(&app, &t).await;
        let second = juhe::core::import::import(app.store.tenant(t.id), &f, off, &|_| {}).await.unwrap();
        assert!(second.values().all(|k| k.changed == 0), "{second:?}");
        assert_eq!(second["chats"].records, 8);
        assert_eq!(snapshot(&app, &t).await, before);
    }

    async fn a_changed_record_is_updated_on_reimport(app) {
        let t = app.fixture_merchant("m").await;
        let mut f = fixture();
        f["fans"][0]["ad_friend_name"] = json!("Lucy Li");
        f["staff"][1]["ad_staff_state"] = json!(1);
        let parsed: juhe::store::import::ImportFile = serde_json::from_value(f).unwrap();
        let s = juhe::core::import::import(app.store.tenant(t.id), &parsed, chrono::FixedOffset::east_opt(8 * 3600).unwrap(), &|_| {}).await.unwrap();
        assert_eq!((s["fans"].changed, s["staff"].changed, s["chats"].changed), (1, 1, 0));
        let fans = app.values("/v2/Friend/GetFansList", &t.token, json!({"fansKe": "wxid_fan0001"})).await;
        assert_eq!(fans[0]["ad_friend_name"], "Lucy Li");
    }

    async fn a_bad_record_is_named_and_nothing_is_imported(app) {
        let t = app.merchant("m").await;
        let off = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
        let cases: [(Spoil, &str); 4] = [
            (|f| f["chats"][5]["ad_chatting_time"] = json!("yesterday"), "chats[5] (7001000000000000006): ad_chatting_time"),
            (|f| f["fans"][2]["ad_wechat_id"] = json!(1), "fans[2] (wxid_fan0003): ad_wechat_id 1"),
            (|f| f["chats"][0]["ad_chatting_resvred"] = json!("%7Bnot-json"), "chats[0] (7001000000000000001): ad_chatting_resvred"),
            (|f| f["wechats"][1]["ad_wechat_lei"] = json!(7), "wechats[1] (135390): ad_wechat_lei"),
        ];
        for (spoil, want) in cases {
            let mut f = fixture();
            spoil(&mut f);
            let parsed: juhe::store::import::ImportFile = serde_json::from_value(f).unwrap();
            match juhe::core::import::import(app.store.tenant(t.id), &parsed, off, &|_| {}).await {
                Err(ImportError::Invalid(msg)) => assert!(msg.starts_with(want), "{msg:?} should start with {want:?}"),
                other => panic!("expected a validation error, got {other:?}"),
            }
        }
        assert_eq!(app.values("/v2/System/GetDepartGroupList", &t.token, json!({})).await, json!([]));
        assert_eq!(app.values("/v2/Friend/GetFansCount", &t.token, json!({})).await, 0);
        // A type error is caught while parsing and names the record's path.
        let mut f = fixture();
        f["chats"][3]["ad_chatting_issend"] = json!("yes");
        let err = juhe::store::import::ImportFile::from_json(serde_json::to_string(&f).unwrap().as_bytes()).unwrap_err().to_string();
        assert!(err.contains("chats[3].ad_chatting_issend"), "{err}");
    }
}
