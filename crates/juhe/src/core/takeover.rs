//! Takeover (托管/接管) of a conversation by another system or person: stored as a row with
//! history, shown in GetChat as a type-12001 record, and told to the account's assistant as
//! a `takeover` task (docs/assistant-protocol.md §6) — all in one transaction.
//!
//! Semantics (our design; the original documents only applyTakeOver's request):
//! - applying again with the same `apply_key` while the takeover is open returns it
//!   unchanged (a retry is harmless); another applicant gets a conflict naming the holder;
//! - only the holder (`apply_key`) ends a takeover; ending a conversation that is not taken
//!   over succeeds and changes nothing (a retried end is harmless), returning the latest
//!   takeover if there is one.

use super::{chats, Outcome, Rejection};
use crate::store::chats::NewChat;
use crate::store::idempotency::Tx;
use crate::store::takeovers::{NewTakeover, TakeoverEnd, TakeoverRow};
use crate::store::tasks::{now_ms, Enqueued, NewTask};
use crate::store::Tenant;

/// GetChat's message type of a takeover record (托管消息).
pub const TAKEOVER_MSG_TYPE: i64 = 12001;

/// A request to take a conversation over.
#[derive(Debug, Clone)]
pub struct Apply {
    pub wechat_key: String,
    pub friend_key: String,
    pub apply_key: String,
    pub apply_name: String,
    pub apply_reason: String,
    pub apply_source: String,
}

/// A request to give a conversation back.
#[derive(Debug, Clone)]
pub struct End {
    pub wechat_key: String,
    pub friend_key: String,
    pub apply_key: String,
    pub end_reason: String,
}

/// What a takeover request did.
#[derive(Debug, Clone)]
pub struct Changed {
    /// The conversation's takeover after the request (`None`: it was never taken over).
    pub takeover: Option<TakeoverRow>,
    /// The task that tells the assistant, when the state changed and a device serves the account.
    pub task: Option<Enqueued>,
    /// Whether the state changed (false for a repeat).
    pub changed: bool,
}

/// The operating account `key` names (its `ad_wechat_id` or its original WeChat id).
pub async fn account(t: Tenant<'_>, field: &'static str, key: &str) -> Outcome<(i64, String)> {
    t.account_by_key(key)
        .await?
        .ok_or_else(|| Rejection::UnknownWechatKey {
            field,
            key: key.to_owned(),
        })
}

/// Resolves the conversation and checks that the fan exists.
async fn conversation(t: Tenant<'_>, wechat_key: &str, friend_key: &str) -> Outcome<(i64, String)> {
    let (wechat_id, original) = account(t, "wechat_key", wechat_key).await?;
    if !t.fan_exists(wechat_id, friend_key).await? {
        return Err(Rejection::UnknownFan {
            field: "friend_key",
            fan: friend_key.to_owned(),
            wechat_id,
        });
    }
    Ok((wechat_id, original))
}

fn held_by(o: &TakeoverRow) -> Rejection {
    Rejection::Conflict {
        field: "friend_key".into(),
        problem: format!(
            "the conversation is taken over by {:?} (apply_key {:?}, takeover {}); it must be ended by its holder first",
            o.apply_name, o.apply_key, o.takeover_id
        ),
    }
}

/// Takes a conversation over. `ttl_seconds`: the life of the task that tells the assistant.
pub async fn apply(t: Tenant<'_>, a: &Apply, ttl_seconds: i64) -> Outcome<Changed> {
    let (wechat_id, _) = conversation(t, &a.wechat_key, &a.friend_key).await?;
    let mut tx = t.begin().await?;
    t.lock_for_takeover_in(&mut tx).await?;
    if let Some(open) = t
        .open_takeover_in(&mut tx, wechat_id, &a.friend_key)
        .await?
    {
        tx.rollback().await?;
        if open.apply_key == a.apply_key {
            return Ok(Changed {
                takeover: Some(open),
                task: None,
                changed: false,
            });
        }
        return Err(held_by(&open));
    }
    let id = t
        .start_takeover_in(
            &mut tx,
            &NewTakeover {
                wechat_id,
                fan_key: a.friend_key.clone(),
                apply_key: a.apply_key.clone(),
                apply_name: a.apply_name.clone(),
                apply_reason: a.apply_reason.clone(),
                apply_source: a.apply_source.clone(),
            },
        )
        .await?;
    let row = reread(t, &mut tx, id).await?;
    let task = record_change(
        t,
        &mut tx,
        &row,
        true,
        &a.apply_name,
        &a.apply_reason,
        ttl_seconds,
    )
    .await?;
    tx.emit(takeover_event(&row, true));
    tx.commit().await?;
    Ok(Changed {
        takeover: Some(row),
        task,
        changed: true,
    })
}

/// Gives a conversation back.
pub async fn end(t: Tenant<'_>, e: &End, ttl_seconds: i64) -> Outcome<Changed> {
    let (wechat_id, _) = conversation(t, &e.wechat_key, &e.friend_key).await?;
    let mut tx = t.begin().await?;
    t.lock_for_takeover_in(&mut tx).await?;
    let Some(open) = t
        .open_takeover_in(&mut tx, wechat_id, &e.friend_key)
        .await?
    else {
        let latest = t
            .latest_takeover_in(&mut tx, wechat_id, &e.friend_key)
            .await?;
        tx.rollback().await?;
        return Ok(Changed {
            takeover: latest,
            task: None,
            changed: false,
        });
    };
    if open.apply_key != e.apply_key {
        tx.rollback().await?;
        return Err(held_by(&open));
    }
    let end = TakeoverEnd {
        end_key: e.apply_key.clone(),
        end_name: open.apply_name.clone(),
        end_reason: e.end_reason.clone(),
    };
    t.end_takeover_in(&mut tx, open.takeover_id, &end).await?;
    let row = reread(t, &mut tx, open.takeover_id).await?;
    let task = record_change(
        t,
        &mut tx,
        &row,
        false,
        &end.end_name,
        &end.end_reason,
        ttl_seconds,
    )
    .await?;
    tx.emit(takeover_event(&row, false));
    tx.commit().await?;
    Ok(Changed {
        takeover: Some(row),
        task,
        changed: true,
    })
}

async fn reread(t: Tenant<'_>, tx: &mut Tx, id: i64) -> Outcome<TakeoverRow> {
    t.takeover_in(tx, id).await?.ok_or(Rejection::NotFound {
        field: "friend_key",
        what: "takeover",
        id,
    })
}

/// The GetChat record (type 12001) and the assistant's task for a start (`active`) or an end.
async fn record_change(
    t: Tenant<'_>,
    tx: &mut Tx,
    row: &TakeoverRow,
    active: bool,
    name: &str,
    reason: &str,
    ttl_seconds: i64,
) -> Outcome<Option<Enqueued>> {
    let resvred = serde_json::json!({
        "key": row.apply_key,
        "name": name,
        "reason": reason,
        "source": row.apply_source,
    });
    let resvred = percent_encoding::utf8_percent_encode(
        &resvred.to_string(),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    let (content, suffix) = if active {
        ("申请接管", "start")
    } else {
        ("结束接管", "end")
    };
    let chat = NewChat {
        wechat_id: row.wechat_id,
        talker: row.fan_key.clone(),
        issend: 1,
        msg_type: TAKEOVER_MSG_TYPE,
        content: content.to_owned(),
        resvred: Some(resvred),
        sermsgid: format!("takeover-{}-{suffix}", row.takeover_id),
        chat_time: crate::store::now(),
        staff_code: None,
        voice_txt: None,
        expand: serde_json::json!({"takeoverId": row.takeover_id}).to_string(),
    };
    chats::record_in(t, tx, std::slice::from_ref(&chat)).await?;
    let payload = serde_json::json!({
        "fan": row.fan_key,
        "active": active,
        "takeoverId": row.takeover_id,
        "applyName": row.apply_name,
        "applyReason": row.apply_reason,
        "applySource": row.apply_source,
    });
    let task = NewTask {
        wechat_id: row.wechat_id,
        kind: super::tasks::TAKEOVER.to_owned(),
        payload: payload.to_string(),
        fan_key: Some(row.fan_key.clone()),
        bulk_task_id: None,
        not_before_ms: now_ms(),
        ttl_seconds,
    };
    // No device serving the account is not a failure: the takeover is stored, and the
    // assistant learns it from the snapshot when it connects.
    Ok(t.enqueue_task_in(tx, &task).await?)
}

/// The snapshot frame of an open takeover (docs/assistant-protocol.md §6).
pub fn snapshot_frame(row: &TakeoverRow) -> serde_json::Value {
    serde_json::json!({
        "type": "takeover",
        "account": row.account,
        "fan": row.fan_key,
        "active": true,
        "takeoverId": row.takeover_id,
        "applyName": row.apply_name,
        "applyReason": row.apply_reason,
        "applySource": row.apply_source,
        "since": row.started_at,
    })
}

/// takeOverStarted or takeOverEnded, in the conversation's sequence.
fn takeover_event(row: &TakeoverRow, started: bool) -> crate::store::events::NewEvent {
    use crate::store::events::{EventData, NewEvent, TAKE_OVER_ENDED, TAKE_OVER_STARTED};
    NewEvent {
        event_type: if started {
            TAKE_OVER_STARTED
        } else {
            TAKE_OVER_ENDED
        },
        conversation: Some((row.wechat_id, row.fan_key.clone())),
        data: EventData::TakeOver {
            takeover: row.clone(),
        },
    }
}
