//! The facts service reports are computed from (see `crate::report`), streamed: a 366-day
//! report of a busy merchant never sits in memory at once.

use super::{Sql, Tenant};
use crate::report::ChatFact;

/// Which conversations a report counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct FactFilter {
    /// Operating account type (`wechat_lei`).
    pub wechat_lei: Option<i64>,
    /// Customer type (`relation_isflock`).
    pub relation_isflock: Option<i64>,
}

impl Tenant<'_> {
    /// Calls `each` for every chat with `start <= chat_time < end` of the conversations the
    /// filter admits, grouped by conversation and in time order, with the conversation's
    /// owner joined in.
    pub async fn for_each_chat_fact(
        &self,
        start: i64,
        end: i64,
        filter: FactFilter,
        each: impl FnMut(&ChatFact),
    ) -> Result<(), sqlx::Error> {
        let m = self.m.get();
        // SQLite, long ranges: read the merchant's rows in primary-key order (conversation
        // by conversation: the time filter is kept off the index with a unary `+`), so only
        // each conversation's messages need sorting by time ("temp b-tree for right part of
        // ORDER BY"), in memory the size of one conversation; through the time index every
        // row would be a random lookup plus one sort of the whole range (3× slower for a
        // year of 500,000 chats). Short ranges (a day's activations) are cheaper through the
        // time index. PostgreSQL plans this well by itself (hash joins, one sort that spills
        // to disk under `work_mem`), and the `+` would only spoil its row estimates.
        let sqlite = self.store.backend() == super::Backend::Sqlite;
        let time_col = if sqlite && end.saturating_sub(start) > 8 * 86_400 {
            "+c.chat_time"
        } else {
            "c.chat_time"
        };
        let mut q = Sql::new(
            "SELECT c.wechat_id, c.talker, c.issend, c.staff_code, c.chat_time, \
             COALESCE(f.staff_code, w.staff_code) AS owner \
             FROM chats c \
             LEFT JOIN fans f ON f.merchant_id = c.merchant_id AND f.wechat_id = c.wechat_id AND f.wenober = c.talker \
             LEFT JOIN wechats w ON w.merchant_id = c.merchant_id AND w.wechat_id = c.wechat_id \
             WHERE c.merchant_id = ",
        );
        q.bind(m)
            .push(" AND ")
            .push(time_col)
            .push(" >= ")
            .bind(start)
            .push(" AND ")
            .push(time_col)
            .push(" < ")
            .bind(end);
        if let Some(l) = filter.wechat_lei {
            q.push(" AND w.wechat_lei = ").bind(l);
        }
        if let Some(k) = filter.relation_isflock {
            q.push(" AND f.relation_isflock = ").bind(k);
        }
        q.push(" ORDER BY c.wechat_id, c.talker, c.chat_time, c.chat_id");
        q.for_each::<ChatFact, _>(self.store.read_pool(), each)
            .await
    }
}
