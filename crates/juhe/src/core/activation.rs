//! Activating a conversation (激活会话) for a staff member: who may, what it changes, and
//! the notice it delivers. Activations are counted by GetActivationListByStaff together
//! with the activations the chats show (see `crate::report`).

use super::{Outcome, Rejection};
use crate::store::activity::{NewActivation, NewNotification};
use crate::store::idempotency::Tx;
use crate::store::Tenant;

/// Notice source of an activation's reminder.
pub const SOURCE: &str = "activation";

/// A checked activation request.
#[derive(Debug, Clone)]
pub struct Activation {
    pub wechat_id: i64,
    pub fan_key: String,
    pub staff_code: String,
    /// 1: give the fan to the staff member; 0: only the fan's owner may activate it.
    pub enforce_attribution: i64,
    /// 1 or 2 deliver `content` to the staff member as a notice; 0 does not.
    pub activation_type: i64,
    pub switch_session: i64,
    pub content: String,
}

/// What an activation did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Activated {
    pub activation_id: i64,
    pub previous_staff_code: Option<String>,
    pub notification_id: Option<i64>,
    pub created_at: i64,
}

/// Checks what can be checked before the transaction: the staff member exists.
pub async fn check(t: Tenant<'_>, a: &Activation) -> Outcome<()> {
    if !t
        .unknown_staff(std::slice::from_ref(&a.staff_code))
        .await?
        .is_empty()
    {
        return Err(Rejection::UnknownStaff {
            field: "staff_code",
            code: a.staff_code.clone(),
        });
    }
    Ok(())
}

/// Activates in the caller's transaction: decides on the fan's current owner (read in the
/// same transaction, so a concurrent reassignment cannot slip between check and write).
pub async fn activate(t: Tenant<'_>, tx: &mut Tx, a: &Activation) -> Outcome<Activated> {
    let Some(owner) = t.fan_owner_in(tx, a.wechat_id, &a.fan_key).await? else {
        return Err(Rejection::UnknownFan {
            field: "ad_friend_wenober",
            fan: a.fan_key.clone(),
            wechat_id: a.wechat_id,
        });
    };
    let current = owner.owner().map(str::to_owned);
    if a.enforce_attribution == 1 {
        if owner.fan_staff.as_deref() != Some(a.staff_code.as_str()) {
            t.assign_fan_in(tx, a.wechat_id, &a.fan_key, &a.staff_code)
                .await?;
        }
    } else if current.as_deref() != Some(a.staff_code.as_str()) {
        return Err(Rejection::Conflict {
            field: "staff_code".into(),
            problem: match &current {
                Some(o) => format!(
                    "fan {} belongs to staff member {o}, not {}; send enforceAttribution 1 to move it",
                    a.fan_key, a.staff_code
                ),
                None => format!(
                    "fan {} belongs to no staff member; send enforceAttribution 1 to give it to {}",
                    a.fan_key, a.staff_code
                ),
            },
        });
    }
    let (activation_id, created_at) = t
        .add_activation_in(
            tx,
            &NewActivation {
                wechat_id: a.wechat_id,
                fan_key: a.fan_key.clone(),
                staff_code: a.staff_code.clone(),
                previous_staff_code: current.clone(),
                enforce_attribution: a.enforce_attribution,
                activation_type: a.activation_type,
                switch_session: a.switch_session,
                content: a.content.clone(),
            },
        )
        .await?;
    let notification_id = if matches!(a.activation_type, 1 | 2) {
        let ids = t
            .add_notifications_in(
                tx,
                &NewNotification {
                    staff_codes: vec![a.staff_code.clone()],
                    title: "激活会话".to_owned(),
                    content: a.content.clone(),
                    source: SOURCE.to_owned(),
                    wechat_id: Some(a.wechat_id),
                    fan_key: Some(a.fan_key.clone()),
                },
            )
            .await?;
        ids.first().copied()
    } else {
        None
    };
    tx.emit(crate::store::events::NewEvent {
        event_type: crate::store::events::CONVERSATION_ACTIVATED,
        conversation: Some((a.wechat_id, a.fan_key.clone())),
        data: crate::store::events::EventData::Activation {
            wechat_id: a.wechat_id,
            fan_key: a.fan_key.clone(),
            staff_code: a.staff_code.clone(),
            activation_type: a.activation_type,
            enforce_attribution: a.enforce_attribution == 1,
            previous_staff: current.clone(),
            at: created_at,
        },
    });
    Ok(Activated {
        activation_id,
        previous_staff_code: current,
        notification_id,
        created_at,
    })
}
