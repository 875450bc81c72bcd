//! The one place that decides what a response looks like: every `/v2` answer, good or
//! bad, is the documented envelope `{requestId, errmsg, succeed, msgTime, values, errdesc}`
//! and the HTTP status tells the class of the outcome.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{FixedOffset, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// Result codes carried in `errmsg`. The first group is the original product's table;
/// codes above 200100 are ours, for situations the original docs do not cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 操作完成: generic success.
    Success,
    /// 令牌失效: the token is unknown, expired or revoked.
    TokenInvalid,
    /// TOKEN not supplied.
    TokenMissing,
    /// 不存在该好友: no such fan for that operating account.
    FriendNotFound,
    /// 员工编号不存在: unknown staff number.
    StaffNotFound,
    /// 微信号不存在: unknown operating account.
    WechatNotFound,
    /// Server error; details are in the server log under the requestId.
    ServerError,
    /// Caller parameter error; `errdesc` names the field.
    ParamError,
    /// The record named in the request does not exist for this merchant.
    NotFound,
    /// An `Idempotency-Key` was reused with a different request.
    IdempotencyConflict,
    /// Too many requests for this merchant; retry after `Retry-After` seconds.
    RateLimited,
    /// Authenticated, but not allowed to act for the requested tenant.
    Forbidden,
    /// No such API path.
    NoSuchRoute,
    /// Request body larger than the configured limit.
    BodyTooLarge,
    /// The path exists but not with this method; `Allow` lists the methods it takes.
    MethodNotAllowed,
    /// The request did not finish within `api.request_timeout_seconds`; nothing of it
    /// was written. Retry later, or narrow the request.
    Timeout,
    /// No assistant (device) serves the operating account, so nothing could execute the
    /// task; connect one (`juhe device create`, docs/assistant-protocol.md).
    NoAssistant,
    /// The request contradicts the current state (e.g. the conversation is taken over by
    /// someone else, or the fan belongs to another staff member); `errdesc` says which.
    Conflict,
}

impl Code {
    pub const fn value(self) -> i64 {
        match self {
            Code::Success => 20000,
            Code::TokenInvalid => 10003,
            Code::TokenMissing => 200001,
            Code::FriendNotFound => 200009,
            Code::StaffNotFound => 200010,
            Code::WechatNotFound => 200018,
            Code::ServerError => 200011,
            Code::ParamError => 200012,
            Code::NotFound => 200101,
            Code::IdempotencyConflict => 200102,
            Code::RateLimited => 200103,
            Code::Forbidden => 200104,
            Code::NoSuchRoute => 200105,
            Code::BodyTooLarge => 200106,
            Code::MethodNotAllowed => 200107,
            Code::Timeout => 200108,
            Code::NoAssistant => 200109,
            Code::Conflict => 200110,
        }
    }

    pub const fn status(self) -> StatusCode {
        match self {
            Code::Success => StatusCode::OK,
            Code::TokenInvalid | Code::TokenMissing => StatusCode::UNAUTHORIZED,
            Code::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Code::ParamError => StatusCode::BAD_REQUEST,
            Code::NotFound
            | Code::NoSuchRoute
            | Code::FriendNotFound
            | Code::StaffNotFound
            | Code::WechatNotFound => StatusCode::NOT_FOUND,
            Code::IdempotencyConflict | Code::NoAssistant | Code::Conflict => StatusCode::CONFLICT,
            Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Every code, for the documentation page and its test.
    pub const ALL: [Code; 18] = [
        Code::Success,
        Code::FriendNotFound,
        Code::StaffNotFound,
        Code::WechatNotFound,
        Code::TokenInvalid,
        Code::TokenMissing,
        Code::ServerError,
        Code::ParamError,
        Code::NotFound,
        Code::IdempotencyConflict,
        Code::RateLimited,
        Code::Forbidden,
        Code::NoSuchRoute,
        Code::BodyTooLarge,
        Code::MethodNotAllowed,
        Code::Timeout,
        Code::NoAssistant,
        Code::Conflict,
    ];
}

/// The result code of a response, left in its extensions for the metrics layer.
#[derive(Debug, Clone, Copy)]
pub struct ResultCode(pub i64);

/// Per-request context the envelope needs. Set by the request middleware as a task-local,
/// so that responses built deep inside extractors and handlers still carry the right
/// `requestId` without threading it through every function.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub request_id: String,
    pub offset: FixedOffset,
}

tokio::task_local! {
    pub static REQUEST_CTX: RequestCtx;
}

fn current_ctx() -> (Option<String>, FixedOffset) {
    REQUEST_CTX
        .try_with(|c| (Some(c.request_id.clone()), c.offset))
        .unwrap_or_else(|_| (None, FixedOffset::east_opt(8 * 3600).expect("valid offset")))
}

/// `2024-12-19T17:22:24.3121234+08:00`: seven fractional digits, as the original (.NET "o") sends.
pub fn msg_time(offset: FixedOffset) -> String {
    let now = Utc::now();
    let secs = offset.local_minus_utc();
    let mut out = crate::timefmt::format_local(now.timestamp(), offset);
    // `yyyy-MM-dd HH:mm:ss` → ISO 8601 with a `T`, 100 ns ticks and the offset, built by
    // hand: this runs on every response.
    out.replace_range(10..11, "T");
    let ticks = now.timestamp_subsec_nanos() / 100;
    let (sign, abs) = if secs < 0 { ('-', -secs) } else { ('+', secs) };
    use std::fmt::Write;
    let _ = write!(
        out,
        ".{ticks:07}{sign}{:02}:{:02}",
        abs / 3600,
        abs % 3600 / 60
    );
    out
}

/// How to fetch the next page of a list. Not in the original docs (which are silent on
/// paging metadata); sent beside the documented fields so existing clients can ignore it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    /// The page that was returned (1-based).
    pub page_index: i64,
    /// The page size actually used (requests above the limit are clamped).
    pub page_size: i64,
    /// Total matching records; the matching count endpoint returns the same number.
    /// Absent for GetChat, whose callers page by `minChattingId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    /// Whether another page follows.
    pub has_more: bool,
    /// `pageIndex` to send for the next page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_index: Option<i64>,
    /// GetChat only: send this as `minChattingId` (with `pageIndex` 1) to continue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_min_chatting_id: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeOut<'a, T: Serialize> {
    request_id: Option<String>,
    errmsg: i64,
    succeed: bool,
    msg_time: String,
    values: &'a T,
    errdesc: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<&'a PageInfo>,
}

/// The documented response envelope, for the OpenAPI description.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct Envelope<T: ToSchema> {
    /// Echo of the `X-Request-Id` header, or a generated id. Quote it when reporting a problem.
    #[schema(required = true)]
    requestId: Option<String>,
    /// Result code (see the table in docs/api.md); 20000 on success.
    errmsg: i64,
    succeed: bool,
    /// Server time in the configured offset, e.g. `2024-12-19T17:22:24.3121234+08:00`.
    msgTime: String,
    values: T,
    /// Null on success; otherwise what went wrong, naming the field.
    #[schema(required = true)]
    errdesc: Option<String>,
    /// List endpoints only: how to get the next page.
    page: Option<PageInfo>,
}

fn envelope_response<T: Serialize>(
    code: Code,
    values: &T,
    errdesc: Option<&str>,
    page: Option<&PageInfo>,
) -> Response {
    let (request_id, offset) = current_ctx();
    let body = EnvelopeOut {
        request_id,
        errmsg: code.value(),
        succeed: code == Code::Success,
        msg_time: msg_time(offset),
        values,
        errdesc,
        page,
    };
    let bytes = match crate::timefmt::with_offset(offset, || serde_json::to_vec(&body)) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "response serialisation failed");
            return ApiError::internal("response serialisation failed").into_response();
        }
    };
    let mut resp = (
        code.status(),
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        bytes,
    )
        .into_response();
    resp.extensions_mut().insert(ResultCode(code.value()));
    resp
}

/// A successful answer: `values` is the payload.
pub struct Values<T>(pub T);

impl<T: Serialize> IntoResponse for Values<T> {
    fn into_response(self) -> Response {
        envelope_response(Code::Success, &self.0, None, None)
    }
}

/// A successful page of a list.
pub struct Paged<V> {
    pub values: V,
    pub page: PageInfo,
}

impl<V: Serialize> IntoResponse for Paged<V> {
    fn into_response(self) -> Response {
        let mut resp = envelope_response(Code::Success, &self.values, None, Some(&self.page));
        if let Some(next) = self.page.next_page_index {
            if let Ok(v) = HeaderValue::from_str(&next.to_string()) {
                resp.headers_mut().insert("x-next-page-index", v);
            }
        }
        if let Some(total) = self.page.total {
            if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
                resp.headers_mut().insert("x-total-count", v);
            }
        }
        resp
    }
}

/// Every failure a handler or extractor can produce.
#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {desc}")]
pub struct ApiError {
    pub code: Code,
    pub desc: String,
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: Code, desc: impl Into<String>) -> Self {
        ApiError {
            code,
            desc: desc.into(),
            retry_after: None,
        }
    }

    /// A bad request parameter. `field` is the documented field name, so the integrator
    /// can find it in their own code.
    pub fn param(field: &str, problem: impl std::fmt::Display) -> Self {
        ApiError::new(Code::ParamError, format!("{field}: {problem}"))
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(Code::NotFound, what)
    }

    /// An internal failure. The detail goes to the log only; the client sees a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            Code::ServerError,
            "server error; see the server log for this requestId",
        )
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        ApiError {
            code: Code::RateLimited,
            desc: format!("rate limit exceeded for this merchant; retry after {retry_after} s"),
            retry_after: Some(retry_after),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal(format!("database: {e}"))
    }
}

impl From<crate::core::Rejection> for ApiError {
    fn from(r: crate::core::Rejection) -> Self {
        use crate::core::Rejection as R;
        let code = match &r {
            R::Invalid { .. } => Code::ParamError,
            R::UnknownWechat { .. } | R::UnknownWechatKey { .. } => Code::WechatNotFound,
            R::UnknownStaff { .. } => Code::StaffNotFound,
            R::UnknownFan { .. } => Code::FriendNotFound,
            R::NotFound { .. } => Code::NotFound,
            R::NoAssistant { .. } => Code::NoAssistant,
            R::Conflict { .. } => Code::Conflict,
            R::Db(e) => return ApiError::internal(format!("database: {e}")),
        };
        ApiError::new(code, r.to_string())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::internal(format!("{e:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.code != Code::ServerError {
            tracing::info!(errmsg = self.code.value(), errdesc = %self.desc, "request refused");
        }
        let mut resp =
            envelope_response(self.code, &serde_json::Value::Null, Some(&self.desc), None);
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self.code, Code::TokenInvalid | Code::TokenMissing) {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_time_has_seven_fraction_digits_and_the_offset() {
        let s = msg_time(FixedOffset::east_opt(8 * 3600).unwrap());
        assert_eq!(s.len(), "2024-12-19T17:22:24.3121234+08:00".len(), "{s}");
        assert!(s.ends_with("+08:00"), "{s}");
        assert_eq!(&s[19..20], ".");
    }

    #[test]
    fn msg_time_offsets_are_rendered_with_sign_hours_and_minutes() {
        let s = msg_time(FixedOffset::west_opt(5 * 3600 + 1800).unwrap());
        assert!(s.ends_with("-05:30"), "{s}");
        assert_eq!(&s[10..11], "T");
    }

    #[test]
    fn new_codes_stay_above_200100() {
        for c in Code::ALL {
            let v = c.value();
            assert!(v == 20000 || v == 10003 || (200000..=200100).contains(&v) || v > 200100);
        }
    }
}
