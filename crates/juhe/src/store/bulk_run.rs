//! Running bulk sends (RPA群发): claiming a due task, the fans it goes to, its per-fan
//! device tasks (`device_tasks.bulk_task_id`), progress, and stopping it.
//!
//! `bulk_send_tasks.state`: 0 saved (waiting for its time), 1 running (expanded into device
//! tasks), 2 finished (every device task has a result), 3 cancelled (deleted before it
//! finished).

use serde::Serialize;

use super::idempotency::Tx;
use super::misc::{BulkRow, Deleted};
use super::tasks::TaskRow;
use super::{now, take_ids, MerchantId, Page, Sql, Store, Tenant};

pub const SAVED: i64 = 0;
pub const RUNNING: i64 = 1;
pub const FINISHED: i64 = 2;
pub const CANCELLED: i64 = 3;

/// The documented name of a bulk-send state.
pub fn state_name(state: i64) -> &'static str {
    match state {
        SAVED => "saved",
        RUNNING => "running",
        FINISHED => "finished",
        _ => "cancelled",
    }
}

/// A bulk send's counts of per-fan items by device-task state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BulkCounts {
    pub total: i64,
    pub pending: i64,
    pub delivered: i64,
    pub sent: i64,
    pub failed: i64,
    pub cancelled: i64,
}

/// A bulk send's state, readable after it was deleted.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BulkState {
    pub state: i64,
    pub deleted_at: Option<i64>,
    pub send_time: Option<i64>,
    pub updated_at: i64,
}

/// One per-fan item of a running bulk send.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct BulkItemRow {
    pub task_id: i64,
    pub wechat_id: i64,
    pub account: String,
    pub fan_key: Option<String>,
    pub state: i64,
    pub attempts: i64,
    pub not_before: i64,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub result_code: Option<String>,
    pub result_message: Option<String>,
    pub sermsgid: Option<String>,
    pub chat_id: Option<i64>,
}

const BULK_COLUMNS: &str = "SELECT task_id, task_name, wechat_ids, fans_keys, task_content, send_time, interval_seconds, staff_code, state, created_at, updated_at FROM bulk_send_tasks";

impl Store {
    /// Saved bulk sends whose time has come (no time: at once), in any merchant, oldest first.
    pub async fn due_bulk_sends(&self, limit: i64) -> Result<Vec<(MerchantId, i64)>, sqlx::Error> {
        let mut q = Sql::new("SELECT merchant_id, task_id FROM bulk_send_tasks WHERE state = 0 AND deleted_at IS NULL AND (send_time IS NULL OR send_time <= ");
        q.bind(now())
            .push(") ORDER BY send_time, task_id LIMIT ")
            .bind(limit);
        let rows: Vec<(i64, i64)> = q.fetch_all(self.read_pool()).await?;
        Ok(rows
            .into_iter()
            .map(|(m, id)| (MerchantId::from_db(m), id))
            .collect())
    }

    /// Marks running bulk sends finished once none of their device tasks is open. Every
    /// process may run this; the `state = 1` guard makes it happen once.
    pub async fn finish_bulk_sends(&self) -> Result<u64, sqlx::Error> {
        // Read first: this runs every poll, and on SQLite a write transaction takes the one
        // write lock that ingest needs, even when there is nothing to finish.
        let running: Option<(i64,)> =
            Sql::new("SELECT task_id FROM bulk_send_tasks WHERE state = 1 LIMIT 1")
                .fetch_optional(self.read_pool())
                .await?;
        if running.is_none() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let mut q = Sql::new("UPDATE bulk_send_tasks SET state = 2, updated_at = ");
        q.bind(now()).push(
            " WHERE state = 1 AND NOT EXISTS (SELECT 1 FROM device_tasks d WHERE d.merchant_id = bulk_send_tasks.merchant_id \
             AND d.bulk_task_id = bulk_send_tasks.task_id AND d.state < 2)",
        );
        let n = q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n)
    }
}

impl Tenant<'_> {
    /// Claims a saved, due bulk send for running (state 0 → 1) in `tx`. `None`: another
    /// process claimed it, or it was deleted meanwhile. Safe with several processes: the
    /// guarded UPDATE lets exactly one claim it.
    pub async fn claim_bulk_send_in(
        &self,
        tx: &mut Tx,
        id: i64,
    ) -> Result<Option<BulkRow>, sqlx::Error> {
        let mut q = Sql::new("UPDATE bulk_send_tasks SET state = 1, updated_at = ");
        q.bind(now())
            .push(" WHERE merchant_id = ")
            .bind(self.m.get())
            .push(" AND task_id = ")
            .bind(id)
            .push(" AND state = 0 AND deleted_at IS NULL");
        if q.execute(&mut *tx.0).await? == 0 {
            return Ok(None);
        }
        let mut q = Sql::new(BULK_COLUMNS);
        q.push(" WHERE merchant_id = ")
            .bind(self.m.get())
            .push(" AND task_id = ")
            .bind(id);
        q.fetch_optional(&mut *tx.0).await
    }

    pub async fn set_bulk_state_in(
        &self,
        tx: &mut Tx,
        id: i64,
        state: i64,
    ) -> Result<(), sqlx::Error> {
        let mut q = Sql::new("UPDATE bulk_send_tasks SET state = ");
        q.bind(state)
            .push(", updated_at = ")
            .bind(now())
            .push(" WHERE merchant_id = ")
            .bind(self.m.get())
            .push(" AND task_id = ")
            .bind(id);
        q.execute(&mut *tx.0).await?;
        Ok(())
    }

    /// The valid fans (relation state 0) of an account a bulk send goes to: those of `keys`
    /// in their order, or every valid fan when `keys` is empty.
    pub async fn bulk_fans_in(
        &self,
        tx: &mut Tx,
        wechat_id: i64,
        keys: &[String],
    ) -> Result<Vec<String>, sqlx::Error> {
        let mut q = Sql::new("SELECT wenober FROM fans WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND wechat_id = ")
            .bind(wechat_id)
            .push(" AND relation_state = 0");
        if !keys.is_empty() {
            q.push(" AND wenober IN (")
                .bind_list(keys.iter().cloned())
                .push(")");
        }
        q.push(" ORDER BY fan_id");
        let found: Vec<(String,)> = q.fetch_all(&mut *tx.0).await?;
        if keys.is_empty() {
            return Ok(found.into_iter().map(|(f,)| f).collect());
        }
        let found: std::collections::HashSet<String> = found.into_iter().map(|(f,)| f).collect();
        let mut seen = std::collections::HashSet::new();
        Ok(keys
            .iter()
            .filter(|k| found.contains(*k) && seen.insert(k.as_str()))
            .cloned()
            .collect())
    }

    /// Records a bulk-send item that no assistant can execute (no device serves its
    /// account) as a failed device task, so progress and the per-fan list show it.
    pub async fn fail_unserved_bulk_item_in(
        &self,
        tx: &mut Tx,
        bulk_task_id: i64,
        wechat_id: i64,
        fan_key: &str,
        payload: &str,
    ) -> Result<i64, sqlx::Error> {
        let id = take_ids(&mut tx.0, self.m, "task", 1).await?;
        let t = now();
        let mut q = Sql::new("INSERT INTO device_tasks (merchant_id, task_id, device_id, wechat_id, kind, payload, state, attempts, not_before, expires_at, created_at, finished_at, result_code, result_message, bulk_task_id, fan_key) VALUES (");
        q.bind(self.m.get())
            .push(", ")
            .bind(id)
            .push(", 0, ")
            .bind(wechat_id)
            .push(", ")
            .bind(crate::core::tasks::BULK_SEND_ITEM.to_owned())
            .push(", ")
            .bind(payload.to_owned());
        q.push(", 3, 0, 0, ")
            .bind(t)
            .push(", ")
            .bind(t)
            .push(", ")
            .bind(t)
            .push(", 'no_assistant', 'no assistant serves the operating account', ")
            .bind(bulk_task_id)
            .push(", ")
            .bind(fan_key.to_owned())
            .push(")");
        q.execute(&mut *tx.0).await?;
        Ok(id)
    }

    /// A bulk send's state, deleted or not. `None`: it never existed.
    pub async fn bulk_state(&self, id: i64) -> Result<Option<BulkState>, sqlx::Error> {
        let mut q = Sql::new(
            "SELECT state, deleted_at, send_time, updated_at FROM bulk_send_tasks WHERE merchant_id = ",
        );
        q.bind(self.m.get()).push(" AND task_id = ").bind(id);
        q.fetch_optional(self.store.read_pool()).await
    }

    /// Counts of a bulk send's items by state.
    pub async fn bulk_counts(&self, id: i64) -> Result<BulkCounts, sqlx::Error> {
        let mut q = Sql::new("SELECT state, COUNT(*) FROM device_tasks WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND bulk_task_id = ")
            .bind(id)
            .push(" GROUP BY state");
        let rows: Vec<(i64, i64)> = q.fetch_all(self.store.read_pool()).await?;
        Ok(tally(rows))
    }
}

/// [`Tenant::bulk_counts`] read in `tx` (it sees the transaction's own result).
pub(in crate::store) async fn bulk_counts_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    m: MerchantId,
    id: i64,
) -> Result<BulkCounts, sqlx::Error> {
    let mut q = Sql::new("SELECT state, COUNT(*) FROM device_tasks WHERE merchant_id = ");
    q.bind(m.get())
        .push(" AND bulk_task_id = ")
        .bind(id)
        .push(" GROUP BY state");
    let rows: Vec<(i64, i64)> = q.fetch_all(&mut **tx).await?;
    Ok(tally(rows))
}

fn tally(rows: Vec<(i64, i64)>) -> BulkCounts {
    {
        let mut c = BulkCounts::default();
        for (state, n) in rows {
            c.total += n;
            match state {
                0 => c.pending += n,
                1 => c.delivered += n,
                2 => c.sent += n,
                3 => c.failed += n,
                _ => c.cancelled += n,
            }
        }
        c
    }
}

impl Tenant<'_> {
    /// One page of a bulk send's items in task order, optionally of one device-task state.
    pub async fn bulk_items_page(
        &self,
        id: i64,
        state: Option<i64>,
        page: Page,
    ) -> Result<(Vec<BulkItemRow>, bool), sqlx::Error> {
        let mut q = Sql::new(
            "SELECT t.task_id, t.wechat_id, w.original_nober AS account, t.fan_key, t.state, t.attempts, t.not_before, \
             t.created_at, t.delivered_at, t.finished_at, t.result_code, t.result_message, t.sermsgid, t.chat_id \
             FROM device_tasks t JOIN wechats w ON w.merchant_id = t.merchant_id AND w.wechat_id = t.wechat_id WHERE t.merchant_id = ",
        );
        q.bind(self.m.get()).push(" AND t.bulk_task_id = ").bind(id);
        if let Some(s) = state {
            q.push(" AND t.state = ").bind(s);
        }
        q.push(" ORDER BY t.task_id");
        page.push_limit(&mut q);
        let rows = q.fetch_all(self.store.read_pool()).await?;
        Ok(super::trim_page(rows, page))
    }

    /// Deletes a bulk send and stops it: a saved or running task becomes cancelled, its
    /// items not yet executed are cancelled. Returns the items that had been handed to a
    /// device (the gateway tells the device to drop them).
    pub async fn delete_and_stop_bulk_send(
        &self,
        id: i64,
    ) -> Result<(Deleted, Vec<TaskRow>), sqlx::Error> {
        let mut tx = self.begin().await?;
        let mut q = Sql::new("UPDATE bulk_send_tasks SET deleted_at = ");
        let t = now();
        q.bind(t)
            .push(", updated_at = ")
            .bind(t)
            .push(", state = CASE WHEN state < 2 THEN 3 ELSE state END WHERE merchant_id = ")
            .bind(self.m.get())
            .push(" AND task_id = ")
            .bind(id)
            .push(" AND deleted_at IS NULL");
        let n = q.execute(&mut *tx.0).await?;
        let out = if n > 0 {
            let delivered = self.cancel_bulk_tasks_in(&mut tx, id).await?;
            (Deleted::Now, delivered)
        } else {
            let mut q = Sql::new("SELECT COUNT(*) FROM bulk_send_tasks WHERE merchant_id = ");
            q.bind(self.m.get()).push(" AND task_id = ").bind(id);
            if q.scalar::<i64, _>(&mut *tx.0).await? > 0 {
                (Deleted::Already, Vec::new())
            } else {
                (Deleted::Missing, Vec::new())
            }
        };
        tx.commit().await?;
        Ok(out)
    }
}
