//! The durable task queue: server → assistant work (send a message, a bulk-send item, a
//! takeover notice), stored before it is sent, handed to the device's connection in order
//! per account with pacing, finished by the assistant's result or by expiry.
//!
//! A task is `pending` (0) until a connection takes it, `delivered` (1) until a result
//! arrives (re-sent after a reconnect), then `succeeded` (2), `failed` (3) or
//! `cancelled` (4). Pacing state (`wechats.last_task_at`) lives beside the queue, so a
//! restarted or second process keeps the per-account rate.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::idempotency::Tx;
use super::{now, take_ids, Backend, MerchantId, Sql, Store, Tenant};

pub const PENDING: i64 = 0;
pub const DELIVERED: i64 = 1;
pub const SUCCEEDED: i64 = 2;
pub const FAILED: i64 = 3;
pub const CANCELLED: i64 = 4;

/// The documented name of a task state.
pub fn state_name(state: i64) -> &'static str {
    match state {
        PENDING => "pending",
        DELIVERED => "delivered",
        SUCCEEDED => "succeeded",
        FAILED => "failed",
        _ => "cancelled",
    }
}

/// The PostgreSQL channel on which task inserts wake the process holding the device.
pub const TASK_CHANNEL: &str = "juhe_tasks";

/// A task to enqueue.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub wechat_id: i64,
    pub kind: String,
    /// JSON object.
    pub payload: String,
    pub fan_key: Option<String>,
    pub bulk_task_id: Option<i64>,
    /// Not handed over before this time (Unix milliseconds).
    pub not_before_ms: i64,
    /// Fails with `expired` when not finished this many seconds after creation.
    pub ttl_seconds: i64,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, serde::Deserialize, PartialEq)]
pub struct TaskRow {
    pub task_id: i64,
    pub device_id: i64,
    pub wechat_id: i64,
    pub account: String,
    pub kind: String,
    pub payload: String,
    pub state: i64,
    pub attempts: i64,
    /// Unix milliseconds before which it is not handed over.
    pub not_before: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub delivered_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub result_code: Option<String>,
    pub result_message: Option<String>,
    pub sermsgid: Option<String>,
    pub chat_id: Option<i64>,
    pub bulk_task_id: Option<i64>,
    pub fan_key: Option<String>,
}

const TASK_COLUMNS: &str = "SELECT t.task_id, t.device_id, t.wechat_id, w.original_nober AS account, t.kind, t.payload, t.state, t.attempts, t.not_before, \
     t.created_at, t.expires_at, t.delivered_at, t.finished_at, t.result_code, t.result_message, t.sermsgid, t.chat_id, \
     t.bulk_task_id, t.fan_key FROM device_tasks t JOIN wechats w ON w.merchant_id = t.merchant_id AND w.wechat_id = t.wechat_id";

/// A task that was enqueued: which device's connection to wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub task_id: i64,
    pub device_id: i64,
}

/// What a connection took from the queue.
#[derive(Debug, Default)]
pub struct Claimed {
    pub tasks: Vec<TaskRow>,
    /// When the next pending task of this device becomes due (Unix ms), if any is waiting
    /// on pacing or its `not_before`.
    pub next_due_ms: Option<i64>,
}

/// What a result did to its task.
#[derive(Debug)]
pub enum Finished {
    /// The task is now finished with this result.
    Now(TaskRow),
    /// It already had a result; nothing changed.
    Already(TaskRow),
    /// No such task for this device.
    Unknown,
}

pub use super::now_ms;

impl Tenant<'_> {
    /// Enqueues a task for the device serving `wechat_id`, in the caller's transaction.
    /// `None`: no device serves the account. On PostgreSQL the commit also notifies every
    /// process (`LISTEN juhe_tasks`); in-process callers wake the connection themselves
    /// after the commit (`gateway::Hub::wake`).
    pub async fn enqueue_task_in(
        &self,
        tx: &mut Tx,
        t: &NewTask,
    ) -> Result<Option<Enqueued>, sqlx::Error> {
        let mut q = Sql::new("SELECT device_id FROM wechats WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND wechat_id = ")
            .bind(t.wechat_id);
        let device: Option<(Option<i64>,)> = q.fetch_optional(&mut *tx.0).await?;
        let Some((Some(device_id),)) = device else {
            return Ok(None);
        };
        let id = take_ids(&mut tx.0, self.m, "task", 1).await?;
        let created = now();
        let mut q = Sql::new("INSERT INTO device_tasks (merchant_id, task_id, device_id, wechat_id, kind, payload, state, attempts, not_before, expires_at, created_at, bulk_task_id, fan_key) VALUES (");
        q.bind(self.m.get())
            .push(", ")
            .bind(id)
            .push(", ")
            .bind(device_id)
            .push(", ")
            .bind(t.wechat_id)
            .push(", ")
            .bind(t.kind.clone())
            .push(", ")
            .bind(t.payload.clone());
        q.push(", 0, 0, ")
            .bind(t.not_before_ms)
            .push(", ")
            .bind(created.saturating_add(t.ttl_seconds))
            .push(", ")
            .bind(created)
            .push(", ")
            .bind(t.bulk_task_id)
            .push(", ")
            .bind(t.fan_key.clone())
            .push(")");
        q.execute(&mut *tx.0).await?;
        if self.store.backend() == Backend::Postgres {
            // NOTIFY is transactional: delivered at commit, dropped on rollback.
            let mut q = Sql::new("SELECT pg_notify(");
            q.bind(TASK_CHANNEL.to_owned())
                .push(", ")
                .bind(format!("{}:{}", self.m.get(), device_id))
                .push(")::text");
            q.scalar::<String, _>(&mut *tx.0).await?;
        }
        Ok(Some(Enqueued {
            task_id: id,
            device_id,
        }))
    }

    pub async fn task(&self, task_id: i64) -> Result<Option<TaskRow>, sqlx::Error> {
        let mut q = Sql::new(TASK_COLUMNS);
        q.push(" WHERE t.merchant_id = ")
            .bind(self.m.get())
            .push(" AND t.task_id = ")
            .bind(task_id);
        q.fetch_optional(self.store.read_pool()).await
    }

    /// Tasks of the device that were handed to a connection and have no result: sent again
    /// to a new connection (at least once). Counts the attempt.
    pub async fn redeliver_tasks(&self, device_id: i64) -> Result<Vec<TaskRow>, sqlx::Error> {
        let mut tx = self.store.begin_write().await?;
        let mut q = Sql::new("UPDATE device_tasks SET attempts = attempts + 1, delivered_at = ");
        q.bind(now())
            .push(" WHERE merchant_id = ")
            .bind(self.m.get())
            .push(" AND device_id = ")
            .bind(device_id)
            .push(" AND state = 1");
        q.execute(&mut *tx).await?;
        let mut q = Sql::new(TASK_COLUMNS);
        q.push(" WHERE t.merchant_id = ")
            .bind(self.m.get())
            .push(" AND t.device_id = ")
            .bind(device_id)
            .push(" AND t.state = 1 ORDER BY t.task_id");
        let rows = q.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Takes up to `limit` due tasks of the device, at most one per account per
    /// `interval_ms` (none within `interval_ms` of the account's last hand-over), in
    /// task order per account, and marks them delivered.
    pub async fn claim_tasks(
        &self,
        device_id: i64,
        interval_ms: i64,
        limit: i64,
    ) -> Result<Claimed, sqlx::Error> {
        if limit <= 0 {
            return Ok(Claimed::default());
        }
        let t_ms = now_ms();
        let mut tx = self.store.begin_write().await?;
        // Candidates: the oldest pending tasks of the device, with their account's pacing.
        let mut q = Sql::new(TASK_COLUMNS);
        q.push(" WHERE t.merchant_id = ")
            .bind(self.m.get())
            .push(" AND t.device_id = ")
            .bind(device_id)
            .push(" AND t.state = 0 ORDER BY t.task_id LIMIT ")
            .bind(limit.saturating_mul(4).max(64));
        let pending: Vec<TaskRow> = q.fetch_all(&mut *tx).await?;
        if pending.is_empty() {
            tx.commit().await?;
            return Ok(Claimed::default());
        }
        let mut accounts: Vec<i64> = pending.iter().map(|t| t.wechat_id).collect();
        accounts.sort_unstable();
        accounts.dedup();
        let mut q = Sql::new("SELECT wechat_id, last_task_at FROM wechats WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND wechat_id IN (")
            .bind_list(accounts.iter().copied())
            .push(")");
        let last: std::collections::HashMap<i64, i64> = q
            .fetch_all::<(i64, i64), _>(&mut *tx)
            .await?
            .into_iter()
            .collect();
        // In task order; an account whose next task must wait holds back everything behind
        // it (order per account), and paced accounts get one task per interval.
        let mut claimed: Vec<TaskRow> = Vec::new();
        let mut blocked: std::collections::HashSet<i64> = Default::default();
        let mut next_due: Option<i64> = None;
        let wait = |due: i64, next_due: &mut Option<i64>| {
            *next_due = Some(next_due.map_or(due, |d| d.min(due)));
        };
        for task in pending {
            if claimed.len() as i64 >= limit {
                break;
            }
            let acct = task.wechat_id;
            if blocked.contains(&acct) {
                continue;
            }
            if interval_ms > 0 && claimed.iter().any(|c| c.wechat_id == acct) {
                blocked.insert(acct);
                wait(t_ms + interval_ms, &mut next_due);
                continue;
            }
            let paced = if interval_ms > 0 {
                last.get(&acct)
                    .copied()
                    .unwrap_or(0)
                    .saturating_add(interval_ms)
            } else {
                0
            };
            let due = task.not_before.max(paced);
            if due > t_ms {
                blocked.insert(acct);
                wait(due, &mut next_due);
                continue;
            }
            claimed.push(task);
        }
        if !claimed.is_empty() {
            let t = now();
            let mut q = Sql::new(
                "UPDATE device_tasks SET state = 1, attempts = attempts + 1, delivered_at = ",
            );
            q.bind(t)
                .push(" WHERE merchant_id = ")
                .bind(self.m.get())
                .push(" AND state = 0 AND task_id IN (")
                .bind_list(claimed.iter().map(|t| t.task_id))
                .push(")");
            q.execute(&mut *tx).await?;
            if interval_ms > 0 {
                let mut q = Sql::new("UPDATE wechats SET last_task_at = ");
                q.bind(t_ms)
                    .push(" WHERE merchant_id = ")
                    .bind(self.m.get())
                    .push(" AND wechat_id IN (")
                    .bind_list(claimed.iter().map(|c| c.wechat_id))
                    .push(")");
                q.execute(&mut *tx).await?;
            }
            for c in &mut claimed {
                c.state = DELIVERED;
                c.attempts += 1;
                c.delivered_at = Some(t);
            }
        }
        tx.commit().await?;
        Ok(Claimed {
            tasks: claimed,
            next_due_ms: next_due,
        })
    }

    /// Records several results of one device's tasks in the caller's transaction, with a
    /// constant number of statements whatever their number: an assistant answers a burst of
    /// tasks at once, and on SQLite every statement is a round trip to the driver's thread.
    /// Takes the chat counter first (lock order), because the caller records the sent
    /// messages in the same transaction. A task named twice is finished by its first
    /// result; the later ones see it finished.
    ///
    /// `accept` sees each unfinished task with its result and may refuse it (the task is
    /// left as it was); the refusal is returned in its place.
    pub async fn finish_tasks_in<E>(
        &self,
        tx: &mut Tx,
        device_id: i64,
        results: &[(i64, &TaskResult)],
        accept: impl Fn(&TaskRow, &TaskResult) -> Result<(), E>,
    ) -> Result<Vec<Result<Finished, E>>, sqlx::Error> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        take_ids(&mut tx.0, self.m, "chat", 0).await?;
        let mut q = Sql::new(TASK_COLUMNS);
        q.push(" WHERE t.merchant_id = ")
            .bind(self.m.get())
            .push(" AND t.device_id = ")
            .bind(device_id)
            .push(" AND t.task_id IN (")
            .bind_list(results.iter().map(|(id, _)| *id))
            .push(")");
        let mut rows: HashMap<i64, TaskRow> = q
            .fetch_all::<TaskRow, _>(&mut *tx.0)
            .await?
            .into_iter()
            .map(|r| (r.task_id, r))
            .collect();
        let finished_at = now();
        let mut out: Vec<Option<Result<Finished, E>>> = Vec::with_capacity(results.len());
        // Index into `out` of each result that finishes its task now.
        let mut now_idx: Vec<usize> = Vec::new();
        for (i, (id, result)) in results.iter().enumerate() {
            let Some(row) = rows.get_mut(id) else {
                out.push(Some(Ok(Finished::Unknown)));
                continue;
            };
            if row.state >= SUCCEEDED {
                out.push(Some(Ok(Finished::Already(row.clone()))));
                continue;
            }
            if let Err(e) = accept(row, result) {
                out.push(Some(Err(e)));
                continue;
            }
            row.state = if result.ok { SUCCEEDED } else { FAILED };
            row.finished_at = Some(finished_at);
            row.result_code = result.code.clone();
            row.result_message = result.message.clone();
            row.sermsgid = result.sermsgid.clone();
            now_idx.push(i);
            out.push(None);
        }
        if !now_idx.is_empty() {
            // `(VALUES …) AS v` with the default column names column1…: the one spelling of
            // an inline table both SQLite and PostgreSQL accept in UPDATE … FROM.
            let mut q = Sql::new("UPDATE device_tasks SET state = v.column2, finished_at = ");
            q.bind(finished_at).push(
                ", result_code = v.column3, result_message = v.column4, sermsgid = v.column5 FROM (VALUES ",
            );
            for (n, &i) in now_idx.iter().enumerate() {
                let (id, result) = results[i];
                if n > 0 {
                    q.push(", ");
                }
                q.push("(")
                    .bind(id)
                    .push(", ")
                    .bind(if result.ok { SUCCEEDED } else { FAILED })
                    .push(", ")
                    .bind(result.code.clone())
                    .push(", ")
                    .bind(result.message.clone())
                    .push(", ")
                    .bind(result.sermsgid.clone())
                    .push(")");
            }
            q.push(") AS v WHERE device_tasks.merchant_id = ")
                .bind(self.m.get())
                .push(" AND device_tasks.device_id = ")
                .bind(device_id)
                .push(" AND device_tasks.task_id = v.column1 AND device_tasks.state < 2 RETURNING task_id");
            let changed: HashSet<i64> = q
                .fetch_all::<(i64,), _>(&mut *tx.0)
                .await?
                .into_iter()
                .map(|(id,)| id)
                .collect();
            // A task another writer finished between the read and the update (its expiry,
            // on another process): this result is a repeat; read what that writer stored.
            let lost: Vec<i64> = now_idx
                .iter()
                .map(|&i| results[i].0)
                .filter(|id| !changed.contains(id))
                .collect();
            let mut stale: HashMap<i64, TaskRow> = HashMap::new();
            if !lost.is_empty() {
                let mut q = Sql::new(TASK_COLUMNS);
                q.push(" WHERE t.merchant_id = ")
                    .bind(self.m.get())
                    .push(" AND t.task_id IN (")
                    .bind_list(lost.iter().copied())
                    .push(")");
                stale = q
                    .fetch_all::<TaskRow, _>(&mut *tx.0)
                    .await?
                    .into_iter()
                    .map(|r| (r.task_id, r))
                    .collect();
            }
            for &i in &now_idx {
                let id = results[i].0;
                out[i] = Some(Ok(if changed.contains(&id) {
                    match rows.get(&id) {
                        Some(r) => Finished::Now(r.clone()),
                        None => Finished::Unknown,
                    }
                } else {
                    match stale.remove(&id) {
                        Some(r) => Finished::Already(r),
                        None => Finished::Unknown,
                    }
                }));
            }
        }
        Ok(out
            .into_iter()
            .map(|o| o.unwrap_or(Ok(Finished::Unknown)))
            .collect())
    }

    /// Links finished send tasks to the chat records of the messages they sent.
    pub async fn set_task_chats_in(
        &self,
        tx: &mut Tx,
        links: &[(i64, i64)],
    ) -> Result<(), sqlx::Error> {
        if links.is_empty() {
            return Ok(());
        }
        let mut q = Sql::new("UPDATE device_tasks SET chat_id = v.column2 FROM (VALUES ");
        for (n, (task_id, chat_id)) in links.iter().enumerate() {
            if n > 0 {
                q.push(", ");
            }
            q.push("(")
                .bind(*task_id)
                .push(", ")
                .bind(*chat_id)
                .push(")");
        }
        q.push(") AS v WHERE device_tasks.merchant_id = ")
            .bind(self.m.get())
            .push(" AND device_tasks.task_id = v.column1");
        q.execute(&mut *tx.0).await?;
        Ok(())
    }

    /// Cancels the unfinished tasks of a bulk send; returns those that had been handed to
    /// a device (the gateway tells it to drop them).
    pub async fn cancel_bulk_tasks_in(
        &self,
        tx: &mut Tx,
        bulk_task_id: i64,
    ) -> Result<Vec<TaskRow>, sqlx::Error> {
        let mut q = Sql::new(TASK_COLUMNS);
        q.push(" WHERE t.merchant_id = ")
            .bind(self.m.get())
            .push(" AND t.bulk_task_id = ")
            .bind(bulk_task_id)
            .push(" AND t.state = 1");
        let delivered: Vec<TaskRow> = q.fetch_all(&mut *tx.0).await?;
        let mut q = Sql::new(
            "UPDATE device_tasks SET state = 4, result_code = 'cancelled', finished_at = ",
        );
        q.bind(now())
            .push(" WHERE merchant_id = ")
            .bind(self.m.get())
            .push(" AND bulk_task_id = ")
            .bind(bulk_task_id)
            .push(" AND state < 2");
        q.execute(&mut *tx.0).await?;
        Ok(delivered)
    }
}

/// A result reported by an assistant.
#[derive(Debug, Clone, Default)]
pub struct TaskResult {
    pub ok: bool,
    pub code: Option<String>,
    pub message: Option<String>,
    pub sermsgid: Option<String>,
}

impl Store {
    /// Fails every unfinished task past its expiry, in any merchant. Returns what it
    /// failed, so the caller can tell connections and bulk sends. Every process runs this;
    /// the `state < 2` guard makes a task expire once.
    pub async fn expire_tasks(
        &self,
        limit: i64,
    ) -> Result<Vec<(MerchantId, TaskRow)>, sqlx::Error> {
        let t = now();
        let mut q = Sql::new(
            "SELECT merchant_id, task_id FROM device_tasks WHERE state < 2 AND expires_at <= ",
        );
        q.bind(t).push(" ORDER BY expires_at LIMIT ").bind(limit);
        let due: Vec<(i64, i64)> = q.fetch_all(self.read_pool()).await?;
        let mut out = Vec::new();
        for (m, id) in due {
            let m = MerchantId::from_db(m);
            let mut tx = self.begin_write().await?;
            let mut q = Sql::new("UPDATE device_tasks SET state = 3, result_code = 'expired', result_message = 'the assistant did not execute the task in time', finished_at = ");
            q.bind(t)
                .push(" WHERE merchant_id = ")
                .bind(m.get())
                .push(" AND task_id = ")
                .bind(id)
                .push(" AND state < 2");
            let n = q.execute(&mut *tx).await?;
            let mut expired = None;
            if n > 0 {
                let mut q = Sql::new(TASK_COLUMNS);
                q.push(" WHERE t.merchant_id = ")
                    .bind(m.get())
                    .push(" AND t.task_id = ")
                    .bind(id);
                let row: Option<TaskRow> = q.fetch_optional(&mut *tx).await?;
                if let Some(row) = &row {
                    super::events::emit_tx(&mut tx, m, task_events(row)).await?;
                }
                expired = row;
            }
            tx.commit().await?;
            if let Some(row) = expired {
                self.events_changed();
                out.push((m, row));
            }
        }
        Ok(out)
    }

    /// Devices with pending work that is due, in any merchant: the fallback poll wakes
    /// the connections this process holds.
    pub async fn devices_with_due_tasks(&self) -> Result<Vec<(MerchantId, i64)>, sqlx::Error> {
        let mut q = Sql::new("SELECT DISTINCT merchant_id, device_id FROM device_tasks WHERE state = 0 AND not_before <= ");
        q.bind(now_ms());
        let rows: Vec<(i64, i64)> = q.fetch_all(self.read_pool()).await?;
        Ok(rows
            .into_iter()
            .map(|(m, d)| (MerchantId::from_db(m), d))
            .collect())
    }
}

impl Store {
    /// PostgreSQL: a connection listening on the task channel, whose notifications name
    /// `merchant:device` of each task committed by any process. `None` on SQLite (one
    /// process per file is the norm there; the poll covers the rest).
    pub async fn task_listener(&self) -> anyhow::Result<Option<sqlx::postgres::PgListener>> {
        let Some(url) = &self.pg_url else {
            return Ok(None);
        };
        let mut l = sqlx::postgres::PgListener::connect(url).await?;
        l.listen(TASK_CHANNEL).await?;
        Ok(Some(l))
    }
}

/// The events of a task that has its final result: `rpaTaskResult`, and `rpaTaskFailed`
/// too when it failed. A task for a fan or group belongs to that conversation.
pub(crate) fn task_events(row: &TaskRow) -> Vec<super::events::NewEvent> {
    use super::events::{EventData, NewEvent, RPA_TASK_FAILED, RPA_TASK_RESULT};
    let conversation = row.fan_key.clone().map(|f| (row.wechat_id, f));
    let mut v = vec![NewEvent {
        event_type: RPA_TASK_RESULT,
        conversation: conversation.clone(),
        data: EventData::Task { task: row.clone() },
    }];
    if row.state == 3 {
        v.push(NewEvent {
            event_type: RPA_TASK_FAILED,
            conversation,
            data: EventData::Task { task: row.clone() },
        });
    }
    v
}
