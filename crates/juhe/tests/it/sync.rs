//! Incremental sync under concurrent writes: a reader paging GetChat by `minChattingId`
//! while several writers insert into the same conversation must see every chat exactly
//! once. On PostgreSQL this is where ids taken from a plain sequence would be skipped.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use juhe::store::chats::NewChat;
use serde_json::json;

use crate::on_both;

const WRITERS: usize = 6;
const PER_WRITER: usize = 120;

on_both! {
    async fn a_reader_syncing_by_min_chatting_id_sees_every_concurrently_written_chat_exactly_once(app) {
        let t = app.fixture_merchant("m").await;
        let done = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let store = app.store.clone();
            let m = t.id;
            writers.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..PER_WRITER {
                    // Mix single inserts and small batches: both paths take ids the same way.
                    let n = if i % 10 == 0 { 3 } else { 1 };
                    let batch: Vec<NewChat> = (0..n)
                        .map(|k| NewChat {
                            wechat_id: 135389,
                            talker: "wxid_fan0001".into(),
                            issend: (i % 2) as i64,
                            msg_type: 1,
                            content: format!("w{w} m{i}.{k}"),
                            resvred: None,
                            sermsgid: format!("sync-{w}-{i}-{k}"),
                            chat_time: 1_714_615_200 + i as i64,
                            staff_code: None,
                            voice_txt: None,
                            expand: String::new(),
                        })
                        .collect();
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
                let mut seen: Vec<(i64, String)> = Vec::new();
                let mut min = 0_i64;
                let mut quiet_after_done = 0;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let v: serde_json::Value = http
                        .post(format!("{base}/v2/ChatMess/GetChat"))
                        .bearer_auth(&token)
                        .json(&json!({"wechatId": 135389, "fansKey": "wxid_fan0001", "minChattingId": min, "pageSize": "50", "pageIndex": "1"}))
                        .send().await.unwrap().json().await.unwrap();
                    assert_eq!(v["errmsg"], 20000, "{v}");
                    let rows = v["values"].as_array().unwrap();
                    for r in rows {
                        seen.push((r["ad_chatting_id"].as_i64().unwrap(), r["ad_sermsgid"].as_str().unwrap().to_owned()));
                    }
                    if let Some(last) = rows.last() {
                        min = last["ad_chatting_id"].as_i64().unwrap();
                    } else if finished {
                        quiet_after_done += 1;
                        if quiet_after_done == 2 {
                            return seen;
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
        let seen = reader.await.unwrap();
        let ids: Vec<i64> = seen.iter().map(|(id, _)| *id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "the cursor never goes back and nothing repeats");
        let synced: HashSet<i64> = ids.iter().copied().collect();
        let expected_new = WRITERS * (PER_WRITER + PER_WRITER / 10 * 2);
        assert_eq!(written.len(), expected_new);
        // The fixture's 5 chats of this conversation come first; every written chat follows.
        assert_eq!(synced.len(), expected_new + 5, "seen {} of {}", synced.len(), expected_new + 5);
        assert!(written.is_subset(&synced), "missed: {:?}", written.difference(&synced).take(10).collect::<Vec<_>>());
    }
}
