//! Merchant B never sees merchant A's records, through any endpoint.

use serde_json::{json, Value};

use crate::on_both;

on_both! {
    async fn no_endpoint_shows_one_merchants_records_to_another(app) {
        let a = app.fixture_merchant("A").await;
        let b = app.merchant("B").await;
        app.import(&a, &json!({"meeting_calls": [{"msg_type": "voip_voice", "ad_wechat_id": 135389, "ad_staff_code": "S001", "fans_key": "wxid_fan0001", "start_time": "2024-05-02 11:00:00", "duration": 30, "voice_url": "https://m/1"}]})).await;
        let remind = juhe::timefmt::format_local(chrono::Utc::now().timestamp() + 86400, chrono::FixedOffset::east_opt(8 * 3600).unwrap());
        let todo = app.values("/v2/Todo/AddRecordNew", &a.token, json!({"Weixin": "wxid_fan0001", "RemindTitle": "t", "FollowupsiTuation": "c", "RemindTime": remind, "AdWecharId": 135389})).await;
        let task = app.values("/v2/BulkSend/SaveBulkSendTask", &a.token, json!({"task_name": "x", "wechat_ids": [135389], "task_content": [{"type": "0", "data": {"content": "hi"}}]})).await;
        // A sees its data ...
        assert_eq!(app.values("/v2/Friend/GetFansCount", &a.token, json!({})).await, 3);
        // ... B sees none of it, whatever it asks for.
        let empty_lists = [
            ("/v2/System/GetDepartGroupList", json!({"departId": -1})),
            ("/v2/System/GetDepartGroupList", json!({"departId": 1})),
            ("/v2/System/GetStaffList", json!({"departId": -1, "departGroupId": -1, "staffState": 1})),
            ("/v2/System/GetAllStaffList", json!({"staffCode": "S001"})),
            ("/v2/Friend/GetFansList", json!({"wechatId": 135389})),
            ("/v2/Friend/GetFansList", json!({"fansKe": "wxid_fan0001"})),
            ("/v2/AdManage/GetAdList", json!({"code": "AD2024001"})),
            ("/v2/Todo/GetChargeDaffairesList", json!({"WecharId": 135389})),
            ("/v2/ChatMess/GetChat", json!({"wechatId": 135389, "fansKey": "wxid_fan0001", "minChattingId": 0})),
            ("/v2/MeetingCall/GetMeetingVoiceCall", json!({"wechat_id": "135389"})),
            ("/v2/Report/GetDataByStaffCustomer", json!({"startDate": "2024-01-01 00:00:00", "endDate": "2024-12-31 00:00:00", "staffState": true})),
            ("/v2/Report/GetActivationListByStaff", json!({"time": "2024-05-02"})),
        ];
        for (path, body) in empty_lists {
            assert_eq!(app.values(path, &b.token, body.clone()).await, json!([]), "{path} {body}");
        }
        let r = app.http.get(format!("{}/v2/System/GetDepartList", app.base)).bearer_auth(&b.token).send().await.unwrap();
        assert_eq!(r.json::<Value>().await.unwrap()["values"], json!([]));
        for (path, body) in [
            ("/v2/Friend/GetFansCount", json!({"wechatId": 135389})),
            ("/v2/AdManage/GetAdCount", json!({})),
            ("/v2/Todo/GetChargeDaffairesCount", json!({})),
        ] {
            assert_eq!(app.values(path, &b.token, body.clone()).await, 0, "{path}");
        }
        // A's ids mean nothing to B: reading, updating or deleting A's task fails, and A's stays.
        app.fails("/v2/BulkSend/GetBulkSendTask", &b.token, json!({"ad_bulk_send_id": task}), 404, 200101).await;
        app.fails("/v2/BulkSend/DeleteBulkSendTask", &b.token, json!({"ad_bulk_send_id": task}), 404, 200101).await;
        app.fails("/v2/BulkSend/SaveBulkSendTask", &b.token, json!({"ad_bulk_send_id": task, "task_name": "x", "wechat_ids": [135389], "task_content": [{"type": "0", "data": {"content": "hi"}}]}), 404, 200018).await;
        app.values("/v2/BulkSend/GetBulkSendTask", &a.token, json!({"ad_bulk_send_id": task})).await;
        app.fails("/v2/Todo/AddRecordNew", &b.token, json!({"Weixin": "wxid_fan0001", "RemindTitle": "t", "FollowupsiTuation": "c", "RemindTime": remind, "AdWecharId": 135389}), 404, 200018).await;
        assert!(todo.as_i64().unwrap() > 0);
        // The same natural keys in B do not collide with A's.
        app.import(&b, &crate::helpers::fixture()).await;
        assert_eq!(app.values("/v2/Friend/GetFansCount", &b.token, json!({})).await, 3);
        assert_eq!(app.values("/v2/Todo/GetChargeDaffairesCount", &b.token, json!({})).await, 0);
    }
}
