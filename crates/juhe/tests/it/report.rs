use serde_json::{json, Value};

use crate::helpers::ts;
use crate::on_both;

fn row<'a>(rows: &'a Value, key: &str, val: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r[key] == val)
        .unwrap_or_else(|| panic!("no row {key}={val} in {rows}"))
}

const RANGE: (&str, &str) = ("2024-05-01 00:00:00", "2024-07-01 00:00:00");

on_both! {
    async fn staff_service_figures_are_computed_from_the_stored_chats(app) {
        let t = app.fixture_merchant("m").await;
        let v = app.values("/v2/Report/GetDataByStaffCustomer", &t.token, json!({"startDate": RANGE.0, "endDate": RANGE.1, "show": 3, "staffState": true, "orderType": "asc", "orderKey": "ad_staff_name"})).await;
        assert_eq!(v.as_array().unwrap().len(), 3);
        // 张三 (S001) owns Lucy: 3 messages in, 2 replies; the first after 90 s, replies after 90 s and 120 s.
        let s1 = row(&v, "ad_staff_code", "S001");
        assert_eq!(s1["ad_staff_name"], "张三");
        assert_eq!(s1["depart_name"], "销售一部");
        assert_eq!(s1["depart_group_name"], "A组");
        assert_eq!((s1["receiveCount"].as_i64(), s1["sendCount"].as_i64(), s1["fansCount"].as_i64()), (Some(3), Some(2), Some(1)));
        assert_eq!(s1["avgFirstResponseSeconds"], 90.0);
        assert_eq!(s1["avgReplySeconds"], 105.0);
        let s2 = row(&v, "ad_staff_code", "S002");
        assert_eq!((s2["receiveCount"].as_i64(), s2["sendCount"].as_i64()), (Some(1), Some(0)));
        assert!(s2["avgReplySeconds"].is_null());
        let s3 = row(&v, "ad_staff_code", "S003");
        assert_eq!(s3["avgFirstResponseSeconds"], 60.0);
        // Disabled staff (S003) are left out unless staffState is true.
        let v = app.values("/v2/Report/GetDataByStaffCustomer", &t.token, json!({"startDate": RANGE.0, "endDate": RANGE.1, "staffState": false})).await;
        assert_eq!(v.as_array().unwrap().len(), 2);
        // A range with no messages yields zero figures.
        let v = app.values("/v2/Report/GetDataByStaffCustomer", &t.token, json!({"startDate": "2023-01-01 00:00:00", "endDate": "2023-02-01 00:00:00"})).await;
        assert!(v.as_array().unwrap().iter().all(|r| r["sendCount"] == 0 && r["receiveCount"] == 0));
    }

    async fn staff_figures_roll_up_to_groups_and_departments(app) {
        let t = app.fixture_merchant("m").await;
        let v = app.values("/v2/Report/GetDataByStaffCustomer", &t.token, json!({"startDate": RANGE.0, "endDate": RANGE.1, "show": 1, "staffState": true})).await;
        let d1 = row(&v, "depart_name", "销售一部");
        assert!(d1["ad_staff_code"].is_null() && d1["departgroupid"].is_null());
        assert_eq!((d1["staffCount"].as_i64(), d1["receiveCount"].as_i64(), d1["sendCount"].as_i64()), (Some(2), Some(4), Some(2)));
        assert_eq!(d1["avgReplySeconds"], 105.0, "averages are over all samples, not of averages");
        let v = app.values("/v2/Report/GetDataByStaffCustomer", &t.token, json!({"startDate": RANGE.0, "endDate": RANGE.1, "show": "2", "departId": 1, "orderKey": "receiveCount", "orderType": "desc"})).await;
        let rows = v.as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["depart_group_name"], "A组");
        assert_eq!(rows[0]["receiveCount"], 3);
        // Filters on account type and customer type narrow the conversations counted.
        let v = app.values("/v2/Report/GetDataByStaffCustomer", &t.token, json!({"startDate": RANGE.0, "endDate": RANGE.1, "staffState": true, "wechatLei": 3})).await;
        assert_eq!(row(&v, "ad_staff_code", "S001")["receiveCount"], 0);
        assert_eq!(row(&v, "ad_staff_code", "S003")["sendCount"], 1);
        app.fails("/v2/Report/GetDataByStaffCustomer", &t.token, json!({"orderKey": "nonsense"}), 400, 200012).await;
        app.fails("/v2/Report/GetDataByStaffCustomer", &t.token, json!({"startDate": RANGE.1, "endDate": RANGE.0}), 400, 200012).await;
    }

    async fn activated_customers_are_counted_per_staff_and_day(app) {
        let t = app.fixture_merchant("m").await;
        // S001 writes to 王先生 a week after his last message (an activation), twice that day
        // (still one), and to Lucy the day after her conversation (not silent for 72 h).
        app.import(&t, &json!({"chats": [
            {"ad_wechat_id": 135389, "ad_chatting_talter": "wxid_fan0002", "ad_chatting_issend": 1, "ad_chatting_sate": 1, "ad_chatting_content": "王先生您好，新品到了", "ad_chatting_resvred": null, "ad_sermsgid": "act-1", "ad_chatting_time": "2024-05-10 10:00:00", "ad_staff_code": "S001"},
            {"ad_wechat_id": 135389, "ad_chatting_talter": "wxid_fan0002", "ad_chatting_issend": 1, "ad_chatting_sate": 1, "ad_chatting_content": "有空看看", "ad_chatting_resvred": null, "ad_sermsgid": "act-2", "ad_chatting_time": "2024-05-10 18:00:00", "ad_staff_code": "S001"},
            {"ad_wechat_id": 135389, "ad_chatting_talter": "wxid_fan0001", "ad_chatting_issend": 1, "ad_chatting_sate": 1, "ad_chatting_content": "收到货了吗", "ad_chatting_resvred": null, "ad_sermsgid": "act-3", "ad_chatting_time": "2024-05-03 10:00:00", "ad_staff_code": "S001"}
        ]})).await;
        let v = app.values("/v2/Report/GetActivationListByStaff", &t.token, json!({"time": ts("2024-05-10 00:00:00"), "wechat_lei": 0, "ad_departid": "-1"})).await;
        let rows = v.as_array().unwrap();
        assert_eq!(rows[0]["ad_staff_code"], "S001");
        assert_eq!(rows[0]["activationCount"], 1);
        assert_eq!(rows[0]["date"], "2024-05-10");
        assert_eq!(row(&v, "ad_staff_code", "S002")["activationCount"], 0);
        let v = app.values("/v2/Report/GetActivationListByStaff", &t.token, json!({"time": "2024-05-03", "ad_staff_code": "S001"})).await;
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(v[0]["activationCount"], 0);
        let v = app.values("/v2/Report/GetDataByStaffCustomer", &t.token, json!({"startDate": RANGE.0, "endDate": RANGE.1, "staffCode": "S001"})).await;
        assert_eq!(v[0]["activationCount"], 1);
    }
}
