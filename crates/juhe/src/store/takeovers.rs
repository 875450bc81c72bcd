//! Takeovers (托管/接管) of a conversation: one row per takeover, kept after it ends, so a
//! conversation's hosting state is its open row (at most one, by a unique index) and its
//! history is every row.

use super::idempotency::Tx;
use super::{now, take_ids, Sql, Tenant};

/// A takeover as stored, with the account's original id (the gateway names accounts by it).
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TakeoverRow {
    pub takeover_id: i64,
    pub wechat_id: i64,
    pub account: String,
    pub fan_key: String,
    pub apply_key: String,
    pub apply_name: String,
    pub apply_reason: String,
    pub apply_source: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub end_key: Option<String>,
    pub end_name: Option<String>,
    pub end_reason: Option<String>,
}

/// A takeover to start.
#[derive(Debug, Clone)]
pub struct NewTakeover {
    pub wechat_id: i64,
    pub fan_key: String,
    pub apply_key: String,
    pub apply_name: String,
    pub apply_reason: String,
    pub apply_source: String,
}

/// Who ends a takeover and why.
#[derive(Debug, Clone)]
pub struct TakeoverEnd {
    pub end_key: String,
    pub end_name: String,
    pub end_reason: String,
}

const COLUMNS: &str = "SELECT t.takeover_id, t.wechat_id, w.original_nober AS account, t.fan_key, t.apply_key, t.apply_name, \
     t.apply_reason, t.apply_source, t.started_at, t.ended_at, t.end_key, t.end_name, t.end_reason \
     FROM takeovers t JOIN wechats w ON w.merchant_id = t.merchant_id AND w.wechat_id = t.wechat_id";

impl Tenant<'_> {
    /// Takes the merchant's chat counter in `tx` before anything else: a takeover writes a
    /// chat record, and every chat writer takes that counter first (lock order). Holding it
    /// also serialises takeover changes of the merchant, so "read the open takeover, then
    /// write" cannot race with another request.
    pub async fn lock_for_takeover_in(&self, tx: &mut Tx) -> Result<(), sqlx::Error> {
        take_ids(&mut tx.0, self.m, "chat", 0).await?;
        Ok(())
    }

    /// The open takeover of a conversation, if any.
    pub async fn open_takeover_in(
        &self,
        tx: &mut Tx,
        wechat_id: i64,
        fan_key: &str,
    ) -> Result<Option<TakeoverRow>, sqlx::Error> {
        let mut q = Sql::new(COLUMNS);
        q.push(" WHERE t.merchant_id = ")
            .bind(self.m.get())
            .push(" AND t.wechat_id = ")
            .bind(wechat_id)
            .push(" AND t.fan_key = ")
            .bind(fan_key.to_owned())
            .push(" AND t.ended_at IS NULL");
        q.fetch_optional(&mut *tx.0).await
    }

    /// The latest takeover of a conversation, open or ended.
    pub async fn latest_takeover_in(
        &self,
        tx: &mut Tx,
        wechat_id: i64,
        fan_key: &str,
    ) -> Result<Option<TakeoverRow>, sqlx::Error> {
        let mut q = Sql::new(COLUMNS);
        q.push(" WHERE t.merchant_id = ")
            .bind(self.m.get())
            .push(" AND t.wechat_id = ")
            .bind(wechat_id)
            .push(" AND t.fan_key = ")
            .bind(fan_key.to_owned())
            .push(" ORDER BY t.takeover_id DESC LIMIT 1");
        q.fetch_optional(&mut *tx.0).await
    }

    /// Stores a new open takeover; the caller has checked that none is open.
    pub async fn start_takeover_in(
        &self,
        tx: &mut Tx,
        t: &NewTakeover,
    ) -> Result<i64, sqlx::Error> {
        let id = take_ids(&mut tx.0, self.m, "takeover", 1).await?;
        let mut q = Sql::new("INSERT INTO takeovers (merchant_id, takeover_id, wechat_id, fan_key, apply_key, apply_name, apply_reason, apply_source, started_at) VALUES (");
        q.bind(self.m.get())
            .push(", ")
            .bind(id)
            .push(", ")
            .bind(t.wechat_id)
            .push(", ")
            .bind(t.fan_key.clone())
            .push(", ")
            .bind(t.apply_key.clone());
        q.push(", ")
            .bind(t.apply_name.clone())
            .push(", ")
            .bind(t.apply_reason.clone())
            .push(", ")
            .bind(t.apply_source.clone())
            .push(", ")
            .bind(now())
            .push(")");
        q.execute(&mut *tx.0).await?;
        Ok(id)
    }

    /// Ends an open takeover. `false`: it was not open (any more).
    pub async fn end_takeover_in(
        &self,
        tx: &mut Tx,
        takeover_id: i64,
        end: &TakeoverEnd,
    ) -> Result<bool, sqlx::Error> {
        let mut q = Sql::new("UPDATE takeovers SET ended_at = ");
        q.bind(now())
            .push(", end_key = ")
            .bind(end.end_key.clone())
            .push(", end_name = ")
            .bind(end.end_name.clone())
            .push(", end_reason = ")
            .bind(end.end_reason.clone());
        q.push(" WHERE merchant_id = ")
            .bind(self.m.get())
            .push(" AND takeover_id = ")
            .bind(takeover_id)
            .push(" AND ended_at IS NULL");
        Ok(q.execute(&mut *tx.0).await? > 0)
    }

    pub async fn takeover_in(
        &self,
        tx: &mut Tx,
        takeover_id: i64,
    ) -> Result<Option<TakeoverRow>, sqlx::Error> {
        let mut q = Sql::new(COLUMNS);
        q.push(" WHERE t.merchant_id = ")
            .bind(self.m.get())
            .push(" AND t.takeover_id = ")
            .bind(takeover_id);
        q.fetch_optional(&mut *tx.0).await
    }

    /// A conversation's takeovers, newest first (at most `limit`).
    pub async fn takeover_history(
        &self,
        wechat_id: i64,
        fan_key: &str,
        limit: i64,
    ) -> Result<Vec<TakeoverRow>, sqlx::Error> {
        let mut q = Sql::new(COLUMNS);
        q.push(" WHERE t.merchant_id = ")
            .bind(self.m.get())
            .push(" AND t.wechat_id = ")
            .bind(wechat_id)
            .push(" AND t.fan_key = ")
            .bind(fan_key.to_owned())
            .push(" ORDER BY t.takeover_id DESC LIMIT ")
            .bind(limit);
        q.fetch_all(self.store.read_pool()).await
    }

    /// The open takeovers of the accounts `device_id` serves (the snapshot sent on connect).
    pub async fn open_takeovers_of_device(
        &self,
        device_id: i64,
    ) -> Result<Vec<TakeoverRow>, sqlx::Error> {
        let mut q = Sql::new(COLUMNS);
        q.push(" WHERE t.merchant_id = ")
            .bind(self.m.get())
            .push(" AND w.device_id = ")
            .bind(device_id)
            .push(" AND t.ended_at IS NULL ORDER BY t.takeover_id");
        q.fetch_all(self.store.read_pool()).await
    }

    /// The operating account a caller names by `ad_wechat_id` (digits) or by its original
    /// WeChat id: `(ad_wechat_id, original id)`.
    pub async fn account_by_key(&self, key: &str) -> Result<Option<(i64, String)>, sqlx::Error> {
        if let Ok(id) = key.parse::<i64>() {
            let mut q =
                Sql::new("SELECT wechat_id, original_nober FROM wechats WHERE merchant_id = ");
            q.bind(self.m.get()).push(" AND wechat_id = ").bind(id);
            if let Some(row) = q.fetch_optional(self.store.read_pool()).await? {
                return Ok(Some(row));
            }
        }
        let mut q = Sql::new("SELECT wechat_id, original_nober FROM wechats WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND original_nober = ")
            .bind(key.to_owned());
        q.fetch_optional(self.store.read_pool()).await
    }
}
