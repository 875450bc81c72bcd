use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::on_both;

const FIELDS: [&str; 17] = [
    "ad_chatting_id",
    "ad_chatting_talter",
    "ad_chatting_issend",
    "ad_chatting_resvred",
    "ad_wechat_id",
    "merchantid",
    "ad_chatting_updatetime",
    "ad_chatting_sate",
    "ad_sermsgid",
    "ad_chatting_time",
    "ad_chatting_content",
    "ad_staff_code",
    "ad_voice_txt",
    "ad_friend_photo",
    "ad_friend_name",
    "ad_expand",
    "ad_wechat_nober",
];

on_both! {
    async fn get_chat_returns_exactly_the_17_documented_fields(app) {
        let t = app.fixture_merchant("m").await;
        let rows = app.values("/v2/ChatMess/GetChat", &t.token, json!({"wechatId": 135389, "fansKey": "wxid_fan0001", "pageSize": "10", "pageIndex": "1"})).await;
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 5);
        let keys: BTreeSet<&str> = rows[0].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, FIELDS.iter().copied().collect::<BTreeSet<_>>());
        let r = &rows[3];
        assert_eq!(r["ad_chatting_talter"], "wxid_fan0001");
        assert_eq!(r["ad_chatting_issend"], 0);
        assert_eq!(r["ad_chatting_sate"], 34);
        assert_eq!(r["ad_chatting_content"], "audio[voice_77ab]");
        assert_eq!(r["ad_chatting_resvred"], "%7B%22downloadKey%22%3A%22voice_77ab%22%2C%22type%22%3A-1%2C%22videoLen%22%3A6%7D");
        assert_eq!(r["ad_sermsgid"], "7001000000000000004");
        assert_eq!(r["ad_chatting_time"], "2024-05-02 10:03:10");
        assert_eq!(r["merchantid"], t.id.get().to_string());
        assert_eq!(r["ad_friend_name"], "Lucy");
        assert_eq!(r["ad_friend_photo"], "https://example.com/avatar/1.png");
        assert_eq!(r["ad_wechat_nober"], "shop_service01");
        assert_eq!(r["ad_wechat_id"], 135389);
        assert!(r["ad_voice_txt"].is_null());
        assert!(r["ad_staff_code"].is_null());
        assert_eq!(rows[1]["ad_staff_code"], "S001");
        assert!(rows[0]["ad_chatting_resvred"].is_null());
        assert_eq!(rows[0]["ad_chatting_updatetime"].as_str().unwrap().len(), 19);
    }

    async fn min_chatting_id_time_range_and_paging_select_the_documented_records(app) {
        let t = app.fixture_merchant("m").await;
        let q = |extra: Value| {
            let mut b = json!({"wechatId": 135389, "fansKey": "wxid_fan0001", "pageSize": "10", "pageIndex": "1"});
            b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            b
        };
        let all = app.values("/v2/ChatMess/GetChat", &t.token, q(json!({}))).await;
        let ids: Vec<i64> = all.as_array().unwrap().iter().map(|r| r["ad_chatting_id"].as_i64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending: {ids:?}");
        let after = app.values("/v2/ChatMess/GetChat", &t.token, q(json!({"minChattingId": ids[1]}))).await;
        let after: Vec<i64> = after.as_array().unwrap().iter().map(|r| r["ad_chatting_id"].as_i64().unwrap()).collect();
        assert_eq!(after, ids[2..].to_vec(), "strictly larger ids only");
        let ranged = app.values("/v2/ChatMess/GetChat", &t.token, q(json!({"startTimestamp": crate::helpers::ts("2024-05-02 10:01:30"), "endTimestamp": crate::helpers::ts("2024-05-02 10:03:10")}))).await;
        assert_eq!(ranged.as_array().unwrap().len(), 3);
        let p2 = app.ok("/v2/ChatMess/GetChat", &t.token, q(json!({"pageSize": 2, "pageIndex": 2}))).await;
        let p2ids: Vec<i64> = p2["values"].as_array().unwrap().iter().map(|r| r["ad_chatting_id"].as_i64().unwrap()).collect();
        assert_eq!(p2ids, ids[2..4].to_vec());
        assert_eq!(p2["page"]["hasMore"], true);
        assert_eq!(p2["page"]["nextPageIndex"], 3);
        assert_eq!(app.values("/v2/ChatMess/GetChat", &t.token, q(json!({"wechatKey": "wxid_op0001"}))).await.as_array().unwrap().len(), 5);
        assert_eq!(app.values("/v2/ChatMess/GetChat", &t.token, q(json!({"wechatKey": "wxid_op0002"}))).await, json!([]));
        assert_eq!(app.values("/v2/ChatMess/GetChat", &t.token, json!({"wechatId": 135389, "fansKey": "nobody"})).await, json!([]));
        // The cursor past the end answers an empty page that still says where to continue.
        let end = app.ok("/v2/ChatMess/GetChat", &t.token, q(json!({"minChattingId": ids[4]}))).await;
        assert_eq!(end["values"], json!([]));
        assert_eq!(end["page"]["nextMinChattingId"], ids[4]);
    }

    // GetChat's page on PostgreSQL runs on connections outside the pool, which no ping
    // checks: when the server closes them (a restart, an idle timeout), the next GetChat
    // still answers, on a fresh connection.
    async fn get_chat_answers_after_the_database_closed_its_connections(app) {
        let t = app.fixture_merchant("m").await;
        let body = json!({"wechatId": 135389, "fansKey": "wxid_fan0001", "pageSize": "10", "pageIndex": "1"});
        let before = app.values("/v2/ChatMess/GetChat", &t.token, body.clone()).await;
        if app.db_url.starts_with("postgres") {
            let mut raw = app.raw().await;
            sqlx::Executor::execute(&mut raw, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()").await.unwrap();
        }
        for _ in 0..3 {
            assert_eq!(app.values("/v2/ChatMess/GetChat", &t.token, body.clone()).await, before);
        }
    }
}
