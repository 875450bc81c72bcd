//! ChatMess actions that make an assistant do something: send a message
//! (`doSendPublicMes`) and read what became of it (`GetTaskResult`). The message is stored
//! as a task before the answer, and executed by the assistant of the operating account
//! (docs/assistant-protocol.md).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{idempotent, replay_header, Body, IdempotencyKey, Merchant};
use super::AppState;
use crate::core::tasks::{self as tasks, Message, SendPayload};
use crate::error::{ApiError, ApiResult, Envelope, Values};
use crate::lenient::{required_str, OptInt, OptStr, OptText};
use crate::store::tasks::{state_name, NewTask, TaskRow};
use crate::timefmt::LocalTime;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/ChatMess/doSendPublicMes", post(do_send_public_mes))
        .route("/v2/ChatMess/GetTaskResult", post(get_task_result))
}

/// 发送消息: a message to a fan or a group, sent by the operating account's assistant.
/// Field names as documented (PascalCase); the types after `video` are Juhe's design.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct SendIn {
    /// Operating account (运营机): its `ad_wechat_id` (number or numeric string) or its
    /// original WeChat id (required).
    pub WechatId: OptStr,
    /// Recipient: the fan's original id (`ad_friend_wenober`) or the group's id (required).
    pub ToUserName: OptStr,
    /// 0 a fan (default), 1 a group.
    pub RelationType: OptInt,
    /// `text`, `image`, `video`, `file`, `link`, `miniprogram` or `card` (required).
    pub MsgType: OptStr,
    /// Text of a `text` message (at most 20000 characters).
    pub Text: OptText,
    /// Media URL (`image`, `video`, `file`) or the link (`link`). A video URL must end with
    /// the file's suffix (e.g. `.mp4`) for WeChat to play it.
    pub Url: OptStr,
    /// File suffix of the media (`jpg`, `mp4`, `pdf`).
    pub Format: OptStr,
    /// Title: of a video, file (its name), link, mini-program, or the name on a card.
    pub Title: OptStr,
    /// Description of a video or link.
    pub Description: OptStr,
    /// Thumbnail URL of a link or mini-program.
    pub ThumbUrl: OptStr,
    /// Mini-program app id (`miniprogram`).
    pub AppId: OptStr,
    /// Mini-program page path (`miniprogram`).
    pub PagePath: OptStr,
    /// Mini-program display name.
    pub DisplayName: OptStr,
    /// The contact to share (`card`): their original WeChat id.
    pub CardWxid: OptStr,
    /// Staff member sending it (shown as the record's `ad_staff_code`).
    pub StaffCode: OptStr,
}

/// A task and what became of it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct TaskOut {
    /// The task's id: read its result with `GetTaskResult`.
    #[serde(rename = "taskId")]
    pub task_id: i64,
    /// `sendMessage`, `bulkSendItem` or `takeover`.
    pub kind: String,
    /// `pending` (waiting for the assistant, e.g. offline or paced), `delivered` (the
    /// assistant has it), `succeeded`, `failed` or `cancelled`.
    pub state: String,
    pub ad_wechat_id: i64,
    /// The fan or group it is for, when there is one.
    pub ad_friend_wenober: Option<String>,
    /// How many times it was handed to an assistant.
    pub attempts: i64,
    #[serde(rename = "createTime")]
    pub create_time: LocalTime,
    /// When it fails with `expired` unless finished before.
    #[serde(rename = "expireTime")]
    pub expire_time: LocalTime,
    #[serde(rename = "finishTime")]
    pub finish_time: Option<LocalTime>,
    /// Why it failed: `expired`, `cancelled`, or the assistant's code.
    #[serde(rename = "resultCode")]
    pub result_code: Option<String>,
    #[serde(rename = "resultMessage")]
    pub result_message: Option<String>,
    /// The sent message's id (`ad_sermsgid`) once sent.
    pub ad_sermsgid: Option<String>,
    /// The sent message's GetChat record, once sent.
    pub ad_chatting_id: Option<i64>,
}

impl From<TaskRow> for TaskOut {
    fn from(r: TaskRow) -> Self {
        TaskOut {
            task_id: r.task_id,
            kind: r.kind,
            state: state_name(r.state).to_owned(),
            ad_wechat_id: r.wechat_id,
            ad_friend_wenober: r.fan_key,
            attempts: r.attempts,
            create_time: LocalTime(r.created_at),
            expire_time: LocalTime(r.expires_at),
            finish_time: r.finished_at.map(LocalTime),
            result_code: r.result_code,
            result_message: r.result_message,
            ad_sermsgid: r.sermsgid,
            ad_chatting_id: r.chat_id,
        }
    }
}

fn opt(s: &OptStr) -> Option<String> {
    s.non_empty().map(str::to_owned)
}

/// 发送消息: queues a message for the operating account's assistant and answers at once
/// with the task (`state` `pending`). When the assistant confirms, the message is in GetChat
/// with `ad_chatting_issend` = 1 and the task `succeeded`; read the outcome with
/// `GetTaskResult`. Send `Idempotency-Key` to make a retry return the same task.
#[utoipa::path(post, path = "/v2/ChatMess/doSendPublicMes", tag = "ChatMess", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first task instead of sending twice")),
    request_body = SendIn, responses((status = 200, body = Envelope<TaskOut>)))]
pub async fn do_send_public_mes(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    key: IdempotencyKey,
    Body(b): Body<SendIn>,
) -> ApiResult<Response> {
    let account = required_str(&b.WechatId, "WechatId")?;
    let to = required_str(&b.ToUserName, "ToUserName")?;
    let relation_type = b.RelationType.get().unwrap_or(0);
    if relation_type != 0 && relation_type != 1 {
        return Err(ApiError::param(
            "RelationType",
            "must be 0 (fan) or 1 (group)",
        ));
    }
    let message = Message {
        msg_type: required_str(&b.MsgType, "MsgType")?,
        text: opt(&b.Text),
        url: opt(&b.Url),
        format: opt(&b.Format),
        title: opt(&b.Title),
        description: opt(&b.Description),
        thumb_url: opt(&b.ThumbUrl),
        app_id: opt(&b.AppId),
        page_path: opt(&b.PagePath),
        display_name: opt(&b.DisplayName),
        card_wxid: opt(&b.CardWxid),
    };
    message.check("")?;
    let staff_code = opt(&b.StaffCode);
    let tenant = st.store.tenant(m);
    let ttl = st.cfg.gateway.task_ttl_seconds;
    let (to_check, staff_check) = (to.clone(), staff_code.clone());
    let (v, replayed) = idempotent(
        &st,
        m,
        &key,
        "ChatMess/doSendPublicMes",
        &b,
        || async {
            let wechat_id = tasks::account_id(tenant, &account, "WechatId").await?;
            tasks::check_recipient(tenant, wechat_id, &to_check, "ToUserName").await?;
            if let Some(code) = &staff_check {
                if !tenant
                    .unknown_staff(std::slice::from_ref(code))
                    .await?
                    .is_empty()
                {
                    return Err(ApiError::from(crate::core::Rejection::UnknownStaff {
                        field: "StaffCode",
                        code: code.clone(),
                    }));
                }
            }
            Ok(wechat_id)
        },
        |mut tx, wechat_id| async move {
            let payload = SendPayload {
                to: to.clone(),
                relation_type,
                message: message.canonical(),
                staff_code,
            };
            let task = NewTask {
                wechat_id,
                kind: tasks::SEND_MESSAGE.to_owned(),
                payload: serde_json::to_string(&payload).map_err(ApiError::internal)?,
                fan_key: Some(to),
                bulk_task_id: None,
                not_before_ms: crate::store::tasks::now_ms(),
                ttl_seconds: ttl,
            };
            let q = tasks::enqueue_in(tenant, &mut tx, &task).await?;
            Ok((
                tx,
                serde_json::json!({"taskId": q.task_id, "deviceId": q.device_id}),
            ))
        },
    )
    .await?;
    let task_id = v["taskId"].as_i64().unwrap_or_default();
    if !replayed {
        if let Some(d) = v["deviceId"].as_i64() {
            st.gateway.wake(m, d);
        }
    }
    let row = tenant
        .task(task_id)
        .await?
        .ok_or_else(|| ApiError::internal("a task just created cannot be read"))?;
    Ok(replay_header(
        Values(TaskOut::from(row)).into_response(),
        replayed,
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct TaskIn {
    /// The id `doSendPublicMes` (or another action) answered with (required).
    #[serde(rename = "taskId")]
    pub task_id: OptInt,
}

/// 读取任务结果 (Juhe): the state and result of a task.
#[utoipa::path(post, path = "/v2/ChatMess/GetTaskResult", tag = "ChatMess", security(("bearer" = [])),
    request_body = TaskIn, responses((status = 200, body = Envelope<TaskOut>)))]
pub async fn get_task_result(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<TaskIn>,
) -> ApiResult<Response> {
    let id = crate::lenient::required_int(b.task_id, "taskId")?;
    let row = st.store.tenant(m).task(id).await?.ok_or_else(|| {
        ApiError::from(crate::core::Rejection::NotFound {
            field: "taskId",
            what: "task",
            id,
        })
    })?;
    Ok(Values(TaskOut::from(row)).into_response())
}
