use serde_json::{json, Value};

use crate::on_both;

fn future(days: i64) -> String {
    let t = chrono::Utc::now().timestamp() + days * 86400;
    juhe::timefmt::format_local(t, chrono::FixedOffset::east_opt(8 * 3600).unwrap())
}

fn todo(title: &str) -> Value {
    json!({
        "Weixin": "wxid_fan0001", "From": 0, "SffId": "S001", "RemindTitle": title,
        "FollowupsiTuation": "回访客户，确认收货", "RemindTime": future(1), "IsAlways": 0,
        "Recipient": ["S001", "S002"], "AdWecharId": 135389, "LevelColor": "#ff0000", "LevelName": "紧急", "EventType": 1
    })
}

on_both! {
    async fn add_record_new_returns_the_new_id_and_the_list_shows_it(app) {
        let t = app.fixture_merchant("m").await;
        let id1 = app.values("/v2/Todo/AddRecordNew", &t.token, todo("第一次回访")).await.as_i64().unwrap();
        let id2 = app.values("/v2/Todo/AddRecordNew", &t.token, todo("第二次回访")).await.as_i64().unwrap();
        assert!(id2 > id1);
        assert_eq!(app.values("/v2/Todo/AddRecord", &t.token, todo("第三次")).await, json!(true));
        let v = app.ok("/v2/Todo/GetChargeDaffairesList", &t.token, json!({"pageIndex": 1, "pageSize": 10})).await;
        let rows = v["values"].as_array().unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["Id"], id1);
        assert_eq!(rows[0]["RemindTitle"], "第一次回访");
        assert_eq!(rows[0]["FollowupsiTuation"], "回访客户，确认收货");
        assert_eq!(rows[0]["Recipient"], json!(["S001", "S002"]));
        assert_eq!(rows[0]["AdWecharId"], 135389);
        assert_eq!(rows[0]["wechatNober"], "shop_service01");
        assert_eq!(rows[0]["usersate"], 0);
        assert_eq!(rows[0]["LevelName"], "紧急");
        assert_eq!(app.values("/v2/Todo/GetChargeDaffairesCount", &t.token, json!({})).await, 3);
    }

    async fn to_do_filters_select_the_right_records_and_the_count_agrees(app) {
        let t = app.fixture_merchant("m").await;
        app.values("/v2/Todo/AddRecordNew", &t.token, todo("a")).await;
        let mut other = todo("b");
        other["SffId"] = json!("S002");
        other["Recipient"] = json!("S003");
        other["RemindTime"] = json!(future(5));
        app.values("/v2/Todo/AddRecordNew", &t.token, other).await;
        let in3days = chrono::Utc::now().timestamp() + 3 * 86400;
        for (filter, want) in [
            (json!({}), 2),
            (json!({"createStaff": "S002"}), 1),
            (json!({"remindStaff": "S003"}), 1),
            (json!({"remindStaff": ["S002", "S003"]}), 2),
            (json!({"remindStaff": "S002,S009"}), 1),
            (json!({"WecharId": 135389}), 2),
            (json!({"WecharId": 135390}), 0),
            (json!({"wechatNober": "shop_service01"}), 2),
            (json!({"usersate": 0}), 2),
            (json!({"usersate": 1}), 0),
            (json!({"usersate": -1}), 2),
            (json!({"remindStartTimestamp": in3days}), 1),
            (json!({"remindEndTimestamp": in3days}), 1),
            (json!({"startTimestamp": chrono::Utc::now().timestamp() - 60}), 2),
            (json!({"endTimestamp": 1_000_000}), 0),
        ] {
            let list = app.values("/v2/Todo/GetChargeDaffairesList", &t.token, filter.clone()).await;
            let count = app.values("/v2/Todo/GetChargeDaffairesCount", &t.token, filter.clone()).await;
            assert_eq!(list.as_array().unwrap().len() as i64, want, "{filter}");
            assert_eq!(count, want, "{filter}");
        }
    }

    async fn a_bad_to_do_is_refused_naming_the_field_and_nothing_is_written(app) {
        let t = app.fixture_merchant("m").await;
        let mut past = todo("x");
        past["RemindTime"] = json!("2020-01-01 00:00:00");
        assert!(app.fails("/v2/Todo/AddRecordNew", &t.token, past, 400, 200012).await.starts_with("RemindTime"));
        let mut no_title = todo("x");
        no_title["RemindTitle"] = json!("  ");
        assert!(app.fails("/v2/Todo/AddRecordNew", &t.token, no_title, 400, 200012).await.starts_with("RemindTitle"));
        let mut no_weixin = todo("x");
        no_weixin.as_object_mut().unwrap().remove("Weixin");
        assert!(app.fails("/v2/Todo/AddRecordNew", &t.token, no_weixin, 400, 200012).await.starts_with("Weixin"));
        let mut bad_account = todo("x");
        bad_account["AdWecharId"] = json!(999);
        assert!(app.fails("/v2/Todo/AddRecordNew", &t.token, bad_account, 404, 200018).await.starts_with("AdWecharId"));
        let mut bad_staff = todo("x");
        bad_staff["Recipient"] = json!(["S001", "S404"]);
        assert!(app.fails("/v2/Todo/AddRecordNew", &t.token, bad_staff, 404, 200010).await.starts_with("Recipient"));
        let mut bad_fan = todo("x");
        bad_fan["Weixin"] = json!("wxid_fan0003");
        assert!(app.fails("/v2/Todo/AddRecordNew", &t.token, bad_fan, 404, 200009).await.starts_with("Weixin"));
        let mut bad_from = todo("x");
        bad_from["From"] = json!("7");
        assert!(app.fails("/v2/Todo/AddRecordNew", &t.token, bad_from, 400, 200012).await.starts_with("From"));
        assert_eq!(app.values("/v2/Todo/GetChargeDaffairesCount", &t.token, json!({})).await, 0);
    }

    async fn a_retried_add_with_the_same_idempotency_key_returns_the_first_id_and_adds_nothing(app) {
        let t = app.fixture_merchant("m").await;
        let send = |key: &'static str, body: Value| {
            let req = app.http.post(format!("{}/v2/Todo/AddRecordNew", app.base)).bearer_auth(&t.token).header("Idempotency-Key", key).json(&body);
            async move { req.send().await.unwrap() }
        };
        let r1 = send("k-1", todo("once")).await;
        assert!(r1.headers().get("idempotent-replayed").is_none());
        let id1 = r1.json::<Value>().await.unwrap()["values"].as_i64().unwrap();
        let r2 = send("k-1", todo("once")).await;
        assert_eq!(r2.headers()["idempotent-replayed"], "true");
        assert_eq!(r2.json::<Value>().await.unwrap()["values"].as_i64().unwrap(), id1);
        assert_eq!(app.values("/v2/Todo/GetChargeDaffairesCount", &t.token, json!({})).await, 1);
        // The same key with a different request is a conflict, not a silent replay.
        let r3 = send("k-1", todo("different")).await;
        assert_eq!(r3.status(), 409);
        assert_eq!(r3.json::<Value>().await.unwrap()["errmsg"], 200102);
        // A new key adds again.
        let r4 = send("k-2", todo("once")).await;
        assert_ne!(r4.json::<Value>().await.unwrap()["values"].as_i64().unwrap(), id1);
        assert_eq!(app.values("/v2/Todo/GetChargeDaffairesCount", &t.token, json!({})).await, 2);
    }
}
