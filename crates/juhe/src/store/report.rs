//! Raw facts the service reports are computed from (see `crate::report`).

use super::{Sql, Tenant};

/// One chat message, reduced to what the metrics need.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct ChatFact {
    pub wechat_id: i64,
    pub talker: String,
    pub issend: i64,
    pub staff_code: Option<String>,
    pub chat_time: i64,
}

/// Who owns a fan, and what kind of customer it is.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct FanFact {
    pub wechat_id: i64,
    pub wenober: String,
    pub staff_code: Option<String>,
    pub relation_isflock: i64,
}

impl Tenant<'_> {
    /// Chats with `start <= chat_time < end`, grouped by conversation, in time order.
    pub async fn chat_facts(&self, start: i64, end: i64) -> Result<Vec<ChatFact>, sqlx::Error> {
        let mut q = Sql::new("SELECT wechat_id, talker, issend, staff_code, chat_time FROM chats WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND chat_time >= ")
            .bind(start)
            .push(" AND chat_time < ")
            .bind(end);
        q.push(" ORDER BY wechat_id, talker, chat_time, chat_id");
        q.fetch_all(self.store.read_pool()).await
    }

    pub async fn fan_facts(&self) -> Result<Vec<FanFact>, sqlx::Error> {
        let mut q = Sql::new("SELECT wechat_id, wenober, staff_code, relation_isflock FROM fans WHERE merchant_id = ");
        q.bind(self.m.get());
        q.fetch_all(self.store.read_pool()).await
    }
}
