//! BulkSend (RPA群发): save, read and delete bulk-send tasks. Stored only; the assistant
//! gateway executes them.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::extract::{idempotent, page, replay_header, Body, IdempotencyKey, Merchant};
use super::{paged, AppState};
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
    /// 0 saved (waiting for `send_time`), 1 running (items handed to the assistants),
    /// 2 finished (every item has a result), 3 cancelled (deleted before it finished).
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
        .route(
            "/v2/BulkSend/GetBulkSendTaskProgress",
            post(get_bulk_send_task_progress),
        )
        .route(
            "/v2/BulkSend/GetBulkSendTaskItems",
            post(get_bulk_send_task_items),
        )
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

/// 删除RPA群发: deletes a task; `values` is `true`. A running task is stopped: its items
/// not yet sent are cancelled (state 3 cancelled). Deleting an already deleted task
/// succeeds again (so a retry is harmless); an id that never existed is a 200101.
#[utoipa::path(post, path = "/v2/BulkSend/DeleteBulkSendTask", tag = "BulkSend", security(("bearer" = [])),
    request_body = BulkSendIdIn, responses((status = 200, body = Envelope<bool>)))]
pub async fn delete_bulk_send_task(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<BulkSendIdIn>,
) -> ApiResult<Response> {
    let id = crate::lenient::required_int(b.ad_bulk_send_id, "ad_bulk_send_id")?;
    // A running task stops too: what has not been sent is cancelled.
    match crate::core::bulk_run::delete(st.store.tenant(m), &st.gateway, id).await? {
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

/// A running bulk send's progress: its state and its per-fan items counted by state.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[allow(non_snake_case)]
pub struct BulkSendProgress {
    pub ad_bulk_send_id: i64,
    /// 0 saved, 1 running, 2 finished, 3 cancelled.
    pub state: i64,
    /// `saved`, `running`, `finished` or `cancelled`.
    pub stateName: String,
    /// Whether the task was deleted (DeleteBulkSendTask).
    pub deleted: bool,
    /// Items (one per account and fan) written when the task started.
    pub total: i64,
    /// Waiting for their turn (pacing, `interval_seconds`).
    pub pending: i64,
    /// Handed to the assistant, no result yet.
    pub delivered: i64,
    /// Sent (the assistant confirmed).
    pub sent: i64,
    /// Failed (the assistant's code, `expired`, or `no_assistant`).
    pub failed: i64,
    /// Cancelled by DeleteBulkSendTask.
    pub cancelled: i64,
}

/// 读取RPA群发进度 (designed): a task's state and its items counted by state. Readable after
/// the task was deleted.
#[utoipa::path(post, path = "/v2/BulkSend/GetBulkSendTaskProgress", tag = "BulkSend", security(("bearer" = [])),
    request_body = BulkSendIdIn, responses((status = 200, body = Envelope<BulkSendProgress>)))]
pub async fn get_bulk_send_task_progress(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<BulkSendIdIn>,
) -> ApiResult<Response> {
    let id = crate::lenient::required_int(b.ad_bulk_send_id, "ad_bulk_send_id")?;
    let t = st.store.tenant(m);
    let Some(s) = t.bulk_state(id).await? else {
        return Err(ApiError::not_found(format!(
            "ad_bulk_send_id: no bulk-send task {id}"
        )));
    };
    let c = t.bulk_counts(id).await?;
    // Between the last result and the scheduler's next round the stored state still says
    // running; the counts already say finished.
    let state = if s.state == crate::store::bulk_run::RUNNING && c.pending + c.delivered == 0 {
        crate::store::bulk_run::FINISHED
    } else {
        s.state
    };
    Ok(Values(BulkSendProgress {
        ad_bulk_send_id: id,
        state,
        stateName: crate::store::bulk_run::state_name(state).to_owned(),
        deleted: s.deleted_at.is_some(),
        total: c.total,
        pending: c.pending,
        delivered: c.delivered,
        sent: c.sent,
        failed: c.failed,
        cancelled: c.cancelled,
    })
    .into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct BulkSendItemsIn {
    /// The bulk-send task id.
    pub ad_bulk_send_id: OptInt,
    /// Only items in this state: 0 pending, 1 delivered, 2 sent, 3 failed, 4 cancelled; -1 all (default).
    pub state: OptInt,
    pub pageIndex: OptInt,
    pub pageSize: OptInt,
}

/// One fan of a bulk send: what became of it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[allow(non_snake_case)]
pub struct BulkSendItem {
    /// The device task's id (GetTaskResult reads it too).
    pub taskId: i64,
    pub ad_wechat_id: i64,
    /// The operating account's original WeChat id.
    pub wechat_key: String,
    /// The fan (`ad_friend_wenober`).
    pub friend_key: String,
    /// 0 pending, 1 delivered, 2 sent, 3 failed, 4 cancelled.
    pub state: i64,
    /// `pending`, `delivered`, `succeeded`, `failed` or `cancelled`.
    pub stateName: String,
    /// Times handed to the assistant.
    pub attempts: i64,
    /// Why it failed (`expired`, `no_assistant`, `cancelled`, or the assistant's code).
    pub result_code: Option<String>,
    pub result_message: Option<String>,
    /// The GetChat record of the sent message (its first item).
    pub ad_chatting_id: Option<i64>,
    /// The assistant's message id of the sent message.
    pub ad_sermsgid: Option<String>,
    /// Not sent before this time (pacing).
    pub scheduledTime: LocalTime,
    pub deliveredTime: Option<LocalTime>,
    pub finishedTime: Option<LocalTime>,
}

impl From<crate::store::bulk_run::BulkItemRow> for BulkSendItem {
    fn from(r: crate::store::bulk_run::BulkItemRow) -> Self {
        BulkSendItem {
            taskId: r.task_id,
            ad_wechat_id: r.wechat_id,
            wechat_key: r.account,
            friend_key: r.fan_key.unwrap_or_default(),
            state: r.state,
            stateName: crate::store::tasks::state_name(r.state).to_owned(),
            attempts: r.attempts,
            result_code: r.result_code,
            result_message: r.result_message,
            ad_chatting_id: r.chat_id,
            ad_sermsgid: r.sermsgid,
            scheduledTime: LocalTime(r.not_before.div_euclid(1000).max(r.created_at)),
            deliveredTime: r.delivered_at.map(LocalTime),
            finishedTime: r.finished_at.map(LocalTime),
        }
    }
}

/// 读取RPA群发明细 (designed): a task's items, one per account and fan, in the order they are
/// sent, paged.
#[utoipa::path(post, path = "/v2/BulkSend/GetBulkSendTaskItems", tag = "BulkSend", security(("bearer" = [])),
    request_body = BulkSendItemsIn, responses((status = 200, body = Envelope<Vec<BulkSendItem>>)))]
pub async fn get_bulk_send_task_items(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<BulkSendItemsIn>,
) -> ApiResult<Response> {
    let id = crate::lenient::required_int(b.ad_bulk_send_id, "ad_bulk_send_id")?;
    let pg = page(&st, b.pageIndex, b.pageSize, "pageIndex", "pageSize")?;
    let state = b.state.filter();
    if state.is_some_and(|s| !(0..=4).contains(&s)) {
        return Err(ApiError::param("state", "must be -1, 0, 1, 2, 3 or 4"));
    }
    let t = st.store.tenant(m);
    if t.bulk_state(id).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "ad_bulk_send_id: no bulk-send task {id}"
        )));
    }
    let (rows, more) = t.bulk_items_page(id, state, pg).await?;
    Ok(paged(super::wire::<_, BulkSendItem>(rows), more, pg, None))
}
