//! BulkSend (RPA群发): save, read and delete bulk-send tasks. Stored only; the assistant
//! gateway executes them.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::extract::{idempotent, replay_header, Body, IdempotencyKey, Merchant};
use super::AppState;
use crate::error::{ApiError, ApiResult, Envelope, Values};
use crate::lenient::{check_str, IntList, OptInt, OptStr, OptTime, StrList, MAX_TEXT};
use crate::store::misc::{BulkRow, BulkSendTask, Deleted};
use crate::timefmt::LocalTime;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct BulkSendTaskOut {
    pub ad_bulk_send_id: i64,
    pub task_name: String,
    pub wechat_ids: Vec<i64>,
    pub fans_keys: Vec<String>,
    /// The content items, `[{"type": "0", "data": {...}}, ...]`.
    #[schema(value_type = Vec<Object>)]
    pub task_content: serde_json::Value,
    pub send_time: Option<LocalTime>,
    pub interval_seconds: i64,
    pub staff_code: Option<String>,
    /// 0 saved (waiting), 1 running, 2 finished, 3 cancelled. Only 0 exists until the
    /// assistant gateway executes tasks.
    pub state: i64,
    pub create_time: LocalTime,
    pub update_time: LocalTime,
}

impl From<BulkRow> for BulkSendTaskOut {
    fn from(r: BulkRow) -> Self {
        BulkSendTaskOut {
            ad_bulk_send_id: r.task_id,
            task_name: r.task_name,
            wechat_ids: serde_json::from_str(&r.wechat_ids).unwrap_or_default(),
            fans_keys: serde_json::from_str(&r.fans_keys).unwrap_or_default(),
            task_content: serde_json::from_str(&r.task_content).unwrap_or(serde_json::Value::Null),
            send_time: r.send_time.map(LocalTime),
            interval_seconds: r.interval_seconds,
            staff_code: r.staff_code,
            state: r.state,
            create_time: LocalTime(r.created_at),
            update_time: LocalTime(r.updated_at),
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/BulkSend/SaveBulkSendTask", post(save_bulk_send_task))
        .route(
            "/v2/BulkSend/DeleteBulkSendTask",
            post(delete_bulk_send_task),
        )
        .route("/v2/BulkSend/GetBulkSendTask", post(get_bulk_send_task))
}

/// Content item types and their required `data` fields. 0–2 are the original's; 3–6
/// are designed in the same style (see docs/api.md).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(default)]
pub struct SaveBulkSendTaskIn {
    /// The task to update; absent to create a new task.
    pub ad_bulk_send_id: OptInt,
    /// Task name (required).
    pub task_name: OptStr,
    /// Operating accounts that send (required, at least one).
    #[schema(value_type = Vec<i64>)]
    pub wechat_ids: IntList,
    /// Fans (original WeChat ids) to send to; empty for every valid fan of those accounts.
    pub fans_keys: StrList,
    /// When to start (`yyyy-MM-dd HH:mm:ss` or Unix seconds); absent to start as soon as possible.
    pub send_time: OptTime,
    /// Seconds between two fans, to pace the account (default 5, 1–3600).
    pub interval_seconds: OptInt,
    /// Staff member the task belongs to.
    pub staff_code: OptStr,
    /// The messages: an array of `{"type": "0", "data": {...}}` items, or that array as a
    /// JSON string. Types: 0 text, 1 image, 2 video, 3 file, 4 link, 5 mini program, 6 voice.
    #[schema(value_type = Vec<Object>)]
    pub task_content: Value,
}

/// Every string inside a content item (keys too) must fit the text limit and hold no NUL:
/// the item is stored as JSON and sent on to WeChat as it is.
fn check_strings(v: &Value, at: &str) -> Result<(), ApiError> {
    match v {
        Value::String(s) => check_str(s, MAX_TEXT).map_err(|e| ApiError::param(at, e)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| check_strings(x, &format!("{at}[{i}]"))),
        Value::Object(o) => o.iter().try_for_each(|(k, x)| {
            let here = format!("{at}.{k}");
            check_str(k, MAX_TEXT).map_err(|e| ApiError::param(&here, e))?;
            check_strings(x, &here)
        }),
        _ => Ok(()),
    }
}

/// 保存RPA群发: creates or updates a bulk-send task; `values` is the task id
/// (`ad_bulk_send_id`). Send `Idempotency-Key` to make a create safe to retry.
#[utoipa::path(post, path = "/v2/BulkSend/SaveBulkSendTask", tag = "BulkSend", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create return the first task id")),
    request_body = SaveBulkSendTaskIn, responses((status = 200, body = Envelope<i64>)))]
pub async fn save_bulk_send_task(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    key: IdempotencyKey,
    Body(b): Body<SaveBulkSendTaskIn>,
) -> ApiResult<Response> {
    let task_name = crate::lenient::required_str(&b.task_name, "task_name")?;
    let mut wechat_ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, w) in b.wechat_ids.0.iter().enumerate() {
        let w = w.get().ok_or_else(|| {
            ApiError::param(
                &format!("wechat_ids[{i}]"),
                "must be an operating account id",
            )
        })?;
        // A repeated id is harmless; dropping it keeps the task and the lookup small.
        if seen.insert(w) {
            wechat_ids.push(w);
        }
    }
    if wechat_ids.is_empty() {
        return Err(ApiError::param(
            "wechat_ids",
            "must name at least one operating account",
        ));
    }
    let interval = b.interval_seconds.get().unwrap_or(5);
    if !(1..=3600).contains(&interval) {
        return Err(ApiError::param(
            "interval_seconds",
            "must be between 1 and 3600",
        ));
    }
    check_strings(&b.task_content, "task_content")?;
    let content = crate::core::bulk_send::normalise_content(&b.task_content)?;
    let t = st.store.tenant(m);
    let staff_code = b.staff_code.non_empty().map(str::to_owned);
    let task = BulkSendTask {
        task_name,
        wechat_ids,
        fans_keys: b.fans_keys.0.clone(),
        task_content: content,
        send_time: b.send_time.get(),
        interval_seconds: interval,
        staff_code,
    };
    let task = &task;
    let id = b.ad_bulk_send_id.get();
    let (v, replayed) = idempotent(
        &st,
        m,
        &key,
        "BulkSend/SaveBulkSendTask",
        &b,
        // The domain's checks run after the key lookup and before the transaction.
        || async {
            crate::core::bulk_send::check(t, task)
                .await
                .map_err(ApiError::from)
        },
        |mut tx, ()| async move {
            let id = crate::core::bulk_send::save(t, &mut tx, id, task).await?;
            Ok((tx, serde_json::json!(id)))
        },
    )
    .await?;
    Ok(replay_header(Values(v).into_response(), replayed))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct BulkSendIdIn {
    /// The bulk-send task id.
    pub ad_bulk_send_id: OptInt,
}

/// 删除RPA群发: deletes a task; `values` is `true`. Deleting an already deleted task
/// succeeds again (so a retry is harmless); an id that never existed is a 200101.
#[utoipa::path(post, path = "/v2/BulkSend/DeleteBulkSendTask", tag = "BulkSend", security(("bearer" = [])),
    request_body = BulkSendIdIn, responses((status = 200, body = Envelope<bool>)))]
pub async fn delete_bulk_send_task(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<BulkSendIdIn>,
) -> ApiResult<Response> {
    let id = crate::lenient::required_int(b.ad_bulk_send_id, "ad_bulk_send_id")?;
    match st.store.tenant(m).delete_bulk_send(id).await? {
        Deleted::Now | Deleted::Already => Ok(Values(true).into_response()),
        Deleted::Missing => Err(ApiError::not_found(format!(
            "ad_bulk_send_id: no bulk-send task {id}"
        ))),
    }
}

/// Reads one task back (designed here: the original has no read endpoint).
#[utoipa::path(post, path = "/v2/BulkSend/GetBulkSendTask", tag = "BulkSend", security(("bearer" = [])),
    request_body = BulkSendIdIn, responses((status = 200, body = Envelope<BulkSendTaskOut>)))]
pub async fn get_bulk_send_task(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<BulkSendIdIn>,
) -> ApiResult<Response> {
    let id = crate::lenient::required_int(b.ad_bulk_send_id, "ad_bulk_send_id")?;
    match st.store.tenant(m).bulk_send(id).await? {
        Some(t) => Ok(Values(BulkSendTaskOut::from(t)).into_response()),
        None => Err(ApiError::not_found(format!(
            "ad_bulk_send_id: no bulk-send task {id}"
        ))),
    }
}
