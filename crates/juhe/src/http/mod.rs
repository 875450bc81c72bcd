//! The HTTP layer: one router per API resource, merged here, wrapped in the request
//! middleware (request id, log span, metrics) that every route shares.

pub mod ad;
pub mod bulk_send;
pub mod callbacks;
pub mod chat;
pub mod chatmess;
pub mod conversation;
pub mod extract;
pub mod friend;
pub mod limits;
pub mod meeting;
pub mod ops;
pub mod report;
pub mod system;
pub mod todo;
pub mod token;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::FixedOffset;
use tracing::Instrument;

use crate::config::Config;
use crate::error::{ApiError, Code, PageInfo, Paged, RequestCtx, ResultCode, REQUEST_CTX};
use crate::metrics::{Metrics, RequestLabels, RouteLabels};
use crate::ratelimit::{AuthLimits, Limiter};
use crate::store::{Page, Store};

/// Everything a handler may need, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub cfg: Arc<Config>,
    pub offset: FixedOffset,
    pub metrics: Arc<Metrics>,
    pub limiter: Arc<Limiter>,
    pub auth_limits: Arc<AuthLimits>,
    pub expensive: Arc<limits::ExpensiveCap>,
    /// The assistant connections of this process.
    pub gateway: crate::gateway::Hub,
}

impl AppState {
    pub fn new(store: Store, cfg: Config) -> anyhow::Result<AppState> {
        let offset = cfg.offset()?;
        let limiter = Arc::new(Limiter::new(&cfg.rate_limit));
        let auth_limits = Arc::new(AuthLimits::new(&cfg.auth));
        let expensive = Arc::new(limits::ExpensiveCap::new(cfg.api.max_concurrent_expensive));
        let gateway = crate::gateway::Hub::new(store.clone(), cfg.gateway.clone());
        Ok(AppState {
            gateway,
            store,
            cfg: Arc::new(cfg),
            offset,
            metrics: Metrics::new(),
            limiter,
            auth_limits,
            expensive,
        })
    }
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let body_limit = state.cfg.api.max_body_bytes;
    Router::new()
        .merge(token::router())
        .merge(system::router())
        .merge(friend::router())
        .merge(ad::router())
        .merge(todo::router())
        .merge(report::router())
        .merge(chat::router())
        .merge(chatmess::router())
        .merge(conversation::router())
        .merge(meeting::router())
        .merge(bulk_send::router())
        .merge(callbacks::router())
        .merge(ops::router())
        .merge(crate::gateway::router())
        .fallback(no_such_route)
        .method_not_allowed_fallback(wrong_method)
        .route_layer(middleware::from_fn(move |req: Request, next: Next| {
            extract::prepare_body(body_limit, req, next)
        }))
        .route_layer(middleware::from_fn(mark_route))
        // Enforced by the body extractor, so an oversized body gets the envelope (200106).
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::expensive_cap,
        ))
        // Inside the request middleware, so a timeout is logged and counted like any answer.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::timeout,
        ))
        // A bug must still answer with the envelope (200011), inside the request's span.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::internal("a handler panicked").into_response()
            },
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_middleware,
        ))
        .with_state(state)
}

async fn no_such_route(State(st): State<AppState>, req: Request) -> ApiError {
    let (parts, body) = req.into_parts();
    // Read (and drop) the body so that closing the connection cannot destroy this answer.
    if let Err(e) = extract::read_all(body, st.cfg.api.max_body_bytes).await {
        return e;
    }
    let req = Request::from_parts(parts, ());
    ApiError::new(
        Code::NoSuchRoute,
        format!(
            "{} {}: no such API (paths are case-sensitive, see /docs)",
            req.method(),
            req.uri().path()
        ),
    )
}

/// axum adds the `Allow` header to this response.
async fn wrong_method(req: Request) -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        format!(
            "{} {}: this path does not take that method; the Allow header lists the ones it does",
            req.method(),
            req.uri().path()
        ),
    )
}

/// The route template a request matched, carried out on the response for the metrics.
#[derive(Clone)]
struct MatchedRoute(String);

/// Runs inside routing, where the matched path is known (outer layers run before routing).
async fn mark_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let mut resp = next.run(req).await;
    if let Some(r) = route {
        resp.extensions_mut().insert(MatchedRoute(r));
    }
    resp
}

/// Request id, log span, access log line and metrics for every request. The request id
/// is echoed from `X-Request-Id` when the client sends one (so both sides can grep the same
/// id) and generated otherwise; it appears in the envelope, the response header and every
/// log line of the request.
async fn request_middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", requestId = %request_id, method = %method, path = %path, merchant = tracing::field::Empty);
    let ctx = RequestCtx {
        request_id: request_id.clone(),
        offset: state.offset,
    };
    let mut resp = REQUEST_CTX
        .scope(ctx, next.run(req))
        .instrument(span.clone())
        .await;
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    let errmsg = resp
        .extensions()
        .get::<ResultCode>()
        .map(|c| c.0)
        .unwrap_or(0);
    let route = resp
        .extensions()
        .get::<MatchedRoute>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| "unmatched".to_owned());
    span.in_scope(|| {
        tracing::info!(
            status,
            errmsg,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request finished"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let m = &state.metrics;
    m.requests
        .get_or_create(&RequestLabels {
            method: method.to_string(),
            route: route.clone(),
            status,
            errmsg,
        })
        .inc();
    m.latency
        .get_or_create(&RouteLabels {
            method: method.to_string(),
            route,
        })
        .observe(elapsed.as_secs_f64());
    resp
}

/// 32 hex digits from the thread-local generator: as unique as a UUIDv4, without the
/// `getrandom` system call a UUID costs on every request.
fn new_request_id() -> String {
    use rand::Rng;
    format!("{:032x}", rand::thread_rng().gen::<u128>())
}

/// Store rows as the documented wire records.
pub fn wire<R, W: From<R>>(rows: Vec<R>) -> Vec<W> {
    rows.into_iter().map(W::from).collect()
}

/// A whole, unpaged list (the documented endpoint has no paging parameters).
pub fn whole<T: serde::Serialize>(values: Vec<T>) -> Response {
    let n = values.len() as i64;
    Paged {
        values,
        page: PageInfo {
            page_index: 1,
            page_size: n,
            total: Some(n),
            has_more: false,
            next_page_index: None,
            next_min_chatting_id: None,
        },
    }
    .into_response()
}

/// One page of a list.
pub fn paged<T: serde::Serialize>(
    values: Vec<T>,
    more: bool,
    page: Page,
    total: Option<i64>,
) -> Response {
    Paged {
        values,
        page: PageInfo {
            page_index: page.index,
            page_size: page.size,
            total,
            has_more: more,
            next_page_index: more.then_some(page.index + 1),
            next_min_chatting_id: None,
        },
    }
    .into_response()
}
