//! `POST /connect/token`: OAuth2 client-credentials grant (RFC 6749 §4.4), as the
//! original's IdentityServer endpoint. Answers in OAuth2's own format, not the envelope.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

/// The one scope of the public API.
pub const SCOPE: &str = "Ls.Qkl.PublicApi";

pub fn router() -> Router<AppState> {
    Router::new().route("/connect/token", post(issue_token))
}

/// Successful token response (RFC 6749 §5.1).
#[derive(Serialize, ToSchema)]
pub struct TokenOut {
    /// Opaque bearer token; send it as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires (7200 by default).
    pub expires_in: i64,
    /// `Ls.Qkl.PublicApi`.
    pub scope: String,
}

/// The address the TCP connection comes from. Behind a reverse proxy every client shares
/// the proxy's address, so the per-address limits then apply to all of them together
/// (docs/operations.md says so). Unknown (a server not started by `Application`) reads as
/// 0.0.0.0, one shared bucket rather than none.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    pub fn of(parts: &Parts) -> ClientIp {
        ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip()),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp::of(parts))
    }
}

/// Error response (RFC 6749 §5.2).
#[derive(Serialize, ToSchema)]
pub struct TokenError {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type`, `invalid_scope`, or
    /// `slow_down` (HTTP 429, with `Retry-After`) when too many tokens are requested.
    pub error: &'static str,
    pub error_description: String,
}

fn oauth_error(status: StatusCode, error: &'static str, desc: impl Into<String>) -> Response {
    let mut r = (
        status,
        Json(TokenError {
            error,
            error_description: desc.into(),
        }),
    )
        .into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        "no-store".parse().expect("static header"),
    );
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"juhe\"".parse().expect("static header"),
        );
    }
    r
}

/// Exchange client credentials for an access token.
///
/// Form-encoded body: `client_id`, `client_secret`, `grant_type=client_credentials`,
/// `scope=Ls.Qkl.PublicApi` (optional; that is the only scope). The client may instead
/// authenticate with HTTP Basic (`client_id:client_secret`). A JSON body with the same
/// fields is accepted too.
#[utoipa::path(post, path = "/connect/token", tag = "Auth",
    request_body(content_type = "application/x-www-form-urlencoded", content = String,
        description = "client_id=…&client_secret=…&grant_type=client_credentials&scope=Ls.Qkl.PublicApi"),
    responses(
        (status = 200, description = "Token issued", body = TokenOut),
        (status = 400, description = "unsupported_grant_type, invalid_scope or invalid_request", body = TokenError),
        (status = 401, description = "invalid_client", body = TokenError),
        (status = 429, description = "slow_down: too many token requests from this address or for this client; see Retry-After", body = TokenError),
    ))]
pub async fn issue_token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Spent before anything is parsed or looked up: malformed requests cost the server too.
    // The body has been read by now, so the connection stays usable after a 429.
    if let Some(wait) = state
        .auth_limits
        .token_per_ip
        .as_ref()
        .and_then(|b| b.spend(&ip))
    {
        tracing::warn!(%ip, "token refused: too many requests from this address");
        return slow_down(wait, "from this address");
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let mut form: HashMap<String, String> = if is_json {
        match serde_json::from_slice::<HashMap<String, serde_json::Value>>(&body) {
            Ok(m) => m
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect(),
            Err(_) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "body is not valid JSON",
                )
            }
        }
    } else {
        match serde_urlencoded_pairs(&body) {
            Some(m) => m,
            None => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "body is not valid application/x-www-form-urlencoded",
                )
            }
        }
    };
    if let Some((id, secret)) = basic_credentials(&headers) {
        form.entry("client_id".into()).or_insert(id);
        form.entry("client_secret".into()).or_insert(secret);
    }
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported; use client_credentials"),
            )
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required (client_credentials)",
            )
        }
    }
    let scope = form
        .get("scope")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .unwrap_or(SCOPE);
    if scope.split_whitespace().any(|s| s != SCOPE) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            format!("the only scope is {SCOPE}"),
        );
    }
    let (Some(id), Some(secret)) = (form.get("client_id"), form.get("client_secret")) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id and client_secret are required",
        );
    };
    // Every attempt counts, failed or not: it bounds guessing one client's secret. The
    // price is that a flood naming a client id slows that client's own token requests.
    if let Some(wait) = state
        .auth_limits
        .token_per_client
        .as_ref()
        .and_then(|b| b.spend(id))
    {
        tracing::warn!(client_id = %id, "token refused: too many requests for this client");
        return slow_down(wait, "for this client_id");
    }
    match state
        .store
        .admin()
        .issue_token(id, secret, SCOPE, state.cfg.auth.token_ttl_seconds)
        .await
    {
        Ok(Some(t)) => {
            tracing::info!(client_id = %id, "token issued");
            let mut r = Json(TokenOut {
                access_token: t.access_token,
                token_type: "Bearer",
                expires_in: t.expires_in,
                scope: t.scope,
            })
            .into_response();
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                "no-store".parse().expect("static header"),
            );
            r
        }
        Ok(None) => {
            tracing::info!(client_id = %id, "token refused: bad client credentials");
            oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "unknown client_id or wrong client_secret",
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "token issue failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(TokenError {
                    error: "server_error",
                    error_description: "server error".into(),
                }),
            )
                .into_response()
        }
    }
}

fn slow_down(wait: u64, whose: &str) -> Response {
    let mut r = oauth_error(
        StatusCode::TOO_MANY_REQUESTS,
        "slow_down",
        format!("too many token requests {whose}; retry after {wait} s (a token lasts expires_in seconds: reuse it)"),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(wait));
    r
}

fn serde_urlencoded_pairs(body: &[u8]) -> Option<HashMap<String, String>> {
    let s = std::str::from_utf8(body).ok()?;
    let mut out = HashMap::new();
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |x: &str| {
            percent_encoding::percent_decode_str(&x.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .ok()
        };
        out.insert(dec(k)?, dec(v)?);
    }
    Some(out)
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}
