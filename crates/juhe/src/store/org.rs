//! Organisation: departments (部门), groups (组), staff (员工) and operating accounts (运营号).

use super::{like_pattern, trim_page, Page, Sql, Tenant};

/// A department as stored.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct DepartmentRow {
    pub departid: i64,
    pub departname: String,
}

/// A department group as stored.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct DepartGroupRow {
    pub departgroupid: i64,
    pub departid: i64,
    pub departgroupname: String,
}

/// A staff member as stored, with department and group names.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct StaffRow {
    pub ad_staff_code: String,
    pub ad_staff_name: String,
    pub departid: i64,
    pub departname: String,
    pub departgroupid: i64,
    pub departgroupname: String,
    pub ad_staff_state: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Wechat {
    pub wechat_id: i64,
    pub wechat_nober: String,
    pub wechat_nick: String,
    pub original_nober: String,
    pub wechat_lei: i64,
    pub staff_code: Option<String>,
    /// Unix seconds.
    pub addtime: i64,
}

/// Filters of the staff list endpoints.
#[derive(Debug, Clone, Default)]
pub struct StaffFilter {
    pub depart_id: Option<i64>,
    pub depart_group_id: Option<i64>,
    /// Include disabled staff too.
    pub include_disabled: bool,
    pub staff_code: Option<String>,
    pub staff_name: Option<String>,
}

const STAFF_FROM: &str = " FROM staff s \
     LEFT JOIN departments d ON d.merchant_id = s.merchant_id AND d.departid = s.departid \
     LEFT JOIN depart_groups g ON g.merchant_id = s.merchant_id AND g.departgroupid = s.departgroupid \
     WHERE ";

const STAFF_COLUMNS: &str = "SELECT s.staff_code AS ad_staff_code, s.staff_name AS ad_staff_name, s.departid, \
     COALESCE(d.departname, '') AS departname, s.departgroupid, COALESCE(g.departgroupname, '') AS departgroupname, \
     s.staff_state AS ad_staff_state";

impl Tenant<'_> {
    pub async fn departments(&self) -> Result<Vec<DepartmentRow>, sqlx::Error> {
        let mut q = Sql::new("SELECT departid, departname FROM departments WHERE merchant_id = ");
        q.bind(self.m.get()).push(" ORDER BY departid");
        q.fetch_all(self.store.read_pool()).await
    }

    pub async fn depart_groups(
        &self,
        depart_id: Option<i64>,
    ) -> Result<Vec<DepartGroupRow>, sqlx::Error> {
        let mut q = Sql::new("SELECT departgroupid, departid, departgroupname FROM depart_groups WHERE merchant_id = ");
        q.bind(self.m.get());
        if let Some(d) = depart_id {
            q.push(" AND departid = ").bind(d);
        }
        q.push(" ORDER BY departgroupid");
        q.fetch_all(self.store.read_pool()).await
    }

    /// The staff filter; shared by the list and its count so they always agree.
    fn push_staff_filter(&self, q: &mut Sql, f: &StaffFilter) {
        q.push(STAFF_FROM)
            .push("s.merchant_id = ")
            .bind(self.m.get());
        if let Some(d) = f.depart_id {
            q.push(" AND s.departid = ").bind(d);
        }
        if let Some(g) = f.depart_group_id {
            q.push(" AND s.departgroupid = ").bind(g);
        }
        if !f.include_disabled {
            q.push(" AND s.staff_state = 0");
        }
        if let Some(c) = &f.staff_code {
            q.push(" AND s.staff_code = ").bind(c.clone());
        }
        if let Some(n) = &f.staff_name {
            q.push(" AND LOWER(s.staff_name) LIKE LOWER(")
                .bind(like_pattern(n))
                .push(") ESCAPE '\\'");
        }
    }

    /// Staff matching the filter, all of them (the documented endpoint has no paging).
    pub async fn staff(&self, f: &StaffFilter) -> Result<Vec<StaffRow>, sqlx::Error> {
        let mut q = Sql::new(STAFF_COLUMNS);
        self.push_staff_filter(&mut q, f);
        q.push(" ORDER BY s.staff_code");
        q.fetch_all(self.store.read_pool()).await
    }

    /// One page of staff and whether more follow.
    pub async fn staff_page(
        &self,
        f: &StaffFilter,
        page: Page,
    ) -> Result<(Vec<StaffRow>, bool), sqlx::Error> {
        let mut q = Sql::new(STAFF_COLUMNS);
        self.push_staff_filter(&mut q, f);
        q.push(" ORDER BY s.staff_code");
        page.push_limit(&mut q);
        Ok(trim_page(q.fetch_all(self.store.read_pool()).await?, page))
    }

    pub async fn staff_count(&self, f: &StaffFilter) -> Result<i64, sqlx::Error> {
        let mut q = Sql::new("SELECT COUNT(*)");
        self.push_staff_filter(&mut q, f);
        q.scalar(self.store.read_pool()).await
    }

    pub async fn wechat(&self, wechat_id: i64) -> Result<Option<Wechat>, sqlx::Error> {
        let mut q = Sql::new("SELECT wechat_id, wechat_nober, wechat_nick, original_nober, wechat_lei, staff_code, addtime FROM wechats WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND wechat_id = ")
            .bind(wechat_id);
        q.fetch_optional(self.store.read_pool()).await
    }

    pub async fn wechats(&self) -> Result<Vec<Wechat>, sqlx::Error> {
        let mut q = Sql::new("SELECT wechat_id, wechat_nober, wechat_nick, original_nober, wechat_lei, staff_code, addtime FROM wechats WHERE merchant_id = ");
        q.bind(self.m.get()).push(" ORDER BY wechat_id");
        q.fetch_all(self.store.read_pool()).await
    }

    /// Which of `codes` are not staff of this merchant.
    pub async fn unknown_staff(&self, codes: &[String]) -> Result<Vec<String>, sqlx::Error> {
        if codes.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Sql::new("SELECT staff_code FROM staff WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND staff_code IN (")
            .bind_list(codes.iter().cloned())
            .push(")");
        let found: Vec<(String,)> = q.fetch_all(self.store.read_pool()).await?;
        let found: std::collections::HashSet<String> = found.into_iter().map(|(c,)| c).collect();
        Ok(codes
            .iter()
            .filter(|c| !found.contains(*c))
            .cloned()
            .collect())
    }

    /// Which of `ids` are not operating accounts of this merchant.
    pub async fn unknown_wechats(&self, ids: &[i64]) -> Result<Vec<i64>, sqlx::Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<(i64,)> = self
            .wechats_among(ids)
            .fetch_all(self.store.read_pool())
            .await?;
        Ok(missing(ids, found))
    }

    /// [`Tenant::unknown_wechats`] read inside the caller's transaction, so a writer that
    /// holds one never waits for a second connection.
    pub async fn unknown_wechats_in(
        &self,
        tx: &mut super::idempotency::Tx,
        ids: &[i64],
    ) -> Result<Vec<i64>, sqlx::Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<(i64,)> = self.wechats_among(ids).fetch_all(&mut *tx.0).await?;
        Ok(missing(ids, found))
    }

    fn wechats_among(&self, ids: &[i64]) -> Sql {
        let mut q = Sql::new("SELECT wechat_id FROM wechats WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND wechat_id IN (")
            .bind_list(ids.iter().copied())
            .push(")");
        q
    }

    pub async fn fan_exists(&self, wechat_id: i64, wenober: &str) -> Result<bool, sqlx::Error> {
        let mut q = Sql::new("SELECT COUNT(*) FROM fans WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND wechat_id = ")
            .bind(wechat_id)
            .push(" AND wenober = ")
            .bind(wenober.to_owned());
        Ok(q.scalar::<i64, _>(self.store.read_pool()).await? > 0)
    }
}

/// The ids of `ids` not among `found`, in input order.
fn missing(ids: &[i64], found: Vec<(i64,)>) -> Vec<i64> {
    let found: std::collections::HashSet<i64> = found.into_iter().map(|(c,)| c).collect();
    ids.iter()
        .filter(|c| !found.contains(*c))
        .copied()
        .collect()
}
