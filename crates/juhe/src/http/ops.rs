//! Operations and self-description: health, metrics, the OpenAPI document and a readable
//! API reference page rendered from it (no CDN: the page works offline).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::AppState;
use crate::error::Code;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs_page))
}

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let comps = api.components.get_or_insert_with(Default::default);
        comps.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Token from POST /connect/token"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Juhe — 友米聚合 open API",
        description = "Self-hosted implementation of the 友米聚合 open API (v2). Every /v2 response is the envelope \
            {requestId, errmsg, succeed, msgTime, values, errdesc}; `errmsg` is the result code (20000 = success). \
            Send `Authorization: Bearer <token>` (from /connect/token); agents also send `TenantId: <merchantId>`. \
            Numbers may be sent as numeric strings. See docs/api.md in the repository for designed parts and definitions."
    ),
    paths(
        super::token::issue_token,
        super::system::get_depart_list, super::system::get_depart_group_list, super::system::get_staff_list, super::system::get_all_staff_list, super::system::get_wechat_list,
        super::friend::get_fans_list, super::friend::get_fans_count,
        super::ad::get_ad_list, super::ad::get_ad_count,
        super::todo::add_record, super::todo::add_record_new, super::todo::get_charge_daffaires_list, super::todo::get_charge_daffaires_count,
        super::report::get_data_by_staff_customer, super::report::get_activation_list_by_staff,
        super::chat::get_chat, super::chat::get_chat_feed,
        super::conversation::apply_take_over, super::conversation::end_take_over, super::conversation::get_take_over_state,
        super::conversation::activation_conversation, super::conversation::send_notification, super::conversation::get_notification_list,
        super::chatmess::do_send_public_mes, super::chatmess::get_task_result,
        super::meeting::get_meeting_voice_call,
        super::bulk_send::save_bulk_send_task, super::bulk_send::delete_bulk_send_task, super::bulk_send::get_bulk_send_task,
        super::bulk_send::get_bulk_send_task_progress, super::bulk_send::get_bulk_send_task_items,
        super::callbacks::register_callback_url, super::callbacks::subscribe_event, super::callbacks::get_callback_list,
        super::callbacks::update_callback, super::callbacks::delete_callback,
        super::callbacks::get_webhook_secret, super::callbacks::rotate_webhook_secret,
        super::callbacks::get_event_list, super::callbacks::get_event, super::callbacks::get_event_attempts,
        super::callbacks::replay_event, super::callbacks::replay_failed_events,
    ),
    components(schemas(crate::error::PageInfo)),
    modifiers(&Security),
    tags(
        (name = "Auth", description = "Merchant tokens (获取商户TOKEN)"),
        (name = "System", description = "Departments, groups, staff"),
        (name = "Friend", description = "Fans (粉丝)"),
        (name = "AdManage", description = "Ads (广告)"),
        (name = "Todo", description = "To-dos (待办)"),
        (name = "Report", description = "Service statistics"),
        (name = "ChatMess", description = "Chat records and conversation actions (send, takeover, activation, notification)"),
        (name = "MeetingCall", description = "Call recordings (音频存档)"),
        (name = "BulkSend", description = "RPA bulk send (群发)"),
        (name = "Public", description = "Callback URLs, event subscriptions, signed deliveries and their attempt log (docs/events.md)"),
    )
)]
pub struct ApiDoc;

/// The document as utoipa derives it from the handlers, before [`spec`] completes it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The served OpenAPI document: the derived one, completed with what the derive macros cannot
/// see (the shared error responses, the `TenantId` and `Idempotency-Key` headers, `required`
/// lists of response objects, examples). Built once: it is the same for every request.
pub fn spec() -> &'static serde_json::Value {
    static SPEC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    SPEC.get_or_init(|| complete(serde_json::to_value(openapi()).unwrap_or_default()))
}

/// Operations that honour `Idempotency-Key`.
const IDEMPOTENT: [&str; 6] = [
    "/v2/ChatMess/doSendPublicMes",
    "/v2/Todo/AddRecord",
    "/v2/Todo/AddRecordNew",
    "/v2/BulkSend/SaveBulkSendTask",
    "/v2/ChatMess/ActivationConversation",
    "/v2/ChatMess/SendNotification",
];

/// The request fields each operation requires (a 200012 naming the field when missing). The
/// request structs read every field leniently and decide in the handler, so utoipa cannot
/// see this; the test `the_required_lists_name_exactly_what_the_server_requires` keeps the
/// table honest.
const REQUIRED: [(&str, &[&str]); 25] = [
    ("/v2/Public/registerCallbackUrl", &["url"]),
    ("/v2/Public/subscribeEvent", &["url"]),
    ("/v2/Public/updateCallback", &["endpointId"]),
    ("/v2/Public/deleteCallback", &["endpointId"]),
    ("/v2/Public/GetEvent", &["eventId"]),
    ("/v2/Public/GetEventAttempts", &["eventId"]),
    ("/v2/Public/replayEvent", &["eventId"]),
    ("/v2/Public/replayFailedEvents", &["since"]),
    (
        "/v2/ChatMess/applyTakeOver",
        &["wechat_key", "friend_key", "apply_key"],
    ),
    (
        "/v2/ChatMess/endTakeOver",
        &["wechat_key", "friend_key", "apply_key"],
    ),
    (
        "/v2/ChatMess/GetTakeOverState",
        &["wechat_key", "friend_key"],
    ),
    (
        "/v2/ChatMess/ActivationConversation",
        &["ad_wechat_id", "ad_friend_wenober", "staff_code"],
    ),
    (
        "/v2/ChatMess/SendNotification",
        &["staff_codes", "title", "content"],
    ),
    ("/v2/ChatMess/GetNotificationList", &["staff_code"]),
    ("/v2/BulkSend/GetBulkSendTaskProgress", &["ad_bulk_send_id"]),
    ("/v2/BulkSend/GetBulkSendTaskItems", &["ad_bulk_send_id"]),
    ("/v2/ChatMess/GetChat", &["wechatId", "fansKey"]),
    (
        "/v2/ChatMess/doSendPublicMes",
        &["WechatId", "ToUserName", "MsgType"],
    ),
    ("/v2/ChatMess/GetTaskResult", &["taskId"]),
    (
        "/v2/Todo/AddRecord",
        &[
            "AdWecharId",
            "RemindTitle",
            "FollowupsiTuation",
            "RemindTime",
        ],
    ),
    (
        "/v2/Todo/AddRecordNew",
        &[
            "AdWecharId",
            "Weixin",
            "RemindTitle",
            "FollowupsiTuation",
            "RemindTime",
        ],
    ),
    (
        "/v2/BulkSend/SaveBulkSendTask",
        &["task_name", "wechat_ids", "task_content"],
    ),
    ("/v2/BulkSend/DeleteBulkSendTask", &["ad_bulk_send_id"]),
    ("/v2/BulkSend/GetBulkSendTask", &["ad_bulk_send_id"]),
    ("/v2/Report/GetActivationListByStaff", &["time"]),
];

/// Every status an operation can answer with besides 200, and why. Each carries the envelope.
const ERROR_STATUSES: [(&str, &str); 10] = [
    ("400", "200012 调用方参数错误: a parameter is missing or invalid; `errdesc` names the field"),
    ("401", "10003 令牌失效 or 200001 TOKEN not supplied"),
    ("403", "200104: the token may not act for the `TenantId` sent"),
    ("404", "200101 record not found, 200009/200010/200018 unknown fan, staff or account, 200105 no such path"),
    ("405", "200105: the path exists but not with this method"),
    ("409", "200102: `Idempotency-Key` reused for a different request, or that request is still running; 200109: no assistant serves the operating account; 200110: the request contradicts the current state (e.g. taken over by someone else), `errdesc` says which"),
    ("413", "200106: the body is larger than `api.max_body_bytes`"),
    ("429", "200103: too many requests for this merchant; retry after `Retry-After` seconds"),
    ("500", "200011: server error; the server log has the details under `requestId`"),
    ("503", "200011: the server is overloaded or the request took too long; retry later"),
];

fn error_envelope_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "description": "The envelope of a refused request: `succeed` is false, `values` is null and `errdesc` says what went wrong, naming the field.",
        "required": ["requestId", "errmsg", "succeed", "msgTime", "values", "errdesc"],
        "properties": {
            "requestId": {"type": ["string", "null"], "description": "Echo of `X-Request-Id`, or a generated id. Quote it when reporting a problem."},
            "errmsg": {"type": "integer", "format": "int64", "description": "Result code (see the table of result codes)."},
            "succeed": {"type": "boolean", "description": "Always false here."},
            "msgTime": {"type": "string", "description": "Server time in the configured offset, e.g. `2024-12-19T17:22:24.3121234+08:00`."},
            "values": {"type": "null", "description": "Always null on errors."},
            "errdesc": {"type": "string", "description": "What went wrong, naming the field."}
        },
        "example": {
            "requestId": "5f0c6a0e8b3d4c29a1f2e3d4c5b6a798",
            "errmsg": 200012,
            "succeed": false,
            "msgTime": "2024-12-19T17:22:24.3121234+08:00",
            "values": null,
            "errdesc": "wechatId: is required"
        }
    })
}

/// Completes the derived document; see [`spec`].
fn complete(mut doc: serde_json::Value) -> serde_json::Value {
    use serde_json::{json, Value};
    // `#[serde(default)]` request structs make utoipa emit `default: null` even where the
    // schema does not admit null; validators reject that.
    strip_null_defaults(&mut doc);
    // Request schemas are the ones request bodies name; every other object is a response
    // object whose fields are always present (null when there is no value).
    let mut request_schemas = std::collections::HashSet::new();
    if let Some(paths) = doc["paths"].as_object() {
        for ops in paths.values() {
            for op in ops.as_object().into_iter().flat_map(|o| o.values()) {
                if let Some(content) = op["requestBody"]["content"].as_object() {
                    for c in content.values() {
                        if let Some(r) = c["schema"]["$ref"].as_str() {
                            request_schemas.insert(r.rsplit('/').next().unwrap_or("").to_owned());
                        }
                    }
                }
            }
        }
    }
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        for (name, s) in schemas.iter_mut() {
            // PageInfo's optional fields are really left out when they do not apply.
            if request_schemas.contains(name) || name == "PageInfo" {
                continue;
            }
            if name.starts_with("Envelope") {
                // Lists always carry `page`; single values never do.
                let mut req = vec![
                    "requestId",
                    "errmsg",
                    "succeed",
                    "msgTime",
                    "values",
                    "errdesc",
                ];
                if s["properties"]["values"]["type"] == "array" {
                    req.push("page");
                    s["properties"]["page"] = json!({"$ref": "#/components/schemas/PageInfo"});
                } else if let Some(p) = s["properties"].as_object_mut() {
                    p.remove("page");
                }
                s["required"] = json!(req);
                continue;
            }
            if let Some(props) = s["properties"].as_object() {
                let all: Vec<Value> = props.keys().map(|k| Value::String(k.clone())).collect();
                s["required"] = Value::Array(all);
            }
        }
        schemas.insert("ErrorEnvelope".into(), error_envelope_schema());
    }
    mark_required(&mut doc);
    let examples = request_examples();
    let root = doc.clone();
    let Some(paths) = doc["paths"].as_object_mut() else {
        return doc;
    };
    // Documented as GET, served on POST too (clients tend to POST every System call).
    if let Some(get) = paths
        .get("/v2/System/GetDepartList")
        .and_then(|p| p.get("get"))
        .cloned()
    {
        let mut post = get;
        post["operationId"] = json!("get_depart_list_post");
        paths["/v2/System/GetDepartList"]["post"] = post;
    }
    // A saved bulk-send task can be read back and deleted by the id SaveBulkSendTask returns:
    // generators (and Schemathesis's stateful phase) follow these links.
    if let Some(ok) = paths
        .get_mut("/v2/BulkSend/SaveBulkSendTask")
        .and_then(|p| p.pointer_mut("/post/responses/200"))
    {
        let by_id = |op: &str, desc: &str| {
            json!({
                "operationId": op,
                "requestBody": {"ad_bulk_send_id": "$response.body#/values"},
                "description": desc
            })
        };
        ok["links"] = json!({
            "GetBulkSendTask": by_id("get_bulk_send_task", "Read the saved task back."),
            "DeleteBulkSendTask": by_id("delete_bulk_send_task", "Delete the saved task."),
        });
    }
    // The token endpoint takes a form (or the same fields as JSON); utoipa sees only bytes.
    if let Some(op) = paths
        .get_mut("/connect/token")
        .and_then(|p| p.get_mut("post"))
    {
        let form = json!({
            "type": "object",
            "required": ["grant_type"],
            "properties": {
                "grant_type": {"type": "string", "enum": ["client_credentials"], "description": "Always `client_credentials`."},
                "client_id": {"type": "string", "description": "From `juhe merchant create`; or send it with the secret as HTTP Basic."},
                "client_secret": {"type": "string"},
                "scope": {"type": "string", "enum": ["Ls.Qkl.PublicApi"], "description": "Optional; the only scope."}
            }
        });
        let example = json!({"grant_type": "client_credentials", "client_id": "y2c0d7…", "client_secret": "9f1e…", "scope": "Ls.Qkl.PublicApi"});
        op["requestBody"] = json!({
            "required": true,
            "description": op["requestBody"]["description"].clone(),
            "content": {
                "application/x-www-form-urlencoded": {"schema": form.clone(), "example": example.clone()},
                "application/json": {"schema": form, "example": example}
            }
        });
        op["responses"]["200"]["content"]["application/json"]["example"] = json!({
            "access_token": "YPjSOv6HKc8pUXdGzKsRuSrRKS_Xw11_tbyrAQwy7s8",
            "token_type": "Bearer",
            "expires_in": 7200,
            "scope": "Ls.Qkl.PublicApi"
        });
        if let Some(r) = op["responses"].as_object_mut() {
            let oauth = json!({"$ref": "#/components/schemas/TokenError"});
            r.entry("429").or_insert(json!({
                "description": "Too many token requests or failed authentications from this client; retry after `Retry-After` seconds.",
                "headers": {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}},
                "content": {"application/json": {"schema": {"oneOf": [oauth.clone(), {"$ref": "#/components/schemas/ErrorEnvelope"}]}}}
            }));
            r.entry("500").or_insert(json!({
                "description": "Server error.",
                "content": {"application/json": {"schema": {"oneOf": [oauth, {"$ref": "#/components/schemas/ErrorEnvelope"}]}}}
            }));
        }
    }
    for (path, ops) in paths.iter_mut() {
        let Some(ops) = ops.as_object_mut() else {
            continue;
        };
        for (_method, op) in ops.iter_mut() {
            if !path.starts_with("/v2/") {
                continue;
            }
            let mut params = op["parameters"].as_array().cloned().unwrap_or_default();
            // Replaced by the complete description below.
            params.retain(|p| p["name"] != "Idempotency-Key");
            params.push(json!({
                "name": "TenantId",
                "in": "header",
                "required": false,
                "description": "Agents only: the merchant id the agent acts for (an agent token without it gets 403). A merchant token may repeat its own id or leave it out.",
                "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                "example": "1"
            }));
            if IDEMPOTENT.contains(&path.as_str()) {
                params.push(json!({
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": false,
                    "description": "Makes a retry safe: a repeat with the same key and body within `api.idempotency_ttl_seconds` gets the first answer again (with `Idempotent-Replayed: true`) and writes nothing; the same key with another body is a 409.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[!-~]+$"},
                    "example": "3b6f2c7e-retry-1"
                }));
            }
            op["parameters"] = Value::Array(params);
            // The body is read leniently: an empty body or `null` means `{}`.
            if op["requestBody"].is_object() {
                op["requestBody"]["required"] = Value::Bool(false);
            }
            let responses = op["responses"].as_object_mut();
            let Some(responses) = responses else { continue };
            for (status, why) in ERROR_STATUSES {
                let mut r = json!({
                    "description": why,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
                });
                if status == "429" {
                    r["headers"] = json!({"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}});
                }
                if status == "401" {
                    r["headers"] = json!({"WWW-Authenticate": {"description": "`Bearer`.", "schema": {"type": "string"}}});
                }
                responses.entry(status).or_insert(r);
            }
            if let Some(ok) = responses.get_mut("200") {
                ok["headers"] = json!({
                    "X-Request-Id": {"description": "The `requestId` of the envelope.", "schema": {"type": "string"}}
                });
                if let Some(c) = ok["content"]["application/json"].as_object_mut() {
                    if let Some(schema) = c.get("schema") {
                        let ex = example_of(schema, &root, "", 0);
                        c.insert("example".into(), ex);
                    }
                }
            }
            if let Some((_, req_ex)) = examples.iter().find(|(p, _)| p == path) {
                if let Some(c) = op["requestBody"]["content"]["application/json"].as_object_mut() {
                    c.insert("example".into(), req_ex.clone());
                }
            }
        }
    }
    doc
}

/// One request example per operation, with the ids of the fixture merchant
/// (tests/fixtures/org-example.json), so that trying an example against a server loaded
/// with the fixture gives a real answer.
fn request_examples() -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    vec![
        (
            "/v2/Public/registerCallbackUrl",
            json!({"url": "https://crm.example.com/juhe/events", "type": 100}),
        ),
        (
            "/v2/Public/subscribeEvent",
            json!({"url": "https://crm.example.com/juhe/events", "appId": "crm", "messageTypes": ["chat", "rpaTaskResult"]}),
        ),
        ("/v2/Public/GetCallbackList", json!({})),
        (
            "/v2/Public/updateCallback",
            json!({"endpointId": 1, "messageTypes": ["chat", "rpaTaskResult", "fansInfoChange"], "enabled": true}),
        ),
        ("/v2/Public/deleteCallback", json!({"endpointId": 1})),
        ("/v2/Public/GetWebhookSecret", json!({})),
        (
            "/v2/Public/rotateWebhookSecret",
            json!({"graceSeconds": 86400}),
        ),
        (
            "/v2/Public/GetEventList",
            json!({"minEventId": 0, "eventType": "chat", "pageIndex": 1, "pageSize": 20}),
        ),
        ("/v2/Public/GetEvent", json!({"eventId": "evt_1_1"})),
        ("/v2/Public/GetEventAttempts", json!({"eventId": "evt_1_1"})),
        ("/v2/Public/replayEvent", json!({"eventId": "evt_1_1"})),
        (
            "/v2/Public/replayFailedEvents",
            json!({"since": "2026-01-01 00:00:00"}),
        ),
        ("/v2/System/GetDepartGroupList", json!({"departId": 1})),
        (
            "/v2/System/GetStaffList",
            json!({"departId": 1, "departGroupId": 11}),
        ),
        (
            "/v2/System/GetAllStaffList",
            json!({"pageIndex": 1, "pageSize": 20}),
        ),
        (
            "/v2/System/GetWechatList",
            json!({"ad_wechat_lei": -1, "pageIndex": 1, "pageSize": 20}),
        ),
        (
            "/v2/Friend/GetFansList",
            json!({"wechatId": 135389, "pageIndex": 1, "pageSize": 20}),
        ),
        ("/v2/Friend/GetFansCount", json!({"wechatId": 135389})),
        (
            "/v2/AdManage/GetAdList",
            json!({"pageIndex": 1, "pageSize": 20}),
        ),
        ("/v2/AdManage/GetAdCount", json!({})),
        (
            "/v2/Todo/AddRecord",
            json!({"AdWecharId": 135389, "Weixin": "wxid_fan0001", "RemindTitle": "回访", "FollowupsiTuation": "确认收货情况", "RemindTime": "2030-01-01 10:00:00", "StaffCode": "S001", "From": 0, "IsAlways": 0}),
        ),
        (
            "/v2/Todo/AddRecordNew",
            json!({"AdWecharId": 135389, "Weixin": "wxid_fan0001", "RemindTitle": "回访", "FollowupsiTuation": "确认收货情况", "RemindTime": "2030-01-01 10:00:00", "StaffCode": "S001", "From": 0, "IsAlways": 0}),
        ),
        (
            "/v2/Todo/GetChargeDaffairesList",
            json!({"pageIndex": 1, "pageSize": 20}),
        ),
        ("/v2/Todo/GetChargeDaffairesCount", json!({})),
        (
            "/v2/Report/GetDataByStaffCustomer",
            json!({"startDate": "2024-05-01", "endDate": "2024-05-31"}),
        ),
        (
            "/v2/Report/GetActivationListByStaff",
            json!({"time": 1714579200}),
        ),
        (
            "/v2/ChatMess/GetChat",
            json!({"wechatId": 135389, "fansKey": "wxid_fan0001", "minChattingId": 0, "pageIndex": 1, "pageSize": 20}),
        ),
        (
            "/v2/ChatMess/GetChatFeed",
            json!({"minChattingId": 0, "pageSize": 100}),
        ),
        (
            "/v2/ChatMess/applyTakeOver",
            json!({"wechat_key": "135389", "friend_key": "wxid_fan0001", "apply_key": "qkb-user-7", "apply_name": "订单系统", "apply_reason": "售后处理", "apply_source": "QKB"}),
        ),
        (
            "/v2/ChatMess/endTakeOver",
            json!({"wechat_key": "135389", "friend_key": "wxid_fan0001", "apply_key": "qkb-user-7", "end_reason": "处理完毕"}),
        ),
        (
            "/v2/ChatMess/GetTakeOverState",
            json!({"wechat_key": "wxid_op0001", "friend_key": "wxid_fan0001"}),
        ),
        (
            "/v2/ChatMess/ActivationConversation",
            json!({"ad_wechat_id": 135389, "ad_friend_wenober": "wxid_fan0001", "staff_code": "S001", "enforceAttribution": 0, "activationType": 1, "content": "客户咨询物流,请跟进", "switchSession": 0}),
        ),
        (
            "/v2/ChatMess/SendNotification",
            json!({"staff_codes": ["S001", "S002"], "title": "售后提醒", "content": "请今天回访订单 1024 的客户", "wechat_key": "135389", "friend_key": "wxid_fan0001"}),
        ),
        (
            "/v2/ChatMess/GetNotificationList",
            json!({"staff_code": "S001", "minId": 0, "pageIndex": 1, "pageSize": 20}),
        ),
        (
            "/v2/ChatMess/doSendPublicMes",
            json!({"WechatId": "135389", "ToUserName": "wxid_fan0001", "RelationType": 0, "MsgType": "text", "Text": "您好,订单已发货"}),
        ),
        ("/v2/ChatMess/GetTaskResult", json!({"taskId": 1})),
        (
            "/v2/MeetingCall/GetMeetingVoiceCall",
            json!({"pageIndex": 1, "pageSize": 20}),
        ),
        (
            "/v2/BulkSend/SaveBulkSendTask",
            json!({"task_name": "双十一提醒", "wechat_ids": [135389], "fans_keys": ["wxid_fan0001"], "send_time": "2030-01-01 10:00:00", "task_content": [{"type": "0", "data": {"content": "活动今晚开始"}}]}),
        ),
        (
            "/v2/BulkSend/DeleteBulkSendTask",
            json!({"ad_bulk_send_id": 1}),
        ),
        (
            "/v2/BulkSend/GetBulkSendTask",
            json!({"ad_bulk_send_id": 1}),
        ),
        (
            "/v2/BulkSend/GetBulkSendTaskProgress",
            json!({"ad_bulk_send_id": 1}),
        ),
        (
            "/v2/BulkSend/GetBulkSendTaskItems",
            json!({"ad_bulk_send_id": 1, "state": -1, "pageIndex": 1, "pageSize": 20}),
        ),
    ]
}

/// An example value for a schema, built from its types and field names (response examples).
fn example_of(
    v: &serde_json::Value,
    root: &serde_json::Value,
    field: &str,
    depth: usize,
) -> serde_json::Value {
    use serde_json::{json, Value};
    let v = resolve(v, root);
    if depth > 8 {
        return Value::Null;
    }
    if let Some(e) = v.get("example") {
        return e.clone();
    }
    if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
        let mut o = serde_json::Map::new();
        for (k, p) in props {
            let ex = match k.as_str() {
                "requestId" => json!("5f0c6a0e8b3d4c29a1f2e3d4c5b6a798"),
                "errmsg" => json!(20000),
                "succeed" => json!(true),
                "msgTime" => json!("2024-12-19T17:22:24.3121234+08:00"),
                "errdesc" => Value::Null,
                "page" => json!({"pageIndex": 1, "pageSize": 20, "hasMore": false}),
                _ => example_of(p, root, k, depth + 1),
            };
            o.insert(k.clone(), ex);
        }
        return Value::Object(o);
    }
    if let Some(one) = v.get("oneOf").and_then(|o| o.as_array()) {
        // The first non-null alternative.
        for alt in one {
            if alt.get("type").and_then(|t| t.as_str()) != Some("null") {
                return example_of(alt, root, field, depth + 1);
            }
        }
        return Value::Null;
    }
    let ty = match v.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str())
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ => "object",
    };
    let f = field.to_ascii_lowercase();
    match ty {
        "array" => match v.get("items") {
            Some(i) => Value::Array(vec![example_of(i, root, field, depth + 1)]),
            None => json!([]),
        },
        "integer" if f.contains("wechat") => json!(135389),
        "integer" => json!(1),
        "number" => json!(1.5),
        "boolean" => json!(true),
        "string" if f.contains("time") || f.contains("date") => json!("2024-05-02 10:00:00"),
        "string" if f.contains("staff") => json!("S001"),
        "string" if f.contains("talter") || f.contains("wenober") || f.contains("fans") => {
            json!("wxid_fan0001")
        }
        "string" if f.contains("name") || f.contains("nick") => json!("张三"),
        "string" => json!("string"),
        "null" => Value::Null,
        _ => json!({}),
    }
}

/// Applies [`REQUIRED`]: each operation gets its own request schema (AddRecord and
/// AddRecordNew share a struct but not their required fields) whose required fields do not
/// admit null.
fn mark_required(doc: &mut serde_json::Value) {
    use serde_json::{json, Value};
    for (path, fields) in REQUIRED {
        let Some(reference) = doc["paths"][path]["post"]["requestBody"]["content"]
            ["application/json"]["schema"]["$ref"]
            .as_str()
            .map(str::to_owned)
        else {
            continue;
        };
        let src = reference.rsplit('/').next().unwrap_or("").to_owned();
        let name = format!("{}In", path.rsplit('/').next().unwrap_or(""));
        let mut schema = doc["components"]["schemas"][&src].clone();
        for f in fields {
            let prop = schema["properties"][*f].clone();
            schema["properties"][*f] = non_null(&prop, doc);
        }
        schema["required"] = json!(fields);
        doc["components"]["schemas"][&name] = schema;
        doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"] =
            json!({"$ref": format!("#/components/schemas/{name}")});
    }
    // Structs no operation names any more (their copies replaced them).
    let text = doc["paths"].to_string();
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        let refs = schemas.values().map(Value::to_string).collect::<String>();
        schemas.retain(|name, _| {
            let r = format!("#/components/schemas/{name}\"");
            !name.ends_with("In") || text.contains(&r) || refs.contains(&r)
        });
    }
}

/// A property schema without its null alternative, inlined, keeping its description.
fn non_null(prop: &serde_json::Value, root: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let desc = prop
        .get("description")
        .or_else(|| prop.pointer("/oneOf/0/description"))
        .cloned();
    let inner = match prop.pointer("/oneOf/0/$ref") {
        Some(_) => resolve(&prop["oneOf"][0], root).clone(),
        None => prop.clone(),
    };
    let mut out = inner.clone();
    if let Some(alts) = inner["oneOf"].as_array() {
        let kept: Vec<Value> = alts
            .iter()
            .filter(|a| a["type"] != "null")
            .cloned()
            .collect();
        out["oneOf"] = Value::Array(kept);
    }
    if out["type"] == "array" {
        out["minItems"] = Value::from(1);
        if let Some(o) = out.as_object_mut() {
            o.remove("default");
        }
    }
    if let (Some(d), Some(o)) = (desc, out.as_object_mut()) {
        o.insert("description".into(), d);
    }
    out
}

fn strip_null_defaults(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(o) => {
            if o.get("default").is_some_and(|d| d.is_null()) {
                o.remove("default");
            }
            o.values_mut().for_each(strip_null_defaults);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_null_defaults),
        _ => {}
    }
}

async fn healthz(State(st): State<AppState>) -> Response {
    match st.store.ping().await {
        Ok(()) => Json(serde_json::json!({"status": "ok", "database": st.store.backend()}))
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "unavailable", "database": st.store.backend()})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    match st.store.pending_deliveries().await {
        Ok(n) => {
            st.metrics.webhook_pending.set(n);
        }
        Err(e) => tracing::warn!(error = %e, "counting pending deliveries for /metrics failed"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.render(&st.store),
    )
        .into_response()
}

async fn openapi_json() -> Response {
    Json(spec()).into_response()
}

/// HTML-escapes a doc string and renders its `code` spans.
fn esc(s: &str) -> String {
    let plain = s
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let mut out = String::with_capacity(plain.len());
    for (i, part) in plain.split('`').enumerate() {
        // Odd parts were between backticks (an unmatched trailing one stays plain).
        if i % 2 == 1 && plain.matches('`').count() % 2 == 0 {
            out.push_str("<code>");
            out.push_str(part);
            out.push_str("</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}
/// Renders one schema (resolving `$ref`s) as nested field lists.
fn schema_html(v: &serde_json::Value, root: &serde_json::Value, depth: usize, out: &mut String) {
    if depth > 6 {
        return;
    }
    let v = resolve(v, root);
    if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
        let required: Vec<&str> = v
            .get("required")
            .and_then(|r| r.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        out.push_str("<ul>");
        for (name, p) in props {
            let p2 = resolve(p, root);
            let ty = type_label(p2, root);
            // The field's own doc comment sits beside a `$ref` (inside `oneOf` for the lenient
            // types); the referenced schema's description is the fallback.
            let desc = p
                .get("description")
                .or_else(|| p.pointer("/oneOf/0/description"))
                .or_else(|| p2.get("description"))
                .and_then(|d| d.as_str())
                .unwrap_or("");
            out.push_str(&format!(
                "<li><code>{}</code> <span class=t>{}</span>{} {}",
                esc(name),
                esc(&ty),
                if required.contains(&name.as_str()) {
                    " <span class=req>required</span>"
                } else {
                    ""
                },
                esc(desc)
            ));
            let items = p2.get("items").map(|i| resolve(i, root));
            if let Some(i) = items {
                if i.get("properties").is_some() {
                    schema_html(i, root, depth + 1, out);
                }
            } else if p2.get("properties").is_some() {
                schema_html(p2, root, depth + 1, out);
            }
            out.push_str("</li>");
        }
        out.push_str("</ul>");
    }
}

fn resolve<'a>(v: &'a serde_json::Value, root: &'a serde_json::Value) -> &'a serde_json::Value {
    match v.get("$ref").and_then(|r| r.as_str()) {
        Some(r) => r
            .strip_prefix("#/")
            .map(|p| p.split('/').fold(root, |acc, k| &acc[k]))
            .unwrap_or(v),
        None => v,
    }
}

fn type_label(v: &serde_json::Value, root: &serde_json::Value) -> String {
    if let Some(t) = v.get("type") {
        let base = match t {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(" | "),
            _ => String::new(),
        };
        if base.contains("array") {
            if let Some(i) = v.get("items") {
                return format!("array of {}", type_label(resolve(i, root), root));
            }
        }
        return base;
    }
    if let Some(one) = v.get("oneOf").and_then(|o| o.as_array()) {
        return one
            .iter()
            .map(|x| type_label(resolve(x, root), root))
            .collect::<Vec<_>>()
            .join(" | ");
    }
    if let Some(r) = v.get("$ref").and_then(|r| r.as_str()) {
        return r.rsplit('/').next().unwrap_or("object").to_owned();
    }
    "object".into()
}

/// A tag's name and description, and its operations as (path, method, operation).
type TagGroup = (String, String, Vec<(String, String, serde_json::Value)>);

/// GetChat's message types (`ad_chatting_sate`), as the original documentation lists them:
/// type, meaning, `ad_chatting_content` format, `ad_chatting_resvred` format (url-decoded).
const MESSAGE_TYPES: [(&str, &str, &str, &str); 24] = [
    ("1", "文本 text", "the text", ""),
    ("2/3/4", "图片 image", "imgs[图片KEY]; for the full-size image: key_hd (the assistant must open images automatically, or the client sends a view-image task)", ""),
    ("4/34", "语音 voice", "audio[语音KEY] or audioT[语音KEY]", r#"{"downloadKey":"语音文件","type":-1,"videoLen":语音长度(秒)}"#),
    ("42", "名片 contact card", "MP[联系人昵称]", r#"{"nickname":"名片名称"}"#),
    ("48", "位置 location", "a(位置链接)", r#"{"desc":"详细地址","thumbUrl":"缩略图","title":"位置标题","url":"位置链接"}"#),
    ("49", "链接 link", "a(链接地址)", r#"{"title":"链接标题","url":"链接地址"}"#),
    ("50", "视频聊天 video call", "", ""),
    ("495", "群聊邀请 group invitation", "", r#"{"desc":"邀请描述","thumbUrl":"缩略图","title":"邀请标题","url":"邀请链接"}"#),
    ("496", "文件 file", "file[文件KEY]", r#"{"title":"文件名称","totalLen":文件大小,"url":""}"#),
    ("1001", "分享名片 shared card", "", ""),
    ("4919", "聊天记录转发 forwarded chat history", "", ""),
    ("4933", "小程序 mini program", "", r#"{"appIconUrl":"小程序小图标","displayName":"小程序名称","downloadKey":"小程序封面KEY","title":"小程序标题"}"#),
    ("4362", "群收款, 群红包, 红包 payments and red packets", "", ""),
    ("7549", "视频号 channels post", "", r#"{"avatar":"视频号头像","description":"视频号描述","nickname":"视频号名称","thumbUrl":"封面缩略图"}"#),
    ("8220", "引用 quote", "", r#"{"type":"引用的消息类型","content":"引用的消息的文本内容","title":"文件和链接消息的标题","downloadKey":"需要下载资源的消息","url":"链接消息的url"}"#),
    ("9730", "直播 live stream", "", r#"{"avatar":"直播头像","description":"直播描述","nickname":"直播名称","thumbUrl":"封面缩略图"}"#),
    ("10000", "系统消息 system message", "", ""),
    ("10001", "标识符更新 identifier update", "", ""),
    ("10002", "好友验证 friend verification", "", ""),
    ("10003", "好友申请 friend request", "", ""),
    ("10004", "异常通知 exception notice", "", ""),
    ("10005", "实名信息 real-name information", "", ""),
    ("11001", "待办消息 to-do message", "", ""),
    ("12001", "托管消息 takeover message", "", r#"{"key":"托管标识","name":"申请人昵称","reason":"申请理由"}"#),
];

/// The anchor of an operation on /docs: its path with `/` as `-` (`v2-ChatMess-GetChat`),
/// and the method when a path has more than one.
fn anchor(path: &str, method: &str, several: bool) -> String {
    let base: String = path
        .trim_start_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if several {
        format!("{base}-{method}")
    } else {
        base
    }
}

fn pretty(v: &serde_json::Value) -> String {
    esc_plain(&serde_json::to_string_pretty(v).unwrap_or_default())
}

fn esc_plain(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A readable reference generated from the same OpenAPI document.
pub fn docs_html() -> String {
    let doc = spec();
    let mut out = String::from(
        "<!doctype html><html lang=zh-Hans><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\"><title>Juhe API reference</title><style>\
         body{font-family:system-ui,-apple-system,\"Segoe UI\",\"PingFang SC\",\"Hiragino Sans GB\",\"Microsoft YaHei\",\"Noto Sans CJK SC\",\"Source Han Sans SC\",\"WenQuanYi Micro Hei\",sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;line-height:1.5;color:#222}\
         code,pre{font-family:ui-monospace,\"SFMono-Regular\",Menlo,Consolas,\"Noto Sans Mono CJK SC\",\"Microsoft YaHei\",monospace;font-size:.9em}\
         code{background:#f3f3f3;padding:0 .25em;border-radius:3px}pre{background:#f6f8fa;padding:.6em;border-radius:4px;overflow-x:auto}\
         .t{color:#777;font-size:.9em}.req{color:#b00;font-weight:bold;font-size:.85em}\
         .op{border:1px solid #ddd;border-radius:6px;padding:.4em 1em;margin:1em 0}.m{font-weight:bold;color:#fff;background:#2a7;padding:.1em .5em;border-radius:3px}\
         .get{background:#27a}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left;vertical-align:top}\
         nav ul{columns:2;list-style:none;padding-left:0}nav li{margin:.1em 0}nav .tag{font-weight:bold;margin-top:.4em}\
         details summary{cursor:pointer;color:#555}</style></head><body>",
    );
    let info = &doc["info"];
    out.push_str(&format!(
        "<h1>{}</h1><p>{}</p>",
        esc(info["title"].as_str().unwrap_or("")),
        esc(info["description"].as_str().unwrap_or(""))
    ));
    // Operations grouped by tag, in the order the tags are declared.
    let mut ops_by_tag: Vec<TagGroup> = doc["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap_or("").to_owned(),
                        t["description"].as_str().unwrap_or("").to_owned(),
                        Vec::new(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            let Some(ops) = ops.as_object() else { continue };
            for (method, op) in ops {
                let tag = op["tags"][0].as_str().unwrap_or("");
                if let Some(group) = ops_by_tag.iter_mut().find(|g| g.0 == tag) {
                    group.2.push((path.clone(), method.clone(), op.clone()));
                }
            }
        }
    }
    let several = |path: &str| doc["paths"][path].as_object().is_some_and(|o| o.len() > 1);

    // Table of contents.
    out.push_str(
        "<nav><h2>Contents</h2><ul>\
         <li><a href=\"#conventions\">Conventions: envelope, headers, leniency</a></li>\
         <li><a href=\"#paging\">Paging</a></li>\
         <li><a href=\"#result-codes\">Result codes (<code>errmsg</code>)</a></li>\
         <li><a href=\"#message-types\">GetChat message types</a></li>",
    );
    for (tag, desc, ops) in &ops_by_tag {
        out.push_str(&format!(
            "<li class=tag><a href=\"#tag-{}\">{}</a> <span class=t>{}</span></li>",
            esc_plain(tag),
            esc(tag),
            esc(desc)
        ));
        for (path, method, op) in ops {
            out.push_str(&format!(
                "<li><a href=\"#{}\"><code>{}</code></a> {}</li>",
                anchor(path, method, several(path)),
                esc(&format!(
                    "{}{}",
                    path.rsplit('/').next().unwrap_or(path),
                    if several(path) {
                        format!(" ({})", method.to_uppercase())
                    } else {
                        String::new()
                    }
                )),
                esc(op["summary"].as_str().unwrap_or(""))
            ));
        }
    }
    out.push_str("</ul></nav>");

    out.push_str(
        "<h2 id=conventions>Conventions</h2><ul>\
         <li>Every <code>/v2</code> answer is the envelope <code>{requestId, errmsg, succeed, msgTime, values, errdesc}</code>, \
         success or not; list answers add <code>page</code>. On errors <code>values</code> is <code>null</code> and \
         <code>errdesc</code> names the field; the HTTP status tells the class (table below).</li>\
         <li>Headers: <code>Authorization: Bearer &lt;access_token&gt;</code> from <a href=\"#connect-token\"><code>/connect/token</code></a> on every call; \
         agents add <code>TenantId: &lt;merchantId&gt;</code>; the writes marked so accept <code>Idempotency-Key</code>; \
         <code>X-Request-Id</code> is echoed as <code>requestId</code>.</li>\
         <li>Bodies are JSON, read leniently: an empty body means <code>{}</code>; numbers may be sent as numeric strings; \
         <code>null</code> and <code>\"\"</code> mean \"not given\"; <code>-1</code> means \"all\" in filters that document it; \
         times are Unix seconds or <code>yyyy-MM-dd HH:mm:ss</code> in the server's offset (default +08:00).</li>\
         <li>Fields marked <span class=req>required</span> must be sent; the others are optional.</li>\
         <li>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI 3.1).</li></ul>",
    );
    out.push_str(
        "<h2 id=paging>Paging</h2><p>List endpoints take <code>pageIndex</code> (from 1) and <code>pageSize</code> \
         (default 20, larger values are clamped to 1000) and answer with <code>page</code>: \
         <code>{pageIndex, pageSize, total, hasMore, nextPageIndex}</code>. Send <code>nextPageIndex</code> while \
         <code>hasMore</code> is true; <code>total</code> equals what the matching count endpoint returns. \
         The same numbers are in the <code>X-Total-Count</code> and <code>X-Next-Page-Index</code> headers.</p>\
         <p>Chat records page by id instead: send the last <code>ad_chatting_id</code> you stored as <code>minChattingId</code> \
         (with <code>pageIndex</code> 1) and continue from <code>page.nextMinChattingId</code>. Ids become visible in order, \
         so a reader that resumes from its cursor never skips a record written concurrently. \
         <a href=\"#v2-ChatMess-GetChat\">GetChat</a> does this for one conversation, \
         <a href=\"#v2-ChatMess-GetChatFeed\">GetChatFeed</a> for the whole merchant.</p>",
    );
    out.push_str("<h2 id=result-codes>Result codes (<code>errmsg</code>)</h2><table><tr><th>errmsg</th><th>HTTP</th><th>meaning</th></tr>");
    let mut codes = Code::ALL;
    codes.sort_by_key(|c| c.value());
    for c in codes {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.value(),
            c.status().as_u16(),
            esc(code_meaning(c))
        ));
    }
    out.push_str("</table>");
    out.push_str(
        "<h2 id=message-types>GetChat message types (<code>ad_chatting_sate</code>)</h2>\
         <table><tr><th>type</th><th>meaning</th><th><code>ad_chatting_content</code></th><th><code>ad_chatting_resvred</code> (url-decoded JSON)</th></tr>",
    );
    for (ty, meaning, content, resvred) in MESSAGE_TYPES {
        out.push_str(&format!(
            "<tr id=\"msg-{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc_plain(&ty.replace('/', "-")),
            esc_plain(ty),
            esc_plain(meaning),
            esc_plain(content),
            if resvred.is_empty() {
                String::new()
            } else {
                format!("<code>{}</code>", esc_plain(resvred))
            }
        ));
    }
    out.push_str("</table>");

    for (tag, desc, ops) in &ops_by_tag {
        out.push_str(&format!(
            "<h2 id=\"tag-{}\">{} <span class=t>{}</span></h2>",
            esc_plain(tag),
            esc(tag),
            esc(desc)
        ));
        for (path, method, op) in ops {
            let cls = if method == "get" { "m get" } else { "m" };
            out.push_str(&format!(
                "<div class=op id=\"{}\"><h3><span class=\"{cls}\">{}</span> <code>{}</code></h3>",
                anchor(path, method, several(path)),
                method.to_uppercase(),
                esc(path)
            ));
            if let Some(s) = op["summary"].as_str() {
                out.push_str(&format!("<p><b>{}</b></p>", esc(s)));
            }
            if let Some(d) = op["description"].as_str() {
                out.push_str(&format!("<p>{}</p>", esc(d)));
            }
            if let Some(params) = op["parameters"].as_array() {
                out.push_str("<h4>Headers</h4><ul>");
                out.push_str("<li><code>Authorization</code> <span class=req>required</span> <code>Bearer &lt;access_token&gt;</code></li>");
                for p in params {
                    out.push_str(&format!(
                        "<li><code>{}</code>{} {}</li>",
                        esc(p["name"].as_str().unwrap_or("")),
                        if p["required"] == true {
                            " <span class=req>required</span>"
                        } else {
                            ""
                        },
                        esc(p["description"].as_str().unwrap_or(""))
                    ));
                }
                out.push_str("</ul>");
            }
            if let Some(content) = op["requestBody"]["content"].as_object() {
                for (ct, c) in content {
                    out.push_str(&format!(
                        "<h4>Request body <span class=t>{}</span></h4>",
                        esc(ct)
                    ));
                    if let Some(d) = op["requestBody"]["description"].as_str() {
                        out.push_str(&format!("<p>{}</p>", esc(d)));
                    }
                    schema_html(&c["schema"], doc, 0, &mut out);
                    if let Some(ex) = c.get("example") {
                        out.push_str(&format!("<p>Example request:</p><pre>{}</pre>", pretty(ex)));
                    }
                }
            }
            if let Some(resps) = op["responses"].as_object() {
                let mut errors = Vec::new();
                for (status, r) in resps {
                    let is_error_envelope = r["content"]["application/json"]["schema"]["$ref"]
                        == "#/components/schemas/ErrorEnvelope";
                    if is_error_envelope {
                        errors.push((status, r["description"].as_str().unwrap_or("")));
                        continue;
                    }
                    out.push_str(&format!(
                        "<h4>Response {} <span class=t>{}</span></h4>",
                        esc(status),
                        esc(r["description"].as_str().unwrap_or(""))
                    ));
                    let c = &r["content"]["application/json"];
                    if let Some(s) = c["schema"].as_object() {
                        let s = serde_json::Value::Object(s.clone());
                        let s = resolve(&s, doc);
                        if let Some(values) = s.get("properties").and_then(|p| p.get("values")) {
                            out.push_str("<p>Envelope; <code>values</code>:</p>");
                            let v = resolve(values, doc);
                            let inner = v.get("items").map(|i| resolve(i, doc)).unwrap_or(v);
                            out.push_str(&format!("<p class=t>{}</p>", esc(&type_label(v, doc))));
                            schema_html(inner, doc, 0, &mut out);
                        } else {
                            schema_html(s, doc, 0, &mut out);
                        }
                    }
                    if let Some(ex) = c.get("example") {
                        out.push_str(&format!(
                            "<details><summary>Example response</summary><pre>{}</pre></details>",
                            pretty(ex)
                        ));
                    }
                }
                if !errors.is_empty() {
                    out.push_str("<h4>Errors <span class=t>the envelope with <code>succeed</code> false, <code>values</code> null</span></h4><table><tr><th>HTTP</th><th>when</th></tr>");
                    for (status, why) in errors {
                        out.push_str(&format!(
                            "<tr><td>{}</td><td>{}</td></tr>",
                            esc(status),
                            esc(why)
                        ));
                    }
                    out.push_str("</table>");
                }
            }
            out.push_str("</div>");
        }
    }
    out.push_str("</body></html>");
    out
}

pub fn code_meaning(c: Code) -> &'static str {
    match c {
        Code::Success => "操作完成: success",
        Code::TokenInvalid => "令牌失效: token invalid, expired or revoked",
        Code::TokenMissing => "TOKEN not supplied",
        Code::FriendNotFound => "不存在该好友: no such fan for that operating account",
        Code::StaffNotFound => "员工编号不存在: unknown staff number",
        Code::WechatNotFound => "微信号不存在: unknown operating account",
        Code::ServerError => "server error (details in the server log under the requestId)",
        Code::ParamError => "调用方参数错误: parameter error; errdesc names the field",
        Code::NotFound => "record not found for this merchant (Juhe)",
        Code::IdempotencyConflict => "Idempotency-Key reused with a different request (Juhe)",
        Code::RateLimited => "rate limit exceeded; see Retry-After (Juhe)",
        Code::Forbidden => "not allowed to act for the requested tenant (Juhe)",
        Code::NoSuchRoute => "no such API path (Juhe)",
        Code::BodyTooLarge => "request body too large (Juhe)",
        Code::MethodNotAllowed => "wrong HTTP method for this path; see the Allow header (Juhe)",
        Code::Timeout => "request timed out; nothing was written (Juhe)",
        Code::NoAssistant => "no assistant (device) serves the operating account (Juhe)",
        Code::Conflict => "contradicts the current state, e.g. taken over by someone else (Juhe)",
    }
}

async fn docs_page() -> Html<String> {
    Html(docs_html())
}
