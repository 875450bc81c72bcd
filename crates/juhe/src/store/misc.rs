//! Ads (广告), to-dos (待办), RPA bulk-send tasks (群发) and call recordings (音频存档).

use serde::{Deserialize, Serialize};

use super::idempotency::Tx;
use super::{like_pattern, now, take_ids, trim_page, Page, Sql, Tenant};

// ---------------------------------------------------------------- ads

/// An ad as stored; times are Unix seconds.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct AdRow {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub costs: f64,
    pub state: i64,
    pub build_type: i64,
    pub create_time: i64,
}

#[derive(Debug, Clone, Default)]
pub struct AdFilter {
    pub code: Option<String>,
    pub name: Option<String>,
    pub min_costs: Option<f64>,
    pub max_costs: Option<f64>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub state: Option<i64>,
    pub build_type: Option<i64>,
}

// ---------------------------------------------------------------- to-dos

/// A to-do as the API accepts it (AddRecord / AddRecordNew).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NewTodo {
    pub weixin: String,
    pub from_type: i64,
    pub sff_id: Option<String>,
    pub remind_title: String,
    pub content: String,
    pub remind_time: i64,
    pub is_always: i64,
    pub recipients: Vec<String>,
    pub wechat_id: i64,
    pub level_color: Option<String>,
    pub level_name: Option<String>,
    pub event_type: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TodoRow {
    pub todo_id: i64,
    pub weixin: String,
    pub from_type: i64,
    pub sff_id: Option<String>,
    pub remind_title: String,
    pub content: String,
    pub remind_time: i64,
    pub is_always: i64,
    pub recipients: String,
    pub wechat_id: i64,
    pub wechat_nober: Option<String>,
    pub level_color: Option<String>,
    pub level_name: Option<String>,
    pub event_type: Option<i64>,
    pub state: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct TodoFilter {
    pub created_start: Option<i64>,
    pub created_end: Option<i64>,
    pub remind_start: Option<i64>,
    pub remind_end: Option<i64>,
    pub create_staff: Option<String>,
    pub remind_staff: Vec<String>,
    pub wechat_id: Option<i64>,
    pub wechat_nober: Option<String>,
    pub state: Option<i64>,
}

// ---------------------------------------------------------------- bulk send

/// A bulk-send task as stored. `task_content` is the item array, kept as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BulkSendTask {
    pub task_name: String,
    pub wechat_ids: Vec<i64>,
    pub fans_keys: Vec<String>,
    pub task_content: serde_json::Value,
    pub send_time: Option<i64>,
    pub interval_seconds: i64,
    pub staff_code: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BulkRow {
    pub task_id: i64,
    pub task_name: String,
    pub wechat_ids: String,
    pub fans_keys: String,
    pub task_content: String,
    pub send_time: Option<i64>,
    pub interval_seconds: i64,
    pub staff_code: Option<String>,
    pub state: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Outcome of deleting a bulk-send task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Now,
    Already,
    Missing,
}

// ---------------------------------------------------------------- meeting calls

/// A call recording as stored; times are Unix seconds.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct MeetingCallRow {
    pub id: i64,
    pub msg_type: String,
    pub ad_wechat_id: i64,
    pub ad_wechat_nober: String,
    pub ad_wechat_nick: String,
    pub ad_staff_code: String,
    pub fans_key: String,
    pub start_time: i64,
    pub end_time: i64,
    pub duration: i64,
    pub voice_url: String,
}

#[derive(Debug, Clone, Default)]
pub struct MeetingCallFilter {
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub wechat_nober: Option<String>,
    pub wechat_nick: Option<String>,
    pub staff_code: Option<String>,
    pub msg_type: Option<String>,
    pub wechat_lei: Option<i64>,
    pub wechat_id: Option<i64>,
    pub fans_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct NewMeetingCall {
    pub msg_type: String,
    pub wechat_id: i64,
    pub staff_code: String,
    pub fans_key: String,
    pub start_time: i64,
    pub duration: i64,
    pub voice_url: String,
}

impl Tenant<'_> {
    // ------------------------------------------------------------ ads
    fn push_ad_filter(&self, q: &mut Sql, f: &AdFilter) {
        q.push(" FROM ads WHERE merchant_id = ").bind(self.m.get());
        if let Some(c) = &f.code {
            q.push(" AND code = ").bind(c.clone());
        }
        if let Some(n) = &f.name {
            q.push(" AND LOWER(name) LIKE LOWER(")
                .bind(like_pattern(n))
                .push(") ESCAPE '\\'");
        }
        q.range("costs", f.min_costs, f.max_costs);
        q.range("create_time", f.start, f.end);
        if let Some(v) = f.state {
            q.push(" AND state = ").bind(v);
        }
        if let Some(v) = f.build_type {
            q.push(" AND build_type = ").bind(v);
        }
    }

    pub async fn ads_page(
        &self,
        f: &AdFilter,
        page: Page,
    ) -> Result<(Vec<AdRow>, bool), sqlx::Error> {
        let mut q =
            Sql::new("SELECT ad_id AS id, code, name, costs, state, build_type, create_time");
        self.push_ad_filter(&mut q, f);
        q.push(" ORDER BY ad_id");
        page.push_limit(&mut q);
        Ok(trim_page(q.fetch_all(self.store.read_pool()).await?, page))
    }

    pub async fn ads_count(&self, f: &AdFilter) -> Result<i64, sqlx::Error> {
        let mut q = Sql::new("SELECT COUNT(*)");
        self.push_ad_filter(&mut q, f);
        q.scalar(self.store.read_pool()).await
    }

    // ------------------------------------------------------------ to-dos
    pub async fn add_todo(&self, tx: &mut Tx, t: &NewTodo) -> Result<i64, sqlx::Error> {
        let id = take_ids(&mut tx.0, self.m, "todo", 1).await?;
        let mut q = Sql::new(
            "INSERT INTO todos (merchant_id, todo_id, weixin, from_type, sff_id, remind_title, content, remind_time, is_always, recipients, wechat_id, level_color, level_name, event_type, state, created_at) VALUES (",
        );
        q.bind(self.m.get())
            .push(", ")
            .bind(id)
            .push(", ")
            .bind(t.weixin.clone())
            .push(", ")
            .bind(t.from_type)
            .push(", ")
            .bind(t.sff_id.clone());
        q.push(", ")
            .bind(t.remind_title.clone())
            .push(", ")
            .bind(t.content.clone())
            .push(", ")
            .bind(t.remind_time)
            .push(", ")
            .bind(t.is_always);
        q.push(", ")
            .bind(serde_json::to_string(&t.recipients).unwrap_or_else(|_| "[]".into()))
            .push(", ")
            .bind(t.wechat_id);
        q.push(", ")
            .bind(t.level_color.clone())
            .push(", ")
            .bind(t.level_name.clone())
            .push(", ")
            .bind(t.event_type)
            .push(", 0, ")
            .bind(now())
            .push(")");
        q.execute(&mut *tx.0).await?;
        Ok(id)
    }

    fn push_todo_filter(&self, q: &mut Sql, f: &TodoFilter) {
        q.push(" FROM todos t LEFT JOIN wechats w ON w.merchant_id = t.merchant_id AND w.wechat_id = t.wechat_id WHERE t.merchant_id = ").bind(self.m.get());
        q.range("t.created_at", f.created_start, f.created_end);
        q.range("t.remind_time", f.remind_start, f.remind_end);
        if let Some(s) = &f.create_staff {
            q.push(" AND t.sff_id = ").bind(s.clone());
        }
        if !f.remind_staff.is_empty() {
            // Recipients are stored as a JSON array of strings; match any of the wanted ones.
            q.push(" AND (");
            for (i, s) in f.remind_staff.iter().enumerate() {
                if i > 0 {
                    q.push(" OR ");
                }
                let needle = serde_json::to_string(s).unwrap_or_default();
                q.push("t.recipients LIKE ")
                    .bind(like_pattern(&needle))
                    .push(" ESCAPE '\\'");
            }
            q.push(")");
        }
        if let Some(w) = f.wechat_id {
            q.push(" AND t.wechat_id = ").bind(w);
        }
        if let Some(n) = &f.wechat_nober {
            q.push(" AND w.wechat_nober = ").bind(n.clone());
        }
        if let Some(s) = f.state {
            q.push(" AND t.state = ").bind(s);
        }
    }

    pub async fn todos_page(
        &self,
        f: &TodoFilter,
        page: Page,
    ) -> Result<(Vec<TodoRow>, bool), sqlx::Error> {
        let mut q = Sql::new(
            "SELECT t.todo_id, t.weixin, t.from_type, t.sff_id, t.remind_title, t.content, t.remind_time, t.is_always, t.recipients, \
             t.wechat_id, w.wechat_nober, t.level_color, t.level_name, t.event_type, t.state, t.created_at",
        );
        self.push_todo_filter(&mut q, f);
        q.push(" ORDER BY t.todo_id");
        page.push_limit(&mut q);
        let rows: Vec<TodoRow> = q.fetch_all(self.store.read_pool()).await?;
        let (rows, more) = trim_page(rows, page);
        Ok((rows, more))
    }

    pub async fn todos_count(&self, f: &TodoFilter) -> Result<i64, sqlx::Error> {
        let mut q = Sql::new("SELECT COUNT(*)");
        self.push_todo_filter(&mut q, f);
        q.scalar(self.store.read_pool()).await
    }

    // ------------------------------------------------------------ bulk send
    /// Creates a task, or replaces the task `id` when given. `Ok(None)`: no such task.
    pub async fn save_bulk_send(
        &self,
        tx: &mut Tx,
        id: Option<i64>,
        t: &BulkSendTask,
    ) -> Result<Option<i64>, sqlx::Error> {
        let wechat_ids = serde_json::to_string(&t.wechat_ids).unwrap_or_else(|_| "[]".into());
        let fans_keys = serde_json::to_string(&t.fans_keys).unwrap_or_else(|_| "[]".into());
        let content = t.task_content.to_string();
        let ts = now();
        match id {
            Some(id) => {
                let mut q = Sql::new("UPDATE bulk_send_tasks SET task_name = ");
                q.bind(t.task_name.clone())
                    .push(", wechat_ids = ")
                    .bind(wechat_ids)
                    .push(", fans_keys = ")
                    .bind(fans_keys);
                q.push(", task_content = ")
                    .bind(content)
                    .push(", send_time = ")
                    .bind(t.send_time)
                    .push(", interval_seconds = ")
                    .bind(t.interval_seconds);
                q.push(", staff_code = ")
                    .bind(t.staff_code.clone())
                    .push(", updated_at = ")
                    .bind(ts);
                q.push(" WHERE merchant_id = ")
                    .bind(self.m.get())
                    .push(" AND task_id = ")
                    .bind(id)
                    // Only a task that has not started: the scheduler's claim may have
                    // raced the caller's check.
                    .push(" AND deleted_at IS NULL AND state = 0");
                let n = q.execute(&mut *tx.0).await?;
                Ok((n > 0).then_some(id))
            }
            None => {
                let id = take_ids(&mut tx.0, self.m, "bulk_send", 1).await?;
                let mut q = Sql::new(
                    "INSERT INTO bulk_send_tasks (merchant_id, task_id, task_name, wechat_ids, fans_keys, task_content, send_time, interval_seconds, staff_code, state, created_at, updated_at) VALUES (",
                );
                q.bind(self.m.get())
                    .push(", ")
                    .bind(id)
                    .push(", ")
                    .bind(t.task_name.clone())
                    .push(", ")
                    .bind(wechat_ids)
                    .push(", ")
                    .bind(fans_keys);
                q.push(", ")
                    .bind(content)
                    .push(", ")
                    .bind(t.send_time)
                    .push(", ")
                    .bind(t.interval_seconds)
                    .push(", ")
                    .bind(t.staff_code.clone());
                q.push(", 0, ").bind(ts).push(", ").bind(ts).push(")");
                q.execute(&mut *tx.0).await?;
                Ok(Some(id))
            }
        }
    }

    pub async fn bulk_send(&self, id: i64) -> Result<Option<BulkRow>, sqlx::Error> {
        let mut q = Sql::new(
            "SELECT task_id, task_name, wechat_ids, fans_keys, task_content, send_time, interval_seconds, staff_code, state, created_at, updated_at \
             FROM bulk_send_tasks WHERE merchant_id = ",
        );
        q.bind(self.m.get())
            .push(" AND task_id = ")
            .bind(id)
            .push(" AND deleted_at IS NULL");
        let row: Option<BulkRow> = q.fetch_optional(self.store.read_pool()).await?;
        Ok(row)
    }

    /// Soft-deletes a task, so that a repeated delete can answer "already deleted".
    pub async fn delete_bulk_send(&self, id: i64) -> Result<Deleted, sqlx::Error> {
        let mut tx = self.begin().await?;
        let mut q = Sql::new("UPDATE bulk_send_tasks SET deleted_at = ");
        q.bind(now())
            .push(" WHERE merchant_id = ")
            .bind(self.m.get())
            .push(" AND task_id = ")
            .bind(id)
            .push(" AND deleted_at IS NULL");
        let n = q.execute(&mut *tx.0).await?;
        let out = if n > 0 {
            Deleted::Now
        } else {
            let mut q = Sql::new("SELECT COUNT(*) FROM bulk_send_tasks WHERE merchant_id = ");
            q.bind(self.m.get()).push(" AND task_id = ").bind(id);
            if q.scalar::<i64, _>(&mut *tx.0).await? > 0 {
                Deleted::Already
            } else {
                Deleted::Missing
            }
        };
        tx.commit().await?;
        Ok(out)
    }

    // ------------------------------------------------------------ meeting calls
    fn push_call_filter(&self, q: &mut Sql, f: &MeetingCallFilter) {
        q.push(" FROM meeting_calls c JOIN wechats w ON w.merchant_id = c.merchant_id AND w.wechat_id = c.wechat_id WHERE c.merchant_id = ").bind(self.m.get());
        if let Some(s) = f.start {
            q.push(" AND c.start_time >= ").bind(s);
        }
        if let Some(e) = f.end {
            q.push(" AND c.start_time + c.duration <= ").bind(e);
        }
        if let Some(n) = &f.wechat_nober {
            q.push(" AND LOWER(w.wechat_nober) LIKE LOWER(")
                .bind(like_pattern(n))
                .push(") ESCAPE '\\'");
        }
        if let Some(n) = &f.wechat_nick {
            q.push(" AND LOWER(w.wechat_nick) LIKE LOWER(")
                .bind(like_pattern(n))
                .push(") ESCAPE '\\'");
        }
        if let Some(s) = &f.staff_code {
            q.push(" AND c.staff_code = ").bind(s.clone());
        }
        if let Some(t) = &f.msg_type {
            q.push(" AND c.msg_type = ").bind(t.clone());
        }
        if let Some(l) = f.wechat_lei {
            q.push(" AND w.wechat_lei = ").bind(l);
        }
        if let Some(w) = f.wechat_id {
            q.push(" AND c.wechat_id = ").bind(w);
        }
        if let Some(k) = &f.fans_key {
            q.push(" AND c.fans_key = ").bind(k.clone());
        }
    }

    pub async fn meeting_calls_page(
        &self,
        f: &MeetingCallFilter,
        page: Page,
    ) -> Result<(Vec<MeetingCallRow>, bool), sqlx::Error> {
        let mut q = Sql::new(
            "SELECT c.call_id AS id, c.msg_type, c.wechat_id AS ad_wechat_id, w.wechat_nober AS ad_wechat_nober, w.wechat_nick AS ad_wechat_nick, \
             c.staff_code AS ad_staff_code, c.fans_key, c.start_time, c.start_time + c.duration AS end_time, c.duration, c.voice_url",
        );
        self.push_call_filter(&mut q, f);
        q.push(" ORDER BY c.start_time DESC, c.call_id DESC");
        page.push_limit(&mut q);
        Ok(trim_page(q.fetch_all(self.store.read_pool()).await?, page))
    }

    pub async fn meeting_calls_count(&self, f: &MeetingCallFilter) -> Result<i64, sqlx::Error> {
        let mut q = Sql::new("SELECT COUNT(*)");
        self.push_call_filter(&mut q, f);
        q.scalar(self.store.read_pool()).await
    }
}
