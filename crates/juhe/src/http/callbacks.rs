//! Public: callback URLs and event subscriptions (`registerCallbackUrl`, `subscribeEvent`,
//! as documented), and Juhe's design around them (docs/events.md): list, update and delete
//! endpoints, read and rotate the signing secret, read events and their delivery attempts,
//! replay.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{page, Body, Merchant};
use super::{paged, AppState};
use crate::core::Rejection;
use crate::error::{ApiError, ApiResult, Envelope, Values};
use crate::lenient::{required_int, required_str, OptBool, OptInt, OptStr, OptTime, StrList};
use crate::store::events::{
    AttemptRow, DeliveryState, EndpointChange, EndpointRow, EventFilter, SecretRow, EVENT_TYPES,
};
use crate::store::MerchantId;
use crate::timefmt::LocalTime;
use crate::webhooks::payload::{self, Event};
use crate::webhooks::{sign, target};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v2/Public/registerCallbackUrl",
            post(register_callback_url),
        )
        .route("/v2/Public/subscribeEvent", post(subscribe_event))
        .route("/v2/Public/GetCallbackList", post(get_callback_list))
        .route("/v2/Public/updateCallback", post(update_callback))
        .route("/v2/Public/deleteCallback", post(delete_callback))
        .route("/v2/Public/GetWebhookSecret", post(get_webhook_secret))
        .route(
            "/v2/Public/rotateWebhookSecret",
            post(rotate_webhook_secret),
        )
        .route("/v2/Public/GetEventList", post(get_event_list))
        .route("/v2/Public/GetEvent", post(get_event))
        .route("/v2/Public/GetEventAttempts", post(get_event_attempts))
        .route("/v2/Public/replayEvent", post(replay_event))
        .route("/v2/Public/replayFailedEvents", post(replay_failed_events))
}

/// A callback endpoint (回调地址) and what it receives.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[allow(non_snake_case)]
pub struct Callback {
    pub endpointId: i64,
    pub url: String,
    /// 应用标识 given to `subscribeEvent`, or "".
    pub appId: String,
    /// `registerCallbackUrl`'s `type`: 100 企客宝, 200 金桥, 0 not given.
    #[serde(rename = "type")]
    pub registrant: i64,
    /// The event types it receives.
    pub messageTypes: Vec<String>,
    /// False once disabled (through the API, or after failing for `webhooks.disable_after_seconds`).
    pub enabled: bool,
    pub disabledReason: Option<String>,
    /// Since when every delivery has failed (null while deliveries succeed).
    pub failingSince: Option<LocalTime>,
    pub createTime: LocalTime,
    pub updateTime: LocalTime,
}

impl From<EndpointRow> for Callback {
    fn from(r: EndpointRow) -> Self {
        Callback {
            messageTypes: r.types(),
            endpointId: r.endpoint_id,
            url: r.url,
            appId: r.app_id,
            registrant: r.registrant,
            enabled: r.enabled == 1,
            disabledReason: r.disabled_reason,
            failingSince: r.failing_since.map(LocalTime),
            createTime: LocalTime(r.created_at),
            updateTime: LocalTime(r.updated_at),
        }
    }
}

/// A checked callback URL: its form always, and (unless private targets are allowed) that
/// it does not reach a loopback, private or link-local address.
async fn checked_url(st: &AppState, v: &OptStr, field: &str) -> ApiResult<String> {
    let url = required_str(v, field)?;
    let t = target::parse(&url).map_err(|p| ApiError::param(field, p))?;
    if !st.cfg.webhooks.allow_private_targets {
        target::check_public(&t)
            .await
            .map_err(|p| ApiError::param(field, p))?;
    }
    Ok(url.trim().to_owned())
}

/// An event type as sent (any case), as Juhe names it; refused naming `field` when unknown.
fn known_type(field: &str, t: &str) -> ApiResult<&'static str> {
    let t = t.trim();
    EVENT_TYPES
        .iter()
        .find(|k| k.eq_ignore_ascii_case(t))
        .copied()
        .ok_or_else(|| {
            ApiError::param(
                field,
                format!(
                    "unknown event type {t:?}; known: {}",
                    EVENT_TYPES.join(", ")
                ),
            )
        })
}

/// `messageTypes` as stored: `*` for all (an absent or empty list), else the known names.
fn message_types(v: &StrList, field: &str) -> ApiResult<Option<String>> {
    let mut out: Vec<&str> = Vec::new();
    for (i, t) in v.0.iter().enumerate() {
        let t = t.trim();
        if t.is_empty() {
            continue;
        }
        if t == "*" {
            return Ok(Some("*".into()));
        }
        let known = known_type(&format!("{field}[{i}]"), t)?;
        if !out.contains(&known) {
            out.push(known);
        }
    }
    Ok((!out.is_empty()).then(|| out.join(",")))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct RegisterCallbackUrlIn {
    /// The callback URL (required): http or https.
    pub url: OptStr,
    /// Registrant: 100 企客宝, 200 金桥.
    #[serde(rename = "type")]
    pub registrant: OptInt,
}

/// 注册回调地址: registers a callback URL. A new URL receives every event type (narrow it with
/// `subscribeEvent` or `updateCallback`); registering a known URL again keeps its
/// subscription and re-enables it. Deliveries are signed (docs/events.md).
#[utoipa::path(post, path = "/v2/Public/registerCallbackUrl", tag = "Public", security(("bearer" = [])),
    request_body = RegisterCallbackUrlIn, responses((status = 200, body = Envelope<bool>)))]
pub async fn register_callback_url(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<RegisterCallbackUrlIn>,
) -> ApiResult<Response> {
    let url = checked_url(&st, &b.url, "url").await?;
    st.store
        .tenant(m)
        .upsert_endpoint(&url, None, b.registrant.get(), None)
        .await?;
    Ok(Values(true).into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct SubscribeEventIn {
    /// 回调地址 (required): the URL that receives the events.
    pub url: OptStr,
    /// 应用标识 of the subscriber, kept with the endpoint.
    pub appId: OptStr,
    /// 订阅事件类型: event types (docs/events.md); absent or empty means every type.
    pub messageTypes: StrList,
}

/// 订阅事件: sets which event types a URL receives (creating the endpoint when the URL is new).
#[utoipa::path(post, path = "/v2/Public/subscribeEvent", tag = "Public", security(("bearer" = [])),
    request_body = SubscribeEventIn, responses((status = 200, body = Envelope<bool>)))]
pub async fn subscribe_event(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<SubscribeEventIn>,
) -> ApiResult<Response> {
    let url = checked_url(&st, &b.url, "url").await?;
    let types = message_types(&b.messageTypes, "messageTypes")?.unwrap_or_else(|| "*".into());
    st.store
        .tenant(m)
        .upsert_endpoint(&url, b.appId.get(), None, Some(&types))
        .await?;
    Ok(Values(true).into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct NoParams {}

/// 回调地址列表 (Juhe): the merchant's callback endpoints.
#[utoipa::path(post, path = "/v2/Public/GetCallbackList", tag = "Public", security(("bearer" = [])),
    request_body = NoParams, responses((status = 200, body = Envelope<Vec<Callback>>)))]
pub async fn get_callback_list(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(_): Body<NoParams>,
) -> ApiResult<Response> {
    let rows = st.store.tenant(m).endpoints().await?;
    Ok(super::whole(super::wire::<_, Callback>(rows)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct UpdateCallbackIn {
    /// The endpoint (required).
    pub endpointId: OptInt,
    /// A new URL.
    pub url: OptStr,
    pub appId: OptStr,
    /// New event types; `["*"]` for every type.
    pub messageTypes: StrList,
    /// false disables the endpoint; true enables it again and forgets its failures (its
    /// pending deliveries resume).
    pub enabled: OptBool,
}

fn not_found(id: i64) -> ApiError {
    ApiError::from(Rejection::NotFound {
        field: "endpointId",
        what: "callback endpoint",
        id,
    })
}

/// 修改回调 (Juhe): changes an endpoint's URL, subscription or state. Fields left out keep
/// their values. `values` is the endpoint.
#[utoipa::path(post, path = "/v2/Public/updateCallback", tag = "Public", security(("bearer" = [])),
    request_body = UpdateCallbackIn, responses((status = 200, body = Envelope<Callback>)))]
pub async fn update_callback(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<UpdateCallbackIn>,
) -> ApiResult<Response> {
    let id = required_int(b.endpointId, "endpointId")?;
    let url = match b.url.non_empty() {
        Some(_) => Some(checked_url(&st, &b.url, "url").await?),
        None => None,
    };
    let change = EndpointChange {
        url,
        app_id: b.appId.get().map(str::to_owned),
        event_types: message_types(&b.messageTypes, "messageTypes")?,
        enabled: b.enabled.0,
    };
    let t = st.store.tenant(m);
    let row = t.update_endpoint(id, &change).await.map_err(|e| {
        // Two endpoints of a merchant cannot share a URL.
        if e.as_database_error()
            .is_some_and(|d| d.is_unique_violation())
        {
            ApiError::from(Rejection::Conflict {
                field: "url".into(),
                problem: "another endpoint of this merchant has this URL".into(),
            })
        } else {
            ApiError::from(e)
        }
    })?;
    let row = row.ok_or_else(|| not_found(id))?;
    Ok(Values(Callback::from(row)).into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct EndpointIn {
    /// The endpoint (required).
    pub endpointId: OptInt,
}

/// 删除回调 (Juhe): deletes an endpoint; what was still to be delivered to it is dropped.
#[utoipa::path(post, path = "/v2/Public/deleteCallback", tag = "Public", security(("bearer" = [])),
    request_body = EndpointIn, responses((status = 200, body = Envelope<bool>)))]
pub async fn delete_callback(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<EndpointIn>,
) -> ApiResult<Response> {
    let id = required_int(b.endpointId, "endpointId")?;
    if !st.store.tenant(m).delete_endpoint(id).await? {
        return Err(not_found(id));
    }
    Ok(Values(true).into_response())
}

/// The signing secret.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[allow(non_snake_case)]
pub struct WebhookSecret {
    /// `whsec_…`: give it to a Standard Webhooks verifier as it is.
    pub secret: String,
    /// The secret before the last rotation, while it still signs (a second signature).
    pub previousSecret: Option<String>,
    pub previousSecretExpireTime: Option<LocalTime>,
    pub rotateTime: LocalTime,
}

fn secret_out(s: SecretRow) -> WebhookSecret {
    let live = s.previous_until.is_some_and(|u| u > crate::store::now());
    WebhookSecret {
        previousSecret: s.previous_secret.filter(|_| live),
        previousSecretExpireTime: s.previous_until.filter(|_| live).map(LocalTime),
        secret: s.secret,
        rotateTime: LocalTime(s.rotated_at),
    }
}

/// 读取签名密钥 (Juhe): the secret that signs this merchant's deliveries (made on first use).
#[utoipa::path(post, path = "/v2/Public/GetWebhookSecret", tag = "Public", security(("bearer" = [])),
    request_body = NoParams, responses((status = 200, body = Envelope<WebhookSecret>)))]
pub async fn get_webhook_secret(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(_): Body<NoParams>,
) -> ApiResult<Response> {
    let s = st
        .store
        .tenant(m)
        .webhook_secret(sign::generate_secret)
        .await?;
    Ok(Values(secret_out(s)).into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct RotateIn {
    /// How long the old secret keeps signing, in seconds (default `webhooks.secret_grace_seconds`, at most 7 days).
    pub graceSeconds: OptInt,
}

/// 轮换签名密钥 (Juhe): a new secret. During the grace period deliveries carry two
/// signatures, so a receiver can switch without losing one.
#[utoipa::path(post, path = "/v2/Public/rotateWebhookSecret", tag = "Public", security(("bearer" = [])),
    request_body = RotateIn, responses((status = 200, body = Envelope<WebhookSecret>)))]
pub async fn rotate_webhook_secret(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<RotateIn>,
) -> ApiResult<Response> {
    let grace = b
        .graceSeconds
        .get()
        .unwrap_or(st.cfg.webhooks.secret_grace_seconds);
    if !(0..=7 * 86_400).contains(&grace) {
        return Err(ApiError::param(
            "graceSeconds",
            "must be between 0 and 604800",
        ));
    }
    let s = st
        .store
        .tenant(m)
        .rotate_webhook_secret(sign::generate_secret(), grace)
        .await?;
    Ok(Values(secret_out(s)).into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct EventListIn {
    /// Only events with a larger id (the number after the last `_` of `eventId`): read incrementally.
    pub minEventId: OptInt,
    pub eventType: OptStr,
    pub wechatId: OptInt,
    pub fansKey: OptStr,
    pub pageIndex: OptInt,
    pub pageSize: OptInt,
}

/// 事件列表 (Juhe): the merchant's stored events in id order (ids become visible in commit
/// order, so reading with `minEventId` never skips one). Events are kept
/// `webhooks.retention_days`.
#[utoipa::path(post, path = "/v2/Public/GetEventList", tag = "Public", security(("bearer" = [])),
    request_body = EventListIn, responses((status = 200, body = Envelope<Vec<Event>>)))]
pub async fn get_event_list(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<EventListIn>,
) -> ApiResult<Response> {
    let pg = page(&st, b.pageIndex, b.pageSize, "pageIndex", "pageSize")?;
    let event_type = match b.eventType.non_empty() {
        Some(t) => Some(known_type("eventType", t)?.to_owned()),
        None => None,
    };
    let f = EventFilter {
        min_event_id: b.minEventId.get(),
        event_type,
        wechat_id: b.wechatId.filter(),
        fan_key: b.fansKey.non_empty().map(str::to_owned),
    };
    let (rows, more) = st.store.tenant(m).events_page(&f, pg).await?;
    let out: Vec<Event> = rows
        .iter()
        .map(|e| payload::event(m, e, st.offset))
        .collect();
    Ok(paged(out, more, pg, None))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct EventIn {
    /// The event (required): its `eventId` (`evt_…`) or the number at its end.
    pub eventId: OptStr,
    /// Only this endpoint.
    pub endpointId: OptInt,
}

fn event_id(m: MerchantId, v: &OptStr) -> ApiResult<i64> {
    let s = required_str(v, "eventId")?;
    payload::parse_event_key(m, &s)
        .ok_or_else(|| ApiError::param("eventId", "is not an event id of this merchant (evt_…)"))
}

fn event_not_found(id: i64) -> ApiError {
    ApiError::from(Rejection::NotFound {
        field: "eventId",
        what: "event",
        id,
    })
}

/// Where an event stands at one endpoint.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[allow(non_snake_case)]
pub struct Delivery {
    pub endpointId: i64,
    /// `pending` (to be sent or retried), `succeeded` or `failed` (no attempt left).
    pub state: String,
    pub attempts: i64,
    /// When the next attempt is due (pending only).
    pub nextAttemptTime: Option<LocalTime>,
}

impl From<DeliveryState> for Delivery {
    fn from(d: DeliveryState) -> Self {
        Delivery {
            endpointId: d.endpoint_id,
            state: d.state.to_owned(),
            attempts: d.attempts,
            nextAttemptTime: d.next_attempt_ms.map(|ms| LocalTime(ms.div_euclid(1000))),
        }
    }
}

/// An event with its deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail {
    pub event: Event,
    pub deliveries: Vec<Delivery>,
}

/// 读取事件 (Juhe): one event as it is delivered, and where it stands at each endpoint.
#[utoipa::path(post, path = "/v2/Public/GetEvent", tag = "Public", security(("bearer" = [])),
    request_body = EventIn, responses((status = 200, body = Envelope<EventDetail>)))]
pub async fn get_event(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<EventIn>,
) -> ApiResult<Response> {
    let id = event_id(m, &b.eventId)?;
    let t = st.store.tenant(m);
    let e = t.event(id).await?.ok_or_else(|| event_not_found(id))?;
    let deliveries = t.event_deliveries(id).await?;
    Ok(Values(EventDetail {
        event: payload::event(m, &e, st.offset),
        deliveries: deliveries.into_iter().map(Delivery::from).collect(),
    })
    .into_response())
}

/// One delivery attempt.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[allow(non_snake_case)]
pub struct Attempt {
    pub eventId: String,
    pub endpointId: i64,
    /// 1, 2, 3 … per (event, endpoint), replays included.
    pub attempt: i64,
    pub attemptTime: LocalTime,
    /// Unix milliseconds of the attempt.
    pub timestamp: i64,
    pub durationMs: i64,
    /// The receiver's HTTP status; 0 when there was no response (refused, timed out).
    pub status: i64,
    /// `succeeded`, `retrying` (another attempt is scheduled) or `failed` (none left).
    pub outcome: String,
    /// Why there was no response, when there was none.
    pub error: Option<String>,
    /// The first 1,024 bytes of the response body.
    pub response: Option<String>,
}

pub fn attempt_out(m: MerchantId, a: AttemptRow) -> Attempt {
    Attempt {
        eventId: payload::event_key(m, a.event_id),
        endpointId: a.endpoint_id,
        attempt: a.attempt,
        attemptTime: LocalTime(a.attempted_ms.div_euclid(1000)),
        timestamp: a.attempted_ms,
        durationMs: a.duration_ms,
        status: a.status,
        outcome: a.outcome,
        error: a.error,
        response: a.response,
    }
}

/// 读取投递记录 (Juhe): every delivery attempt of an event, oldest first.
#[utoipa::path(post, path = "/v2/Public/GetEventAttempts", tag = "Public", security(("bearer" = [])),
    request_body = EventIn, responses((status = 200, body = Envelope<Vec<Attempt>>)))]
pub async fn get_event_attempts(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<EventIn>,
) -> ApiResult<Response> {
    let id = event_id(m, &b.eventId)?;
    let t = st.store.tenant(m);
    if t.event(id).await?.is_none() {
        return Err(event_not_found(id));
    }
    let rows = t.attempts(id, b.endpointId.filter()).await?;
    Ok(super::whole(
        rows.into_iter().map(|a| attempt_out(m, a)).collect(),
    ))
}

/// How many deliveries a replay scheduled.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Replayed {
    pub deliveries: u64,
}

/// 重新投递事件 (Juhe): sends an event again, now, to `endpointId` or to every enabled
/// endpoint that subscribes to its type, with the same `eventId` / `webhook-id`. A delivery
/// still pending is left as it is.
#[utoipa::path(post, path = "/v2/Public/replayEvent", tag = "Public", security(("bearer" = [])),
    request_body = EventIn, responses((status = 200, body = Envelope<Replayed>)))]
pub async fn replay_event(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<EventIn>,
) -> ApiResult<Response> {
    let id = event_id(m, &b.eventId)?;
    let n = st
        .store
        .tenant(m)
        .replay_event(id, b.endpointId.filter())
        .await?
        .ok_or_else(|| event_not_found(id))?;
    Ok(Values(Replayed { deliveries: n }).into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct ReplayFailedIn {
    /// Replay what failed at or after this time (required): Unix seconds or local `yyyy-MM-dd HH:mm:ss`.
    pub since: OptTime,
    /// Only this endpoint.
    pub endpointId: OptInt,
}

/// 重新投递失败事件 (Juhe): sends again every event whose delivery ended failed since a time
/// (for example after a receiver's outage), each with its own `eventId`.
#[utoipa::path(post, path = "/v2/Public/replayFailedEvents", tag = "Public", security(("bearer" = [])),
    request_body = ReplayFailedIn, responses((status = 200, body = Envelope<Replayed>)))]
pub async fn replay_failed_events(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<ReplayFailedIn>,
) -> ApiResult<Response> {
    let since = b
        .since
        .get()
        .ok_or_else(|| ApiError::param("since", "is required"))?;
    let n = st
        .store
        .tenant(m)
        .replay_failed_since(since * 1000, b.endpointId.filter())
        .await?;
    Ok(Values(Replayed { deliveries: n }).into_response())
}
