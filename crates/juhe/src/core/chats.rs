//! Chat records (聊天记录): the one place a chat message is recorded, whoever reports it
//! (the import and the demo today, the assistant gateway next).
//!
//! Recording is idempotent on the assistant's message id: a message whose
//! (`ad_wechat_id`, `ad_sermsgid`) is already stored is skipped, so a re-sent batch after a
//! reconnect or a re-run import changes nothing. Ids are taken in commit order, so readers
//! that page by `minChattingId` never skip a record written concurrently.

use std::collections::BTreeSet;

pub use crate::store::chats::NewChat;

use super::{Outcome, Rejection};
use crate::store::idempotency::Tx;
use crate::store::Tenant;

/// Checks one chat against the rules every recorded chat meets. A refusal names the
/// record's field; callers add where the record stands (`chats[3].…`).
pub fn check(c: &NewChat) -> Outcome<()> {
    let field = |f: &str| f.to_owned();
    if c.sermsgid.trim().is_empty() {
        return Err(Rejection::invalid(
            field("ad_sermsgid"),
            "must not be empty",
        ));
    }
    if c.talker.trim().is_empty() {
        return Err(Rejection::invalid(
            field("ad_chatting_talter"),
            "must not be empty",
        ));
    }
    if !(c.issend == 0 || c.issend == 1) {
        return Err(Rejection::invalid(
            field("ad_chatting_issend"),
            "must be 0 or 1",
        ));
    }
    if let Some(r) = &c.resvred {
        let decoded = percent_encoding::percent_decode_str(r)
            .decode_utf8()
            .map_err(|_| {
                Rejection::invalid(field("ad_chatting_resvred"), "is not url-encoded UTF-8")
            })?;
        if serde_json::from_str::<serde_json::Value>(&decoded).is_err() {
            return Err(Rejection::invalid(
                field("ad_chatting_resvred"),
                "does not url-decode to JSON",
            ));
        }
    }
    Ok(())
}

/// Records a batch of chats for the merchant's operating accounts in one transaction and
/// returns the ids given to the new ones, in input order (repeats get none). Nothing is
/// written unless every chat passes [`check`] and names an operating account of the
/// merchant.
pub async fn record(t: Tenant<'_>, chats: &[NewChat]) -> Outcome<Vec<i64>> {
    check_all(chats)?;
    let accounts = accounts_of(chats);
    if let Some(id) = t.unknown_wechats(&accounts).await?.first() {
        return Err(Rejection::UnknownWechat {
            field: "ad_wechat_id",
            id: *id,
        });
    }
    Ok(t.insert_chats(chats).await?)
}

/// [`record`] inside a transaction the caller holds (from `Tenant::begin`), so the chats
/// commit together with the caller's other writes (a task result, an outbox event). Until
/// that transaction ends, every other chat writer of the merchant waits: ids stay in
/// commit order.
pub async fn record_in(t: Tenant<'_>, tx: &mut Tx, chats: &[NewChat]) -> Outcome<Vec<i64>> {
    check_all(chats)?;
    let accounts = accounts_of(chats);
    if let Some(id) = t.unknown_wechats_in(tx, &accounts).await?.first() {
        return Err(Rejection::UnknownWechat {
            field: "ad_wechat_id",
            id: *id,
        });
    }
    Ok(t.insert_chats_in(tx, chats).await?)
}

fn check_all(chats: &[NewChat]) -> Outcome<()> {
    for (i, c) in chats.iter().enumerate() {
        check(c).map_err(|r| match r {
            Rejection::Invalid { field, problem } => {
                Rejection::invalid(format!("chats[{i}].{field}"), problem)
            }
            other => other,
        })?;
    }
    Ok(())
}

/// The distinct operating accounts a batch names.
fn accounts_of(chats: &[NewChat]) -> Vec<i64> {
    chats
        .iter()
        .map(|c| c.wechat_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}
