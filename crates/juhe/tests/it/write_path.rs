//! The chat write path: lock order between import and chat recording, the duplicate
//! check, and batches larger than one statement.

use std::time::Duration;

use juhe::store::chats::NewChat;
use juhe::store::import::ImportFile;
use juhe::store::Backend;
use serde_json::{json, Value};

use crate::helpers::{fixture, ts, TestApp};
use crate::on_both;

fn chat(wechat_id: i64, talker: &str, sermsgid: &str, chat_time: i64) -> NewChat {
    NewChat {
        wechat_id,
        talker: talker.into(),
        issend: 0,
        msg_type: 1,
        content: format!("message {sermsgid}"),
        resvred: None,
        sermsgid: sermsgid.into(),
        chat_time,
        staff_code: None,
        voice_txt: None,
        expand: String::new(),
    }
}

/// Pages GetChat by `minChattingId` (two records a page, as a slow poller would) and
/// returns every (id, message id) after `min`.
async fn sync_from(
    app: &TestApp,
    token: &str,
    wechat_id: i64,
    fan: &str,
    mut min: i64,
) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    loop {
        let v = app
            .values(
                "/v2/ChatMess/GetChat",
                token,
                json!({"wechatId": wechat_id, "fansKey": fan, "minChattingId": min, "pageSize": 2}),
            )
            .await;
        let rows = v.as_array().unwrap();
        if rows.is_empty() {
            return out;
        }
        for r in rows {
            out.push((
                r["ad_chatting_id"].as_i64().unwrap(),
                r["ad_sermsgid"].as_str().unwrap().to_owned(),
            ));
        }
        min = out.last().unwrap().0;
    }
}

/// Asserts that `task` is blocked: on PostgreSQL until the server reports a backend of this
/// test's database waiting for a lock (so the check does not depend on timing), and on both
/// backends that it has still not finished 300 ms later.
async fn assert_waits<T>(app: &TestApp, task: &tokio::task::JoinHandle<T>) {
    if app.store.backend() == Backend::Postgres {
        let mut conn = app.raw().await;
        let mut waiting = 0_i64;
        for _ in 0..200 {
            waiting = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(waiting, 1, "the second writer should be waiting for a lock");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !task.is_finished(),
        "the second writer went ahead of an open chat write"
    );
}

on_both! {
    async fn an_import_waits_for_an_open_chat_write_and_neither_deadlocks_nor_lets_sync_skip(app) {
        let t = app.fixture_merchant("m").await;
        let tenant = app.store.tenant(t.id);
        let (fan1, fan2) = ("wxid_fan0001", "wxid_fan0002");
        let seen1 = sync_from(&app, &t.token, 135389, fan1, 0).await;
        let seen2 = sync_from(&app, &t.token, 135389, fan2, 0).await;
        let (cursor1, cursor2) = (seen1.last().unwrap().0, seen2.last().unwrap().0);

        // Writer A records a chat with fan 1 and keeps its transaction open.
        let mut tx = tenant.begin().await.unwrap();
        let a1 = juhe::core::chats::record_in(tenant, &mut tx, &[chat(135389, fan1, "a-1", ts("2024-07-01 10:00:00"))])
            .await
            .unwrap();

        // Writer B imports a file that renames fan 2 and records a chat with fan 2. Taking
        // the fan row before the id counter (the old import order) would now hold fan 2
        // while waiting for A's counter.
        let mut file = fixture();
        file["fans"][1]["ad_friend_name"] = json!("Renamed");
        file["chats"].as_array_mut().unwrap().push(json!({
            "ad_wechat_id": 135389, "ad_chatting_talter": fan2, "ad_chatting_issend": 0,
            "ad_chatting_sate": 1, "ad_chatting_content": "from the import", "ad_chatting_resvred": null,
            "ad_sermsgid": "b-1", "ad_chatting_time": "2024-07-01 11:00:00", "ad_staff_code": null
        }));
        let file: ImportFile = serde_json::from_value(file).unwrap();
        let store = app.store.clone();
        let m = t.id;
        let b = tokio::spawn(async move {
            juhe::core::import::import(store.tenant(m), &file, chrono::FixedOffset::east_opt(8 * 3600).unwrap(), &|_| {})
                .await
        });
        assert_waits(&app, &b).await;
        // Nothing uncommitted is visible, and the cursor does not move past it.
        assert_eq!(sync_from(&app, &t.token, 135389, fan2, cursor2).await, vec![]);

        // A goes on to touch fan 2 as well. Were B holding fan 2, this would deadlock
        // (PostgreSQL would abort one of the two after a second).
        let a2 = juhe::core::chats::record_in(tenant, &mut tx, &[chat(135389, fan2, "a-2", ts("2024-07-01 10:30:00"))])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let summary = tokio::time::timeout(Duration::from_secs(30), b)
            .await
            .expect("the import finishes once the chat write commits")
            .unwrap()
            .unwrap();
        assert_eq!((summary["chats"].changed, summary["fans"].changed), (1, 1));

        // A reader that kept its cursors sees every new chat, in id order, A's before B's.
        let new1 = sync_from(&app, &t.token, 135389, fan1, cursor1).await;
        let new2 = sync_from(&app, &t.token, 135389, fan2, cursor2).await;
        assert_eq!(new1, vec![(a1[0], "a-1".to_owned())]);
        assert_eq!(new2.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(), ["a-2", "b-1"]);
        assert_eq!(new2[0].0, a2[0]);
        assert!(a1[0] < a2[0] && a2[0] < new2[1].0, "ids follow commit order: {a1:?} {a2:?} {new2:?}");
        let fans = app.values("/v2/Friend/GetFansList", &t.token, json!({"fansKe": fan2})).await;
        assert_eq!(fans[0]["ad_friend_name"], "Renamed");
    }

    async fn a_message_id_is_a_duplicate_only_within_its_operating_account(app) {
        let t = app.fixture_merchant("m").await;
        let tenant = app.store.tenant(t.id);
        let when = ts("2024-07-01 10:00:00");
        // 7001000000000000001 is stored for account 135389 by the fixture.
        let batch = [
            chat(135389, "wxid_fan0001", "7001000000000000001", when),
            chat(135390, "wxid_fan0003", "7001000000000000001", when),
            chat(135389, "wxid_fan0001", "n-1", when + 1),
            chat(135389, "wxid_fan0001", "n-1", when + 2),
            chat(135389, "wxid_fan0001", "n-2", when + 3),
        ];
        let ids = juhe::core::chats::record(tenant, &batch).await.unwrap();
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "consecutive ids: {ids:?}");
        let other = sync_from(&app, &t.token, 135390, "wxid_fan0003", 0).await;
        assert_eq!(other.last().unwrap(), &(ids[0], "7001000000000000001".to_owned()));
        let mine = sync_from(&app, &t.token, 135389, "wxid_fan0001", 0).await;
        let tail: Vec<&str> = mine[mine.len() - 2..].iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(tail, ["n-1", "n-2"]);
        let content = app
            .values("/v2/ChatMess/GetChat", &t.token, json!({"wechatId": 135389, "fansKey": "wxid_fan0001", "minChattingId": ids[0]}))
            .await;
        assert_eq!(content[0]["ad_chatting_content"], "message n-1", "the first of two copies wins");
        // The same batch again writes nothing.
        assert_eq!(juhe::core::chats::record(tenant, &batch).await.unwrap(), Vec::<i64>::new());
    }

    async fn a_batch_larger_than_one_statement_is_stored_whole_and_moves_every_fans_last_chat_time_forward_only(app) {
        let t = app.merchant("m").await;
        const FANS: usize = 600;
        const CHATS: usize = 2_500;
        let fans: Vec<Value> = (0..FANS)
            .map(|f| json!({
                "ad_friend_wenober": format!("wxid_f{f}"), "ad_friend_name": format!("fan {f}"),
                "ad_wechat_id": 1, "ad_staff_code": null, "ad_friend_addtime": "2024-01-01 09:00:00", "ad_bind_time": null
            }))
            .collect();
        app.import(&t, &json!({
            "wechats": [{"ad_wechat_id": 1, "ad_wechat_nober": "op", "ad_wechat_nick": "op", "ad_original_nober": "wxid_op",
                         "ad_staff_code": null, "ad_wechat_addtime": "2024-01-01 09:00:00"}],
            "fans": fans,
        })).await;
        let base = ts("2024-07-01 00:00:00");
        let batch: Vec<NewChat> = (0..CHATS)
            .map(|i| chat(1, &format!("wxid_f{}", i % FANS), &format!("m{i}"), base + i as i64))
            .collect();
        let tenant = app.store.tenant(t.id);
        let ids = juhe::core::chats::record(tenant, &batch).await.unwrap();
        assert_eq!(ids.len(), CHATS);
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
        let synced = sync_from(&app, &t.token, 1, "wxid_f7", 0).await;
        let expected: Vec<(i64, String)> = (0..CHATS)
            .filter(|i| i % FANS == 7)
            .map(|i| (ids[i], format!("m{i}")))
            .collect();
        assert_eq!(synced, expected);
        // Every fan's last chat is its latest message of the batch.
        let count = |start: i64, end: i64| {
            app.values("/v2/Friend/GetFansCount", &t.token, json!({"lastChatStartTime": start, "lastChatEndTime": end}))
        };
        let last_round = base + (CHATS - FANS) as i64;
        assert_eq!(count(last_round, base + CHATS as i64).await, FANS as i64);
        // Older messages arriving later do not move it back.
        let older: Vec<NewChat> = (0..FANS)
            .map(|f| chat(1, &format!("wxid_f{f}"), &format!("old{f}"), base - 1000))
            .collect();
        assert_eq!(juhe::core::chats::record(tenant, &older).await.unwrap().len(), FANS);
        assert_eq!(count(last_round, base + CHATS as i64).await, FANS as i64);
        assert_eq!(count(0, last_round - 1).await, 0);
    }

    async fn a_batch_with_stored_messages_scattered_through_it_gets_dense_ids_in_input_order(app) {
        let t = app.merchant("m").await;
        app.import(&t, &json!({
            "wechats": [{"ad_wechat_id": 1, "ad_wechat_nober": "op", "ad_wechat_nick": "op", "ad_original_nober": "wxid_op",
                         "ad_staff_code": null, "ad_wechat_addtime": "2024-01-01 09:00:00"}],
            "fans": [{"ad_friend_wenober": "wxid_f", "ad_friend_name": "fan", "ad_wechat_id": 1, "ad_staff_code": null,
                      "ad_friend_addtime": "2024-01-01 09:00:00", "ad_bind_time": null}],
        })).await;
        let tenant = app.store.tenant(t.id);
        let base = ts("2024-07-01 00:00:00");
        // Every third message of the big batch is stored first, so the batch's inserts
        // skip rows in every statement and its ids must be closed up across statements.
        const CHATS: usize = 2_500;
        let stored: Vec<NewChat> = (0..CHATS).filter(|i| i % 3 == 0).map(|i| chat(1, "wxid_f", &format!("m{i}"), base + i as i64)).collect();
        let before = juhe::core::chats::record(tenant, &stored).await.unwrap();
        let batch: Vec<NewChat> = (0..CHATS).map(|i| chat(1, "wxid_f", &format!("m{i}"), base + i as i64)).collect();
        let ids = juhe::core::chats::record(tenant, &batch).await.unwrap();
        let fresh: Vec<usize> = (0..CHATS).filter(|i| i % 3 != 0).collect();
        assert_eq!(ids.len(), fresh.len());
        assert_eq!(ids[0], before.last().unwrap() + 1, "ids continue from the last stored one");
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "dense ids");
        let mut synced = Vec::new();
        let mut min = *before.last().unwrap();
        loop {
            let f = juhe::store::chats::ChatFilter { wechat_id: 1, fans_key: "wxid_f".into(), min_chatting_id: Some(min), ..Default::default() };
            let page = tenant.chats_page(&f, juhe::store::Page { index: 1, size: 1000 }).await.unwrap();
            synced.extend(page.rows.iter().map(|r| (r.chat_id, r.sermsgid.clone())));
            match page.rows.last() {
                Some(r) if page.more => min = r.chat_id,
                _ => break,
            }
        }
        let expected: Vec<(i64, String)> = fresh.iter().zip(&ids).map(|(i, id)| (*id, format!("m{i}"))).collect();
        assert_eq!(synced, expected, "each new message under its id, in input order");
        // The ids the skipped rows did not use are given back: the next write continues.
        let next = juhe::core::chats::record(tenant, &[chat(1, "wxid_f", "after", base + 10_000)]).await.unwrap();
        assert_eq!(next, vec![ids.last().unwrap() + 1]);
        // All duplicates: nothing written, no id used.
        assert!(juhe::core::chats::record(tenant, &batch).await.unwrap().is_empty());
        let last = juhe::core::chats::record(tenant, &[chat(1, "wxid_f", "last", base + 10_001)]).await.unwrap();
        assert_eq!(last, vec![next[0] + 1]);
    }
}
