//! Activations (激活会话) and notices to staff (通知).

use super::idempotency::Tx;
use super::{now, take_ids, Page, Sql, Tenant};

/// A fan's owners: its own staff and its account's staff (the owner is the first that is set).
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct FanOwner {
    pub fan_staff: Option<String>,
    pub account_staff: Option<String>,
}

impl FanOwner {
    /// The staff member the conversation belongs to, as the reports count it.
    pub fn owner(&self) -> Option<&str> {
        self.fan_staff
            .as_deref()
            .or(self.account_staff.as_deref())
            .filter(|s| !s.is_empty())
    }
}

/// An activation to store.
#[derive(Debug, Clone)]
pub struct NewActivation {
    pub wechat_id: i64,
    pub fan_key: String,
    pub staff_code: String,
    pub previous_staff_code: Option<String>,
    pub enforce_attribution: i64,
    pub activation_type: i64,
    pub switch_session: i64,
    pub content: String,
}

/// A notice to store, one row per recipient.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub staff_codes: Vec<String>,
    pub title: String,
    pub content: String,
    pub source: String,
    pub wechat_id: Option<i64>,
    pub fan_key: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NotificationRow {
    pub notification_id: i64,
    pub staff_code: String,
    pub title: String,
    pub content: String,
    pub source: String,
    pub wechat_id: Option<i64>,
    pub fan_key: Option<String>,
    pub created_at: i64,
    pub read_at: Option<i64>,
}

/// GetNotificationList's filter.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub staff_code: String,
    /// Only notices with a larger id (incremental reading).
    pub min_id: Option<i64>,
}

impl Tenant<'_> {
    /// A fan's owners, read in `tx` (the activation decides on them and writes in the same
    /// transaction). `None`: no such fan.
    pub async fn fan_owner_in(
        &self,
        tx: &mut Tx,
        wechat_id: i64,
        fan_key: &str,
    ) -> Result<Option<FanOwner>, sqlx::Error> {
        let mut q = Sql::new(
            "SELECT f.staff_code AS fan_staff, w.staff_code AS account_staff FROM fans f \
             JOIN wechats w ON w.merchant_id = f.merchant_id AND w.wechat_id = f.wechat_id WHERE f.merchant_id = ",
        );
        q.bind(self.m.get())
            .push(" AND f.wechat_id = ")
            .bind(wechat_id)
            .push(" AND f.wenober = ")
            .bind(fan_key.to_owned());
        q.fetch_optional(&mut *tx.0).await
    }

    /// Gives the fan to `staff_code` (fans.staff_code).
    pub async fn assign_fan_in(
        &self,
        tx: &mut Tx,
        wechat_id: i64,
        fan_key: &str,
        staff_code: &str,
    ) -> Result<(), sqlx::Error> {
        let mut q = Sql::new("SELECT fan_id, staff_code FROM fans WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND wechat_id = ")
            .bind(wechat_id)
            .push(" AND wenober = ")
            .bind(fan_key.to_owned());
        let before: Option<(i64, Option<String>)> = q.fetch_optional(&mut *tx.0).await?;
        let mut q = Sql::new("UPDATE fans SET staff_code = ");
        q.bind(staff_code.to_owned())
            .push(", updated_at = ")
            .bind(now())
            .push(" WHERE merchant_id = ")
            .bind(self.m.get())
            .push(" AND wechat_id = ")
            .bind(wechat_id)
            .push(" AND wenober = ")
            .bind(fan_key.to_owned());
        q.execute(&mut *tx.0).await?;
        if let Some((fan_id, previous)) = before {
            if previous.as_deref() != Some(staff_code) {
                tx.2.fans.push(super::events::FanChange {
                    event_type: super::events::FANS_ATTRIBUTION_CHANGE,
                    fan_id,
                    change: "reassigned",
                    previous_staff: previous,
                });
            }
        }
        Ok(())
    }

    /// Stores an activation; returns its id.
    pub async fn add_activation_in(
        &self,
        tx: &mut Tx,
        a: &NewActivation,
    ) -> Result<(i64, i64), sqlx::Error> {
        let id = take_ids(&mut tx.0, self.m, "activation", 1).await?;
        let at = now();
        let mut q = Sql::new("INSERT INTO activations (merchant_id, activation_id, wechat_id, fan_key, staff_code, previous_staff_code, enforce_attribution, activation_type, switch_session, content, created_at) VALUES (");
        q.bind(self.m.get())
            .push(", ")
            .bind(id)
            .push(", ")
            .bind(a.wechat_id)
            .push(", ")
            .bind(a.fan_key.clone())
            .push(", ")
            .bind(a.staff_code.clone())
            .push(", ")
            .bind(a.previous_staff_code.clone());
        q.push(", ")
            .bind(a.enforce_attribution)
            .push(", ")
            .bind(a.activation_type)
            .push(", ")
            .bind(a.switch_session)
            .push(", ")
            .bind(a.content.clone())
            .push(", ")
            .bind(at)
            .push(")");
        q.execute(&mut *tx.0).await?;
        Ok((id, at))
    }

    /// The activations with `start <= created_at < end`: `(account, fan, staff, created_at)`.
    /// `wechat_lei`: only accounts of that type.
    pub async fn activations_between(
        &self,
        start: i64,
        end: i64,
        wechat_lei: Option<i64>,
    ) -> Result<Vec<(i64, String, String, i64)>, sqlx::Error> {
        let mut q = Sql::new(
            "SELECT a.wechat_id, a.fan_key, a.staff_code, a.created_at FROM activations a \
             JOIN wechats w ON w.merchant_id = a.merchant_id AND w.wechat_id = a.wechat_id WHERE a.merchant_id = ",
        );
        q.bind(self.m.get())
            .push(" AND a.created_at >= ")
            .bind(start)
            .push(" AND a.created_at < ")
            .bind(end);
        if let Some(l) = wechat_lei {
            q.push(" AND w.wechat_lei = ").bind(l);
        }
        q.fetch_all(self.store.read_pool()).await
    }

    /// Stores one notice per recipient; returns their ids in recipient order.
    pub async fn add_notifications_in(
        &self,
        tx: &mut Tx,
        n: &NewNotification,
    ) -> Result<Vec<i64>, sqlx::Error> {
        if n.staff_codes.is_empty() {
            return Ok(Vec::new());
        }
        let count = n.staff_codes.len() as i64;
        let first = take_ids(&mut tx.0, self.m, "notification", count).await?;
        let at = now();
        let mut q = Sql::new("INSERT INTO notifications (merchant_id, notification_id, staff_code, title, content, source, wechat_id, fan_key, created_at) VALUES ");
        for (i, staff) in n.staff_codes.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push("(")
                .bind(self.m.get())
                .push(", ")
                .bind(first + i as i64)
                .push(", ")
                .bind(staff.clone())
                .push(", ")
                .bind(n.title.clone())
                .push(", ")
                .bind(n.content.clone());
            q.push(", ")
                .bind(n.source.clone())
                .push(", ")
                .bind(n.wechat_id)
                .push(", ")
                .bind(n.fan_key.clone())
                .push(", ")
                .bind(at)
                .push(")");
        }
        q.execute(&mut *tx.0).await?;
        for (i, staff) in n.staff_codes.iter().enumerate() {
            let row = NotificationRow {
                notification_id: first + i as i64,
                staff_code: staff.clone(),
                title: n.title.clone(),
                content: n.content.clone(),
                source: n.source.clone(),
                wechat_id: n.wechat_id,
                fan_key: n.fan_key.clone(),
                created_at: at,
                read_at: None,
            };
            tx.emit(super::events::NewEvent {
                event_type: super::events::NOTIFICATION,
                conversation: None,
                data: super::events::EventData::Notification { notification: row },
            });
        }
        Ok((0..count).map(|i| first + i).collect())
    }

    fn push_notification_filter(&self, q: &mut Sql, f: &NotificationFilter) {
        q.push(" FROM notifications WHERE merchant_id = ")
            .bind(self.m.get())
            .push(" AND staff_code = ")
            .bind(f.staff_code.clone());
        if let Some(min) = f.min_id {
            q.push(" AND notification_id > ").bind(min);
        }
    }

    /// A staff member's notices in id order, paged.
    pub async fn notifications_page(
        &self,
        f: &NotificationFilter,
        page: Page,
    ) -> Result<(Vec<NotificationRow>, bool), sqlx::Error> {
        let mut q = Sql::new("SELECT notification_id, staff_code, title, content, source, wechat_id, fan_key, created_at, read_at");
        self.push_notification_filter(&mut q, f);
        q.push(" ORDER BY notification_id");
        page.push_limit(&mut q);
        let rows = q.fetch_all(self.store.read_pool()).await?;
        Ok(super::trim_page(rows, page))
    }

    pub async fn notifications_count(&self, f: &NotificationFilter) -> Result<i64, sqlx::Error> {
        let mut q = Sql::new("SELECT COUNT(*)");
        self.push_notification_filter(&mut q, f);
        q.scalar(self.store.read_pool()).await
    }
}
