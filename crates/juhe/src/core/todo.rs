//! To-dos (待办): the rules a new to-do must meet before it is stored.

use super::{Outcome, Rejection};
use crate::store::idempotency::Tx;
use crate::store::misc::NewTodo;
use crate::store::Tenant;

/// Checks a to-do against the merchant's data and stores it in `tx`; returns its id.
///
/// Runs inside the caller's transaction so that an idempotency key is stored with it,
/// and after the key lookup, so that a retry whose reminder has meanwhile passed still
/// gets its first answer instead of a refusal.
pub async fn add(t: Tenant<'_>, tx: &mut Tx, todo: &NewTodo, now: i64) -> Outcome<i64> {
    // A minute of slack: the caller's clock and ours are never exactly in step.
    if todo.remind_time < now - 60 {
        return Err(Rejection::invalid("RemindTime", "must not be in the past"));
    }
    if !t.unknown_wechats(&[todo.wechat_id]).await?.is_empty() {
        return Err(Rejection::UnknownWechat {
            field: "AdWecharId",
            id: todo.wechat_id,
        });
    }
    if !todo.weixin.is_empty() && !t.fan_exists(todo.wechat_id, &todo.weixin).await? {
        return Err(Rejection::UnknownFan {
            field: "Weixin",
            fan: todo.weixin.clone(),
            wechat_id: todo.wechat_id,
        });
    }
    let mut staff = todo.recipients.clone();
    staff.extend(todo.sff_id.clone());
    if let Some(code) = t.unknown_staff(&staff).await?.into_iter().next() {
        let field = if todo.sff_id.as_deref() == Some(code.as_str()) {
            "SffId"
        } else {
            "Recipient"
        };
        return Err(Rejection::UnknownStaff { field, code });
    }
    Ok(t.add_todo(tx, todo).await?)
}
