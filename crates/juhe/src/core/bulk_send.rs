//! Bulk sends (RPA群发): what a task's content may hold, and the rules a saved task meets.
//! The assistant gateway executes the same items, so their shape is decided here once.

use serde_json::{Map, Value};

use super::{Outcome, Rejection};
use crate::store::idempotency::Tx;
use crate::store::misc::BulkSendTask;
use crate::store::Tenant;

/// Item types of `task_content`: the code, a name for messages, and the `data` fields each
/// one requires.
pub const ITEM_TYPES: &[(&str, &str, &[&str])] = &[
    ("0", "text", &["content"]),
    ("1", "image", &["imgName", "imgFormat", "imgMediaUrl"]),
    ("2", "video", &["videoName", "videoFormat", "videoMediaUrl"]),
    ("3", "file", &["fileName", "fileFormat", "fileMediaUrl"]),
    ("4", "link", &["title", "url"]),
    ("5", "mini program", &["appId", "title", "pagePath"]),
    ("6", "voice", &["voiceName", "voiceFormat", "voiceMediaUrl"]),
];

/// Items one task may hold: WeChat shows a burst of many items as spam.
pub const MAX_ITEMS: usize = 20;

/// Checks `task_content` (an array of `{type, data}` items, or that array as a JSON string,
/// as some clients send it) and returns it in canonical form: `type` as a string, only
/// `type` and `data` kept.
pub fn normalise_content(v: &Value) -> Outcome<Value> {
    let parsed;
    let items = match v {
        Value::Array(a) => a,
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).map_err(|e| {
                Rejection::invalid(
                    "task_content",
                    format!("is a string but not a JSON array ({e})"),
                )
            })?;
            match &parsed {
                Value::Array(a) => a,
                _ => {
                    return Err(Rejection::invalid(
                        "task_content",
                        "must be a JSON array of items",
                    ))
                }
            }
        }
        Value::Null => return Err(Rejection::invalid("task_content", "is required")),
        _ => {
            return Err(Rejection::invalid(
                "task_content",
                "must be a JSON array of items",
            ))
        }
    };
    if items.is_empty() {
        return Err(Rejection::invalid(
            "task_content",
            "must hold at least one item",
        ));
    }
    if items.len() > MAX_ITEMS {
        return Err(Rejection::invalid(
            "task_content",
            format!("holds at most {MAX_ITEMS} items"),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("task_content[{i}]");
        let obj = item
            .as_object()
            .ok_or_else(|| Rejection::invalid(&at, "must be an object with `type` and `data`"))?;
        let ty = match obj.get("type") {
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(Rejection::invalid(format!("{at}.type"), "is required")),
        };
        let Some((_, _, fields)) = ITEM_TYPES.iter().find(|(t, _, _)| *t == ty) else {
            return Err(Rejection::invalid(format!("{at}.type"), format!("unknown type {ty:?}; use 0 text, 1 image, 2 video, 3 file, 4 link, 5 mini program, 6 voice")));
        };
        let data = obj
            .get("data")
            .and_then(Value::as_object)
            .ok_or_else(|| Rejection::invalid(format!("{at}.data"), "must be an object"))?;
        for f in *fields {
            match data.get(*f) {
                Some(Value::String(s)) if !s.trim().is_empty() => {}
                _ => return Err(Rejection::invalid(format!("{at}.data.{f}"), "is required")),
            }
        }
        let mut norm = Map::new();
        norm.insert("data".into(), Value::Object(data.clone()));
        norm.insert("type".into(), Value::String(ty));
        out.push(Value::Object(norm));
    }
    Ok(Value::Array(out))
}

/// Checks a task against the merchant's operating accounts and staff. Runs before the
/// write's transaction opens, so no request holds a write connection while it reads.
pub async fn check(t: Tenant<'_>, task: &BulkSendTask) -> Outcome<()> {
    if let Some(w) = t.unknown_wechats(&task.wechat_ids).await?.first() {
        return Err(Rejection::UnknownWechat {
            field: "wechat_ids",
            id: *w,
        });
    }
    if let Some(s) = &task.staff_code {
        if !t.unknown_staff(std::slice::from_ref(s)).await?.is_empty() {
            return Err(Rejection::UnknownStaff {
                field: "staff_code",
                code: s.clone(),
            });
        }
    }
    Ok(())
}

/// Creates a checked task (`id` None) or replaces task `id` in `tx`; returns the task id.
pub async fn save(
    t: Tenant<'_>,
    tx: &mut Tx,
    id: Option<i64>,
    task: &BulkSendTask,
) -> Outcome<i64> {
    // A task that started running is being executed item by item from what was saved;
    // changing it now would make the items disagree with the task.
    if let Some(id) = id {
        if let Some(row) = t.bulk_send(id).await? {
            if row.state != 0 {
                return Err(Rejection::Conflict {
                    field: "ad_bulk_send_id".into(),
                    problem: format!(
                        "bulk-send task {id} has started (state {}); delete it and save a new one",
                        row.state
                    ),
                });
            }
        }
    }
    t.save_bulk_send(tx, id, task)
        .await?
        .ok_or(Rejection::NotFound {
            field: "ad_bulk_send_id",
            what: "bulk-send task",
            id: id.unwrap_or_default(),
        })
}
