//! The core layer's one way to record a chat: the rules hold whoever reports the chat, a
//! refusal names the record and field, and nothing of a refused batch is written.

use juhe::core::chats::{record, NewChat};
use juhe::core::Rejection;
use serde_json::json;

use crate::on_both;

fn chat(wechat_id: i64, sermsgid: &str, issend: i64) -> NewChat {
    NewChat {
        wechat_id,
        talker: "wxid_fan0001".into(),
        issend,
        msg_type: 1,
        content: "你好".into(),
        resvred: None,
        sermsgid: sermsgid.into(),
        chat_time: 1_714_615_200,
        staff_code: None,
        voice_txt: None,
        expand: String::new(),
    }
}

async fn count(app: &crate::helpers::TestApp, t: &crate::helpers::Tenant) -> usize {
    app.values(
        "/v2/ChatMess/GetChat",
        &t.token,
        json!({"wechatId": 135389, "fansKey": "wxid_fan0001", "pageSize": 1000}),
    )
    .await
    .as_array()
    .unwrap()
    .len()
}

on_both! {
    async fn a_batch_with_one_bad_chat_is_refused_whole_naming_the_record_and_field(app) {
        let t = app.fixture_merchant("m").await;
        let before = count(&app, &t).await;
        let batch = vec![chat(135389, "core-1", 0), chat(135389, "core-2", 7)];
        match record(app.store.tenant(t.id), &batch).await {
            Err(Rejection::Invalid { field, .. }) => assert_eq!(field, "chats[1].ad_chatting_issend"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(count(&app, &t).await, before, "nothing of the refused batch is written");
    }

    async fn chats_for_an_account_of_another_merchant_are_refused(app) {
        let a = app.fixture_merchant("a").await;
        let b = app.merchant("b").await;
        let batch = vec![chat(135389, "core-x", 0)];
        assert!(matches!(
            record(app.store.tenant(b.id), &batch).await,
            Err(Rejection::UnknownWechat { id: 135389, .. })
        ));
        assert_eq!(record(app.store.tenant(a.id), &batch).await.unwrap().len(), 1);
    }

    async fn recording_the_same_chats_again_changes_nothing(app) {
        let t = app.fixture_merchant("m").await;
        let batch = vec![chat(135389, "core-r1", 0), chat(135389, "core-r2", 1)];
        assert_eq!(record(app.store.tenant(t.id), &batch).await.unwrap().len(), 2);
        let before = count(&app, &t).await;
        assert!(record(app.store.tenant(t.id), &batch).await.unwrap().is_empty());
        assert_eq!(count(&app, &t).await, before);
    }
}
