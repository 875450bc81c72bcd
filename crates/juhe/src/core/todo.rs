//! To-dos (待办): the rules a new to-do must meet before it is stored.

use super::{Outcome, Rejection};
use crate::store::idempotency::Tx;
use crate::store::misc::NewTodo;
use crate::store::Tenant;

/// Checks a to-do against the merchant's data. Reads through the pool, so callers run it
/// before they open the write's transaction: no request holds a connection while it waits
/// for another.
pub async fn check(t: Tenant<'_>, todo: &NewTodo, now: i64) -> Outcome<()> {
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
    Ok(())
}

/// Stores a checked to-do in the caller's transaction (which also holds its idempotency
/// key); returns its id.
pub async fn save(t: Tenant<'_>, tx: &mut Tx, todo: &NewTodo) -> Outcome<i64> {
    Ok(t.add_todo(tx, todo).await?)
}
