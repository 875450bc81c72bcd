//! Request extractors: the merchant behind the bearer token, lenient JSON bodies, paging,
//! and idempotency keys. Each turns a bad request into the documented envelope.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::AppState;
use crate::error::{ApiError, Code};
use crate::lenient::OptInt;
use crate::store::admin::Principal;
use crate::store::idempotency::Tx;
use crate::store::{MerchantId, Page};

/// The merchant a request acts for: the token's own merchant, or for an agent's token the
/// linked merchant named by `TenantId`. Rate limiting is applied here, per merchant.
#[derive(Debug, Clone, Copy)]
pub struct Merchant(pub MerchantId);

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let raw = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::new(
                Code::TokenMissing,
                "Authorization: the header is missing; send `Authorization: Bearer <access_token>`",
            )
        })?;
    let raw = raw
        .to_str()
        .map_err(|_| ApiError::new(Code::TokenInvalid, "Authorization: not valid ASCII"))?
        .trim();
    let token = match raw.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        // Some clients send the bare token; accept it (lenient in what we accept).
        None if !raw.is_empty() && !raw.eq_ignore_ascii_case("bearer") => raw,
        _ => "",
    };
    if token.is_empty() {
        return Err(ApiError::new(
            Code::TokenMissing,
            "Authorization: no token after `Bearer`",
        ));
    }
    Ok(token)
}

/// A refused authentication. When the request carries a body, the answer says
/// `Connection: close`: the body is never read, and hyper can only keep the connection if the
/// whole body happens to be buffered already, else it closes it unannounced. Saying so lets
/// every client reconnect cleanly (a 429 or 401 for a bodiless request keeps the connection).
pub struct AuthRejection {
    err: ApiError,
    close: bool,
}

impl From<ApiError> for AuthRejection {
    fn from(err: ApiError) -> Self {
        AuthRejection { err, close: false }
    }
}

impl axum::response::IntoResponse for AuthRejection {
    fn into_response(self) -> axum::response::Response {
        let mut r = self.err.into_response();
        if self.close {
            r.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        r
    }
}

fn has_body(parts: &Parts) -> bool {
    use axum::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    parts.headers.contains_key(TRANSFER_ENCODING)
        || parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

impl<S> FromRequestParts<S> for Merchant
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(m) = parts.extensions.get::<Merchant>() {
            return Ok(*m);
        }
        let close = has_body(parts);
        authenticate(parts, state)
            .await
            .map_err(|err| AuthRejection { err, close })
    }
}

async fn authenticate<S>(parts: &mut Parts, state: &S) -> Result<Merchant, ApiError>
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    let state = AppState::from_ref(state);
    let token = bearer(parts)?;
    let failures = state.auth_limits.failed_auth_per_ip.as_ref();
    let ip = super::token::ClientIp::of(parts).0;
    // An address over its failure limit is refused before its token is looked at, so
    // a guesser cannot tell a right guess from a wrong one.
    if let Some(wait) = failures.and_then(|b| b.blocked(&ip)) {
        return Err(auth_rate_limited(wait));
    }
    let Some(principal) = state.store.admin().resolve_token(token).await? else {
        if let Some(wait) = failures.and_then(|b| b.spend(&ip)) {
            tracing::warn!(%ip, "too many failed tokens from this address");
            return Err(auth_rate_limited(wait));
        }
        return Err(ApiError::new(Code::TokenInvalid, "Authorization: the token is invalid, expired or revoked; request a new one at /connect/token"));
    };
    let tenant_header = parts
        .headers
        .get("tenantid")
        .map(|v| v.to_str().unwrap_or("").trim().to_owned())
        .filter(|s| !s.is_empty());
    let merchant = match principal {
        Principal::Merchant(m) => {
            // A merchant may repeat its own id in TenantId; anything else is refused
            // rather than silently ignored.
            if let Some(t) = &tenant_header {
                if t != &m.get().to_string() {
                    return Err(ApiError::new(
                        Code::Forbidden,
                        "TenantId: a merchant token can only act for its own merchant",
                    ));
                }
            }
            m
        }
        Principal::Agent(agent) => {
            let t = tenant_header.ok_or_else(|| {
                ApiError::new(
                    Code::Forbidden,
                    "TenantId: an agent token must name the merchant it acts for",
                )
            })?;
            let id: i64 = t
                .parse()
                .map_err(|_| ApiError::new(Code::Forbidden, "TenantId: must be a merchant id"))?;
            state
                .store
                .admin()
                .agent_tenant(agent, id)
                .await?
                .ok_or_else(|| {
                    ApiError::new(
                        Code::Forbidden,
                        "TenantId: this agent is not linked to that merchant",
                    )
                })?
        }
    };
    if let Some(wait) = state.limiter.check(merchant) {
        return Err(ApiError::rate_limited(wait));
    }
    tracing::Span::current().record("merchant", merchant.get());
    parts.extensions.insert(Merchant(merchant));
    Ok(Merchant(merchant))
}

fn auth_rate_limited(wait: u64) -> ApiError {
    ApiError {
        code: Code::RateLimited,
        desc: format!(
            "Authorization: too many invalid tokens from this address; retry after {wait} s"
        ),
        retry_after: Some(wait),
    }
}

/// A JSON body read leniently: any content type, an empty body or `null` means `{}`,
/// unknown fields are ignored, and a malformed body or wrongly typed field is a 200012
/// naming the field.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    Code::BodyTooLarge,
                    "body: larger than the configured limit (api.max_body_bytes)",
                )
            } else {
                ApiError::param("body", format!("could not be read: {e}"))
            }
        })?;
        parse_body(&bytes).map(Body)
    }
}

pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let trimmed = bytes.trim_ascii();
    let src: &[u8] = if trimmed.is_empty() || trimmed == b"null" {
        b"{}"
    } else {
        trimmed
    };
    let mut de = serde_json::Deserializer::from_slice(src);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::param("body", format!("malformed JSON ({inner})"))
        } else if path == "." || path.is_empty() {
            // Missing required fields are reported at the object level; serde names them.
            let msg = inner.to_string();
            match msg.split('`').nth(1) {
                Some(field) if msg.starts_with("missing field") => {
                    ApiError::param(field, "is required")
                }
                _ => ApiError::param("body", msg),
            }
        } else {
            ApiError::param(&path, strip_position(&inner.to_string()))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::param("body", format!("malformed JSON ({e})")))?;
    Ok(value)
}

fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Validated paging. `index_field`/`size_field` are the endpoint's documented names.
pub fn page(
    state: &AppState,
    index: OptInt,
    size: OptInt,
    index_field: &str,
    size_field: &str,
) -> Result<Page, ApiError> {
    let idx = index.get().unwrap_or(1);
    if idx < 1 {
        return Err(ApiError::param(
            index_field,
            "must be 1 or more (pages are 1-based)",
        ));
    }
    let size = size.get().unwrap_or(state.cfg.api.default_page_size);
    if size < 1 {
        return Err(ApiError::param(size_field, "must be 1 or more"));
    }
    if idx > 1_000_000 {
        return Err(ApiError::param(index_field, "is too large"));
    }
    Ok(Page {
        index: idx,
        size: size.min(state.cfg.api.max_page_size),
    })
}

/// The optional `Idempotency-Key` header of a create request.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get("idempotency-key") {
            None => Ok(IdempotencyKey(None)),
            Some(v) => {
                let s = v
                    .to_str()
                    .map_err(|_| ApiError::param("Idempotency-Key", "must be visible ASCII"))?
                    .trim();
                if s.is_empty() || s.len() > 200 {
                    return Err(ApiError::param(
                        "Idempotency-Key",
                        "must be 1 to 200 characters",
                    ));
                }
                Ok(IdempotencyKey(Some(s.to_owned())))
            }
        }
    }
}

/// Runs a create-style write at most once per `Idempotency-Key`. The key and the result
/// are stored in the write's own transaction; a repeat within the window gets the stored
/// result (and `replayed = true`), a reused key with a different request a 409.
pub async fn idempotent<F, Fut>(
    state: &AppState,
    m: MerchantId,
    key: &IdempotencyKey,
    route: &str,
    request: &impl serde::Serialize,
    write: F,
) -> Result<(serde_json::Value, bool), ApiError>
where
    F: FnOnce(Tx) -> Fut,
    Fut: std::future::Future<Output = Result<(Tx, serde_json::Value), ApiError>>,
{
    let tenant = state.store.tenant(m);
    let hash = request_hash(request);
    let mut tx = tenant.begin().await?;
    if let Some(k) = &key.0 {
        if let Some(r) = tenant
            .idempotency_get(&mut tx, k, state.cfg.api.idempotency_ttl_seconds)
            .await?
        {
            tx.rollback().await?;
            if r.route != route || r.request_hash != hash {
                return Err(ApiError::new(
                    Code::IdempotencyConflict,
                    "Idempotency-Key: already used for a different request",
                ));
            }
            let v = serde_json::from_str(&r.response).map_err(ApiError::internal)?;
            return Ok((v, true));
        }
    }
    let (mut tx, values) = write(tx).await?;
    if let Some(k) = &key.0 {
        if let Err(e) = tenant
            .idempotency_put(
                &mut tx,
                k,
                route,
                &hash,
                &values.to_string(),
                state.cfg.api.idempotency_ttl_seconds,
            )
            .await
        {
            return Err(match &e {
                sqlx::Error::Database(d) if d.is_unique_violation() => ApiError::new(
                    Code::IdempotencyConflict,
                    "Idempotency-Key: a request with this key is in progress; retry shortly",
                ),
                _ => e.into(),
            });
        }
    }
    tx.commit().await?;
    Ok((values, false))
}

/// Marks a response that replays a remembered result (`Idempotent-Replayed: true`).
pub fn replay_header(mut r: axum::response::Response, replayed: bool) -> axum::response::Response {
    if replayed {
        r.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    r
}

/// A stable hash of a request body, to tell a true retry from a reused key.
pub fn request_hash(v: &impl serde::Serialize) -> String {
    let s = serde_json::to_string(v).unwrap_or_default();
    hex::encode(Sha256::digest(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(non_snake_case, dead_code)]
    struct P {
        wechatId: i64,
        pageSize: OptInt,
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let e = parse_body::<P>(b"{}").err().unwrap();
        assert_eq!(e.code, Code::ParamError);
        assert!(e.desc.starts_with("wechatId:"), "{}", e.desc);
    }

    #[test]
    fn a_wrong_type_names_the_field_and_malformed_json_is_a_param_error() {
        let e = parse_body::<P>(br#"{"wechatId": 1, "pageSize": "abc"}"#)
            .err()
            .unwrap();
        assert!(e.desc.starts_with("pageSize:"), "{}", e.desc);
        let e = parse_body::<P>(br#"{"wechatId": "#).err().unwrap();
        assert!(e.desc.starts_with("body: malformed JSON"), "{}", e.desc);
    }
}
