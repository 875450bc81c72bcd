//! Events (docs/events.md): the transactional outbox, webhook endpoints, the signing secret,
//! pending deliveries and the attempt log.
//!
//! An event is written in the transaction of the change that caused it (collected by
//! [`super::idempotency::Tx`] and written at its commit, or by [`emit_tx`]), and only when one of the merchant's enabled endpoints subscribes to its type: a merchant
//! without callbacks pays one indexed read per write, not an outbox that grows forever.
//! With the event, one `deliveries` row per subscribed endpoint is written; the dispatcher
//! (`crate::webhooks`) claims due rows with a lease, sends, and records each attempt.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::activity::NotificationRow;
use super::chats::{Bulk, ChatRow, Conversation};
use super::fans::FanRow;
pub use super::now_ms;
use super::takeovers::TakeoverRow;
use super::tasks::TaskRow;
use super::{take_ids, trim_page, Backend, MerchantId, Page, Sql, Store, Tenant};

/// PostgreSQL notification channel: "an event was committed" (payload unused).
pub const EVENT_CHANNEL: &str = "juhe_events";

/// The event types, as `subscribeEvent`'s `messageTypes` names them. The first four are the
/// original platform's; the others are Juhe's, named in the same style.
pub const CHAT: &str = "chat";
pub const FANS_INFO_CHANGE: &str = "fansInfoChange";
pub const FANS_ATTRIBUTION_CHANGE: &str = "fansAttributionChange";
pub const RPA_TASK_RESULT: &str = "rpaTaskResult";
pub const RPA_TASK_FAILED: &str = "rpaTaskFailed";
pub const TAKE_OVER_STARTED: &str = "takeOverStarted";
pub const TAKE_OVER_ENDED: &str = "takeOverEnded";
pub const CONVERSATION_ACTIVATED: &str = "conversationActivated";
pub const NOTIFICATION: &str = "notification";
pub const BULK_SEND_PROGRESS: &str = "bulkSendProgress";
pub const ENDPOINT_DISABLED: &str = "endpointDisabled";

pub const EVENT_TYPES: [&str; 11] = [
    CHAT,
    FANS_INFO_CHANGE,
    FANS_ATTRIBUTION_CHANGE,
    RPA_TASK_RESULT,
    RPA_TASK_FAILED,
    TAKE_OVER_STARTED,
    TAKE_OVER_ENDED,
    CONVERSATION_ACTIVATED,
    NOTIFICATION,
    BULK_SEND_PROGRESS,
    ENDPOINT_DISABLED,
];

/// What an event says, as Juhe stores it (times in Unix seconds, store rows). The delivery
/// renders the documented payload from it (`crate::webhooks::payload`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum EventData {
    Chat {
        chat: ChatRow,
        conversation: Conversation,
    },
    Fan {
        /// `added`, `changed` or `deleted` (fansInfoChange); `reassigned` (attribution).
        change: String,
        fan: FanRow,
        #[serde(default)]
        previous_staff: Option<String>,
    },
    Task {
        task: TaskRow,
    },
    TakeOver {
        takeover: TakeoverRow,
    },
    Activation {
        wechat_id: i64,
        fan_key: String,
        staff_code: String,
        activation_type: i64,
        enforce_attribution: bool,
        previous_staff: Option<String>,
        at: i64,
    },
    Notification {
        notification: NotificationRow,
    },
    Bulk {
        bulk_task_id: i64,
        state: String,
        total: i64,
        pending: i64,
        sent: i64,
        failed: i64,
        cancelled: i64,
        /// The item that just finished, when the event is about one.
        #[serde(default)]
        fan_key: Option<String>,
        #[serde(default)]
        item_state: Option<String>,
    },
    Endpoint {
        endpoint_id: i64,
        url: String,
        reason: String,
        failing_since: i64,
    },
}

/// What a transaction will emit at commit (see [`super::idempotency::Tx`]).
#[derive(Debug, Default)]
pub struct Pending {
    pub(crate) events: Vec<NewEvent>,
    /// Ranges of chat ids recorded in the transaction: one `chat` event each.
    pub(crate) chats: Vec<(i64, i64)>,
    /// Fans the transaction changed; their rows are read only if someone subscribes.
    pub(crate) fans: Vec<FanChange>,
    /// Bulk-send items that finished; the bulk send's counts are read only if someone
    /// subscribes (they are an aggregate over all its items).
    pub(crate) bulk_items: Vec<BulkItem>,
}

/// A fan change to report at commit.
#[derive(Debug)]
pub(crate) struct FanChange {
    pub(crate) event_type: &'static str,
    pub(crate) fan_id: i64,
    /// `added`, `changed`, `deleted` or `reassigned`.
    pub(crate) change: &'static str,
    pub(crate) previous_staff: Option<String>,
}

/// A finished bulk-send item to report at commit.
#[derive(Debug)]
pub(crate) struct BulkItem {
    pub(crate) bulk_task_id: i64,
    pub(crate) fan_key: Option<String>,
    pub(crate) sent: bool,
}

/// Writes what a transaction collected: its chats' events first, then the others.
pub(crate) async fn flush_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    m: MerchantId,
    pending: Pending,
) -> Result<usize, sqlx::Error> {
    if pending.events.is_empty()
        && pending.chats.is_empty()
        && pending.fans.is_empty()
        && pending.bulk_items.is_empty()
    {
        return Ok(0);
    }
    let subscribers = subscribers_tx(tx, m).await?;
    if subscribers.0.is_empty() {
        return Ok(0);
    }
    let mut evs = Vec::new();
    if subscribers.any(CHAT) {
        for (first, last) in &pending.chats {
            evs.extend(super::chats::chat_events_tx(tx, m, *first, *last).await?);
        }
    }
    let fans: Vec<&FanChange> = pending
        .fans
        .iter()
        .filter(|f| subscribers.any(f.event_type))
        .collect();
    if !fans.is_empty() {
        let ids: Vec<i64> = fans.iter().map(|f| f.fan_id).collect();
        let rows = super::fans::fans_by_id_tx(tx, m, &ids).await?;
        for f in fans {
            if let Some(fan) = rows.iter().find(|r| r.ad_friend_id == f.fan_id) {
                evs.push(super::fans::fan_event(
                    f.event_type,
                    f.change,
                    fan.clone(),
                    f.previous_staff.clone(),
                ));
            }
        }
    }
    if subscribers.any(BULK_SEND_PROGRESS) {
        for item in &pending.bulk_items {
            let c = super::bulk_run::bulk_counts_tx(tx, m, item.bulk_task_id).await?;
            let open = c.pending + c.delivered;
            evs.push(NewEvent {
                event_type: BULK_SEND_PROGRESS,
                conversation: None,
                data: EventData::Bulk {
                    bulk_task_id: item.bulk_task_id,
                    state: if open == 0 { "finished" } else { "running" }.to_owned(),
                    total: c.total,
                    pending: open,
                    sent: c.sent,
                    failed: c.failed,
                    cancelled: c.cancelled,
                    fan_key: item.fan_key.clone(),
                    item_state: Some(if item.sent { "sent" } else { "failed" }.to_owned()),
                },
            });
        }
    }
    evs.extend(pending.events);
    emit_with(tx, m, &subscribers, evs).await
}

/// An event to write.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: &'static str,
    /// The conversation (operating account, fan) it belongs to, if any: such events carry
    /// a sequence number per (conversation, type).
    pub conversation: Option<(i64, String)>,
    pub data: EventData,
}

/// A stored event.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct EventRow {
    pub event_id: i64,
    pub event_type: String,
    pub wechat_id: Option<i64>,
    pub fan_key: Option<String>,
    pub seq: Option<i64>,
    pub data: String,
    pub created_ms: i64,
}

const EVENT_COLUMNS: &str =
    "e.event_id, e.event_type, e.wechat_id, e.fan_key, e.seq, e.data, e.created_ms";

/// A webhook endpoint (回调地址).
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct EndpointRow {
    pub endpoint_id: i64,
    pub url: String,
    pub app_id: String,
    pub registrant: i64,
    pub event_types: String,
    pub enabled: i64,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl EndpointRow {
    pub fn receives(&self, event_type: &str) -> bool {
        subscribed(&self.event_types, event_type)
    }

    /// The subscribed types, `*` expanded.
    pub fn types(&self) -> Vec<String> {
        if self.event_types.trim() == "*" {
            return EVENT_TYPES.iter().map(|s| (*s).to_owned()).collect();
        }
        self.event_types
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

fn subscribed(types: &str, event_type: &str) -> bool {
    let types = types.trim();
    types == "*" || types.split(',').any(|t| t.trim() == event_type)
}

const ENDPOINT_COLUMNS: &str = "endpoint_id, url, app_id, registrant, event_types, enabled, \
     disabled_reason, failing_since, created_at, updated_at";

/// The merchant's signing secrets.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct SecretRow {
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_until: Option<i64>,
    pub rotated_at: i64,
}

impl SecretRow {
    /// The secrets that sign now: the current one, and the previous one during its grace.
    pub fn signing(&self, now: i64) -> Vec<String> {
        let mut v = vec![self.secret.clone()];
        if let (Some(p), Some(until)) = (&self.previous_secret, self.previous_until) {
            if until > now {
                v.push(p.clone());
            }
        }
        v
    }
}

/// An endpoint's change through the API; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub app_id: Option<String>,
    pub event_types: Option<String>,
    pub enabled: Option<bool>,
}

/// A claimed delivery: the event, the endpoint, and the fence of this attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub merchant: MerchantId,
    pub endpoint_id: i64,
    pub event: EventRow,
    /// Attempts in this round, this one included (1 = first).
    pub attempt: i64,
    /// Every attempt ever made, this one included: the attempt log's number and the fence.
    pub total: i64,
    /// The row's `next_attempt_ms` while this claim holds it (the lease's end): part of
    /// the fence, and what lets every statement on the claimed rows use either index
    /// fully, with or without planner statistics (docs/benchmarks.md).
    pub lease_ms: i64,
}

/// What an attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Failed; try again at this time (Unix ms).
    Retry(i64),
    /// Failed, and no attempt is left.
    Failed,
}

impl Outcome {
    /// As the attempt log and the metrics name it.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Retry(_) => "retrying",
            Outcome::Failed => "failed",
        }
    }
}

/// One finished attempt, to record.
#[derive(Debug, Clone)]
pub struct Attempted {
    pub merchant: MerchantId,
    pub endpoint_id: i64,
    pub event_id: i64,
    pub total: i64,
    pub lease_ms: i64,
    pub attempted_ms: i64,
    pub duration_ms: i64,
    pub status: i64,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub response: Option<String>,
}

/// A row of the attempt log.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct AttemptRow {
    pub event_id: i64,
    pub endpoint_id: i64,
    pub attempt: i64,
    pub attempted_ms: i64,
    pub duration_ms: i64,
    pub status: i64,
    pub outcome: String,
    pub error: Option<String>,
    pub response: Option<String>,
}

/// Where one event stands at one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryState {
    pub endpoint_id: i64,
    /// `pending`, `succeeded` or `failed`.
    pub state: &'static str,
    pub attempts: i64,
    pub next_attempt_ms: Option<i64>,
}

/// GetEventList's filter.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub min_event_id: Option<i64>,
    pub event_type: Option<String>,
    pub wechat_id: Option<i64>,
    pub fan_key: Option<String>,
}

/// Rows per multi-row statement (at most 8 values a row: well under both engines' limits).
const CHUNK: usize = 500;

/// Writes `events` in `tx`, for the merchant's enabled endpoints that subscribe to their
/// types, and returns how many were written (events nobody subscribes to are not). Call it
/// last in a transaction: the sequence rows and the `event` id counter it locks come after
/// the chat counter and fan rows in the lock order (docs/architecture.md).
pub(crate) async fn emit_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    m: MerchantId,
    events: Vec<NewEvent>,
) -> Result<usize, sqlx::Error> {
    if events.is_empty() {
        return Ok(0);
    }
    let endpoints = subscribers_tx(tx, m).await?;
    emit_with(tx, m, &endpoints, events).await
}

/// The merchant's enabled endpoints and their subscriptions, read in `tx`.
pub(crate) async fn subscribers_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    m: MerchantId,
) -> Result<Subscribers, sqlx::Error> {
    let mut q =
        Sql::new("SELECT endpoint_id, event_types FROM webhook_endpoints WHERE merchant_id = ");
    q.bind(m.get()).push(" AND enabled = 1");
    Ok(Subscribers(q.fetch_all(&mut **tx).await?))
}

/// Enabled endpoints with what they subscribe to.
pub(crate) struct Subscribers(Vec<(i64, String)>);

impl Subscribers {
    pub(crate) fn any(&self, event_type: &str) -> bool {
        self.0.iter().any(|(_, t)| subscribed(t, event_type))
    }
}

/// [`emit_tx`] with the subscribers already read.
pub(crate) async fn emit_with(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    m: MerchantId,
    endpoints: &Subscribers,
    events: Vec<NewEvent>,
) -> Result<usize, sqlx::Error> {
    let endpoints = &endpoints.0;
    if endpoints.is_empty() || events.is_empty() {
        return Ok(0);
    }
    let events: Vec<(NewEvent, Vec<i64>)> = events
        .into_iter()
        .filter_map(|e| {
            let to: Vec<i64> = endpoints
                .iter()
                .filter(|(_, types)| subscribed(types, e.event_type))
                .map(|(id, _)| *id)
                .collect();
            (!to.is_empty()).then_some((e, to))
        })
        .collect();
    if events.is_empty() {
        return Ok(0);
    }

    // Sequence numbers per (conversation, type): one upsert per chunk of conversations,
    // each taking as many numbers as the batch has events there.
    let mut counts: BTreeMap<(i64, &str, &str), i64> = BTreeMap::new();
    for (e, _) in &events {
        if let Some((w, f)) = &e.conversation {
            *counts.entry((*w, f.as_str(), e.event_type)).or_default() += 1;
        }
    }
    let mut next_seq: BTreeMap<(i64, String, String), i64> = BTreeMap::new();
    let counts: Vec<_> = counts.into_iter().collect();
    for chunk in counts.chunks(CHUNK) {
        let mut q = Bulk::new(
            tx,
            "INSERT INTO event_seqs (merchant_id, wechat_id, fan_key, event_type, last_seq) VALUES ",
        );
        for (i, ((w, f, t), n)) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push("(")
                .bind(m.get())
                .push(", ")
                .bind(*w)
                .push(", ")
                .bind((*f).to_owned())
                .push(", ")
                .bind((*t).to_owned())
                .push(", ")
                .bind(*n)
                .push(")");
        }
        q.push(
            " ON CONFLICT (merchant_id, wechat_id, fan_key, event_type) DO UPDATE SET \
             last_seq = event_seqs.last_seq + excluded.last_seq \
             RETURNING wechat_id, fan_key, event_type, last_seq",
        );
        let rows: Vec<(i64, String, String, i64)> = q.fetch_all(tx).await?;
        let asked: BTreeMap<(i64, &str, &str), i64> = chunk.iter().cloned().collect();
        for (w, f, t, last) in rows {
            let n = asked
                .get(&(w, f.as_str(), t.as_str()))
                .copied()
                .unwrap_or(1);
            next_seq.insert((w, f, t), last - n + 1);
        }
    }

    let first = take_ids(tx, m, "event", events.len() as i64).await?;
    let created = now_ms();
    let mut rows: Vec<(i64, &NewEvent, Option<i64>, String)> = Vec::with_capacity(events.len());
    for (i, (e, _)) in events.iter().enumerate() {
        let seq = e.conversation.as_ref().map(|(w, f)| {
            let k = (*w, f.clone(), e.event_type.to_owned());
            let s = next_seq.get(&k).copied().unwrap_or(1);
            next_seq.insert(k, s + 1);
            s
        });
        let data = serde_json::to_string(&e.data).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        rows.push((first + i as i64, e, seq, data));
    }
    for chunk in rows.chunks(CHUNK) {
        let mut q = Bulk::new(
            tx,
            "INSERT INTO events (merchant_id, event_id, event_type, wechat_id, fan_key, seq, data, created_ms) VALUES ",
        );
        for (i, (id, e, seq, data)) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push("(")
                .bind(m.get())
                .push(", ")
                .bind(*id)
                .push(", ")
                .bind(e.event_type.to_owned())
                .push(", ")
                .bind(e.conversation.as_ref().map(|c| c.0))
                .push(", ")
                .bind(e.conversation.as_ref().map(|c| c.1.clone()));
            q.push(", ")
                .bind(*seq)
                .push(", ")
                .bind(data.clone())
                .push(", ")
                .bind(created)
                .push(")");
        }
        q.execute(tx).await?;
    }
    let pairs: Vec<(i64, i64)> = rows
        .iter()
        .zip(&events)
        .flat_map(|((id, ..), (_, to))| to.iter().map(move |ep| (*ep, *id)))
        .collect();
    for chunk in pairs.chunks(CHUNK) {
        let mut q = Bulk::new(
            tx,
            "INSERT INTO deliveries (merchant_id, endpoint_id, event_id, attempts, total_attempts, next_attempt_ms) VALUES ",
        );
        for (i, (ep, id)) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push("(")
                .bind(m.get())
                .push(", ")
                .bind(*ep)
                .push(", ")
                .bind(*id)
                .push(", 0, 0, ")
                .bind(created)
                .push(")");
        }
        q.execute(tx).await?;
    }
    let conn: &mut sqlx::AnyConnection = tx;
    if !conn.backend_name().eq_ignore_ascii_case("sqlite") {
        // Delivered at commit, to every process's dispatcher (LISTEN juhe_events).
        let mut q = Sql::new("SELECT pg_notify(");
        q.bind(EVENT_CHANNEL.to_owned()).push(", '')");
        q.execute(&mut **tx).await?;
    }
    Ok(rows.len())
}

impl Tenant<'_> {
    // ------------------------------------------------------------------ endpoints

    pub async fn endpoints(&self) -> Result<Vec<EndpointRow>, sqlx::Error> {
        let mut q = Sql::new("SELECT ");
        q.push(ENDPOINT_COLUMNS)
            .push(" FROM webhook_endpoints WHERE merchant_id = ")
            .bind(self.m.get())
            .push(" ORDER BY endpoint_id");
        q.fetch_all(self.store.read_pool()).await
    }

    pub async fn endpoint(&self, endpoint_id: i64) -> Result<Option<EndpointRow>, sqlx::Error> {
        let mut q = Sql::new("SELECT ");
        q.push(ENDPOINT_COLUMNS)
            .push(" FROM webhook_endpoints WHERE merchant_id = ")
            .bind(self.m.get())
            .push(" AND endpoint_id = ")
            .bind(endpoint_id);
        q.fetch_optional(self.store.read_pool()).await
    }

    /// Creates the endpoint for `url`, or updates the one that has it: `event_types` (when
    /// given) replaces its subscription, `app_id` and `registrant` (when given) their values.
    /// A new endpoint without `event_types` receives every type. Re-registering re-enables.
    pub async fn upsert_endpoint(
        &self,
        url: &str,
        app_id: Option<&str>,
        registrant: Option<i64>,
        event_types: Option<&str>,
    ) -> Result<EndpointRow, sqlx::Error> {
        let mut tx = self.store.begin_write().await?;
        let t = super::now();
        let mut q = Sql::new("SELECT ");
        q.push(ENDPOINT_COLUMNS)
            .push(" FROM webhook_endpoints WHERE merchant_id = ")
            .bind(self.m.get())
            .push(" AND url = ")
            .bind(url.to_owned());
        let existing: Option<EndpointRow> = q.fetch_optional(&mut *tx).await?;
        let id = match existing {
            Some(e) => {
                let mut q = Sql::new("UPDATE webhook_endpoints SET app_id = ");
                q.bind(app_id.map(str::to_owned).unwrap_or(e.app_id))
                    .push(", registrant = ")
                    .bind(registrant.unwrap_or(e.registrant))
                    .push(", event_types = ")
                    .bind(event_types.map(str::to_owned).unwrap_or(e.event_types))
                    .push(", enabled = 1, disabled_reason = NULL, failing_since = NULL, updated_at = ")
                    .bind(t)
                    .push(" WHERE merchant_id = ")
                    .bind(self.m.get())
                    .push(" AND endpoint_id = ")
                    .bind(e.endpoint_id);
                q.execute(&mut *tx).await?;
                e.endpoint_id
            }
            None => {
                let id = take_ids(&mut tx, self.m, "endpoint", 1).await?;
                let mut q = Sql::new("INSERT INTO webhook_endpoints (merchant_id, endpoint_id, url, app_id, registrant, event_types, enabled, created_at, updated_at) VALUES (");
                q.bind(self.m.get())
                    .push(", ")
                    .bind(id)
                    .push(", ")
                    .bind(url.to_owned())
                    .push(", ")
                    .bind(app_id.unwrap_or("").to_owned())
                    .push(", ")
                    .bind(registrant.unwrap_or(0));
                q.push(", ")
                    .bind(event_types.unwrap_or("*").to_owned())
                    .push(", 1, ")
                    .bind(t)
                    .push(", ")
                    .bind(t)
                    .push(")");
                q.execute(&mut *tx).await?;
                id
            }
        };
        tx.commit().await?;
        self.store.endpoints_changed();
        Ok(self
            .endpoint(id)
            .await?
            .expect("the endpoint was just written"))
    }

    /// Changes an endpoint; `None` when there is no such endpoint. Enabling a disabled
    /// endpoint forgets its failures (its pending deliveries resume).
    pub async fn update_endpoint(
        &self,
        endpoint_id: i64,
        c: &EndpointChange,
    ) -> Result<Option<EndpointRow>, sqlx::Error> {
        let mut q = Sql::new("UPDATE webhook_endpoints SET updated_at = ");
        q.bind(super::now());
        if let Some(u) = &c.url {
            q.push(", url = ").bind(u.clone());
        }
        if let Some(a) = &c.app_id {
            q.push(", app_id = ").bind(a.clone());
        }
        if let Some(t) = &c.event_types {
            q.push(", event_types = ").bind(t.clone());
        }
        match c.enabled {
            Some(true) => {
                q.push(", enabled = 1, disabled_reason = NULL, failing_since = NULL");
            }
            Some(false) => {
                q.push(", enabled = 0, disabled_reason = 'disabled through the API'");
            }
            None => {}
        }
        q.push(" WHERE merchant_id = ")
            .bind(self.m.get())
            .push(" AND endpoint_id = ")
            .bind(endpoint_id);
        if q.execute(self.store.write_pool()).await? == 0 {
            return Ok(None);
        }
        self.store.endpoints_changed();
        self.endpoint(endpoint_id).await
    }

    /// Deletes an endpoint and what was still to be delivered to it.
    pub async fn delete_endpoint(&self, endpoint_id: i64) -> Result<bool, sqlx::Error> {
        let mut tx = self.store.begin_write().await?;
        let mut q = Sql::new("DELETE FROM deliveries WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND endpoint_id = ")
            .bind(endpoint_id);
        q.execute(&mut *tx).await?;
        let mut q = Sql::new("DELETE FROM webhook_endpoints WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND endpoint_id = ")
            .bind(endpoint_id);
        let n = q.execute(&mut *tx).await?;
        tx.commit().await?;
        self.store.endpoints_changed();
        Ok(n > 0)
    }

    // ------------------------------------------------------------------ secret

    /// The merchant's signing secret, made on first use (`generate` gives a new one).
    pub async fn webhook_secret(
        &self,
        generate: impl FnOnce() -> String,
    ) -> Result<SecretRow, sqlx::Error> {
        if let Some(s) = self.read_secret().await? {
            return Ok(s);
        }
        let mut q =
            Sql::new("INSERT INTO webhook_secrets (merchant_id, secret, rotated_at) VALUES (");
        q.bind(self.m.get())
            .push(", ")
            .bind(generate())
            .push(", ")
            .bind(super::now())
            .push(") ON CONFLICT (merchant_id) DO NOTHING");
        q.execute(self.store.write_pool()).await?;
        Ok(self
            .read_secret()
            .await?
            .expect("the secret was just written"))
    }

    async fn read_secret(&self) -> Result<Option<SecretRow>, sqlx::Error> {
        let mut q = Sql::new(
            "SELECT secret, previous_secret, previous_until, rotated_at FROM webhook_secrets WHERE merchant_id = ",
        );
        q.bind(self.m.get());
        q.fetch_optional(self.store.read_pool()).await
    }

    /// Replaces the secret with `new`; the old one keeps signing for `grace_seconds`.
    pub async fn rotate_webhook_secret(
        &self,
        new: String,
        grace_seconds: i64,
    ) -> Result<SecretRow, sqlx::Error> {
        let current = self.webhook_secret(|| new.clone()).await?;
        if current.secret == new {
            return Ok(current);
        }
        let t = super::now();
        let mut q =
            Sql::new("UPDATE webhook_secrets SET previous_secret = secret, previous_until = ");
        q.bind(t + grace_seconds.max(0))
            .push(", secret = ")
            .bind(new)
            .push(", rotated_at = ")
            .bind(t)
            .push(" WHERE merchant_id = ")
            .bind(self.m.get());
        q.execute(self.store.write_pool()).await?;
        // This process's dispatcher keeps the secrets with the endpoints: reload both.
        self.store.endpoints_changed();
        Ok(self.read_secret().await?.expect("the secret exists"))
    }

    // ------------------------------------------------------------------ events

    /// Events in id order, paged (ids become visible in commit order: read with `minEventId`).
    pub async fn events_page(
        &self,
        f: &EventFilter,
        page: Page,
    ) -> Result<(Vec<EventRow>, bool), sqlx::Error> {
        let mut q = Sql::new("SELECT ");
        q.push(EVENT_COLUMNS)
            .push(" FROM events e WHERE e.merchant_id = ")
            .bind(self.m.get());
        if let Some(min) = f.min_event_id {
            q.push(" AND e.event_id > ").bind(min);
        }
        if let Some(t) = &f.event_type {
            q.push(" AND e.event_type = ").bind(t.clone());
        }
        if let Some(w) = f.wechat_id {
            q.push(" AND e.wechat_id = ").bind(w);
        }
        if let Some(k) = &f.fan_key {
            q.push(" AND e.fan_key = ").bind(k.clone());
        }
        q.push(" ORDER BY e.event_id");
        page.push_limit(&mut q);
        Ok(trim_page(q.fetch_all(self.store.read_pool()).await?, page))
    }

    pub async fn event(&self, event_id: i64) -> Result<Option<EventRow>, sqlx::Error> {
        let mut q = Sql::new("SELECT ");
        q.push(EVENT_COLUMNS)
            .push(" FROM events e WHERE e.merchant_id = ")
            .bind(self.m.get())
            .push(" AND e.event_id = ")
            .bind(event_id);
        q.fetch_optional(self.store.read_pool()).await
    }

    /// Where the event stands at each endpoint it was (or is to be) delivered to.
    pub async fn event_deliveries(&self, event_id: i64) -> Result<Vec<DeliveryState>, sqlx::Error> {
        let mut q = Sql::new("SELECT endpoint_id, total_attempts, next_attempt_ms FROM deliveries WHERE merchant_id = ");
        q.bind(self.m.get()).push(" AND event_id = ").bind(event_id);
        let pending: Vec<(i64, i64, i64)> = q.fetch_all(self.store.read_pool()).await?;
        let mut q = Sql::new(
            "SELECT endpoint_id, MAX(attempt) FROM delivery_attempts WHERE merchant_id = ",
        );
        q.bind(self.m.get())
            .push(" AND event_id = ")
            .bind(event_id)
            .push(" GROUP BY endpoint_id");
        let tried: Vec<(i64, i64)> = q.fetch_all(self.store.read_pool()).await?;
        let mut out: BTreeMap<i64, DeliveryState> = BTreeMap::new();
        for (ep, last) in tried {
            let mut q = Sql::new("SELECT outcome FROM delivery_attempts WHERE merchant_id = ");
            q.bind(self.m.get())
                .push(" AND event_id = ")
                .bind(event_id)
                .push(" AND endpoint_id = ")
                .bind(ep)
                .push(" AND attempt = ")
                .bind(last);
            let outcome: String = q.scalar(self.store.read_pool()).await?;
            out.insert(
                ep,
                DeliveryState {
                    endpoint_id: ep,
                    state: if outcome == "succeeded" {
                        "succeeded"
                    } else {
                        "failed"
                    },
                    attempts: last,
                    next_attempt_ms: None,
                },
            );
        }
        for (ep, total, next) in pending {
            out.insert(
                ep,
                DeliveryState {
                    endpoint_id: ep,
                    state: "pending",
                    attempts: total,
                    next_attempt_ms: Some(next),
                },
            );
        }
        Ok(out.into_values().collect())
    }

    /// The attempt log of one event (optionally one endpoint), oldest first.
    pub async fn attempts(
        &self,
        event_id: i64,
        endpoint_id: Option<i64>,
    ) -> Result<Vec<AttemptRow>, sqlx::Error> {
        let mut q = Sql::new(
            "SELECT event_id, endpoint_id, attempt, attempted_ms, duration_ms, status, outcome, error, response \
             FROM delivery_attempts WHERE merchant_id = ",
        );
        q.bind(self.m.get()).push(" AND event_id = ").bind(event_id);
        if let Some(ep) = endpoint_id {
            q.push(" AND endpoint_id = ").bind(ep);
        }
        q.push(" ORDER BY attempted_ms, endpoint_id, attempt LIMIT 1000");
        q.fetch_all(self.store.read_pool()).await
    }

    /// Schedules the event again, now, for `endpoint_id` or every enabled endpoint that
    /// subscribes to its type; the same event id (`webhook-id`). Returns the deliveries made.
    pub async fn replay_event(
        &self,
        event_id: i64,
        endpoint_id: Option<i64>,
    ) -> Result<Option<u64>, sqlx::Error> {
        let Some(event) = self.event(event_id).await? else {
            return Ok(None);
        };
        let targets: Vec<i64> = self
            .endpoints()
            .await?
            .into_iter()
            .filter(|e| e.enabled == 1 && e.receives(&event.event_type))
            .filter(|e| endpoint_id.is_none_or(|id| id == e.endpoint_id))
            .map(|e| e.endpoint_id)
            .collect();
        let pairs: Vec<(i64, i64)> = targets.into_iter().map(|ep| (ep, event_id)).collect();
        Ok(Some(self.schedule(&pairs).await?))
    }

    /// Schedules again every event whose delivery ended failed at or after `since_ms`
    /// (optionally for one endpoint). Returns the deliveries made.
    pub async fn replay_failed_since(
        &self,
        since_ms: i64,
        endpoint_id: Option<i64>,
    ) -> Result<u64, sqlx::Error> {
        let mut q = Sql::new(
            "SELECT DISTINCT a.endpoint_id, a.event_id FROM delivery_attempts a JOIN webhook_endpoints w \
             ON w.merchant_id = a.merchant_id AND w.endpoint_id = a.endpoint_id AND w.enabled = 1 \
             WHERE a.merchant_id = ",
        );
        q.bind(self.m.get())
            .push(" AND a.outcome = 'failed' AND a.attempted_ms >= ")
            .bind(since_ms);
        if let Some(ep) = endpoint_id {
            q.push(" AND a.endpoint_id = ").bind(ep);
        }
        q.push(" ORDER BY a.event_id LIMIT 100000");
        let pairs: Vec<(i64, i64)> = q.fetch_all(self.store.read_pool()).await?;
        self.schedule(&pairs).await
    }

    /// A new round of deliveries, due now, for each (endpoint, event), in one transaction;
    /// wakes this process's dispatcher. Returns the deliveries made.
    async fn schedule(&self, pairs: &[(i64, i64)]) -> Result<u64, sqlx::Error> {
        let mut tx = self.store.begin_write().await?;
        let mut n = 0;
        for (ep, id) in pairs {
            n += schedule_tx(&mut tx, self.m, *ep, *id).await?;
        }
        tx.commit().await?;
        self.store.events_changed();
        Ok(n)
    }
}

/// A new round of deliveries of one event to one endpoint, due now. A delivery still
/// pending is left as it is (it is already going to be sent).
async fn schedule_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    m: MerchantId,
    endpoint_id: i64,
    event_id: i64,
) -> Result<u64, sqlx::Error> {
    let mut q = Sql::new("INSERT INTO deliveries (merchant_id, endpoint_id, event_id, attempts, total_attempts, next_attempt_ms) SELECT ");
    q.bind(m.get())
        .push(", ")
        .bind(endpoint_id)
        .push(", ")
        .bind(event_id)
        .push(", 0, COALESCE(MAX(attempt), 0), ")
        .bind(now_ms())
        .push(" FROM delivery_attempts WHERE merchant_id = ")
        .bind(m.get())
        .push(" AND event_id = ")
        .bind(event_id)
        .push(" AND endpoint_id = ")
        .bind(endpoint_id)
        .push(" ON CONFLICT (merchant_id, endpoint_id, event_id) DO NOTHING");
    q.execute(&mut **tx).await
}

/// The dispatcher's side: platform work across merchants, like the gateway's poll.
impl Store {
    /// Wakes this process's dispatcher (endpoints or deliveries changed here).
    pub fn events_changed(&self) {
        self.events_wake.notify_one();
    }

    /// Endpoints changed in this process: the dispatcher reloads them and looks for work.
    pub fn endpoints_changed(&self) {
        self.endpoints_version
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.events_wake.notify_one();
    }

    /// Changes a version each time this process changes an endpoint.
    pub fn endpoints_version(&self) -> u64 {
        self.endpoints_version
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the dispatcher waits on besides its poll.
    pub fn events_wake(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.events_wake.clone()
    }

    /// Every enabled endpoint of every merchant.
    pub async fn enabled_endpoints(&self) -> Result<Vec<(MerchantId, EndpointRow)>, sqlx::Error> {
        let mut q = Sql::new("SELECT merchant_id, ");
        q.push(ENDPOINT_COLUMNS)
            .push(" FROM webhook_endpoints WHERE enabled = 1 ORDER BY merchant_id, endpoint_id");
        let rows: Vec<EndpointWithMerchant> = q.fetch_all(self.read_pool()).await?;
        Ok(rows
            .into_iter()
            .map(|r| (MerchantId::from_db(r.merchant_id), r.endpoint))
            .collect())
    }

    /// The signing secrets of a merchant now (none yet: one is made).
    pub async fn signing_secrets(
        &self,
        m: MerchantId,
        generate: impl FnOnce() -> String,
    ) -> Result<Vec<String>, sqlx::Error> {
        Ok(self
            .tenant(m)
            .webhook_secret(generate)
            .await?
            .signing(super::now()))
    }

    /// Whether one endpoint has a delivery due (a read, so that an idle endpoint costs no
    /// write transaction; on SQLite those queue behind ingest).
    pub async fn has_due_delivery(
        &self,
        m: MerchantId,
        endpoint_id: i64,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut q = Sql::new("SELECT event_id FROM deliveries WHERE merchant_id = ");
        q.bind(m.get())
            .push(" AND endpoint_id = ")
            .bind(endpoint_id)
            .push(" AND next_attempt_ms <= ")
            .bind(now)
            .push(" LIMIT 1");
        let row: Option<(i64,)> = q.fetch_optional(self.read_pool()).await?;
        Ok(row.is_some())
    }

    /// Claims up to `limit` due deliveries of one endpoint, oldest first, leasing them until
    /// `lease_until_ms`: another process (or this one, after a crash) takes a row over only
    /// once its lease has passed.
    pub async fn claim_deliveries(
        &self,
        m: MerchantId,
        endpoint_id: i64,
        limit: i64,
        now: i64,
        lease_until_ms: i64,
    ) -> Result<Vec<Claimed>, sqlx::Error> {
        let mut tx = self.begin_dispatch().await?;
        let q = match self.backend() {
            // The due rows in a CTE, which PostgreSQL evaluates once: as an `IN (subquery)`
            // it was run again per updated row, claimed the whole backlog in one statement
            // and took minutes. SKIP LOCKED: two processes claiming at once skip each other's
            // rows instead of queueing behind them.
            Backend::Postgres => {
                let mut q =
                    Sql::new("WITH due AS (SELECT ctid FROM deliveries WHERE merchant_id = ");
                q.bind(m.get())
                    .push(" AND endpoint_id = ")
                    .bind(endpoint_id)
                    .push(" AND next_attempt_ms <= ")
                    .bind(now)
                    .push(" ORDER BY next_attempt_ms, event_id LIMIT ")
                    .bind(limit)
                    .push(" FOR UPDATE SKIP LOCKED) UPDATE deliveries d SET attempts = d.attempts + 1, total_attempts = d.total_attempts + 1, next_attempt_ms = ")
                    .bind(lease_until_ms)
                    // The locked rows by their physical address, as one array (an init
                    // plan, run once): a TID scan, whatever the statistics say. By event id
                    // instead, a generic plan made without statistics (a fresh database
                    // with a backlog) could read the endpoint's whole backlog through the
                    // due index for each claim; joined to the CTE, it did so once per row.
                    // The rows are locked, so their addresses hold until the update, and
                    // they are the merchant's and endpoint's by the CTE: repeating those
                    // conditions here made the planner prefer the due index again.
                    .push(" WHERE d.ctid = ANY (ARRAY(SELECT ctid FROM due)) RETURNING d.event_id, d.attempts, d.total_attempts");
                q
            }
            // One writer at a time: the subquery cannot race another claim.
            Backend::Sqlite => {
                let mut q = Sql::new(
                    "UPDATE deliveries SET attempts = attempts + 1, total_attempts = total_attempts + 1, next_attempt_ms = ",
                );
                q.bind(lease_until_ms)
                    .push(" WHERE merchant_id = ")
                    .bind(m.get())
                    .push(" AND endpoint_id = ")
                    .bind(endpoint_id)
                    .push(" AND event_id IN (SELECT event_id FROM deliveries WHERE merchant_id = ")
                    .bind(m.get())
                    .push(" AND endpoint_id = ")
                    .bind(endpoint_id)
                    .push(" AND next_attempt_ms <= ")
                    .bind(now)
                    .push(" ORDER BY next_attempt_ms, event_id LIMIT ")
                    .bind(limit)
                    .push(") RETURNING event_id, attempts, total_attempts");
                q
            }
        };
        let claimed: Vec<(i64, i64, i64)> = q.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Sql::new("SELECT ");
        q.push(EVENT_COLUMNS)
            .push(" FROM events e WHERE e.merchant_id = ")
            .bind(m.get())
            .push(" AND e.event_id IN (")
            .bind_list(claimed.iter().map(|c| c.0))
            .push(")");
        let events: Vec<EventRow> = q.fetch_all(self.read_pool()).await?;
        let mut by_id: BTreeMap<i64, EventRow> =
            events.into_iter().map(|e| (e.event_id, e)).collect();
        let mut out = Vec::with_capacity(claimed.len());
        let mut orphans = Vec::new();
        for (id, attempt, total) in claimed {
            match by_id.remove(&id) {
                Some(event) => out.push(Claimed {
                    merchant: m,
                    endpoint_id,
                    event,
                    attempt,
                    total,
                    lease_ms: lease_until_ms,
                }),
                None => orphans.push(id),
            }
        }
        if !orphans.is_empty() {
            // The event was pruned: nothing left to send.
            let mut q = Sql::new("DELETE FROM deliveries WHERE merchant_id = ");
            q.bind(m.get())
                .push(" AND endpoint_id = ")
                .bind(endpoint_id)
                .push(" AND event_id IN (")
                .bind_list(orphans)
                .push(")");
            q.execute(self.write_pool()).await?;
        }
        out.sort_by_key(|c| (c.event.created_ms, c.event.event_id));
        Ok(out)
    }

    /// A write transaction for the dispatcher's own bookkeeping (claims, releases, attempt
    /// records). On PostgreSQL it commits without waiting for the WAL flush: the commit
    /// was a third of a claim's or a recording's time, and what a database crash can lose
    /// is the last few hundred milliseconds of these transactions, all or nothing in commit
    /// order. A lost claim leaves its rows due, a lost recording leaves its rows leased until
    /// the lease runs out; either way the event is sent again with the same `webhook-id`,
    /// which at-least-once delivery allows. Writes that create events keep the durable
    /// commit. (SQLite's WAL with `synchronous=NORMAL` does not sync at commit already.)
    async fn begin_dispatch(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Gives claimed deliveries that were never sent back, due at `now`: the claim is undone
    /// (both attempt counters back, so the retry schedule and the attempt log's numbers are
    /// as if it had not happened). The fence leaves alone a row another process has taken
    /// over since.
    pub async fn release_deliveries(&self, held: &[Claimed], now: i64) -> Result<u64, sqlx::Error> {
        if held.is_empty() {
            return Ok(0);
        }
        let mut by_fence: BTreeMap<(i64, i64, i64, i64), Vec<i64>> = BTreeMap::new();
        for c in held {
            by_fence
                .entry((c.merchant.get(), c.endpoint_id, c.total, c.lease_ms))
                .or_default()
                .push(c.event.event_id);
        }
        let mut tx = self.begin_dispatch().await?;
        let mut n = 0;
        for ((m, ep, total, lease), ids) in &by_fence {
            for chunk in ids.chunks(CHUNK) {
                let mut q = Sql::new(
                    "UPDATE deliveries SET attempts = attempts - 1, total_attempts = total_attempts - 1, next_attempt_ms = ",
                );
                q.bind(now)
                    .push(" WHERE merchant_id = ")
                    .bind(*m)
                    .push(" AND endpoint_id = ")
                    .bind(*ep)
                    .push(" AND next_attempt_ms = ")
                    .bind(*lease)
                    .push(" AND total_attempts = ")
                    .bind(*total)
                    .push(" AND event_id IN (")
                    .bind_list(chunk.iter().copied())
                    .push(")");
                n += q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Records finished attempts in one transaction: the attempt log, the delivery rows
    /// (gone when done, rescheduled when retrying; a row another worker has taken over since,
    /// by the fence, is left alone), and each endpoint's run of failures. An endpoint failing
    /// since before `disable_before` (Unix seconds) is disabled, with an `endpointDisabled`
    /// event. Returns the endpoints disabled.
    pub async fn record_attempts(
        &self,
        done: &[Attempted],
        disable_before: i64,
    ) -> Result<Vec<(MerchantId, i64)>, sqlx::Error> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_dispatch().await?;
        for chunk in done.chunks(CHUNK / 2) {
            let mut q = Bulk::new(
                &mut tx,
                "INSERT INTO delivery_attempts (merchant_id, event_id, endpoint_id, attempt, attempted_ms, duration_ms, status, outcome, error, response) VALUES ",
            );
            for (i, a) in chunk.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.push("(")
                    .bind(a.merchant.get())
                    .push(", ")
                    .bind(a.event_id)
                    .push(", ")
                    .bind(a.endpoint_id)
                    .push(", ")
                    .bind(a.total)
                    .push(", ")
                    .bind(a.attempted_ms);
                q.push(", ")
                    .bind(a.duration_ms)
                    .push(", ")
                    .bind(a.status)
                    .push(", ")
                    .bind(a.outcome.name().to_owned())
                    .push(", ")
                    .bind(a.error.clone())
                    .push(", ")
                    .bind(a.response.clone())
                    .push(")");
            }
            q.push(" ON CONFLICT (merchant_id, event_id, endpoint_id, attempt) DO NOTHING");
            q.execute(&mut tx).await?;
        }
        // Finished deliveries are deleted in one statement per endpoint and fence value
        // (nearly always one or two per batch: a claim's rows share their lease), as an `IN`
        // list that either index serves to the row: an OR of (id AND fence) pairs made
        // SQLite scan the whole table, and without the lease a generic PostgreSQL plan made
        // before the first ANALYZE read the endpoint's whole backlog through the due index
        // for every batch. Retries are one statement each (their times differ).
        let mut by_fence: BTreeMap<(i64, i64, i64, i64), Vec<i64>> = BTreeMap::new();
        for a in done {
            match a.outcome {
                Outcome::Succeeded | Outcome::Failed => by_fence
                    .entry((a.merchant.get(), a.endpoint_id, a.total, a.lease_ms))
                    .or_default()
                    .push(a.event_id),
                Outcome::Retry(at) => {
                    let mut q = Sql::new("UPDATE deliveries SET next_attempt_ms = ");
                    q.bind(at)
                        .push(" WHERE merchant_id = ")
                        .bind(a.merchant.get())
                        .push(" AND endpoint_id = ")
                        .bind(a.endpoint_id)
                        .push(" AND next_attempt_ms = ")
                        .bind(a.lease_ms)
                        .push(" AND event_id = ")
                        .bind(a.event_id)
                        .push(" AND total_attempts = ")
                        .bind(a.total);
                    q.execute(&mut *tx).await?;
                }
            }
        }
        for ((m, ep, total, lease), ids) in &by_fence {
            for chunk in ids.chunks(CHUNK) {
                let mut q = Bulk::new(&mut tx, "DELETE FROM deliveries WHERE merchant_id = ");
                q.bind(*m)
                    .push(" AND endpoint_id = ")
                    .bind(*ep)
                    .push(" AND next_attempt_ms = ")
                    .bind(*lease)
                    .push(" AND total_attempts = ")
                    .bind(*total)
                    .push(" AND event_id IN (");
                for (i, id) in chunk.iter().enumerate() {
                    if i > 0 {
                        q.push(", ");
                    }
                    q.bind(*id);
                }
                q.push(")");
                q.execute(&mut tx).await?;
            }
        }
        // Each endpoint's health: the latest attempt of the batch decides.
        let mut health: BTreeMap<(i64, i64), bool> = BTreeMap::new();
        for a in done {
            health.insert(
                (a.merchant.get(), a.endpoint_id),
                a.outcome == Outcome::Succeeded,
            );
        }
        let t = super::now();
        let mut disabled = Vec::new();
        for ((m, ep), ok) in health {
            if ok {
                let mut q = Sql::new(
                    "UPDATE webhook_endpoints SET failing_since = NULL WHERE merchant_id = ",
                );
                q.bind(m)
                    .push(" AND endpoint_id = ")
                    .bind(ep)
                    .push(" AND failing_since IS NOT NULL");
                q.execute(&mut *tx).await?;
                continue;
            }
            let mut q =
                Sql::new("UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, ");
            q.bind(t)
                .push(") WHERE merchant_id = ")
                .bind(m)
                .push(" AND endpoint_id = ")
                .bind(ep)
                .push(" RETURNING url, failing_since, enabled");
            let row: Option<(String, i64, i64)> = q.fetch_optional(&mut *tx).await?;
            let Some((url, since, enabled)) = row else {
                continue;
            };
            if enabled == 1 && since <= disable_before {
                let reason = format!("every delivery failed for {} s", t.saturating_sub(since));
                let mut q =
                    Sql::new("UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ");
                q.bind(reason.clone())
                    .push(", updated_at = ")
                    .bind(t)
                    .push(" WHERE merchant_id = ")
                    .bind(m)
                    .push(" AND endpoint_id = ")
                    .bind(ep);
                q.execute(&mut *tx).await?;
                let merchant = MerchantId::from_db(m);
                emit_tx(
                    &mut tx,
                    merchant,
                    vec![NewEvent {
                        event_type: ENDPOINT_DISABLED,
                        conversation: None,
                        data: EventData::Endpoint {
                            endpoint_id: ep,
                            url,
                            reason,
                            failing_since: since,
                        },
                    }],
                )
                .await?;
                disabled.push((merchant, ep));
            }
        }
        tx.commit().await?;
        Ok(disabled)
    }

    /// Deletes what is older than `before_ms`: attempts, and events with nothing left to
    /// deliver. Returns (events, attempts) deleted.
    pub async fn prune_events(&self, before_ms: i64) -> Result<(u64, u64), sqlx::Error> {
        let mut q = Sql::new("DELETE FROM delivery_attempts WHERE attempted_ms < ");
        q.bind(before_ms);
        let attempts = q.execute(self.write_pool()).await?;
        let mut q = Sql::new("DELETE FROM events WHERE created_ms < ");
        q.bind(before_ms).push(
            " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.merchant_id = events.merchant_id AND d.event_id = events.event_id)",
        );
        let events = q.execute(self.write_pool()).await?;
        Ok((events, attempts))
    }

    /// Deliveries still to be made, over all merchants (for /metrics and the benchmarks).
    pub async fn pending_deliveries(&self) -> Result<i64, sqlx::Error> {
        Sql::new("SELECT COUNT(*) FROM deliveries")
            .scalar(self.read_pool())
            .await
    }

    /// On PostgreSQL, a connection listening for committed events (`None` on SQLite, where
    /// every writer is this process).
    pub async fn event_listener(&self) -> anyhow::Result<Option<sqlx::postgres::PgListener>> {
        let Some(url) = &self.pg_url else {
            return Ok(None);
        };
        let mut l = sqlx::postgres::PgListener::connect(url).await?;
        l.listen(EVENT_CHANNEL).await?;
        Ok(Some(l))
    }
}

#[derive(sqlx::FromRow)]
struct EndpointWithMerchant {
    merchant_id: i64,
    #[sqlx(flatten)]
    endpoint: EndpointRow,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_subscribes_to_every_type_and_a_list_to_its_members() {
        assert!(subscribed("*", CHAT));
        assert!(subscribed("chat, rpaTaskResult", RPA_TASK_RESULT));
        assert!(!subscribed("chat,rpaTaskResult", FANS_INFO_CHANGE));
        assert!(!subscribed("", CHAT));
    }

    #[test]
    fn the_previous_secret_signs_only_during_its_grace() {
        let s = SecretRow {
            secret: "new".into(),
            previous_secret: Some("old".into()),
            previous_until: Some(100),
            rotated_at: 0,
        };
        assert_eq!(s.signing(99), vec!["new".to_owned(), "old".to_owned()]);
        assert_eq!(s.signing(100), vec!["new".to_owned()]);
    }
}
