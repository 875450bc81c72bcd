//! ChatMess actions on a conversation: takeover (申请接管 / 终止接管 / state), activation
//! (激活会话) and notices to staff (发送通知). The original documents applyTakeOver's and
//! ActivationConversation's requests only; every response, endTakeOver, GetTakeOverState,
//! SendNotification and GetNotificationList are our design (docs/api.md §2.7).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{idempotent, page, replay_header, Body, IdempotencyKey, Merchant};
use super::{paged, wire, AppState};
use crate::core::takeover::{Apply, Changed, End};
use crate::error::{ApiError, ApiResult, Envelope, Values};
use crate::lenient::{required_str, OptInt, OptStr, OptText, StrList};
use crate::store::activity::{NewNotification, NotificationFilter, NotificationRow};
use crate::store::takeovers::TakeoverRow;
use crate::store::MerchantId;
use crate::timefmt::LocalTime;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/ChatMess/applyTakeOver", post(apply_take_over))
        .route("/v2/ChatMess/endTakeOver", post(end_take_over))
        .route("/v2/ChatMess/GetTakeOverState", post(get_take_over_state))
        .route(
            "/v2/ChatMess/ActivationConversation",
            post(activation_conversation),
        )
        .route("/v2/ChatMess/SendNotification", post(send_notification))
        .route(
            "/v2/ChatMess/GetNotificationList",
            post(get_notification_list),
        )
}

// ------------------------------------------------------------------ takeover

/// A takeover (托管) of one conversation.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[allow(non_snake_case)]
pub struct TakeOver {
    pub takeoverId: i64,
    /// The operating account's original WeChat id.
    pub wechat_key: String,
    pub ad_wechat_id: i64,
    /// The fan (`ad_friend_wenober`).
    pub friend_key: String,
    /// 1 taken over now, 0 ended.
    pub state: i64,
    pub apply_key: String,
    pub apply_name: String,
    pub apply_reason: String,
    pub apply_source: String,
    pub startTime: LocalTime,
    pub endTime: Option<LocalTime>,
    /// Who ended it (the holder's `apply_key`).
    pub end_key: Option<String>,
    pub end_reason: Option<String>,
}

impl From<TakeoverRow> for TakeOver {
    fn from(r: TakeoverRow) -> Self {
        TakeOver {
            takeoverId: r.takeover_id,
            wechat_key: r.account,
            ad_wechat_id: r.wechat_id,
            friend_key: r.fan_key,
            state: i64::from(r.ended_at.is_none()),
            apply_key: r.apply_key,
            apply_name: r.apply_name,
            apply_reason: r.apply_reason,
            apply_source: r.apply_source,
            startTime: LocalTime(r.started_at),
            endTime: r.ended_at.map(LocalTime),
            end_key: r.end_key,
            end_reason: r.end_reason,
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct ApplyTakeOverIn {
    /// The operating account: its `ad_wechat_id` (number or numeric string) or its original WeChat id.
    pub wechat_key: OptStr,
    /// The fan's original WeChat id (`ad_friend_wenober`).
    pub friend_key: OptStr,
    /// Who takes over (the applicant's id in the calling system); the same key again is a repeat.
    pub apply_key: OptStr,
    /// The applicant's name, shown to the assistant and in GetChat.
    pub apply_name: OptStr,
    pub apply_reason: OptText,
    /// The calling system, e.g. `QKB` (企客宝).
    pub apply_source: OptStr,
}

fn text(v: &OptStr) -> String {
    v.non_empty().unwrap_or("").to_owned()
}

/// Wakes the device that got the takeover task (after the commit).
fn wake(st: &AppState, m: MerchantId, c: &Changed) {
    if let Some(task) = c.task {
        st.gateway.wake(m, task.device_id);
    }
}

/// 申请接管: takes a conversation over. `values` is the takeover (state 1). Stored with its
/// history, shown in GetChat as a type-12001 record and sent to the account's assistant as a
/// `takeover` task. Applying again with the same `apply_key` returns the open takeover;
/// another `apply_key` gets 200110 naming the holder.
#[utoipa::path(post, path = "/v2/ChatMess/applyTakeOver", tag = "ChatMess", security(("bearer" = [])),
    request_body = ApplyTakeOverIn, responses((status = 200, body = Envelope<TakeOver>)))]
pub async fn apply_take_over(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<ApplyTakeOverIn>,
) -> ApiResult<Response> {
    let a = Apply {
        wechat_key: required_str(&b.wechat_key, "wechat_key")?,
        friend_key: required_str(&b.friend_key, "friend_key")?,
        apply_key: required_str(&b.apply_key, "apply_key")?,
        apply_name: text(&b.apply_name),
        apply_reason: text(&b.apply_reason.0),
        apply_source: text(&b.apply_source),
    };
    let c = crate::core::takeover::apply(st.store.tenant(m), &a, st.cfg.gateway.task_ttl_seconds)
        .await?;
    wake(&st, m, &c);
    let t = c
        .takeover
        .ok_or_else(|| ApiError::internal("a takeover without its row"))?;
    Ok(Values(TakeOver::from(t)).into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct EndTakeOverIn {
    /// The operating account, as for applyTakeOver.
    pub wechat_key: OptStr,
    /// The fan's original WeChat id.
    pub friend_key: OptStr,
    /// The holder's `apply_key`: only the holder ends a takeover.
    pub apply_key: OptStr,
    pub end_reason: OptText,
}

/// 终止接管 (designed): gives a conversation back. `values` is the ended takeover (state 0),
/// recorded in GetChat as a type-12001 record "结束接管" and sent to the assistant as a
/// `takeover` task with `active` false. Ending a conversation that is not taken over changes
/// nothing and succeeds (a retry is harmless): `values` is its latest takeover, or null
/// when it never was. An `apply_key` other than the holder's gets 200110.
#[utoipa::path(post, path = "/v2/ChatMess/endTakeOver", tag = "ChatMess", security(("bearer" = [])),
    request_body = EndTakeOverIn, responses((status = 200, body = Envelope<Option<TakeOver>>)))]
pub async fn end_take_over(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<EndTakeOverIn>,
) -> ApiResult<Response> {
    let e = End {
        wechat_key: required_str(&b.wechat_key, "wechat_key")?,
        friend_key: required_str(&b.friend_key, "friend_key")?,
        apply_key: required_str(&b.apply_key, "apply_key")?,
        end_reason: text(&b.end_reason.0),
    };
    let c =
        crate::core::takeover::end(st.store.tenant(m), &e, st.cfg.gateway.task_ttl_seconds).await?;
    wake(&st, m, &c);
    Ok(Values(c.takeover.map(TakeOver::from)).into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct TakeOverStateIn {
    /// The operating account, as for applyTakeOver.
    pub wechat_key: OptStr,
    /// The fan's original WeChat id.
    pub friend_key: OptStr,
}

/// A conversation's hosting state and its takeovers.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[allow(non_snake_case)]
pub struct TakeOverState {
    pub wechat_key: String,
    pub ad_wechat_id: i64,
    pub friend_key: String,
    /// 1 taken over now, 0 not.
    pub state: i64,
    /// The open takeover, if any.
    pub current: Option<TakeOver>,
    /// Its takeovers, newest first (at most 100).
    pub history: Vec<TakeOver>,
}

/// Most takeovers GetTakeOverState lists.
const HISTORY: i64 = 100;

/// 读取接管状态 (designed): whether a conversation is taken over now, and its history.
#[utoipa::path(post, path = "/v2/ChatMess/GetTakeOverState", tag = "ChatMess", security(("bearer" = [])),
    request_body = TakeOverStateIn, responses((status = 200, body = Envelope<TakeOverState>)))]
pub async fn get_take_over_state(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<TakeOverStateIn>,
) -> ApiResult<Response> {
    let wechat_key = required_str(&b.wechat_key, "wechat_key")?;
    let friend_key = required_str(&b.friend_key, "friend_key")?;
    let t = st.store.tenant(m);
    let (wechat_id, original) =
        crate::core::takeover::account(t, "wechat_key", &wechat_key).await?;
    let history: Vec<TakeOver> = wire(t.takeover_history(wechat_id, &friend_key, HISTORY).await?);
    let current = history.first().filter(|h| h.state == 1).cloned();
    Ok(Values(TakeOverState {
        wechat_key: original,
        ad_wechat_id: wechat_id,
        friend_key,
        state: i64::from(current.is_some()),
        current,
        history,
    })
    .into_response())
}

// ------------------------------------------------------------------ activation

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct ActivationConversationIn {
    /// The fan's original WeChat id.
    pub ad_friend_wenober: OptStr,
    /// The operating account's original WeChat id; this or `ad_wechat_id` is required.
    pub ad_original_nober: OptStr,
    /// The operating account id; this or `ad_original_nober` is required.
    pub ad_wechat_id: OptInt,
    /// The staff member who activates (must exist).
    pub staff_code: OptStr,
    /// 1: give the fan to the staff member; 0 (default): only the fan's owner may activate it.
    pub enforceAttribution: OptInt,
    /// The reminder delivered to the staff member (required when `activationType` is 1 or 2).
    pub content: OptText,
    /// 1 or 2: deliver `content` to the staff member as a notice (GetNotificationList); 0 (default): no notice.
    pub activationType: OptInt,
    /// 1: the desk should switch to this conversation; 0 (default). Stored.
    pub switchSession: OptInt,
}

/// What ActivationConversation did.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[allow(non_snake_case)]
pub struct ActivationOut {
    pub activationId: i64,
    pub ad_wechat_id: i64,
    pub ad_friend_wenober: String,
    pub staff_code: String,
    /// The fan's owner before (the fan's staff, else the account's), if any.
    pub previous_staff_code: Option<String>,
    pub enforceAttribution: i64,
    pub activationType: i64,
    pub switchSession: i64,
    /// The notice delivered to the staff member (activationType 1 or 2).
    pub notificationId: Option<i64>,
    pub createTime: LocalTime,
}

fn flag(v: OptInt, field: &str, allowed: &[i64]) -> ApiResult<i64> {
    let x = v.get().unwrap_or(0);
    if allowed.contains(&x) {
        Ok(x)
    } else {
        let list: Vec<String> = allowed.iter().map(i64::to_string).collect();
        Err(ApiError::param(
            field,
            format!("must be one of {}", list.join(", ")),
        ))
    }
}

/// 激活会话: activates a conversation for a staff member. With `enforceAttribution` 1 the
/// fan is given to the staff member; with 0 only the fan's owner may activate it (200110
/// naming the owner otherwise). `activationType` 1 or 2 delivers `content` to the staff
/// member as a notice. Counted by GetActivationListByStaff. Send `Idempotency-Key` to make
/// retries safe.
#[utoipa::path(post, path = "/v2/ChatMess/ActivationConversation", tag = "ChatMess", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first result instead of activating twice")),
    request_body = ActivationConversationIn, responses((status = 200, body = Envelope<ActivationOut>)))]
pub async fn activation_conversation(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    key: IdempotencyKey,
    Body(b): Body<ActivationConversationIn>,
) -> ApiResult<Response> {
    let fan_key = required_str(&b.ad_friend_wenober, "ad_friend_wenober")?;
    let staff_code = required_str(&b.staff_code, "staff_code")?;
    let enforce = flag(b.enforceAttribution, "enforceAttribution", &[0, 1])?;
    let activation_type = flag(b.activationType, "activationType", &[0, 1, 2])?;
    let switch_session = flag(b.switchSession, "switchSession", &[0, 1])?;
    let content = b.content.0.non_empty().unwrap_or("").to_owned();
    if activation_type != 0 && content.is_empty() {
        return Err(ApiError::param(
            "content",
            "is required when activationType is 1 or 2",
        ));
    }
    let t = st.store.tenant(m);
    let wechat_id = match (b.ad_wechat_id.get(), b.ad_original_nober.non_empty()) {
        (Some(id), original) => {
            let w = t.wechat(id).await?.ok_or_else(|| {
                ApiError::from(crate::core::Rejection::UnknownWechat {
                    field: "ad_wechat_id",
                    id,
                })
            })?;
            if let Some(o) = original {
                if o != w.original_nober {
                    return Err(ApiError::param(
                        "ad_original_nober",
                        format!("names another account than ad_wechat_id {id}"),
                    ));
                }
            }
            id
        }
        (None, Some(original)) => {
            crate::core::takeover::account(t, "ad_original_nober", original)
                .await?
                .0
        }
        (None, None) => {
            return Err(ApiError::param(
                "ad_wechat_id",
                "is required (or give ad_original_nober)",
            ))
        }
    };
    let a = crate::core::activation::Activation {
        wechat_id,
        fan_key,
        staff_code,
        enforce_attribution: enforce,
        activation_type,
        switch_session,
        content,
    };
    let a = &a;
    let (v, replayed) = idempotent(
        &st,
        m,
        &key,
        "ChatMess/ActivationConversation",
        &b,
        || async {
            crate::core::activation::check(t, a)
                .await
                .map_err(ApiError::from)
        },
        |mut tx, ()| async move {
            let done = crate::core::activation::activate(t, &mut tx, a).await?;
            let out = ActivationOut {
                activationId: done.activation_id,
                ad_wechat_id: a.wechat_id,
                ad_friend_wenober: a.fan_key.clone(),
                staff_code: a.staff_code.clone(),
                previous_staff_code: done.previous_staff_code,
                enforceAttribution: a.enforce_attribution,
                activationType: a.activation_type,
                switchSession: a.switch_session,
                notificationId: done.notification_id,
                createTime: LocalTime(done.created_at),
            };
            // Stored as the answer a retry gets: times as Unix seconds, shown again in the
            // caller's offset when replayed.
            let v = serde_json::json!({
                "activationId": out.activationId,
                "previous_staff_code": out.previous_staff_code,
                "notificationId": out.notificationId,
                "createdAt": done.created_at,
            });
            Ok((tx, v))
        },
    )
    .await?;
    let out = ActivationOut {
        activationId: v["activationId"].as_i64().unwrap_or_default(),
        ad_wechat_id: a.wechat_id,
        ad_friend_wenober: a.fan_key.clone(),
        staff_code: a.staff_code.clone(),
        previous_staff_code: v["previous_staff_code"].as_str().map(str::to_owned),
        enforceAttribution: a.enforce_attribution,
        activationType: a.activation_type,
        switchSession: a.switch_session,
        notificationId: v["notificationId"].as_i64(),
        createTime: LocalTime(v["createdAt"].as_i64().unwrap_or_default()),
    };
    Ok(replay_header(Values(out).into_response(), replayed))
}

// ------------------------------------------------------------------ notifications

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(default)]
pub struct SendNotificationIn {
    /// Recipients: staff numbers as an array or one comma-separated string (each must exist).
    pub staff_codes: StrList,
    pub title: OptStr,
    pub content: OptText,
    /// The operating account the notice is about, if any (its `ad_wechat_id` or original WeChat id).
    pub wechat_key: OptStr,
    /// The fan the notice is about, if any (needs `wechat_key`).
    pub friend_key: OptStr,
}

/// What SendNotification stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[allow(non_snake_case)]
pub struct SentNotification {
    /// One notice id per recipient, in the order of `staff_codes`.
    pub notificationIds: Vec<i64>,
    pub staff_codes: Vec<String>,
}

/// Most recipients of one notice.
const MAX_RECIPIENTS: usize = 100;

/// 发送通知 (designed): a notice to one or more staff members, one stored notice each,
/// read with GetNotificationList. An unknown staff number is a 200010 naming it, and nothing
/// is stored. Send `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/v2/ChatMess/SendNotification", tag = "ChatMess", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first result instead of notifying twice")),
    request_body = SendNotificationIn, responses((status = 200, body = Envelope<SentNotification>)))]
pub async fn send_notification(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    key: IdempotencyKey,
    Body(b): Body<SendNotificationIn>,
) -> ApiResult<Response> {
    let mut staff: Vec<String> = Vec::new();
    for s in &b.staff_codes.0 {
        let s = s.trim();
        if !s.is_empty() && !staff.iter().any(|x| x == s) {
            staff.push(s.to_owned());
        }
    }
    if staff.is_empty() {
        return Err(ApiError::param(
            "staff_codes",
            "must name at least one staff member",
        ));
    }
    if staff.len() > MAX_RECIPIENTS {
        return Err(ApiError::param(
            "staff_codes",
            format!("must name at most {MAX_RECIPIENTS} staff members"),
        ));
    }
    let title = required_str(&b.title, "title")?;
    let content = required_str(&b.content.0, "content")?;
    let t = st.store.tenant(m);
    let wechat_id = match b.wechat_key.non_empty() {
        Some(k) => Some(crate::core::takeover::account(t, "wechat_key", k).await?.0),
        None => None,
    };
    let fan_key = b.friend_key.non_empty().map(str::to_owned);
    if fan_key.is_some() && wechat_id.is_none() {
        return Err(ApiError::param("wechat_key", "is required with friend_key"));
    }
    let n = NewNotification {
        staff_codes: staff.clone(),
        title,
        content,
        source: crate::core::notify::SOURCE.to_owned(),
        wechat_id,
        fan_key,
    };
    let n = &n;
    let (v, replayed) = idempotent(
        &st,
        m,
        &key,
        "ChatMess/SendNotification",
        &b,
        || async {
            crate::core::notify::check(t, n)
                .await
                .map_err(ApiError::from)
        },
        |mut tx, ()| async move {
            let ids = crate::core::notify::send(t, &mut tx, n).await?;
            let out = SentNotification {
                notificationIds: ids,
                staff_codes: n.staff_codes.clone(),
            };
            Ok((tx, serde_json::to_value(out).map_err(ApiError::internal)?))
        },
    )
    .await?;
    let out: SentNotification = serde_json::from_value(v).map_err(ApiError::internal)?;
    Ok(replay_header(Values(out).into_response(), replayed))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct NotificationListIn {
    /// The recipient's staff number.
    pub staff_code: OptStr,
    /// Only notices with a larger `notificationId` (read incrementally).
    pub minId: OptInt,
    pub pageIndex: OptInt,
    pub pageSize: OptInt,
}

/// A stored notice.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[allow(non_snake_case)]
pub struct Notification {
    pub notificationId: i64,
    pub staff_code: String,
    pub title: String,
    pub content: String,
    /// `api` (SendNotification) or `activation` (ActivationConversation).
    pub source: String,
    pub ad_wechat_id: Option<i64>,
    pub friend_key: Option<String>,
    pub createTime: LocalTime,
}

impl From<NotificationRow> for Notification {
    fn from(r: NotificationRow) -> Self {
        Notification {
            notificationId: r.notification_id,
            staff_code: r.staff_code,
            title: r.title,
            content: r.content,
            source: r.source,
            ad_wechat_id: r.wechat_id,
            friend_key: r.fan_key,
            createTime: LocalTime(r.created_at),
        }
    }
}

/// 读取通知列表 (designed): a staff member's notices, oldest first, paged.
#[utoipa::path(post, path = "/v2/ChatMess/GetNotificationList", tag = "ChatMess", security(("bearer" = [])),
    request_body = NotificationListIn, responses((status = 200, body = Envelope<Vec<Notification>>)))]
pub async fn get_notification_list(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<NotificationListIn>,
) -> ApiResult<Response> {
    let staff_code = required_str(&b.staff_code, "staff_code")?;
    let pg = page(&st, b.pageIndex, b.pageSize, "pageIndex", "pageSize")?;
    let f = NotificationFilter {
        staff_code,
        min_id: b.minId.get(),
    };
    let t = st.store.tenant(m);
    let (rows, more) = t.notifications_page(&f, pg).await?;
    let total = t.notifications_count(&f).await?;
    Ok(paged(wire::<_, Notification>(rows), more, pg, Some(total)))
}
