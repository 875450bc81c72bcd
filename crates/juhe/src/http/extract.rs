//! Request extractors: the merchant behind the bearer token, lenient JSON bodies, paging,
//! and idempotency keys. Each turns a bad request into the documented envelope.

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::AppState;
use crate::error::{ApiError, Code};
use crate::lenient::OptInt;
use crate::store::admin::Principal;
use crate::store::idempotency::{Claim, Remembered, Tx};
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
    let cache = std::time::Duration::from_millis(state.cfg.auth.token_cache_ms);
    let Some(principal) = state
        .store
        .admin()
        .resolve_token_cached(token, cache)
        .await?
    else {
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
                .agent_tenant_cached(agent, id, cache)
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
/// field names match case-insensitively (as the original .NET server binds them), unknown
/// fields are ignored but named in `X-Juhe-Unknown-Fields`, and a malformed body or
/// wrongly typed field is a 200012 naming the field.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    AppState: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let slot = req.extensions().get::<UnknownFields>().cloned();
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
        // Local time strings in the body are read in the server's configured offset.
        let offset = AppState::from_ref(state).offset;
        let mut unknown = Vec::new();
        let parsed =
            crate::timefmt::with_offset(offset, || parse_body_noting(&bytes, &mut unknown));
        if !unknown.is_empty() {
            tracing::debug!(fields = ?unknown, "unknown request fields ignored");
            if let Some(slot) = slot {
                let _ = slot.0.set(unknown_header(&unknown));
            }
        }
        parsed.map(Body)
    }
}

/// Where the body extractor leaves the `X-Juhe-Unknown-Fields` value for
/// [`prepare_body`] to put on the response (an extractor cannot touch the response).
#[derive(Clone, Default)]
pub struct UnknownFields(Arc<OnceLock<HeaderValue>>);

pub const UNKNOWN_FIELDS_HEADER: &str = "x-juhe-unknown-fields";

/// Route middleware, one layer for two jobs around the body:
/// - reads the whole body (up to `limit`, `api.max_body_bytes`) before the handler runs.
///   A handler or extractor that answers without reading it (a GET with a body, a bad
///   token, a rate limit) would otherwise close the connection with the body unread, and
///   the kernel's reset can destroy the answer before the client reads it;
/// - names the request's ignored fields in a response header, so a typo such as `fanskee`
///   is visible at once instead of silently matching everything.
pub async fn prepare_body(limit: usize, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let slot = UnknownFields::default();
    parts.extensions.insert(slot.clone());
    let req = if axum::body::HttpBody::size_hint(&body).exact() == Some(0) {
        Request::from_parts(parts, body)
    } else {
        match read_all(body, limit).await {
            Ok(bytes) => Request::from_parts(parts, bytes.into()),
            Err(e) => return e.into_response(),
        }
    };
    let mut resp = next.run(req).await;
    if let Some(v) = slot.0.get() {
        resp.headers_mut()
            .insert(HeaderName::from_static(UNKNOWN_FIELDS_HEADER), v.clone());
    }
    resp
}

/// Reads a body up to `limit` bytes, as the body extractor would report a failure.
pub async fn read_all(body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::new(
                Code::BodyTooLarge,
                "body: larger than the configured limit (api.max_body_bytes)",
            )
        } else {
            ApiError::param("body", format!("could not be read: {e}"))
        }
    })
}

/// `a, b, c`: field names as sent, percent-encoded where a header cannot carry them,
/// each cut to 64 characters and at most 20 of them (with a count of the rest).
fn unknown_header(names: &[String]) -> HeaderValue {
    const ENCODE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b',')
        .add(b'%')
        .add(b'"');
    let mut seen = std::collections::HashSet::new();
    let mut parts: Vec<String> = Vec::new();
    let mut more = 0;
    for n in names {
        if !seen.insert(n.as_str()) {
            continue;
        }
        if parts.len() == 20 {
            more += 1;
            continue;
        }
        let cut = n
            .char_indices()
            .nth(64)
            .map_or(n.as_str(), |(i, _)| &n[..i]);
        parts.push(percent_encoding::utf8_percent_encode(cut, ENCODE).to_string());
    }
    if more > 0 {
        parts.push(format!("(and {more} more)"));
    }
    HeaderValue::from_str(&parts.join(", ")).unwrap_or_else(|_| HeaderValue::from_static("?"))
}

pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse_body_noting(bytes, &mut Vec::new())
}

/// Parses a body in one pass, binding field names case-insensitively and pushing the names
/// of fields the target type does not have onto `unknown`.
pub fn parse_body_noting<T: DeserializeOwned>(
    bytes: &[u8],
    unknown: &mut Vec<String>,
) -> Result<T, ApiError> {
    let trimmed = bytes.trim_ascii();
    let src: &[u8] = if trimmed.is_empty() || trimmed == b"null" {
        b"{}"
    } else {
        trimmed
    };
    let mut de = serde_json::Deserializer::from_slice(src);
    let value = serde_path_to_error::deserialize(fields::AnyCase {
        inner: &mut de,
        unknown,
    })
    .map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::param("body", format!("malformed JSON ({inner})"))
        } else if path == "." || path.is_empty() {
            // Missing and repeated fields are reported at the object level; serde names them.
            let msg = inner.to_string();
            match msg.split('`').nth(1) {
                Some(field) if msg.starts_with("missing field") => {
                    ApiError::param(field, "is required")
                }
                Some(field) if msg.starts_with("duplicate field") => ApiError::param(
                    field,
                    "is given more than once (field names match case-insensitively)",
                ),
                _ => ApiError::param("body", strip_position(&msg)),
            }
        } else {
            ApiError::param(&path, strip_position(&inner.to_string()))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::param("body", format!("malformed JSON ({e})")))?;
    Ok(value)
}

/// Case-insensitive field binding without a second parse: the top-level struct is read as a
/// map whose keys are rewritten on the fly to the field (or alias) name they match. serde's
/// derive hands `deserialize_struct` every accepted name, aliases included, so the known
/// names come for free; an exact match costs one scan of that short list.
mod fields {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

    pub struct AnyCase<'a, D> {
        pub inner: D,
        pub unknown: &'a mut Vec<String>,
    }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for AnyCase<'_, D> {
        type Error = D::Error;

        fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
            self.inner.deserialize_any(v)
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            v: V,
        ) -> Result<V::Value, D::Error> {
            // As a map, not a struct: serde_json would otherwise accept an array and bind
            // its items to fields by position.
            self.inner.deserialize_map(Struct {
                inner: v,
                fields,
                unknown: self.unknown,
            })
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    struct Struct<'a, V> {
        inner: V,
        fields: &'static [&'static str],
        unknown: &'a mut Vec<String>,
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for Struct<'_, V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            self.inner.expecting(f)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
            self.inner.visit_map(Keys {
                inner: map,
                fields: self.fields,
                unknown: self.unknown,
            })
        }
    }

    struct Keys<'a, A> {
        inner: A,
        fields: &'static [&'static str],
        unknown: &'a mut Vec<String>,
    }

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for Keys<'_, A> {
        type Error = A::Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, A::Error> {
            self.inner.next_key_seed(Key {
                inner: seed,
                fields: self.fields,
                unknown: self.unknown,
            })
        }

        fn next_value_seed<S: DeserializeSeed<'de>>(
            &mut self,
            seed: S,
        ) -> Result<S::Value, A::Error> {
            self.inner.next_value_seed(seed)
        }

        fn size_hint(&self) -> Option<usize> {
            self.inner.size_hint()
        }
    }

    /// Used three ways: as the seed of a key, as the deserializer handed to the field's
    /// own seed, and as the visitor of the key string.
    struct Key<'a, T> {
        inner: T,
        fields: &'static [&'static str],
        unknown: &'a mut Vec<String>,
    }

    impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for Key<'_, K> {
        type Value = K::Value;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<K::Value, D::Error> {
            self.inner.deserialize(Key {
                inner: d,
                fields: self.fields,
                unknown: self.unknown,
            })
        }
    }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for Key<'_, D> {
        type Error = D::Error;

        fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
            self.inner.deserialize_str(Key {
                inner: v,
                fields: self.fields,
                unknown: self.unknown,
            })
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map struct enum identifier ignored_any
        }
    }

    enum Name {
        Exact,
        Known(&'static str),
        Unknown,
    }

    impl<V> Key<'_, V> {
        fn name(&mut self, key: &str) -> Name {
            if self.fields.contains(&key) {
                Name::Exact
            } else if let Some(f) = self.fields.iter().find(|f| f.eq_ignore_ascii_case(key)) {
                Name::Known(f)
            } else {
                self.unknown.push(key.to_owned());
                Name::Unknown
            }
        }
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for Key<'_, V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            self.inner.expecting(f)
        }

        fn visit_str<E: de::Error>(mut self, key: &str) -> Result<V::Value, E> {
            match self.name(key) {
                Name::Known(f) => self.inner.visit_borrowed_str(f),
                Name::Exact | Name::Unknown => self.inner.visit_str(key),
            }
        }

        fn visit_borrowed_str<E: de::Error>(mut self, key: &'de str) -> Result<V::Value, E> {
            match self.name(key) {
                Name::Known(f) => self.inner.visit_borrowed_str(f),
                Name::Exact | Name::Unknown => self.inner.visit_borrowed_str(key),
            }
        }

        fn visit_string<E: de::Error>(self, key: String) -> Result<V::Value, E> {
            self.visit_str(&key)
        }
    }
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
/// result (and `replayed = true`), a reused key with a different request a 409. Requests
/// with the same key sent at the same time make one write: the others wait for it and
/// answer with its result.
///
/// `prepare` (validation, lookups) runs before the transaction starts and `write` may use
/// only the transaction: a request never holds a pooled connection while it waits for
/// another, which at a small pool would let one merchant's burst of writes stall every
/// merchant's requests.
pub async fn idempotent<V, P, PFut, F, Fut>(
    state: &AppState,
    m: MerchantId,
    key: &IdempotencyKey,
    route: &str,
    request: &impl serde::Serialize,
    prepare: P,
    write: F,
) -> Result<(serde_json::Value, bool), ApiError>
where
    P: FnOnce() -> PFut,
    PFut: std::future::Future<Output = Result<V, ApiError>>,
    F: FnOnce(Tx, V) -> Fut,
    Fut: std::future::Future<Output = Result<(Tx, serde_json::Value), ApiError>>,
{
    let tenant = state.store.tenant(m);
    let hash = request_hash(request);
    let ttl = state.cfg.api.idempotency_ttl_seconds;
    let replay = |r: Remembered| -> Result<(serde_json::Value, bool), ApiError> {
        if r.route != route || r.request_hash != hash {
            return Err(ApiError::new(
                Code::IdempotencyConflict,
                "Idempotency-Key: already used for a different request",
            ));
        }
        let v = serde_json::from_str(&r.response).map_err(ApiError::internal)?;
        Ok((v, true))
    };
    // A retry is answered before validation: it gets the original answer even if its
    // request would no longer validate (a RemindTime that has since passed).
    if let Some(k) = &key.0 {
        if let Some(r) = tenant.idempotency_lookup(k, ttl).await? {
            return replay(r);
        }
    }
    let prepared = prepare().await?;
    let mut tx = tenant.begin().await?;
    if let Some(k) = &key.0 {
        if let Claim::Done(r) = tenant
            .idempotency_claim(&mut tx, k, route, &hash, ttl)
            .await?
        {
            tx.rollback().await?;
            return replay(r);
        }
    }
    let (mut tx, values) = write(tx, prepared).await?;
    if let Some(k) = &key.0 {
        tenant
            .idempotency_finish(&mut tx, k, &values.to_string(), ttl)
            .await?;
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

    /// The names serde accepts for a body type (fields and aliases), as `deserialize_struct` sees them.
    fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
        use serde::de::{value::Error, Error as _, Visitor};
        struct Probe<'a>(&'a mut &'static [&'static str]);
        impl<'de> serde::Deserializer<'de> for Probe<'_> {
            type Error = Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
                Err(Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Error> {
                *self.0 = fields;
                Err(Error::custom("probed"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
                bytes byte_buf option unit unit_struct newtype_struct seq tuple
                tuple_struct map enum identifier ignored_any
            }
        }
        let mut out: &'static [&'static str] = &[];
        let _ = T::deserialize(Probe(&mut out));
        out
    }

    #[test]
    fn no_body_type_has_two_names_that_differ_only_in_case() {
        use crate::http::*;
        // Case-insensitive binding picks the first match, so two names in one casing class
        // would make the field an errdesc names depend on the order of the list.
        let all: &[(&str, &[&str])] = &[
            ("GetChatIn", field_names::<chat::GetChatIn>()),
            ("FansQueryIn", field_names::<friend::FansQueryIn>()),
            ("AdQueryIn", field_names::<ad::AdQueryIn>()),
            ("AddRecordIn", field_names::<todo::AddRecordIn>()),
            ("TodoQueryIn", field_names::<todo::TodoQueryIn>()),
            ("StaffCustomerIn", field_names::<report::StaffCustomerIn>()),
            (
                "ActivationListIn",
                field_names::<report::ActivationListIn>(),
            ),
            (
                "MeetingVoiceCallIn",
                field_names::<meeting::MeetingVoiceCallIn>(),
            ),
            (
                "SaveBulkSendTaskIn",
                field_names::<bulk_send::SaveBulkSendTaskIn>(),
            ),
            ("BulkSendIdIn", field_names::<bulk_send::BulkSendIdIn>()),
            (
                "DepartGroupListIn",
                field_names::<system::DepartGroupListIn>(),
            ),
            ("StaffListIn", field_names::<system::StaffListIn>()),
            ("AllStaffListIn", field_names::<system::AllStaffListIn>()),
        ];
        for (ty, names) in all {
            assert!(!names.is_empty(), "{ty}: no field names probed");
            let mut seen = std::collections::HashSet::new();
            for n in *names {
                assert!(
                    seen.insert(n.to_ascii_lowercase()),
                    "{ty}: {n} clashes with another name"
                );
            }
        }
    }

    #[test]
    fn field_names_bind_in_any_case_and_unknown_ones_are_noted() {
        let mut unknown = Vec::new();
        let p: P = parse_body_noting(
            br#"{"WECHATID": 7, "pagesize": "3", "fanskee": 1, "x": {}}"#,
            &mut unknown,
        )
        .unwrap();
        assert_eq!((p.wechatId, p.pageSize.get()), (7, Some(3)));
        assert_eq!(unknown, ["fanskee", "x"]);
        let e = parse_body::<P>(br#"{"wechatid": 7, "PAGESIZE": "x"}"#)
            .err()
            .unwrap();
        assert!(e.desc.starts_with("pageSize:"), "{}", e.desc);
        let e = parse_body::<P>(br#"{"wechatId": 7, "WechatId": 8}"#)
            .err()
            .unwrap();
        assert!(e.desc.starts_with("wechatId:"), "{}", e.desc);
    }

    #[test]
    fn an_array_or_a_scalar_where_an_object_belongs_is_a_param_error_about_the_body() {
        for body in [&b"[7, 1]"[..], b"\"text\"", b"12", b"true"] {
            let e = parse_body::<P>(body).err().unwrap();
            assert_eq!(e.code, Code::ParamError);
            assert!(e.desc.starts_with("body:"), "{}", e.desc);
        }
    }

    #[test]
    fn the_unknown_fields_header_is_short_and_always_valid() {
        let names: Vec<String> = (0..30)
            .map(|i| format!("f{i}"))
            .chain(["a\u{0}b,c".to_owned(), "中".repeat(100)])
            .collect();
        let v = unknown_header(&names);
        let s = v.to_str().unwrap();
        assert!(s.starts_with("f0, f1, "), "{s}");
        assert!(s.ends_with("(and 12 more)"), "{s}");
        let v = unknown_header(&["a\u{0}b,c".to_owned(), "中".to_owned()]);
        assert_eq!(v.to_str().unwrap(), "a%00b%2Cc, %E4%B8%AD");
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
