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
        super::meeting::get_meeting_voice_call,
        super::bulk_send::save_bulk_send_task, super::bulk_send::delete_bulk_send_task, super::bulk_send::get_bulk_send_task,
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
        (name = "ChatMess", description = "Chat records"),
        (name = "MeetingCall", description = "Call recordings (音频存档)"),
        (name = "BulkSend", description = "RPA bulk send (群发)"),
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
const IDEMPOTENT: [&str; 3] = [
    "/v2/Todo/AddRecord",
    "/v2/Todo/AddRecordNew",
    "/v2/BulkSend/SaveBulkSendTask",
];

/// Every status an operation can answer with besides 200, and why. Each carries the envelope.
const ERROR_STATUSES: [(&str, &str); 10] = [
    ("400", "200012 调用方参数错误: a parameter is missing or invalid; `errdesc` names the field"),
    ("401", "10003 令牌失效 or 200001 TOKEN not supplied"),
    ("403", "200104: the token may not act for the `TenantId` sent"),
    ("404", "200101 record not found, 200009/200010/200018 unknown fan, staff or account, 200105 no such path"),
    ("405", "200105: the path exists but not with this method"),
    ("409", "200102: `Idempotency-Key` reused for a different request, or that request is still running"),
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
                    "requestId", "errmsg", "succeed", "msgTime", "values", "errdesc",
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
        ("/v2/System/GetDepartGroupList", json!({"departId": 1})),
        ("/v2/System/GetStaffList", json!({"departId": 1, "departGroupId": 11})),
        ("/v2/System/GetAllStaffList", json!({"pageIndex": 1, "pageSize": 20})),
        ("/v2/System/GetWechatList", json!({"ad_wechat_lei": -1, "pageIndex": 1, "pageSize": 20})),
        ("/v2/Friend/GetFansList", json!({"wechatId": 135389, "pageIndex": 1, "pageSize": 20})),
        ("/v2/Friend/GetFansCount", json!({"wechatId": 135389})),
        ("/v2/AdManage/GetAdList", json!({"pageIndex": 1, "pageSize": 20})),
        ("/v2/AdManage/GetAdCount", json!({})),
        ("/v2/Todo/AddRecord", json!({"AdWecharId": 135389, "Weixin": "wxid_fan0001", "RemindTitle": "回访", "FollowupsiTuation": "确认收货情况", "RemindTime": "2030-01-01 10:00:00", "StaffCode": "S001", "From": 0, "IsAlways": 0})),
        ("/v2/Todo/AddRecordNew", json!({"AdWecharId": 135389, "Weixin": "wxid_fan0001", "RemindTitle": "回访", "FollowupsiTuation": "确认收货情况", "RemindTime": "2030-01-01 10:00:00", "StaffCode": "S001", "From": 0, "IsAlways": 0})),
        ("/v2/Todo/GetChargeDaffairesList", json!({"pageIndex": 1, "pageSize": 20})),
        ("/v2/Todo/GetChargeDaffairesCount", json!({})),
        ("/v2/Report/GetDataByStaffCustomer", json!({"startDate": "2024-05-01", "endDate": "2024-05-31"})),
        ("/v2/Report/GetActivationListByStaff", json!({"time": 1714579200})),
        ("/v2/ChatMess/GetChat", json!({"wechatId": 135389, "fansKey": "wxid_fan0001", "minChattingId": 0, "pageIndex": 1, "pageSize": 20})),
        ("/v2/ChatMess/GetChatFeed", json!({"minChattingId": 0, "pageSize": 100})),
        ("/v2/MeetingCall/GetMeetingVoiceCall", json!({"pageIndex": 1, "pageSize": 20})),
        ("/v2/BulkSend/SaveBulkSendTask", json!({"task_name": "双十一提醒", "wechat_ids": [135389], "fans_keys": ["wxid_fan0001"], "send_time": "2030-01-01 10:00:00", "task_content": [{"type": "0", "data": {"content": "活动今晚开始"}}]})),
        ("/v2/BulkSend/DeleteBulkSendTask", json!({"ad_bulk_send_id": 1})),
        ("/v2/BulkSend/GetBulkSendTask", json!({"ad_bulk_send_id": 1})),
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
        "string" if f.contains("talter") || f.contains("wenober") || f.contains("fans") => json!("wxid_fan0001"),
        "string" if f.contains("name") || f.contains("nick") => json!("张三"),
        "string" => json!("string"),
        "null" => Value::Null,
        _ => json!({}),
    }
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
                    " <b>required</b>"
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

/// A readable reference generated from the same OpenAPI document.
pub fn docs_html() -> String {
    let doc = spec();
    let mut out = String::from(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Juhe API reference</title><style>\
         body{font-family:system-ui,\"PingFang SC\",\"Microsoft YaHei\",\"Noto Sans CJK SC\",sans-serif;max-width:980px;margin:2em auto;padding:0 1em;line-height:1.45;color:#222}\
         code{background:#f3f3f3;padding:0 .25em;border-radius:3px}.t{color:#777;font-size:.9em}\
         .op{border:1px solid #ddd;border-radius:6px;padding:.4em 1em;margin:1em 0}.m{font-weight:bold;color:#fff;background:#2a7;padding:.1em .5em;border-radius:3px}\
         .get{background:#27a}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left}</style></head><body>",
    );
    let info = &doc["info"];
    out.push_str(&format!(
        "<h1>{}</h1><p>{}</p>",
        esc(info["title"].as_str().unwrap_or("")),
        esc(info["description"].as_str().unwrap_or(""))
    ));
    out.push_str("<p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI 3.1).</p><h2>Result codes (<code>errmsg</code>)</h2><table><tr><th>errmsg</th><th>HTTP</th><th>meaning</th></tr>");
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
    for (tag, desc, ops) in &ops_by_tag {
        out.push_str(&format!(
            "<h2>{} <span class=t>{}</span></h2>",
            esc(tag),
            esc(desc)
        ));
        {
            for (path, method, op) in ops {
                let cls = if method == "get" { "m get" } else { "m" };
                out.push_str(&format!(
                    "<div class=op><h3><span class=\"{cls}\">{}</span> <code>{}</code></h3>",
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
                    for p in params {
                        out.push_str(&format!(
                            "<p>Header <code>{}</code>: {}</p>",
                            esc(p["name"].as_str().unwrap_or("")),
                            esc(p["description"].as_str().unwrap_or(""))
                        ));
                    }
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
                    }
                }
                if let Some(resps) = op["responses"].as_object() {
                    for (status, r) in resps {
                        out.push_str(&format!(
                            "<h4>Response {} <span class=t>{}</span></h4>",
                            esc(status),
                            esc(r["description"].as_str().unwrap_or(""))
                        ));
                        if let Some(s) = r["content"]["application/json"]["schema"].as_object() {
                            let s = serde_json::Value::Object(s.clone());
                            let s = resolve(&s, doc);
                            if let Some(values) = s.get("properties").and_then(|p| p.get("values"))
                            {
                                out.push_str("<p>Envelope; <code>values</code>:</p>");
                                let v = resolve(values, doc);
                                let inner = v.get("items").map(|i| resolve(i, doc)).unwrap_or(v);
                                out.push_str(&format!(
                                    "<p class=t>{}</p>",
                                    esc(&type_label(v, doc))
                                ));
                                schema_html(inner, doc, 0, &mut out);
                            } else {
                                schema_html(s, doc, 0, &mut out);
                            }
                        }
                    }
                }
                out.push_str("</div>");
            }
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
        Code::IdempotencyConflict => {
            "Idempotency-Key reused with a different request, or still in progress (Juhe)"
        }
        Code::RateLimited => "rate limit exceeded; see Retry-After (Juhe)",
        Code::Forbidden => "not allowed to act for the requested tenant (Juhe)",
        Code::NoSuchRoute => "no such API path or method (Juhe)",
        Code::BodyTooLarge => "request body too large (Juhe)",
    }
}

async fn docs_page() -> Html<String> {
    Html(docs_html())
}
