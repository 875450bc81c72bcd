use serde_json::{json, Value};

use crate::on_both;

fn every_item_type() -> Value {
    json!([
        {"type": "0", "data": {"content": "双十一活动开始啦"}},
        {"type": "1", "data": {"imgName": "海报.png", "imgFormat": "png", "imgMediaUrl": "https://cdn.example.com/p.png"}},
        {"type": "2", "data": {"videoName": "介绍.mp4", "videoFormat": "mp4", "videoMediaUrl": "https://cdn.example.com/v.mp4"}},
        {"type": 3, "data": {"fileName": "价目表.pdf", "fileFormat": "pdf", "fileMediaUrl": "https://cdn.example.com/f.pdf"}},
        {"type": "4", "data": {"title": "活动详情", "url": "https://shop.example.com/a", "desc": "点击查看", "thumbUrl": ""}},
        {"type": "5", "data": {"appId": "wx1234", "title": "小程序商城", "pagePath": "pages/index"}},
        {"type": "6", "data": {"voiceName": "问候.mp3", "voiceFormat": "mp3", "voiceMediaUrl": "https://cdn.example.com/a.mp3"}}
    ])
}

on_both! {
    async fn a_bulk_send_task_with_every_item_type_is_saved_read_back_and_updated(app) {
        let t = app.fixture_merchant("m").await;
        let body = json!({"task_name": "双十一群发", "wechat_ids": [135389, "135390"], "fans_keys": ["wxid_fan0001", "wxid_fan0003"], "send_time": "2030-11-11 10:00:00", "interval_seconds": 8, "staff_code": "S001", "task_content": every_item_type()});
        let id = app.values("/v2/BulkSend/SaveBulkSendTask", &t.token, body).await.as_i64().unwrap();
        let task = app.values("/v2/BulkSend/GetBulkSendTask", &t.token, json!({"ad_bulk_send_id": id})).await;
        assert_eq!(task["task_name"], "双十一群发");
        assert_eq!(task["wechat_ids"], json!([135389, 135390]));
        assert_eq!(task["send_time"], "2030-11-11 10:00:00");
        assert_eq!(task["interval_seconds"], 8);
        assert_eq!(task["state"], 0);
        let items = task["task_content"].as_array().unwrap();
        assert_eq!(items.len(), 7);
        assert_eq!(items[3]["type"], "3", "types are normalised to strings");
        assert_eq!(items[1]["data"]["imgMediaUrl"], "https://cdn.example.com/p.png");
        // Update: same id, new content (given as a JSON string, as some clients send it).
        let upd = json!({"ad_bulk_send_id": id, "task_name": "改名", "wechat_ids": [135389], "task_content": "[{\"type\":\"0\",\"data\":{\"content\":\"新文案\"}}]"});
        assert_eq!(app.values("/v2/BulkSend/SaveBulkSendTask", &t.token, upd).await, id);
        let task = app.values("/v2/BulkSend/GetBulkSendTask", &t.token, json!({"ad_bulk_send_id": id})).await;
        assert_eq!(task["task_name"], "改名");
        assert_eq!(task["task_content"], json!([{"data": {"content": "新文案"}, "type": "0"}]));
        assert!(task["send_time"].is_null());
    }

    async fn a_bad_content_item_is_refused_naming_it(app) {
        let t = app.fixture_merchant("m").await;
        let base = |content: Value| json!({"task_name": "x", "wechat_ids": [135389], "task_content": content});
        let cases = [
            (json!([]), "task_content"),
            (json!([{"type": "1", "data": {"imgName": "a.png", "imgFormat": "png"}}]), "task_content[0].data.imgMediaUrl"),
            (json!([{"type": "0", "data": {"content": "ok"}}, {"type": "9", "data": {}}]), "task_content[1].type"),
            (json!([{"data": {"content": "no type"}}]), "task_content[0].type"),
            (json!("not json"), "task_content"),
            (json!({"type": "0"}), "task_content"),
        ];
        for (content, field) in cases {
            let d = app.fails("/v2/BulkSend/SaveBulkSendTask", &t.token, base(content.clone()), 400, 200012).await;
            assert!(d.starts_with(field), "{content}: {d}");
        }
        app.fails("/v2/BulkSend/SaveBulkSendTask", &t.token, json!({"task_name": "x", "wechat_ids": [1], "task_content": every_item_type()}), 404, 200018).await;
        app.fails("/v2/BulkSend/SaveBulkSendTask", &t.token, json!({"task_name": "x", "wechat_ids": [], "task_content": every_item_type()}), 400, 200012).await;
        app.fails("/v2/BulkSend/SaveBulkSendTask", &t.token, json!({"ad_bulk_send_id": 777, "task_name": "x", "wechat_ids": [135389], "task_content": every_item_type()}), 404, 200101).await;
    }

    async fn deleting_a_task_is_idempotent_and_an_unknown_id_is_not_found(app) {
        let t = app.fixture_merchant("m").await;
        let id = app.values("/v2/BulkSend/SaveBulkSendTask", &t.token, json!({"task_name": "x", "wechat_ids": [135389], "task_content": every_item_type()})).await;
        assert_eq!(app.values("/v2/BulkSend/DeleteBulkSendTask", &t.token, json!({"ad_bulk_send_id": id})).await, true);
        assert_eq!(app.values("/v2/BulkSend/DeleteBulkSendTask", &t.token, json!({"ad_bulk_send_id": id.to_string()})).await, true);
        app.fails("/v2/BulkSend/GetBulkSendTask", &t.token, json!({"ad_bulk_send_id": id}), 404, 200101).await;
        app.fails("/v2/BulkSend/DeleteBulkSendTask", &t.token, json!({"ad_bulk_send_id": 853}), 404, 200101).await;
    }

    async fn a_retried_create_with_the_same_idempotency_key_creates_one_task(app) {
        let t = app.fixture_merchant("m").await;
        let body = json!({"task_name": "x", "wechat_ids": [135389], "task_content": every_item_type()});
        let mut ids = Vec::new();
        for _ in 0..3 {
            let r = app.http.post(format!("{}/v2/BulkSend/SaveBulkSendTask", app.base)).bearer_auth(&t.token).header("Idempotency-Key", "bulk-1").json(&body).send().await.unwrap();
            ids.push(r.json::<Value>().await.unwrap()["values"].as_i64().unwrap());
        }
        assert_eq!(ids[0], ids[1]);
        assert_eq!(ids[1], ids[2]);
        let other = app.values("/v2/BulkSend/SaveBulkSendTask", &t.token, body).await.as_i64().unwrap();
        assert_eq!(other, ids[0] + 1, "exactly one task was created by the three retries");
    }
}
