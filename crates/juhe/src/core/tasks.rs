//! Work for assistants: the message shapes an integrator can send, enqueueing a task, and
//! what a task's result does (a sent message becomes a GetChat record, in the result's
//! transaction). See docs/assistant-protocol.md §5.

use serde::{Deserialize, Serialize};

use super::{chats, Outcome, Rejection};
use crate::store::chats::NewChat;
use crate::store::idempotency::Tx;
use crate::store::tasks::{Enqueued, Finished, NewTask, TaskResult, TaskRow};
use crate::store::Tenant;

/// Task kinds (docs/assistant-protocol.md §5).
pub const SEND_MESSAGE: &str = "sendMessage";
pub const BULK_SEND_ITEM: &str = "bulkSendItem";
pub const TAKEOVER: &str = "takeover";

/// One message to send, in the shape of `doSendPublicMes` (and of a task's payload).
/// Field names are the protocol's camelCase; absent fields are omitted.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub msg_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumb_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_wxid: Option<String>,
}

/// Message types an integrator can send: the name, the GetChat `ad_chatting_sate` the sent
/// message is recorded with, and the fields it requires (documented names).
pub const MESSAGE_TYPES: &[(&str, i64, &[&str])] = &[
    ("text", 1, &["Text"]),
    ("image", 3, &["Url"]),
    ("video", 43, &["Url"]),
    ("file", 496, &["Url", "Title"]),
    ("link", 49, &["Url", "Title"]),
    ("miniprogram", 4933, &["AppId", "Title", "PagePath"]),
    ("card", 42, &["CardWxid"]),
];

impl Message {
    fn field(&self, name: &str) -> Option<&str> {
        match name {
            "Text" => self.text.as_deref(),
            "Url" => self.url.as_deref(),
            "Title" => self.title.as_deref(),
            "AppId" => self.app_id.as_deref(),
            "PagePath" => self.page_path.as_deref(),
            "CardWxid" => self.card_wxid.as_deref(),
            _ => None,
        }
    }

    /// Checks the type and its required fields; `prefix` is where the message stands in
    /// the request (empty at the top level).
    pub fn check(&self, prefix: &str) -> Outcome<()> {
        let Some((_, _, required)) = MESSAGE_TYPES
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(&self.msg_type))
        else {
            let names: Vec<&str> = MESSAGE_TYPES.iter().map(|(n, _, _)| *n).collect();
            return Err(Rejection::invalid(
                format!("{prefix}MsgType"),
                format!("must be one of {}", names.join(", ")),
            ));
        };
        for f in *required {
            if self.field(f).is_none_or(|v| v.trim().is_empty()) {
                return Err(Rejection::invalid(
                    format!("{prefix}{f}"),
                    format!("is required for MsgType {}", self.msg_type),
                ));
            }
        }
        Ok(())
    }

    /// The message type's canonical (lower-case) name.
    pub fn canonical(mut self) -> Message {
        self.msg_type = self.msg_type.to_ascii_lowercase();
        self
    }

    /// The GetChat record of this message once sent: type, content and url-encoded
    /// `ad_chatting_resvred`, formatted as the GetChat table shows received messages.
    pub fn as_chat_parts(&self) -> (i64, String, Option<String>) {
        // `voice` is sendable only as a bulk-send item (content type 6), so it is not in
        // MESSAGE_TYPES, which lists what doSendPublicMes accepts.
        let kind = if self.msg_type.eq_ignore_ascii_case("voice") {
            34
        } else {
            MESSAGE_TYPES
                .iter()
                .find(|(n, _, _)| n.eq_ignore_ascii_case(&self.msg_type))
                .map(|(_, k, _)| *k)
                .unwrap_or(1)
        };
        let url = self.url.clone().unwrap_or_default();
        let title = self.title.clone().unwrap_or_default();
        let (content, resvred) = match kind {
            3 => (format!("imgs[{url}]"), None),
            34 => (
                format!("audio[{url}]"),
                Some(serde_json::json!({"downloadKey": url, "type": -1, "videoLen": 0})),
            ),
            43 => (
                format!("video[{url}]"),
                Some(
                    serde_json::json!({"title": title, "description": self.description.clone().unwrap_or_default(), "url": url}),
                ),
            ),
            496 => (
                format!("file[{url}]"),
                Some(serde_json::json!({"title": title, "totalLen": 0, "url": url})),
            ),
            49 => (
                format!("a({url})"),
                Some(serde_json::json!({"title": title, "url": url})),
            ),
            4933 => (
                title.clone(),
                Some(serde_json::json!({
                    "appIconUrl": self.thumb_url.clone().unwrap_or_default(),
                    "displayName": self.display_name.clone().unwrap_or_default(),
                    "downloadKey": "",
                    "title": title,
                })),
            ),
            42 => (
                format!(
                    "MP[{}]",
                    if title.is_empty() {
                        self.card_wxid.clone().unwrap_or_default()
                    } else {
                        title.clone()
                    }
                ),
                Some(serde_json::json!({"nickname": title})),
            ),
            _ => (self.text.clone().unwrap_or_default(), None),
        };
        let resvred = resvred.map(|v| {
            percent_encoding::utf8_percent_encode(
                &v.to_string(),
                percent_encoding::NON_ALPHANUMERIC,
            )
            .to_string()
        });
        (kind, content, resvred)
    }
}

/// The payload of a `sendMessage` task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SendPayload {
    pub to: String,
    pub relation_type: i64,
    #[serde(flatten)]
    pub message: Message,
    /// The staff member on whose behalf it is sent, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staff_code: Option<String>,
}

/// The payload of a `bulkSendItem` task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BulkItemPayload {
    pub bulk_task_id: i64,
    pub to: String,
    pub items: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staff_code: Option<String>,
}

/// Enqueues a task for the device serving `wechat_id`, in the caller's transaction.
/// Refuses when no device serves the account (nothing could ever execute it).
pub async fn enqueue_in(t: Tenant<'_>, tx: &mut Tx, task: &NewTask) -> Outcome<Enqueued> {
    t.enqueue_task_in(tx, task)
        .await?
        .ok_or_else(|| Rejection::NoAssistant {
            field: "WechatId",
            id: task.wechat_id,
        })
}

/// What recording a result did.
#[derive(Debug)]
pub enum ResultOutcome {
    /// Recorded now; the chat id of the sent message, when there is one.
    Recorded(TaskRow),
    /// The task already had a result: a repeat, changed nothing.
    Duplicate(TaskRow),
    /// No such task for this device.
    Unknown,
    /// The result is not acceptable for this task (nothing changed), for example a
    /// successful send without the sent message's id.
    Refused(Rejection),
}

/// One assistant result for one of its tasks.
#[derive(Debug, Clone)]
pub struct ResultIn {
    pub task_id: i64,
    pub result: TaskResult,
    /// When the message was sent (Unix seconds): the GetChat record's time.
    pub sent_at: i64,
}

/// Records an assistant's results for its tasks in one transaction: each task's state,
/// and for a successful send the sent message as a GetChat record (`issend` 1) under the
/// assistant's message id, so that the echo the assistant reports later is a duplicate, not
/// a second record. The number of statements does not grow with the batch: an assistant
/// answers a burst of tasks at once (docs/benchmarks.md, "send round trip"). One outcome
/// per result, in order; a refused or unknown result does not stop the others.
pub async fn record_results(
    t: Tenant<'_>,
    device_id: i64,
    items: &[ResultIn],
) -> Outcome<Vec<ResultOutcome>> {
    let mut tx = t.begin().await?;
    let pairs: Vec<(i64, &TaskResult)> = items.iter().map(|i| (i.task_id, &i.result)).collect();
    let finished = t
        .finish_tasks_in(&mut tx, device_id, &pairs, |row, result| {
            if result.ok
                && result.sermsgid.is_none()
                && matches!(row.kind.as_str(), SEND_MESSAGE | BULK_SEND_ITEM)
            {
                Err(Rejection::invalid(
                    "msgId",
                    "is required when a message was sent (the sent message's id)",
                ))
            } else {
                Ok(())
            }
        })
        .await?;
    let mut out: Vec<ResultOutcome> = Vec::with_capacity(items.len());
    // The sent messages of the whole batch, one insert; `spans` says whose they are.
    let mut chats: Vec<NewChat> = Vec::new();
    let mut spans: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
    for (i, f) in finished.into_iter().enumerate() {
        out.push(match f {
            Err(r) => ResultOutcome::Refused(r),
            Ok(Finished::Unknown) => ResultOutcome::Unknown,
            Ok(Finished::Already(row)) => ResultOutcome::Duplicate(row),
            Ok(Finished::Now(row)) => {
                let item = &items[i];
                if item.result.ok {
                    let sent = sent_chats(&row, item.result.sermsgid.as_deref(), item.sent_at);
                    if !sent.is_empty() {
                        spans.push((i, chats.len()..chats.len() + sent.len()));
                        chats.extend(sent);
                    }
                }
                ResultOutcome::Recorded(row)
            }
        });
    }
    if !chats.is_empty() {
        let ids = chats::record_in(t, &mut tx, &chats).await?;
        // Each task links to the first of its messages that went in. All of them, unless
        // an echo of a message was reported before the result (then it is a duplicate).
        let id_of: Vec<Option<i64>> = if ids.len() == chats.len() {
            ids.iter().copied().map(Some).collect()
        } else {
            let stored = t.chat_keys_in(&mut tx, &ids).await?;
            chats
                .iter()
                .map(|c| stored.get(&(c.wechat_id, c.sermsgid.clone())).copied())
                .collect()
        };
        let mut links = Vec::with_capacity(spans.len());
        for (i, range) in spans {
            if let Some(id) = id_of[range].iter().flatten().next() {
                if let ResultOutcome::Recorded(row) = &mut out[i] {
                    row.chat_id = Some(*id);
                    links.push((row.task_id, *id));
                }
            }
        }
        t.set_task_chats_in(&mut tx, &links).await?;
    }
    for o in &out {
        if let ResultOutcome::Recorded(row) = o {
            for e in crate::store::tasks::task_events(row) {
                tx.emit(e);
            }
            if let Some(bulk) = row.bulk_task_id {
                tx.note_bulk_item(bulk, row.fan_key.clone(), row.state == 2);
            }
        }
    }
    tx.commit().await?;
    Ok(out)
}

/// The chat records a successful task stands for: one per message it sent. Item `i > 0`
/// of a bulk-send item gets the message id `"{msgId}#{i}"`.
fn sent_chats(row: &TaskRow, msg_id: Option<&str>, at: i64) -> Vec<NewChat> {
    let Some(msg_id) = msg_id.filter(|s| !s.trim().is_empty()) else {
        return Vec::new();
    };
    let (to, staff, messages): (String, Option<String>, Vec<Message>) = match row.kind.as_str() {
        SEND_MESSAGE => match serde_json::from_str::<SendPayload>(&row.payload) {
            Ok(p) => (p.to, p.staff_code, vec![p.message]),
            Err(_) => return Vec::new(),
        },
        BULK_SEND_ITEM => match serde_json::from_str::<BulkItemPayload>(&row.payload) {
            Ok(p) => (p.to, p.staff_code, p.items),
            Err(_) => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (msg_type, content, resvred) = m.as_chat_parts();
            NewChat {
                wechat_id: row.wechat_id,
                talker: to.clone(),
                issend: 1,
                msg_type,
                content,
                resvred,
                sermsgid: if i == 0 {
                    msg_id.to_owned()
                } else {
                    format!("{msg_id}#{i}")
                },
                chat_time: at,
                staff_code: staff.clone(),
                voice_txt: None,
                expand: serde_json::json!({"taskId": row.task_id}).to_string(),
            }
        })
        .collect()
}

/// The operating account a request names: its `ad_wechat_id` (digits) or its original
/// WeChat id, as the documented examples use both.
pub async fn account_id(t: Tenant<'_>, key: &str, field: &'static str) -> Outcome<i64> {
    let key = key.trim();
    if let Ok(id) = key.parse::<i64>() {
        if t.unknown_wechats(&[id]).await?.is_empty() {
            return Ok(id);
        }
    }
    match t.wechat_by_original(key).await? {
        Some((id, _)) => Ok(id),
        None => Err(match key.parse::<i64>() {
            Ok(id) => Rejection::UnknownWechat { field, id },
            Err(_) => Rejection::invalid(
                field,
                format!(
                    "no operating account {key:?} (give its ad_wechat_id or original WeChat id)"
                ),
            ),
        }),
    }
}

/// The recipient must be a fan (or group) of the account: a message to a stranger would
/// only fail on the phone, minutes later.
pub async fn check_recipient(
    t: Tenant<'_>,
    wechat_id: i64,
    to: &str,
    field: &'static str,
) -> Outcome<()> {
    if t.fan_exists(wechat_id, to).await? {
        Ok(())
    } else {
        Err(Rejection::UnknownFan {
            field,
            fan: to.to_owned(),
            wechat_id,
        })
    }
}
