use serde_json::{json, Value};

use crate::on_both;

on_both! {
    async fn healthz_reports_the_database(app) {
        let r = app.http.get(format!("{}/healthz", app.base)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status"], "ok");
    }

    async fn metrics_count_requests_by_route_and_result_code_and_show_the_pool(app) {
        let t = app.fixture_merchant("m").await;
        app.values("/v2/ChatMess/GetChat", &t.token, json!({"wechatId": 135389, "fansKey": "wxid_fan0001"})).await;
        app.fails("/v2/ChatMess/GetChat", &t.token, json!({}), 400, 200012).await;
        let text = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
        let line = |needle: &str| text.lines().find(|l| l.starts_with("juhe_http_requests_total") && l.contains(needle)).map(str::to_owned);
        let ok = line("errmsg=\"20000\"").unwrap_or_else(|| panic!("{text}"));
        assert!(ok.contains("route=\"/v2/ChatMess/GetChat\"") && ok.ends_with(" 1"), "{ok}");
        assert!(line("errmsg=\"200012\"").is_some());
        assert!(text.contains("juhe_http_request_duration_seconds_bucket"));
        assert!(text.contains("juhe_db_pool_connections{pool=\"read\"}"));
    }
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_describes_every_route() {
    let app = crate::helpers::TestApp::spawn(crate::helpers::Db::Sqlite)
        .await
        .unwrap();
    let v: Value = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = v["paths"].as_object().unwrap();
    let routes = [
        "/connect/token",
        "/v2/System/GetDepartList",
        "/v2/System/GetDepartGroupList",
        "/v2/System/GetStaffList",
        "/v2/System/GetAllStaffList",
        "/v2/System/GetWechatList",
        "/v2/Friend/GetFansList",
        "/v2/Friend/GetFansCount",
        "/v2/AdManage/GetAdList",
        "/v2/AdManage/GetAdCount",
        "/v2/Todo/AddRecord",
        "/v2/Todo/AddRecordNew",
        "/v2/Todo/GetChargeDaffairesList",
        "/v2/Todo/GetChargeDaffairesCount",
        "/v2/Report/GetDataByStaffCustomer",
        "/v2/Report/GetActivationListByStaff",
        "/v2/ChatMess/GetChat",
        "/v2/ChatMess/GetChatFeed",
        "/v2/ChatMess/doSendPublicMes",
        "/v2/ChatMess/GetTaskResult",
        "/v2/ChatMess/applyTakeOver",
        "/v2/ChatMess/endTakeOver",
        "/v2/ChatMess/GetTakeOverState",
        "/v2/ChatMess/ActivationConversation",
        "/v2/ChatMess/SendNotification",
        "/v2/ChatMess/GetNotificationList",
        "/v2/MeetingCall/GetMeetingVoiceCall",
        "/v2/BulkSend/SaveBulkSendTask",
        "/v2/BulkSend/DeleteBulkSendTask",
        "/v2/BulkSend/GetBulkSendTask",
        "/v2/BulkSend/GetBulkSendTaskProgress",
        "/v2/BulkSend/GetBulkSendTaskItems",
        "/v2/Public/registerCallbackUrl",
        "/v2/Public/subscribeEvent",
        "/v2/Public/GetCallbackList",
        "/v2/Public/updateCallback",
        "/v2/Public/deleteCallback",
        "/v2/Public/GetWebhookSecret",
        "/v2/Public/rotateWebhookSecret",
        "/v2/Public/GetEventList",
        "/v2/Public/GetEvent",
        "/v2/Public/GetEventAttempts",
        "/v2/Public/replayEvent",
        "/v2/Public/replayFailedEvents",
    ];
    for r in routes {
        assert!(paths.contains_key(r), "missing {r}");
    }
    assert_eq!(paths.len(), routes.len());
    // The GetChat response schema names the documented record fields.
    let text = v.to_string();
    for f in [
        "ad_chatting_resvred",
        "ad_wechat_nober",
        "fansKe",
        "FollowupsiTuation",
        "AdWecharId",
        "usersate",
    ] {
        assert!(text.contains(f), "{f} missing from the OpenAPI document");
    }
    let html = app
        .http
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for r in routes {
        assert!(html.contains(r), "/docs lacks {r}");
    }
    assert!(html.contains("200012"));
}
