//! Idempotency keys: a write sent again with the same `Idempotency-Key` returns the
//! original result instead of writing twice. The key is claimed, and the result stored,
//! in the same transaction as the write, so a crash can never leave one without the other,
//! and a concurrent request with the same key waits for that transaction instead of
//! writing again (the claim is a row insert on the key's primary key: PostgreSQL makes a
//! second inserter wait for the first to commit or roll back, SQLite has one writer).

use super::{now, Sql, Tenant};

/// A merchant's write transaction. Outside the store it can only be handed to
/// merchant-scoped store methods, committed or rolled back: no SQL runs on it from
/// anywhere else, so no query can forget its merchant.
///
/// Events the transaction causes are collected as it goes and written at commit, last:
/// so every write path takes the outbox's locks (sequence rows, the `event` id counter)
/// after all of its other locks, in one order, whatever order its steps run in.
pub struct Tx(
    pub(in crate::store) sqlx::Transaction<'static, sqlx::Any>,
    /// The dispatcher's wake-up: a committed transaction may have written events.
    pub(in crate::store) std::sync::Arc<tokio::sync::Notify>,
    pub(in crate::store) super::events::Pending,
    pub(in crate::store) super::MerchantId,
);

impl Tx {
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let pending = std::mem::take(&mut self.2);
        super::events::flush_tx(&mut self.0, self.3, pending).await?;
        self.0.commit().await?;
        self.1.notify_one();
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.0.rollback().await
    }

    /// Adds an event to write at commit.
    pub(crate) fn emit(&mut self, e: super::events::NewEvent) {
        self.2.events.push(e);
    }

    /// Notes a finished bulk-send item: a bulkSendProgress event with the bulk send's counts
    /// at commit, when an endpoint subscribes to them.
    pub(crate) fn note_bulk_item(
        &mut self,
        bulk_task_id: i64,
        fan_key: Option<String>,
        sent: bool,
    ) {
        self.2.bulk_items.push(super::events::BulkItem {
            bulk_task_id,
            fan_key,
            sent,
        });
    }
}

/// A remembered result.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Remembered {
    pub route: String,
    pub request_hash: String,
    pub response: String,
    pub created_at: i64,
}

/// What claiming a key inside a write transaction found.
#[derive(Debug)]
pub enum Claim {
    /// The key is this transaction's: write, then [`Tenant::idempotency_finish`].
    Mine,
    /// Another request with this key committed first; here is what it answered.
    Done(Remembered),
}

impl Tenant<'_> {
    /// Starts a write transaction (see [`super::Store::begin_write`]).
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let wake = self.store.events_wake.clone();
        let m = self.m;
        self.store
            .begin_write()
            .await
            .map(|tx| Tx(tx, wake, Default::default(), m))
    }

    /// The result remembered for `key`, if it is younger than `ttl` seconds. Reads through
    /// the pool and holds no connection afterwards: the cheap early answer for a retry.
    pub async fn idempotency_lookup(
        &self,
        key: &str,
        ttl: i64,
    ) -> Result<Option<Remembered>, sqlx::Error> {
        let mut q = Sql::new("SELECT route, request_hash, response, created_at FROM idempotency_keys WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND idem_key = ")
            .bind(key.to_owned())
            .push(" AND created_at > ")
            .bind(now() - ttl);
        q.fetch_optional(self.store.read_pool()).await
    }

    /// Claims `key` for the write in `tx`: inserts the key row (replacing an expired one).
    /// When a fresh row already exists — committed by a concurrent request this call waited
    /// for — returns that request's answer instead.
    pub async fn idempotency_claim(
        &self,
        tx: &mut Tx,
        key: &str,
        route: &str,
        request_hash: &str,
        ttl: i64,
    ) -> Result<Claim, sqlx::Error> {
        let t = now();
        // `response` stays empty until `idempotency_finish`, in the same transaction: no
        // other transaction ever sees the empty value.
        let mut q = Sql::new("INSERT INTO idempotency_keys (merchant_id, idem_key, route, request_hash, response, created_at) VALUES (");
        q.bind(self.m.get())
            .push(", ")
            .bind(key.to_owned())
            .push(", ")
            .bind(route.to_owned())
            .push(", ")
            .bind(request_hash.to_owned());
        q.push(", '', ")
            .bind(t)
            .push(") ON CONFLICT (merchant_id, idem_key) DO UPDATE SET route = excluded.route, request_hash = excluded.request_hash, response = '', created_at = excluded.created_at WHERE idempotency_keys.created_at <= ")
            .bind(t - ttl);
        if q.execute(&mut *tx.0).await? > 0 {
            return Ok(Claim::Mine);
        }
        let mut q = Sql::new("SELECT route, request_hash, response, created_at FROM idempotency_keys WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND idem_key = ")
            .bind(key.to_owned());
        Ok(Claim::Done(q.fetch_one(&mut *tx.0).await?))
    }

    /// Stores the answer for a key claimed in `tx`, and drops this merchant's expired keys.
    pub async fn idempotency_finish(
        &self,
        tx: &mut Tx,
        key: &str,
        response: &str,
        ttl: i64,
    ) -> Result<(), sqlx::Error> {
        let mut q = Sql::new("UPDATE idempotency_keys SET response = ");
        q.bind(response.to_owned())
            .push(" WHERE merchant_id = ")
            .bind(self.m.get())
            .push(" AND idem_key = ")
            .bind(key.to_owned());
        q.execute(&mut *tx.0).await?;
        let mut q = Sql::new("DELETE FROM idempotency_keys WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND created_at < ")
            .bind(now() - ttl);
        q.execute(&mut *tx.0).await?;
        Ok(())
    }
}
