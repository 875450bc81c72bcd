//! The demo data set as a new user sees it: every message type it generates reads back
//! through GetChat exactly as it went in.

#[path = "../../juhe/tests/it/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::collections::BTreeSet;

use serde_json::{json, Value};

use helpers::{Tenant, TestApp};

/// Every record of one conversation, following `page.nextMinChattingId`.
async fn sync_all(
    app: &TestApp,
    t: &Tenant,
    wechat_id: i64,
    fans_key: &str,
    page_size: i64,
) -> Vec<Value> {
    let mut out = Vec::new();
    let mut min = 0;
    loop {
        let v = app.ok("/v2/ChatMess/GetChat", &t.token, json!({"wechatId": wechat_id, "fansKey": fans_key, "minChattingId": min, "pageSize": page_size.to_string(), "pageIndex": "1"})).await;
        let rows = v["values"].as_array().unwrap().clone();
        if rows.is_empty() {
            return out;
        }
        min = v["page"]["nextMinChattingId"].as_i64().unwrap();
        out.extend(rows);
    }
}

on_both! {
    async fn every_message_type_round_trips_exactly(app) {
        let t = app.merchant("m").await;
        let file = juhe_cli::demo_data::generate(3, juhe_cli::demo_data::DemoScale::tiny());
        let data = serde_json::to_value(&file).unwrap();
        app.import(&t, &data).await;
        let chats = data["chats"].as_array().unwrap();
        let types: BTreeSet<i64> = chats.iter().map(|c| c["ad_chatting_sate"].as_i64().unwrap()).collect();
        for ty in [1, 2, 3, 4, 34, 42, 48, 49, 50, 495, 496, 1001, 4919, 4933, 4362, 7549, 8220, 9730, 10000, 10001, 10002, 10003, 10004, 10005, 11001, 12001] {
            assert!(types.contains(&ty), "the generated data lacks type {ty}");
        }
        let conversations: BTreeSet<(i64, String)> = chats.iter().map(|c| (c["ad_wechat_id"].as_i64().unwrap(), c["ad_chatting_talter"].as_str().unwrap().to_owned())).collect();
        let mut got = Vec::new();
        for (w, fan) in &conversations {
            got.extend(sync_all(&app, &t, *w, fan, 37).await);
        }
        assert_eq!(got.len(), chats.len());
        for c in chats {
            let g = got.iter().find(|g| g["ad_sermsgid"] == c["ad_sermsgid"]).unwrap_or_else(|| panic!("missing {}", c["ad_sermsgid"]));
            for (out, inp) in [("ad_chatting_content", "ad_chatting_content"), ("ad_chatting_resvred", "ad_chatting_resvred"), ("ad_chatting_sate", "ad_chatting_sate"), ("ad_chatting_issend", "ad_chatting_issend"), ("ad_chatting_time", "ad_chatting_time"), ("ad_staff_code", "ad_staff_code"), ("ad_wechat_id", "ad_wechat_id")] {
                assert_eq!(g[out], c[inp], "type {} field {out}", c["ad_chatting_sate"]);
            }
        }
    }

    async fn demo_data_made_today_fills_the_default_report_range_with_reply_times_of_minutes(app) {
        let t = app.merchant("m").await;
        let offset = 8 * 3600;
        let local_now = juhe::store::now() + offset;
        let file = juhe_cli::demo_data::generate_until(42, juhe_cli::demo_data::DemoScale::demo(), local_now - local_now.rem_euclid(86_400));
        app.import(&t, &serde_json::to_value(&file).unwrap()).await;
        // No dates: the default range, the last 30 days.
        let v = app.values("/v2/Report/GetDataByStaffCustomer", &t.token, json!({"show": 1})).await;
        let rows = v.as_array().unwrap();
        let sent: i64 = rows.iter().map(|r| r["sendCount"].as_i64().unwrap()).sum();
        let received: i64 = rows.iter().map(|r| r["receiveCount"].as_i64().unwrap()).sum();
        assert!(sent > 100 && received > 100, "{v}");
        for r in rows {
            // The dialogues answer within seconds to half an hour; a reply time of hours or
            // days would mean sessions days apart are being paired.
            for key in ["avgReplySeconds", "avgFirstResponseSeconds"] {
                let s = r[key].as_f64().unwrap_or_else(|| panic!("{key} in {r}"));
                assert!((10.0..1800.0).contains(&s), "{key} = {s} in {r}");
            }
            assert!(r["activationCount"].as_i64().unwrap() > 0, "{r}");
        }
    }
}
