use serde_json::{json, Value};

use crate::on_both;

on_both! {
    async fn every_v2_response_is_the_documented_envelope_and_echoes_x_request_id(app) {
        let t = app.fixture_merchant("m").await;
        let r = app.http.post(format!("{}/v2/System/GetDepartGroupList", app.base)).bearer_auth(&t.token).header("X-Request-Id", "trace-abc-123").json(&json!({"departId": -1})).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-request-id"], "trace-abc-123");
        let v: Value = r.json().await.unwrap();
        for k in ["requestId", "errmsg", "succeed", "msgTime", "values", "errdesc"] {
            assert!(v.get(k).is_some(), "missing {k}: {v}");
        }
        assert_eq!(v["requestId"], "trace-abc-123");
        assert_eq!(v["errmsg"], 20000);
        assert!(v["errdesc"].is_null());
        // 2024-12-19T17:22:24.3121234+08:00
        let mt = v["msgTime"].as_str().unwrap();
        assert_eq!(mt.len(), 33, "{mt}");
        assert!(mt.ends_with("+08:00") && mt.as_bytes()[10] == b'T' && mt.as_bytes()[19] == b'.', "{mt}");
        // Without X-Request-Id one is generated, and errors carry it too.
        let (_, v) = app.post("/v2/System/GetStaffList", &t.token, json!({"staffState": 7})).await;
        assert!(v["requestId"].as_str().unwrap().len() >= 16);
        assert_eq!(v["succeed"], false);
    }

    async fn malformed_json_is_a_200012_about_the_body_never_a_500(app) {
        let t = app.merchant("m").await;
        for body in ["{\"wechatId\": ", "[1,2", "\"just a string\"", "{\"a\":1}}"] {
            let r = app.http.post(format!("{}/v2/ChatMess/GetChat", app.base)).bearer_auth(&t.token).header("content-type", "application/json").body(body).send().await.unwrap();
            assert_eq!(r.status(), 400, "{body}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["errmsg"], 200012, "{body}: {v}");
            assert!(v["errdesc"].as_str().unwrap().starts_with("body"), "{v}");
        }
    }

    async fn a_wrongly_typed_or_missing_field_is_a_200012_naming_the_field(app) {
        let t = app.merchant("m").await;
        let cases = [
            ("/v2/ChatMess/GetChat", json!({"wechatId": "abc", "fansKey": "x"}), "wechatId"),
            ("/v2/ChatMess/GetChat", json!({"wechatId": 1}), "fansKey"),
            ("/v2/ChatMess/GetChat", json!({"fansKey": "x"}), "wechatId"),
            ("/v2/ChatMess/GetChat", json!({"wechatId": 1, "fansKey": "x", "pageSize": "string"}), "pageSize"),
            ("/v2/ChatMess/GetChat", json!({"wechatId": 1, "fansKey": "x", "pageIndex": 0}), "pageIndex"),
            ("/v2/Friend/GetFansList", json!({"addStartTime": "not a time"}), "addStartTime"),
            ("/v2/Friend/GetFansCount", json!({"wechatId": [1]}), "wechatId"),
            ("/v2/AdManage/GetAdList", json!({"minCosts": "cheap"}), "minCosts"),
            ("/v2/Report/GetDataByStaffCustomer", json!({"staffState": "maybe"}), "staffState"),
            ("/v2/Report/GetDataByStaffCustomer", json!({"show": 9}), "show"),
            ("/v2/Report/GetActivationListByStaff", json!({}), "time"),
            ("/v2/Todo/AddRecordNew", json!({"Weixin": "w"}), "RemindTitle"),
            ("/v2/MeetingCall/GetMeetingVoiceCall", json!({"PageSize": -1}), "PageSize"),
            ("/v2/BulkSend/DeleteBulkSendTask", json!({}), "ad_bulk_send_id"),
        ];
        for (path, body, field) in cases {
            let d = app.fails(path, &t.token, body.clone(), 400, 200012).await;
            assert!(d.starts_with(field), "{path} {body}: errdesc {d:?} should name {field}");
        }
    }

    async fn numbers_sent_as_strings_and_unknown_fields_are_accepted(app) {
        let t = app.fixture_merchant("m").await;
        let a = app.ok("/v2/ChatMess/GetChat", &t.token, json!({"wechatId": 135389, "fansKey": "wxid_fan0001", "pageSize": 3, "pageIndex": 1})).await;
        let b = app.ok("/v2/ChatMess/GetChat", &t.token, json!({"wechatId": "135389", "fansKey": "wxid_fan0001", "pageSize": "3", "pageIndex": "1", "somethingNew": {"x": 1}})).await;
        assert_eq!(a["values"], b["values"]);
        assert_eq!(a["values"].as_array().unwrap().len(), 3);
        let n = app.values("/v2/System/GetDepartGroupList", &t.token, json!({"departId": "1"})).await;
        assert_eq!(n.as_array().unwrap().len(), 2);
    }

    async fn an_empty_or_null_body_means_no_filters(app) {
        let t = app.fixture_merchant("m").await;
        for body in ["", "null", "{}"] {
            let r = app.http.post(format!("{}/v2/Friend/GetFansCount", app.base)).bearer_auth(&t.token).body(body).send().await.unwrap();
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["values"], 3, "body {body:?}: {v}");
        }
    }

    async fn an_unknown_path_gets_the_envelope_with_404_and_a_wrong_method_405(app) {
        let t = app.merchant("m").await;
        let (s, v) = app.post("/v2/ChatMess/NoSuchThing", &t.token, json!({})).await;
        assert_eq!((s, v["errmsg"].as_i64().unwrap()), (404, 200105));
        let r = app.http.delete(format!("{}/v2/ChatMess/GetChat", app.base)).bearer_auth(&t.token).send().await.unwrap();
        assert_eq!(r.status(), 405);
    }

    async fn an_oversized_body_is_refused_with_413(app) {
        let t = app.merchant("m").await;
        let big = "x".repeat(2 * 1024 * 1024);
        let r = app.http.post(format!("{}/v2/Friend/GetFansList", app.base)).bearer_auth(&t.token).json(&json!({"fansName": big})).send().await.unwrap();
        assert_eq!(r.status(), 413);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errmsg"], 200106);
    }
}
