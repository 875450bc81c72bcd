//! Regression tests, one per class of input that once answered 500 or was silently
//! misread: each must now be a 400 envelope (200012) whose errdesc names the field.

use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::on_both;

/// Sends raw bytes with a content type; returns status, headers and the parsed envelope.
async fn raw(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut r = app
        .http
        .request(method, format!("{}{}", app.base, path))
        .bearer_auth(token)
        .body(body);
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, headers, v)
}

async fn names(app: &TestApp, path: &str, token: &str, body: Value, field: &str) {
    let d = app.fails(path, token, body, 400, 200012).await;
    assert!(
        d.starts_with(field),
        "{path}: errdesc {d:?} should name {field}"
    );
}

on_both! {
    async fn a_report_time_far_outside_any_calendar_is_a_400_naming_the_field(app) {
        let t = app.fixture_merchant("m").await;
        let p = "/v2/Report/GetDataByStaffCustomer";
        for bad in [json!(1e308), json!(-1e308), json!(9223372036854775808u64), json!(i64::MIN), json!(i64::MAX), json!("9999-12-31 23:59:59"), json!("0001-01-01")] {
            names(&app, p, &t.token, json!({"startDate": bad.clone()}), "startDate").await;
            names(&app, p, &t.token, json!({"endDate": bad.clone()}), "endDate").await;
            names(&app, "/v2/Report/GetActivationListByStaff", &t.token, json!({"time": bad}), "time").await;
        }
        // The edges of the accepted range still work.
        app.ok(p, &t.token, json!({"startDate": "2100-12-01 00:00:00", "endDate": "2100-12-31 23:59:59"})).await;
        app.ok("/v2/Report/GetActivationListByStaff", &t.token, json!({"time": "1970-01-02"})).await;
    }

    async fn numeric_times_out_of_range_are_refused_not_read_as_1970(app) {
        let t = app.fixture_merchant("m").await;
        for bad in [json!(1e308), json!(9223372036854775808u64), json!(18446744073709551615u64), json!("1e308"), json!(-5_000_000_000i64)] {
            names(&app, "/v2/Friend/GetFansCount", &t.token, json!({"addStartTime": bad.clone()}), "addStartTime").await;
            names(&app, "/v2/ChatMess/GetChat", &t.token, json!({"wechatId": 135389, "fansKey": "wxid_fan0001", "startTimestamp": bad}), "startTimestamp").await;
        }
        // Milliseconds are still recognised: the same instant in seconds and in milliseconds.
        let s = app.values("/v2/Friend/GetFansCount", &t.token, json!({"addStartTime": 1_700_000_000})).await;
        let ms = app.values("/v2/Friend/GetFansCount", &t.token, json!({"addStartTime": 1_700_000_000_000i64})).await;
        assert_eq!(s, ms);
    }

    async fn a_filter_string_of_50000_characters_is_a_400_naming_the_field(app) {
        let t = app.fixture_merchant("m").await;
        let long = "%_".repeat(25_000);
        names(&app, "/v2/Friend/GetFansList", &t.token, json!({"fansName": long}), "fansName").await;
        names(&app, "/v2/System/GetAllStaffList", &t.token, json!({"staffName": long}), "staffName").await;
        names(&app, "/v2/MeetingCall/GetMeetingVoiceCall", &t.token, json!({"ad_wechat_nick": long}), "ad_wechat_nick").await;
        names(&app, "/v2/AdManage/GetAdList", &t.token, json!({"name": long}), "name").await;
        // At the limit the LIKE filter runs (1,000 characters, escaped to 2,000).
        let v = app.values("/v2/Friend/GetFansCount", &t.token, json!({"fansName": "%_".repeat(500)})).await;
        assert_eq!(v, 0);
    }

    async fn a_list_of_32000_ids_or_1000_staff_codes_is_a_400_naming_the_field(app) {
        let t = app.fixture_merchant("m").await;
        let ids: Vec<i64> = (1..=32_000).collect();
        names(&app, "/v2/BulkSend/SaveBulkSendTask", &t.token, json!({"task_name": "x", "wechat_ids": ids, "task_content": [{"type": "0", "data": {"content": "hi"}}]}), "wechat_ids").await;
        let codes: Vec<String> = (0..1_000).map(|i| format!("S{i:04}")).collect();
        names(&app, "/v2/Todo/GetChargeDaffairesList", &t.token, json!({"remindStaff": codes}), "remindStaff").await;
        names(&app, "/v2/Todo/GetChargeDaffairesCount", &t.token, json!({"remindStaff": codes.join(",")}), "remindStaff").await;
        let many: Vec<String> = (0..1_001).map(|i| format!("S{i:04}")).collect();
        names(&app, "/v2/Todo/AddRecordNew", &t.token, json!({"Weixin": "wxid_fan0001", "RemindTitle": "t", "FollowupsiTuation": "c", "RemindTime": "2099-01-01 00:00:00", "AdWecharId": 135389, "Recipient": many}), "Recipient").await;
        // At the limits the queries run: 100 staff filters, 1,000 ids to look up.
        let v = app.values("/v2/Todo/GetChargeDaffairesCount", &t.token, json!({"remindStaff": codes[..100]})).await;
        assert_eq!(v, 0);
        let d = app.fails("/v2/BulkSend/SaveBulkSendTask", &t.token, json!({"task_name": "x", "wechat_ids": ids[..1000], "task_content": [{"type": "0", "data": {"content": "hi"}}]}), 404, 200018).await;
        assert!(d.starts_with("wechat_ids"), "{d}");
        let d = app.fails("/v2/Todo/AddRecordNew", &t.token, json!({"Weixin": "wxid_fan0001", "RemindTitle": "t", "FollowupsiTuation": "c", "RemindTime": "2099-01-01 00:00:00", "AdWecharId": 135389, "Recipient": many[..1000]}), 404, 200010).await;
        assert!(d.starts_with("Recipient"), "{d}");
    }

    async fn a_nul_byte_in_any_string_is_a_400_naming_the_field(app) {
        let t = app.fixture_merchant("m").await;
        names(&app, "/v2/ChatMess/GetChat", &t.token, json!({"wechatId": 135389, "fansKey": "wxid\u{0}fan"}), "fansKey").await;
        names(&app, "/v2/Friend/GetFansList", &t.token, json!({"fansName": "\u{0}"}), "fansName").await;
        names(&app, "/v2/Todo/GetChargeDaffairesList", &t.token, json!({"remindStaff": ["S001", "S\u{0}"]}), "remindStaff[1]").await;
        names(&app, "/v2/Todo/AddRecordNew", &t.token, json!({"Weixin": "wxid_fan0001", "RemindTitle": "t\u{0}", "FollowupsiTuation": "c", "RemindTime": "2099-01-01 00:00:00", "AdWecharId": 135389}), "RemindTitle").await;
        names(&app, "/v2/BulkSend/SaveBulkSendTask", &t.token, json!({"task_name": "x", "wechat_ids": [135389], "task_content": [{"type": "0", "data": {"content": "hi\u{0}"}}]}), "task_content[0].data.content").await;
        names(&app, "/v2/BulkSend/SaveBulkSendTask", &t.token, json!({"task_name": "x", "wechat_ids": [135389], "task_content": [{"type": "0", "data": {"content": "hi", "extra": {"k\u{0}": 1}}}]}), "task_content[0].data.extra").await;
        // Nothing was written.
        assert_eq!(app.values("/v2/Todo/GetChargeDaffairesCount", &t.token, json!({})).await, 0);
    }

    async fn long_free_text_is_allowed_up_to_its_own_limit(app) {
        let t = app.fixture_merchant("m").await;
        let body = |n: usize| json!({"Weixin": "wxid_fan0001", "RemindTitle": "t", "FollowupsiTuation": "长".repeat(n), "RemindTime": "2099-01-01 00:00:00", "AdWecharId": 135389});
        let id = app.values("/v2/Todo/AddRecordNew", &t.token, body(20_000)).await;
        assert!(id.as_i64().unwrap() > 0);
        names(&app, "/v2/Todo/AddRecordNew", &t.token, body(20_001), "FollowupsiTuation").await;
        names(&app, "/v2/Todo/AddRecordNew", &t.token, json!({"Weixin": "wxid_fan0001", "RemindTitle": "t".repeat(1001), "FollowupsiTuation": "c", "RemindTime": "2099-01-01 00:00:00", "AdWecharId": 135389}), "RemindTitle").await;
    }

    async fn field_names_bind_in_any_case_and_unknown_ones_are_named_in_a_header(app) {
        let t = app.fixture_merchant("m").await;
        let p = "/v2/ChatMess/GetChat";
        let want = app.values(p, &t.token, json!({"wechatId": 135389, "fansKey": "wxid_fan0001", "pageSize": 2})).await;
        assert_eq!(want.as_array().unwrap().len(), 2);
        for body in [
            json!({"WECHATID": 135389, "fanskey": "wxid_fan0001", "PageSize": 2}),
            json!({"WechatId": "135389", "FansKey": "wxid_fan0001", "pagesize": "2"}),
            json!({"wechatId": 135389, "fansKe": "wxid_fan0001", "pageSize": 2}),
            json!({"wechatId": 135389, "FANSKE": "wxid_fan0001", "pageSize": 2}),
        ] {
            assert_eq!(app.values(p, &t.token, body.clone()).await, want, "{body}");
        }
        // Older aliases keep working.
        let n = app.values("/v2/System/GetDepartGroupList", &t.token, json!({"departid": 1})).await;
        assert_eq!(n.as_array().unwrap().len(), 2);
        assert_eq!(app.values("/v2/Todo/GetChargeDaffairesCount", &t.token, json!({"WechatId": 135389})).await, 0);
        // A typo is ignored, as the original does, but named.
        let (s, h, v) = raw(&app, reqwest::Method::POST, p, &t.token, Some("application/json"), br#"{"wechatId": 135389, "fanskee": "wxid_fan0001", "foo": 1, "fansKey": "wxid_fan0001"}"#.to_vec()).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(h["x-juhe-unknown-fields"], "fanskee, foo");
        let (_, h, _) = raw(&app, reqwest::Method::POST, p, &t.token, None, br#"{"wechatId": 135389, "FANSKEY": "wxid_fan0001"}"#.to_vec()).await;
        assert!(h.get("x-juhe-unknown-fields").is_none());
        // The header is there on a refusal too, where a typo is most likely the cause.
        let (s, h, v) = raw(&app, reqwest::Method::POST, p, &t.token, None, br#"{"wechatId": 135389, "fanKey": "wxid_fan0001"}"#.to_vec()).await;
        assert_eq!((s, v["errdesc"].as_str().unwrap()), (400, "fansKey: is required"));
        assert_eq!(h["x-juhe-unknown-fields"], "fanKey");
        // The same field twice, in two casings, is refused rather than one silently winning.
        let d = app.fails(p, &t.token, json!({"wechatId": 135389, "fansKey": "a", "FANSKEY": "b"}), 400, 200012).await;
        assert!(d.starts_with("fansKey"), "{d}");
    }

    async fn a_wrong_method_on_a_known_path_is_405_with_the_envelope_and_allow(app) {
        let t = app.merchant("m").await;
        for m in [reqwest::Method::DELETE, reqwest::Method::GET, reqwest::Method::PUT] {
            let (s, h, v) = raw(&app, m.clone(), "/v2/ChatMess/GetChat", &t.token, None, Vec::new()).await;
            assert_eq!((s, v["errmsg"].as_i64().unwrap()), (405, 200107), "{m}: {v}");
            assert_eq!(v["succeed"], false);
            assert!(v["requestId"].is_string() && v["msgTime"].is_string(), "{v}");
            assert_eq!(h["allow"], "POST", "{m}");
        }
        let (s, h, _) = raw(&app, reqwest::Method::PUT, "/v2/System/GetDepartList", &t.token, None, Vec::new()).await;
        assert_eq!(s, 405);
        let allow = h["allow"].to_str().unwrap();
        assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
        let (s, _, v) = raw(&app, reqwest::Method::GET, "/connect/token", &t.token, None, Vec::new()).await;
        assert_eq!((s, v["errmsg"].as_i64().unwrap()), (405, 200107));
        // An unknown path stays a 404, whatever the method.
        for m in [reqwest::Method::POST, reqwest::Method::DELETE] {
            let (s, _, v) = raw(&app, m, "/v2/ChatMess/NoSuchThing", &t.token, None, Vec::new()).await;
            assert_eq!((s, v["errmsg"].as_i64().unwrap()), (404, 200105));
        }
    }

    async fn bodies_that_are_not_a_json_object_get_the_envelope_never_a_500(app) {
        let t = app.fixture_merchant("m").await;
        let p = "/v2/Friend/GetFansCount";
        // Lenient: any content type is read as JSON when the body is JSON.
        for ct in [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/json; charset=utf-8"), None] {
            let (s, _, v) = raw(&app, reqwest::Method::POST, p, &t.token, ct, br#"{"wechatType": -1}"#.to_vec()).await;
            assert_eq!((s, v["values"].clone()), (200, json!(3)), "{ct:?}: {v}");
        }
        let deep_array = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes();
        let deep_field = format!("{{\"fansName\": {}1{}}}", "{\"a\":".repeat(5_000), "}".repeat(5_000)).into_bytes();
        let deep_unknown = format!("{{\"zz\": {}1{}}}", "[".repeat(50_000), "]".repeat(50_000)).into_bytes();
        let mut bad_utf8 = br#"{"fansName": "ab"#.to_vec();
        bad_utf8.extend_from_slice(&[0xff, 0xfe, b'"', b'}']);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"wechatId=135389&fansKey=x".to_vec(), "body"),
            (bad_utf8, "body"),
            (br#"{"fansName": "\ud800"}"#.to_vec(), "body"),
            (deep_array, "body"),
            (deep_field, "fansName"),
            (b"[]".to_vec(), "body"),
            (b"[135389, \"wxid_fan0001\"]".to_vec(), "body"),
            (b"\"text\"".to_vec(), "body"),
            (b"42".to_vec(), "body"),
            (b"{\"wechatId\": 1} trailing".to_vec(), "body"),
            (vec![0, 1, 2, 3], "body"),
        ];
        for (body, field) in cases {
            let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
            let (s, _, v) = raw(&app, reqwest::Method::POST, p, &t.token, Some("application/json"), body).await;
            assert_eq!((s, v["errmsg"].as_i64().unwrap()), (400, 200012), "{shown}: {v}");
            let d = v["errdesc"].as_str().unwrap();
            assert!(d.starts_with(field), "{shown}: {d}");
        }
        // Deeply nested values of an unknown field are skipped without recursion trouble.
        let (s, _, v) = raw(&app, reqwest::Method::POST, p, &t.token, None, deep_unknown).await;
        assert!(s == 200 || (s == 400 && v["errdesc"].as_str().unwrap().starts_with("body")), "{s}: {v}");
    }

    async fn an_answer_given_before_a_large_body_is_read_still_reaches_the_client(app) {
        let t = app.fixture_merchant("m").await;
        let big = serde_json::to_vec(&json!({"zz": "x".repeat(900_000)})).unwrap();
        for _ in 0..5 {
            // GetDepartList takes no body; a bad token is refused before the body is needed.
            let (s, _, v) = raw(&app, reqwest::Method::GET, "/v2/System/GetDepartList", &t.token, None, big.clone()).await;
            assert_eq!(s, 200, "{v}");
            let (s, _, v) = raw(&app, reqwest::Method::POST, "/v2/Friend/GetFansCount", "no-such-token", None, big.clone()).await;
            assert_eq!((s, v["errmsg"].as_i64().unwrap()), (401, 10003));
            let (s, _, v) = raw(&app, reqwest::Method::POST, "/v2/No/Such", &t.token, None, big.clone()).await;
            assert_eq!((s, v["errmsg"].as_i64().unwrap()), (404, 200105));
            let (s, _, v) = raw(&app, reqwest::Method::PUT, "/v2/Friend/GetFansCount", &t.token, None, big.clone()).await;
            assert_eq!((s, v["errmsg"].as_i64().unwrap()), (405, 200107));
        }
    }
}
