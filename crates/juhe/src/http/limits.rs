//! Limits that keep one request, or one merchant, from holding the server: a timeout on
//! every request, and a per-merchant cap on concurrent expensive requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::extract::Merchant;
use super::AppState;
use crate::error::{ApiError, Code};
use crate::store::MerchantId;

/// Requests that aggregate over a merchant's whole history or a long time range: their
/// cost grows with the data, not with the page size.
const EXPENSIVE: [&str; 5] = [
    "/v2/Report/GetDataByStaffCustomer",
    "/v2/Report/GetActivationListByStaff",
    "/v2/Friend/GetFansCount",
    "/v2/AdManage/GetAdCount",
    "/v2/Todo/GetChargeDaffairesCount",
];

/// How long a request over the cap waits for a slot before it is turned away: long enough
/// to absorb a dashboard that fires its reports together, short enough not to pile up.
const QUEUE_WAIT: Duration = Duration::from_secs(1);

/// Per-merchant slots for expensive requests.
pub struct ExpensiveCap {
    per_merchant: usize,
    slots: Mutex<HashMap<MerchantId, Arc<Semaphore>>>,
}

impl ExpensiveCap {
    pub fn new(per_merchant: u32) -> ExpensiveCap {
        ExpensiveCap {
            per_merchant: per_merchant as usize,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn semaphore(&self, m: MerchantId) -> Arc<Semaphore> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(m)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_merchant)))
            .clone()
    }
}

/// Answers with the envelope (503, 200108) when the request outlives
/// `api.request_timeout_seconds`. Dropping the handler rolls back any open transaction.
pub async fn timeout(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let limit = Duration::from_secs(st.cfg.api.request_timeout_seconds);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(
                timeout_seconds = limit.as_secs(),
                "request timed out and was abandoned"
            );
            ApiError {
                code: Code::Timeout,
                desc: format!(
                    "request: did not finish within {} s (api.request_timeout_seconds); nothing was written; retry later or narrow the request",
                    limit.as_secs()
                ),
                retry_after: Some(1),
            }
            .into_response()
        }
    }
}

/// Holds one of the merchant's expensive-request slots for the whole request. The merchant
/// is resolved here through the same extractor the handler uses (it caches the result in
/// the request, so the token is looked up and rate-limited once).
pub async fn expensive_cap(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if st.expensive.per_merchant == 0 || !EXPENSIVE.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let m = match Merchant::from_request_parts(&mut parts, &st).await {
        Ok(Merchant(m)) => m,
        Err(e) => return answer_early(&st, body, e).await,
    };
    let sem = st.expensive.semaphore(m);
    let permit = match tokio::time::timeout(QUEUE_WAIT, sem.acquire_owned()).await {
        Ok(Ok(p)) => p,
        _ => {
            let e = ApiError {
                code: Code::RateLimited,
                desc: format!(
                    "too many expensive requests (reports, counts) at once for this merchant: at most {} run together (api.max_concurrent_expensive); retry after 1 s",
                    st.expensive.per_merchant
                ),
                retry_after: Some(1),
            };
            return answer_early(&st, body, e).await;
        }
    };
    let resp = next.run(Request::from_parts(parts, body)).await;
    drop(permit);
    resp
}

/// Reads (up to the body limit) and drops the request body before answering: a server that
/// answers and closes while the client is still sending makes the client see a reset
/// connection instead of the answer.
async fn answer_early(
    st: &AppState,
    body: axum::body::Body,
    e: impl axum::response::IntoResponse,
) -> Response {
    let _ = super::extract::read_all(body, st.cfg.api.max_body_bytes).await;
    e.into_response()
}
