//! Notices to staff (通知): one stored row per recipient, read back by GetNotificationList.

use super::{Outcome, Rejection};
use crate::store::activity::NewNotification;
use crate::store::idempotency::Tx;
use crate::store::Tenant;

/// Notice source of SendNotification.
pub const SOURCE: &str = "api";

/// Checks a notice before the transaction: every recipient is staff of the merchant and
/// the conversation it is about, if any, exists. Nothing is written when one check fails.
pub async fn check(t: Tenant<'_>, n: &NewNotification) -> Outcome<()> {
    if let Some(code) = t.unknown_staff(&n.staff_codes).await?.into_iter().next() {
        return Err(Rejection::UnknownStaff {
            field: "staff_codes",
            code,
        });
    }
    if let (Some(w), Some(f)) = (n.wechat_id, &n.fan_key) {
        if !t.fan_exists(w, f).await? {
            return Err(Rejection::UnknownFan {
                field: "friend_key",
                fan: f.clone(),
                wechat_id: w,
            });
        }
    }
    Ok(())
}

/// Stores a checked notice in the caller's transaction; returns the ids, one per recipient.
pub async fn send(t: Tenant<'_>, tx: &mut Tx, n: &NewNotification) -> Outcome<Vec<i64>> {
    Ok(t.add_notifications_in(tx, n).await?)
}
