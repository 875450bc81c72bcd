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
        super::system::get_depart_list, super::system::get_depart_group_list, super::system::get_staff_list, super::system::get_all_staff_list,
        super::friend::get_fans_list, super::friend::get_fans_count,
        super::ad::get_ad_list, super::ad::get_ad_count,
        super::todo::add_record, super::todo::add_record_new, super::todo::get_charge_daffaires_list, super::todo::get_charge_daffaires_count,
        super::report::get_data_by_staff_customer, super::report::get_activation_list_by_staff,
        super::chat::get_chat,
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

pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
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
    Json(openapi()).into_response()
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
    let doc = serde_json::to_value(openapi()).unwrap_or_default();
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
                        schema_html(&c["schema"], &doc, 0, &mut out);
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
                            let s = resolve(&s, &doc);
                            if let Some(values) = s.get("properties").and_then(|p| p.get("values"))
                            {
                                out.push_str("<p>Envelope; <code>values</code>:</p>");
                                let v = resolve(values, &doc);
                                let inner = v.get("items").map(|i| resolve(i, &doc)).unwrap_or(v);
                                out.push_str(&format!(
                                    "<p class=t>{}</p>",
                                    esc(&type_label(v, &doc))
                                ));
                                schema_html(inner, &doc, 0, &mut out);
                            } else {
                                schema_html(s, &doc, 0, &mut out);
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
        Code::IdempotencyConflict => "Idempotency-Key reused with a different request (Juhe)",
        Code::RateLimited => "rate limit exceeded; see Retry-After (Juhe)",
        Code::Forbidden => "not allowed to act for the requested tenant (Juhe)",
        Code::NoSuchRoute => "no such API path or method (Juhe)",
        Code::BodyTooLarge => "request body too large (Juhe)",
        Code::Timeout => "request timed out; nothing was written (Juhe)",
    }
}

async fn docs_page() -> Html<String> {
    Html(docs_html())
}
