//! System, Friend, AdManage and MeetingCall lists: filters, paging, and counts that agree.

use serde_json::{json, Value};

use crate::helpers::{Tenant, TestApp};
use crate::on_both;

fn codes(v: &Value, field: &str) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r[field].to_string().trim_matches('"').to_owned())
        .collect()
}

/// Asserts that paging through the list returns exactly `count` records, and that the
/// count endpoint says the same.
async fn list_agrees_with_count(
    app: &TestApp,
    t: &Tenant,
    list: &str,
    count: &str,
    filter: Value,
) -> usize {
    let n = app
        .values(count, &t.token, filter.clone())
        .await
        .as_i64()
        .unwrap();
    let mut seen = 0;
    let mut page = 1;
    loop {
        let mut body = filter.clone();
        body["pageIndex"] = json!(page);
        body["pageSize"] = json!(2);
        let v = app.ok(list, &t.token, body).await;
        let rows = v["values"].as_array().unwrap().len();
        seen += rows;
        assert_eq!(v["page"]["total"], n, "{list} {filter}");
        if v["page"]["hasMore"] == false {
            assert!(v["page"].get("nextPageIndex").is_none());
            break;
        }
        assert_eq!(v["page"]["nextPageIndex"], page + 1);
        page += 1;
    }
    assert_eq!(
        seen as i64, n,
        "{list} with {filter}: list and count disagree"
    );
    seen
}

on_both! {
    async fn departments_groups_and_staff_are_listed_with_their_filters(app) {
        let t = app.fixture_merchant("m").await;
        let r = app.http.get(format!("{}/v2/System/GetDepartList", app.base)).bearer_auth(&t.token).send().await.unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["values"], json!([{"departid": 1, "departname": "销售一部"}, {"departid": 2, "departname": "售后服务部"}]));
        let g = app.values("/v2/System/GetDepartGroupList", &t.token, json!({"departId": 1})).await;
        assert_eq!(g, json!([{"departgroupid": 11, "departid": 1, "departgroupname": "A组"}, {"departgroupid": 12, "departid": 1, "departgroupname": "B组"}]));
        assert_eq!(app.values("/v2/System/GetDepartGroupList", &t.token, json!({"departId": -1})).await.as_array().unwrap().len(), 3);
        // staffState 0: active only (S003 is disabled); 1: all.
        let s = app.values("/v2/System/GetStaffList", &t.token, json!({"departId": -1, "departGroupId": -1, "staffState": 0})).await;
        assert_eq!(codes(&s, "ad_staff_code"), ["S001", "S002"]);
        let s = app.values("/v2/System/GetStaffList", &t.token, json!({"departId": 2, "departGroupId": -1, "staffState": 1})).await;
        assert_eq!(codes(&s, "ad_staff_code"), ["S003"]);
        assert_eq!(s[0]["departname"], "售后服务部");
        assert_eq!(s[0]["departgroupname"], "售后一组");
        assert_eq!(s[0]["ad_staff_state"], 1);
        let s = app.values("/v2/System/GetStaffList", &t.token, json!({"departId": 1, "departGroupId": 12, "staffState": 0})).await;
        assert_eq!(codes(&s, "ad_staff_code"), ["S002"]);
    }

    async fn the_designed_all_staff_list_pages_and_filters(app) {
        let t = app.fixture_merchant("m").await;
        let v = app.ok("/v2/System/GetAllStaffList", &t.token, json!({"pageIndex": 1, "pageSize": 2})).await;
        assert_eq!(codes(&v["values"], "ad_staff_code"), ["S001", "S002"]);
        assert_eq!(v["page"], json!({"pageIndex": 1, "pageSize": 2, "total": 3, "hasMore": true, "nextPageIndex": 2}));
        let v = app.values("/v2/System/GetAllStaffList", &t.token, json!({"staffName": "王"})).await;
        assert_eq!(codes(&v, "ad_staff_code"), ["S003"]);
        let v = app.values("/v2/System/GetAllStaffList", &t.token, json!({"staffState": 0})).await;
        assert_eq!(v.as_array().unwrap().len(), 2);
    }

    async fn fan_filters_select_the_right_fans_and_the_count_always_agrees(app) {
        let t = app.fixture_merchant("m").await;
        let all = app.values("/v2/Friend/GetFansList", &t.token, json!({})).await;
        assert_eq!(codes(&all, "ad_friend_wenober"), ["wxid_fan0001", "wxid_fan0002", "wxid_fan0003"]);
        let lucy = &all[0];
        assert_eq!(lucy["ad_friend_uwenober"], "lucy_88");
        assert_eq!(lucy["ad_wechat_nober"], "shop_service01");
        assert_eq!(lucy["ad_friend_addtime"], "2024-05-01 12:00:00");
        assert_eq!(lucy["ad_bind_time"], "2024-05-01 12:05:00");
        assert_eq!(lucy["ad_updatechatting_time"], "2024-05-02 10:04:00");
        let cases = [
            (json!({"wechatId": 135389}), 2),
            (json!({"wechatKey": "wxid_op0002"}), 1),
            (json!({"wechatKey": "shop_service01"}), 2),
            (json!({"fansKe": "wxid_fan0002"}), 1),
            (json!({"fansKey": "wxid_fan0002"}), 1),
            (json!({"fansName": "先生"}), 1),
            (json!({"staffCode": "S001"}), 1),
            (json!({"relationState": 4}), 1),
            (json!({"relationState": -1}), 3),
            (json!({"relationType": 2}), 1),
            (json!({"wechatType": 3}), 1),
            (json!({"addStartTime": "2024-05-02 00:00:00", "addEndTime": crate::helpers::ts("2024-06-30 00:00:00")}), 2),
            (json!({"bindStartTime": crate::helpers::ts("2024-05-03 08:15:00"), "bindEndTime": crate::helpers::ts("2024-05-03 08:15:00")}), 1),
            (json!({"lastChatStartTime": "2024-06-01 00:00:00"}), 1),
            (json!({"minUpdateTime": 4_000_000_000_i64}), 0),
            (json!({"wechatId": 135389, "staffCode": "S002", "relationState": 4}), 1),
        ];
        for (filter, want) in cases {
            let n = list_agrees_with_count(&app, &t, "/v2/Friend/GetFansList", "/v2/Friend/GetFansCount", filter.clone()).await;
            assert_eq!(n, want, "{filter}");
        }
    }

    async fn ad_filters_select_the_right_ads_and_the_count_always_agrees(app) {
        let t = app.fixture_merchant("m").await;
        let all = app.values("/v2/AdManage/GetAdList", &t.token, json!({"name": ""})).await;
        assert_eq!(all[0]["code"], "AD2024001");
        assert_eq!(all[0]["costs"], 1200.5);
        assert_eq!(all[0]["buildType"], 0);
        assert_eq!(all[0]["createTime"], "2024-10-20 10:00:00");
        let cases = [
            (json!({}), 2),
            (json!({"code": "AD2024002"}), 1),
            (json!({"name": "抖音"}), 1),
            (json!({"minCosts": "500"}), 1),
            (json!({"maxCosts": 300}), 1),
            (json!({"startTime": "2024-11-01 00:00:00"}), 1),
            (json!({"endTime": "2024-11-01 00:00:00"}), 1),
            (json!({"state": 1}), 1),
            (json!({"state": -1, "buildType": 1}), 1),
        ];
        for (filter, want) in cases {
            assert_eq!(list_agrees_with_count(&app, &t, "/v2/AdManage/GetAdList", "/v2/AdManage/GetAdCount", filter.clone()).await, want, "{filter}");
        }
    }

    async fn meeting_call_recordings_are_listed_newest_first_with_filters(app) {
        let t = app.fixture_merchant("m").await;
        app.import(&t, &json!({"meeting_calls": [
            {"msg_type": "meeting_voice_call", "ad_wechat_id": 135390, "ad_staff_code": "S003", "fans_key": "wxid_fan0003", "start_time": "2024-06-11 10:00:00", "duration": 95, "voice_url": "https://media.example.com/v/1.silk"},
            {"msg_type": "voip_voice", "ad_wechat_id": 135389, "ad_staff_code": "S001", "fans_key": "wxid_fan0001", "start_time": "2024-05-02 11:00:00", "duration": 30, "voice_url": "https://media.example.com/v/2.silk"}
        ]})).await;
        let v = app.ok("/v2/MeetingCall/GetMeetingVoiceCall", &t.token, json!({"wechat_lei": "-1", "PageIndex": 1, "PageSize": 10})).await;
        let rows = v["values"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["fans_key"], "wxid_fan0003");
        assert_eq!(rows[0]["start_time"], "2024-06-11 10:00:00");
        assert_eq!(rows[0]["end_time"], "2024-06-11 10:01:35");
        assert_eq!(rows[0]["ad_wechat_nick"], "售后小助手");
        assert_eq!(v["page"]["total"], 2);
        for (filter, want) in [
            (json!({"msg_type": "voip_voice"}), 1),
            (json!({"wechat_id": "135390", "wechat_lei": "3"}), 1),
            (json!({"ad_wechat_nober": "service01"}), 1),
            (json!({"ad_staff_code": "S001", "fans_key": "wxid_fan0001"}), 1),
            (json!({"startDate": "2024-06-01 00:00:00"}), 1),
            (json!({"endDate": "2024-06-01 00:00:00"}), 1),
        ] {
            let v = app.values("/v2/MeetingCall/GetMeetingVoiceCall", &t.token, filter.clone()).await;
            assert_eq!(v.as_array().unwrap().len(), want, "{filter}");
        }
        app.fails("/v2/MeetingCall/GetMeetingVoiceCall", &t.token, json!({"msg_type": "video"}), 400, 200012).await;
    }
}
