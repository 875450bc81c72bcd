//! What an integrator was missing: the merchant-wide chat feed (GetChatFeed) and the list of
//! operating accounts (GetWechatList).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use juhe::store::chats::NewChat;
use serde_json::{json, Value};

use crate::on_both;

const FEED: &str = "/v2/ChatMess/GetChatFeed";
const WECHATS: &str = "/v2/System/GetWechatList";

const CHAT_FIELDS: [&str; 17] = [
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

fn chat(wechat_id: i64, talker: &str, sermsgid: String) -> NewChat {
    NewChat {
        wechat_id,
        talker: talker.into(),
        issend: 0,
        msg_type: 1,
        content: sermsgid.clone(),
        resvred: None,
        sermsgid,
        chat_time: 1_714_615_200,
        staff_code: None,
        voice_txt: None,
        expand: String::new(),
    }
}

on_both! {
    async fn the_chat_feed_pages_through_every_chat_of_the_merchant_in_id_order_across_accounts_and_fans(app) {
        let t = app.fixture_merchant("m").await;
        let other = app.fixture_merchant("other").await;
        let mut min = 0;
        let mut seen: Vec<Value> = Vec::new();
        let mut calls = 0;
        loop {
            let v = app.ok(FEED, &t.token, json!({"minChattingId": min, "pageSize": 3})).await;
            calls += 1;
            let rows = v["values"].as_array().unwrap().clone();
            let page = &v["page"];
            assert_eq!(page["pageSize"], 3, "{v}");
            let next = page["nextMinChattingId"].as_i64().unwrap();
            match rows.last() {
                Some(last) => assert_eq!(next, last["ad_chatting_id"].as_i64().unwrap(), "{v}"),
                None => assert_eq!(next, min, "an empty page keeps the cursor: {v}"),
            }
            seen.extend(rows);
            min = next;
            if page["hasMore"] == false {
                break;
            }
            assert!(calls < 10, "the feed does not end");
        }
        assert_eq!(calls, 3, "8 chats in pages of 3");
        let ids: Vec<i64> = seen.iter().map(|r| r["ad_chatting_id"].as_i64().unwrap()).collect();
        assert_eq!(ids.len(), 8, "{ids:?}");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending, no repeats: {ids:?}");
        let accounts: HashSet<i64> = seen.iter().map(|r| r["ad_wechat_id"].as_i64().unwrap()).collect();
        assert_eq!(accounts, HashSet::from([135389, 135390]));
        let fans: HashSet<&str> = seen.iter().map(|r| r["ad_chatting_talter"].as_str().unwrap()).collect();
        assert_eq!(fans, HashSet::from(["wxid_fan0001", "wxid_fan0002", "wxid_fan0003"]));
        for r in &seen {
            let o = r.as_object().unwrap();
            assert_eq!(o.len(), 17, "{r}");
            for f in CHAT_FIELDS {
                assert!(o.contains_key(f), "{f} missing from {r}");
            }
            assert_eq!(r["merchantid"], t.id.get().to_string());
        }
        // The account and fan columns are joined per record, as GetChat shows them.
        let zhao = seen.iter().find(|r| r["ad_chatting_talter"] == "wxid_fan0003").unwrap();
        assert_eq!((zhao["ad_friend_name"].as_str(), zhao["ad_wechat_nober"].as_str()), (Some("赵丽"), Some("shop_service02")));
        // The same records GetChat returns for that conversation.
        let conv = app.values("/v2/ChatMess/GetChat", &t.token, json!({"wechatId": 135389, "fansKey": "wxid_fan0001"})).await;
        let in_feed: Vec<&Value> = seen.iter().filter(|r| r["ad_chatting_talter"] == "wxid_fan0001").collect();
        let conv: Vec<&Value> = conv.as_array().unwrap().iter().collect();
        assert_eq!(in_feed, conv);
        // The other merchant's feed has its own 8 chats, none of these.
        let theirs = app.values(FEED, &other.token, json!({"pageSize": 100})).await;
        assert_eq!(theirs.as_array().unwrap().len(), 8);
        let theirs_id = other.id.get().to_string();
        assert!(theirs.as_array().unwrap().iter().all(|r| r["merchantid"] == theirs_id.as_str()));
    }

    async fn the_chat_feed_narrows_to_one_account_and_names_a_bad_cursor(app) {
        let t = app.fixture_merchant("m").await;
        let v = app.values(FEED, &t.token, json!({"wechatId": "135390"})).await;
        let rows = v.as_array().unwrap();
        assert_eq!(rows.len(), 2, "{v}");
        assert!(rows.iter().all(|r| r["ad_wechat_id"] == 135390));
        let all = app.values(FEED, &t.token, json!({"wechatId": -1, "minChattingId": ""})).await;
        assert_eq!(all.as_array().unwrap().len(), 8, "-1 and \"\" mean all / from the start");
        let e = app.fails(FEED, &t.token, json!({"minChattingId": -5}), 400, 200012).await;
        assert!(e.starts_with("minChattingId"), "{e}");
        let e = app.fails(FEED, &t.token, json!({"minChattingId": "abc"}), 400, 200012).await;
        assert!(e.starts_with("minChattingId"), "{e}");
        let e = app.fails(FEED, &t.token, json!({"pageSize": 0}), 400, 200012).await;
        assert!(e.starts_with("pageSize"), "{e}");
        // Past the end: empty, no more, and the cursor stays where it was.
        let v = app.ok(FEED, &t.token, json!({"minChattingId": 1_000_000})).await;
        assert_eq!(v["values"], json!([]));
        assert_eq!(v["page"]["hasMore"], false);
        assert_eq!(v["page"]["nextMinChattingId"], 1_000_000);
    }

    async fn a_feed_reader_resuming_from_the_cursor_sees_every_concurrently_written_chat_exactly_once(app) {
        let t = app.fixture_merchant("m").await;
        let done = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        // Writers on different accounts and fans: the feed orders them all by one id.
        for (w, (wechat, fan)) in [(135389, "wxid_fan0001"), (135389, "wxid_fan0002"), (135390, "wxid_fan0003"), (135390, "wxid_new")].into_iter().enumerate() {
            let store = app.store.clone();
            let m = t.id;
            writers.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..60 {
                    let n = if i % 10 == 0 { 4 } else { 1 };
                    let batch: Vec<NewChat> = (0..n).map(|k| chat(wechat, fan, format!("feed-{w}-{i}-{k}"))).collect();
                    ids.extend(juhe::core::chats::record(store.tenant(m), &batch).await.unwrap());
                }
                ids
            }));
        }
        let reader = {
            let done = done.clone();
            let base = app.base.clone();
            let http = app.http.clone();
            let token = t.token.clone();
            tokio::spawn(async move {
                let mut ids: Vec<i64> = Vec::new();
                let mut min = 0_i64;
                let mut quiet_after_done = 0;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let v: Value = http
                        .post(format!("{base}{FEED}"))
                        .bearer_auth(&token)
                        .json(&json!({"minChattingId": min, "pageSize": 25}))
                        .send().await.unwrap().json().await.unwrap();
                    assert_eq!(v["errmsg"], 20000, "{v}");
                    let rows = v["values"].as_array().unwrap();
                    ids.extend(rows.iter().map(|r| r["ad_chatting_id"].as_i64().unwrap()));
                    min = v["page"]["nextMinChattingId"].as_i64().unwrap();
                    if rows.is_empty() && finished {
                        quiet_after_done += 1;
                        if quiet_after_done == 2 {
                            return ids;
                        }
                    }
                }
            })
        };
        let mut written = HashSet::new();
        for w in writers {
            written.extend(w.await.unwrap());
        }
        done.store(true, Ordering::SeqCst);
        let ids = reader.await.unwrap();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "the cursor never goes back and nothing repeats");
        assert_eq!(written.len(), 4 * (60 + 6 * 3));
        let synced: HashSet<i64> = ids.iter().copied().collect();
        assert_eq!(synced.len(), written.len() + 8, "every written chat and the fixture's 8");
        assert!(written.is_subset(&synced), "missed: {:?}", written.difference(&synced).take(10).collect::<Vec<_>>());
    }

    async fn the_operating_account_list_has_the_v1_fields_and_filters_by_type_and_staff(app) {
        let t = app.fixture_merchant("m").await;
        let v = app.ok(WECHATS, &t.token, json!({})).await;
        let rows = v["values"].as_array().unwrap();
        assert_eq!(rows.len(), 2, "{v}");
        assert_eq!(rows[0], json!({
            "ad_wechat_id": 135389,
            "ad_wechat_nober": "shop_service01",
            "ad_wechat_nick": "小米客服",
            "ad_original_nober": "wxid_op0001",
            "ad_wechat_lei": 0,
            "ad_staff_code": "S001",
            "ad_wechat_addtime": "2024-03-01 09:00:00"
        }));
        assert_eq!(v["page"], json!({"pageIndex": 1, "pageSize": 20, "total": 2, "hasMore": false}));
        let wecom = app.values(WECHATS, &t.token, json!({"ad_wechat_lei": "3"})).await;
        assert_eq!(wecom.as_array().unwrap().iter().map(|r| r["ad_wechat_id"].clone()).collect::<Vec<_>>(), vec![json!(135390)]);
        let by_staff = app.values(WECHATS, &t.token, json!({"staffCode": "S001", "ad_wechat_lei": -1})).await;
        assert_eq!(by_staff.as_array().unwrap().len(), 1);
        assert_eq!(by_staff[0]["ad_wechat_id"], 135389);
        let first = app.ok(WECHATS, &t.token, json!({"pageSize": 1})).await;
        assert_eq!(first["values"].as_array().unwrap().len(), 1);
        assert_eq!(first["page"]["hasMore"], true);
        assert_eq!(first["page"]["nextPageIndex"], 2);
        let second = app.ok(WECHATS, &t.token, json!({"pageSize": 1, "pageIndex": 2})).await;
        assert_eq!(second["values"][0]["ad_wechat_id"], 135390);
        assert_eq!(second["page"]["hasMore"], false);
        // Another merchant sees only its own (none).
        let empty = app.merchant("empty").await;
        let v = app.ok(WECHATS, &empty.token, json!({})).await;
        assert_eq!(v["values"], json!([]));
        assert_eq!(v["page"]["total"], 0);
    }

    async fn the_operating_account_list_names_a_bad_type_and_bad_paging(app) {
        let t = app.fixture_merchant("m").await;
        let e = app.fails(WECHATS, &t.token, json!({"ad_wechat_lei": 1}), 400, 200012).await;
        assert!(e.starts_with("ad_wechat_lei"), "{e}");
        let e = app.fails(WECHATS, &t.token, json!({"pageIndex": 0}), 400, 200012).await;
        assert!(e.starts_with("pageIndex"), "{e}");
        let (s, v) = app.post(WECHATS, "not-a-token", json!({})).await;
        assert_eq!((s, v["errmsg"].as_i64()), (401, Some(10003)), "{v}");
    }
}
