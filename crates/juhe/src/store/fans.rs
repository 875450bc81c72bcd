//! Fans (粉丝): a customer as seen by one operating account. The same WeChat user added
//! by two accounts is two fans, keyed by (operating account, original WeChat id).

use super::events::{self, EventData, NewEvent};
use super::idempotency::Tx;
use super::{like_pattern, trim_page, Page, Sql, Tenant};

/// A fan as stored; times are Unix seconds.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FanRow {
    pub ad_friend_id: i64,
    pub ad_friend_wenober: String,
    pub ad_friend_uwenober: String,
    pub ad_friend_name: String,
    pub ad_friend_photo: String,
    pub ad_wechat_id: i64,
    pub ad_wechat_nober: String,
    pub ad_wechat_lei: i64,
    pub ad_staff_code: Option<String>,
    pub ad_relation_scene: i64,
    pub ad_relation_state: i64,
    pub ad_relation_isflock: i64,
    pub ad_friend_addtime: i64,
    pub ad_bind_time: Option<i64>,
    pub ad_updatechatting_time: Option<i64>,
    pub ad_relation_updatetime: i64,
}

/// Filters shared by GetFansList and GetFansCount. Times are Unix seconds, inclusive.
#[derive(Debug, Clone, Default)]
pub struct FanFilter {
    pub wechat_id: Option<i64>,
    pub wechat_key: Option<String>,
    pub fans_key: Option<String>,
    pub fans_name: Option<String>,
    pub add_start: Option<i64>,
    pub add_end: Option<i64>,
    pub bind_start: Option<i64>,
    pub bind_end: Option<i64>,
    pub last_chat_start: Option<i64>,
    pub last_chat_end: Option<i64>,
    pub staff_code: Option<String>,
    pub min_update_time: Option<i64>,
    pub relation_type: Option<i64>,
    pub relation_state: Option<i64>,
    pub wechat_type: Option<i64>,
}

const FAN_COLUMNS: &str = "SELECT f.fan_id AS ad_friend_id, f.wenober AS ad_friend_wenober, f.uwenober AS ad_friend_uwenober, \
     f.name AS ad_friend_name, f.photo AS ad_friend_photo, f.wechat_id AS ad_wechat_id, \
     COALESCE(w.wechat_nober, '') AS ad_wechat_nober, COALESCE(w.wechat_lei, 0) AS ad_wechat_lei, f.staff_code AS ad_staff_code, \
     f.relation_scene AS ad_relation_scene, f.relation_state AS ad_relation_state, f.relation_isflock AS ad_relation_isflock, \
     f.addtime AS ad_friend_addtime, f.bind_time AS ad_bind_time, f.last_chat_time AS ad_updatechatting_time, \
     f.updated_at AS ad_relation_updatetime";

impl Tenant<'_> {
    fn push_fan_filter(&self, q: &mut Sql, f: &FanFilter) {
        q.push(" FROM fans f LEFT JOIN wechats w ON w.merchant_id = f.merchant_id AND w.wechat_id = f.wechat_id WHERE f.merchant_id = ");
        q.bind(self.m.get());
        if let Some(v) = f.wechat_id {
            q.push(" AND f.wechat_id = ").bind(v);
        }
        if let Some(k) = &f.wechat_key {
            q.push(" AND (w.original_nober = ")
                .bind(k.clone())
                .push(" OR w.wechat_nober = ")
                .bind(k.clone())
                .push(")");
        }
        if let Some(k) = &f.fans_key {
            q.push(" AND f.wenober = ").bind(k.clone());
        }
        if let Some(n) = &f.fans_name {
            q.push(" AND LOWER(f.name) LIKE LOWER(")
                .bind(like_pattern(n))
                .push(") ESCAPE '\\'");
        }
        q.range("f.addtime", f.add_start, f.add_end);
        q.range("f.bind_time", f.bind_start, f.bind_end);
        q.range("f.last_chat_time", f.last_chat_start, f.last_chat_end);
        if let Some(s) = &f.staff_code {
            q.push(" AND f.staff_code = ").bind(s.clone());
        }
        if let Some(t) = f.min_update_time {
            q.push(" AND f.updated_at > ").bind(t);
        }
        if let Some(t) = f.relation_type {
            q.push(" AND f.relation_isflock = ").bind(t);
        }
        if let Some(s) = f.relation_state {
            q.push(" AND f.relation_state = ").bind(s);
        }
        if let Some(t) = f.wechat_type {
            q.push(" AND w.wechat_lei = ").bind(t);
        }
    }

    pub async fn fans_page(
        &self,
        f: &FanFilter,
        page: Page,
    ) -> Result<(Vec<FanRow>, bool), sqlx::Error> {
        let mut q = Sql::new(FAN_COLUMNS);
        self.push_fan_filter(&mut q, f);
        q.push(" ORDER BY f.fan_id");
        page.push_limit(&mut q);
        Ok(trim_page(q.fetch_all(self.store.read_pool()).await?, page))
    }

    pub async fn fans_count(&self, f: &FanFilter) -> Result<i64, sqlx::Error> {
        let mut q = Sql::new("SELECT COUNT(*)");
        self.push_fan_filter(&mut q, f);
        q.scalar(self.store.read_pool()).await
    }

    /// fansInfoChange events for fans this transaction added or changed (`change` per fan
    /// id: `added`, `changed` or `deleted`), written at commit.
    pub(crate) fn emit_fan_events_in(&self, tx: &mut Tx, changed: &[(i64, &'static str)]) {
        for (fan_id, change) in changed {
            tx.2.fans.push(events::FanChange {
                event_type: events::FANS_INFO_CHANGE,
                fan_id: *fan_id,
                change,
                previous_staff: None,
            });
        }
    }
}

/// The fans with these ids as GetFansList shows them, read in `tx`.
pub(in crate::store) async fn fans_by_id_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    m: super::MerchantId,
    ids: &[i64],
) -> Result<Vec<FanRow>, sqlx::Error> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let mut q = Sql::new(FAN_COLUMNS);
        q.push(" FROM fans f LEFT JOIN wechats w ON w.merchant_id = f.merchant_id AND w.wechat_id = f.wechat_id WHERE f.merchant_id = ")
            .bind(m.get())
            .push(" AND f.fan_id IN (")
            .bind_list(chunk.iter().copied())
            .push(") ORDER BY f.fan_id");
        out.extend(q.fetch_all::<FanRow, _>(&mut **tx).await?);
    }
    Ok(out)
}

/// A fan event (fansInfoChange or fansAttributionChange) of the fan's conversation.
pub(crate) fn fan_event(
    event_type: &'static str,
    change: &str,
    fan: FanRow,
    previous_staff: Option<String>,
) -> NewEvent {
    NewEvent {
        event_type,
        conversation: Some((fan.ad_wechat_id, fan.ad_friend_wenober.clone())),
        data: EventData::Fan {
            change: change.to_owned(),
            fan,
            previous_staff,
        },
    }
}
