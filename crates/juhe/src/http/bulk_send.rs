//! BulkSend (RPA群发): save, read and delete bulk-send tasks. Stored only; the assistant
//! gateway executes them.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::extract::{idempotent, replay_header, Body, IdempotencyKey, Merchant};
use super::AppState;
use crate::error::{ApiError, ApiResult, Code, Envelope, Values};
use crate::lenient::{check_str, IntList, OptInt, OptStr, OptTime, StrList, MAX_TEXT};
use crate::store::misc::{BulkSendTask, BulkSendTaskOut, Deleted};

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
const ITEM_TYPES: &[(&str, &str, &[&str])] = &[
    ("0", "text", &["content"]),
    ("1", "image", &["imgName", "imgFormat", "imgMediaUrl"]),
    ("2", "video", &["videoName", "videoFormat", "videoMediaUrl"]),
    ("3", "file", &["fileName", "fileFormat", "fileMediaUrl"]),
    ("4", "link", &["title", "url"]),
    ("5", "mini program", &["appId", "title", "pagePath"]),
    ("6", "voice", &["voiceName", "voiceFormat", "voiceMediaUrl"]),
];

/// Most items one task may carry (WeChat sends each as its own message).
const MAX_ITEMS: usize = 20;

/// A task to save. With `ad_bulk_send_id` it replaces that task; without, it creates one.
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

/// Checks and normalises the content items: `type` becomes a string, `data` must carry the
/// type's fields as non-empty strings. The error names the item, e.g. `task_content[2].data.imgMediaUrl`.
pub fn normalise_content(v: &Value) -> Result<Value, ApiError> {
    let parsed;
    let items = match v {
        Value::Array(a) => a,
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).map_err(|e| {
                ApiError::param(
                    "task_content",
                    format!("is a string but not a JSON array ({e})"),
                )
            })?;
            match &parsed {
                Value::Array(a) => a,
                _ => {
                    return Err(ApiError::param(
                        "task_content",
                        "must be a JSON array of items",
                    ))
                }
            }
        }
        Value::Null => return Err(ApiError::param("task_content", "is required")),
        _ => {
            return Err(ApiError::param(
                "task_content",
                "must be a JSON array of items",
            ))
        }
    };
    if items.is_empty() {
        return Err(ApiError::param(
            "task_content",
            "must hold at least one item",
        ));
    }
    if items.len() > MAX_ITEMS {
        return Err(ApiError::param(
            "task_content",
            format!("holds at most {MAX_ITEMS} items"),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("task_content[{i}]");
        let obj = item
            .as_object()
            .ok_or_else(|| ApiError::param(&at, "must be an object with `type` and `data`"))?;
        let ty = match obj.get("type") {
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(ApiError::param(&format!("{at}.type"), "is required")),
        };
        let Some((_, _, fields)) = ITEM_TYPES.iter().find(|(t, _, _)| *t == ty) else {
            return Err(ApiError::param(&format!("{at}.type"), format!("unknown type {ty:?}; use 0 text, 1 image, 2 video, 3 file, 4 link, 5 mini program, 6 voice")));
        };
        let data = obj
            .get("data")
            .and_then(Value::as_object)
            .ok_or_else(|| ApiError::param(&format!("{at}.data"), "must be an object"))?;
        for f in *fields {
            match data.get(*f) {
                Some(Value::String(s)) if !s.trim().is_empty() => {}
                _ => return Err(ApiError::param(&format!("{at}.data.{f}"), "is required")),
            }
        }
        check_strings(&Value::Object(data.clone()), &format!("{at}.data"))?;
        let mut norm = Map::new();
        norm.insert("data".into(), Value::Object(data.clone()));
        norm.insert("type".into(), Value::String(ty));
        out.push(Value::Object(norm));
    }
    Ok(Value::Array(out))
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
    let content = normalise_content(&b.task_content)?;
    let t = st.store.tenant(m);
    if let Some(w) = t.unknown_wechats(&wechat_ids).await?.first() {
        return Err(ApiError::new(
            Code::WechatNotFound,
            format!("wechat_ids: no operating account {w}"),
        ));
    }
    let staff_code = b.staff_code.non_empty().map(str::to_owned);
    if let Some(s) = &staff_code {
        if !t.unknown_staff(std::slice::from_ref(s)).await?.is_empty() {
            return Err(ApiError::new(
                Code::StaffNotFound,
                format!("staff_code: no staff member {s}"),
            ));
        }
    }
    let task = BulkSendTask {
        task_name,
        wechat_ids,
        fans_keys: b.fans_keys.0.clone(),
        task_content: content,
        send_time: b.send_time.get(),
        interval_seconds: interval,
        staff_code,
    };
    let id = b.ad_bulk_send_id.get();
    let (v, replayed) = idempotent(
        &st,
        m,
        &key,
        "BulkSend/SaveBulkSendTask",
        &b,
        |mut tx| async move {
            match t.save_bulk_send(&mut tx, id, &task).await? {
                Some(id) => Ok((tx, serde_json::json!(id))),
                None => Err(ApiError::not_found(format!(
                    "ad_bulk_send_id: no bulk-send task {}",
                    id.unwrap_or_default()
                ))),
            }
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
        Some(t) => Ok(Values(t).into_response()),
        None => Err(ApiError::not_found(format!(
            "ad_bulk_send_id: no bulk-send task {id}"
        ))),
    }
}
