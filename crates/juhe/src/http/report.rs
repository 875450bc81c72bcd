//! Report: service statistics computed from stored chats (definitions in `crate::report`).

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chrono::{FixedOffset, TimeZone};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{page, Body, Merchant};
use super::{paged, whole, AppState};
use crate::error::{ApiError, ApiResult, Envelope};
use crate::lenient::{OptBool, OptInt, OptStr, OptTime};
use crate::report::{Aggregator, Sums, Window};
use crate::store::org::{StaffFilter, StaffRow};
use crate::store::report::FactFilter;
use crate::store::{now, MerchantId};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v2/Report/GetDataByStaffCustomer",
            post(get_data_by_staff_customer),
        )
        .route(
            "/v2/Report/GetActivationListByStaff",
            post(get_activation_list_by_staff),
        )
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct StaffCustomerIn {
    /// Range start, `yyyy-MM-dd HH:mm:ss` (default: 30 days before `endDate`).
    pub startDate: OptTime,
    /// Range end, exclusive (default: now).
    pub endDate: OptTime,
    /// Sort key: `ad_staff_name` (default), `depart_name`, `depart_group_name`, or any
    /// numeric field of the row (e.g. `sendCount`).
    pub orderKey: OptStr,
    /// `desc` (default) or `asc`.
    pub orderType: OptStr,
    /// Only this staff member.
    pub staffCode: OptStr,
    /// Department, -1 all (default).
    pub departId: OptInt,
    /// Group, -1 all (default).
    pub departGroupId: OptInt,
    /// Row grouping: 1 department, 2 group, 3 staff (default).
    pub show: OptInt,
    /// `true` to include disabled staff (default `false`).
    pub staffState: OptBool,
    /// Operating account type: -1 all (default), 0 personal WeChat, 3 WeCom.
    pub wechatLei: OptInt,
    /// Customer type: -1 all (default), 0 friend, 1 group, 2 WeCom individual, 3 WeCom group.
    pub relationIsFlock: OptInt,
    /// Accepted and ignored: its meaning is not documented by the original.
    pub searchData: OptInt,
    pub pageIndex: OptInt,
    pub pageSize: OptInt,
}

/// One row of the staff service report. Department and group rows leave the staff
/// fields (and group fields, for department rows) null.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StaffCustomerRow {
    #[serde(rename = "ad_staff_code")]
    pub ad_staff_code: Option<String>,
    #[serde(rename = "ad_staff_name")]
    pub ad_staff_name: Option<String>,
    #[serde(rename = "departid")]
    pub departid: i64,
    #[serde(rename = "depart_name")]
    pub depart_name: String,
    #[serde(rename = "departgroupid")]
    pub departgroupid: Option<i64>,
    #[serde(rename = "depart_group_name")]
    pub depart_group_name: Option<String>,
    /// Staff members in the row.
    pub staff_count: i64,
    /// Fans served: distinct conversations the staff sent a message in.
    pub fans_count: i64,
    /// Messages received from fans in the staff's conversations.
    pub receive_count: i64,
    /// Messages sent by the staff.
    pub send_count: i64,
    /// Average first response time in seconds (null without samples).
    pub avg_first_response_seconds: Option<f64>,
    /// Average reply time in seconds (null without samples).
    pub avg_reply_seconds: Option<f64>,
    /// Activated customers (see the definition in docs/api.md).
    pub activation_count: i64,
}

fn day_start(ts: i64, off: FixedOffset) -> i64 {
    let local = off
        .timestamp_opt(ts, 0)
        .single()
        .map(|d| d.date_naive())
        .unwrap_or_default();
    off.from_local_datetime(&local.and_hms_opt(0, 0, 0).unwrap_or_default())
        .single()
        .map(|d| d.timestamp())
        .unwrap_or(ts)
}

/// Streams the range's chats through the aggregator: sums per output row, where `bucket`
/// says which row a staff code counts for.
async fn stats(
    st: &AppState,
    m: MerchantId,
    start: i64,
    end: i64,
    filter: FactFilter,
    buckets: usize,
    bucket: &(dyn Fn(&str) -> Option<usize> + Sync),
) -> ApiResult<Vec<Sums>> {
    let idle = st.cfg.report.activation_idle_hours * 3600;
    let off = st.offset;
    let day_of = |ts: i64| day_start(ts, off);
    let mut agg = Aggregator::new(
        Window {
            start,
            end,
            idle_secs: idle,
            reply_window_secs: st.cfg.report.reply_window_hours * 3600,
            day_of: &day_of,
            bucket,
        },
        buckets,
    );
    // Recorded activations go in before the chats: each conversation, when the chats move
    // past it, drops the recorded ones its own activations already count.
    for (wechat_id, fan, staff, at) in st
        .store
        .tenant(m)
        .activations_between(start, end, filter.wechat_lei)
        .await?
    {
        if let Some(b) = bucket(&staff) {
            agg.push_recorded(wechat_id, &fan, b, at);
        }
    }
    // Earlier messages are read as history only: they decide whether a send activates.
    st.store
        .tenant(m)
        .for_each_chat_fact(start.saturating_sub(idle), end, filter, |f| agg.push(f))
        .await?;
    Ok(agg.finish())
}

fn avg(sum: i64, n: i64) -> Option<f64> {
    (n > 0).then(|| ((sum as f64 / n as f64) * 10.0).round() / 10.0)
}

/// 获取员工客服统计: per staff, group or department over a time range.
#[utoipa::path(post, path = "/v2/Report/GetDataByStaffCustomer", tag = "Report", security(("bearer" = [])),
    request_body = StaffCustomerIn, responses((status = 200, body = Envelope<Vec<StaffCustomerRow>>)))]
pub async fn get_data_by_staff_customer(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<StaffCustomerIn>,
) -> ApiResult<Response> {
    let pg = page(&st, b.pageIndex, b.pageSize, "pageIndex", "pageSize")?;
    // Times are range-checked when parsed; the arithmetic is checked anyway, so a future
    // caller that skips the parser gets a 400, not an overflow.
    let end = b.endDate.get().unwrap_or_else(|| now() + 1);
    let start = match b.startDate.get() {
        Some(s) => s,
        None => end
            .checked_sub(30 * 86400)
            .ok_or_else(|| ApiError::param("endDate", "is out of range"))?,
    };
    if start >= end {
        return Err(ApiError::param("startDate", "must be before endDate"));
    }
    if end.checked_sub(start).is_none_or(|d| d > 366 * 86400) {
        return Err(ApiError::param(
            "endDate",
            "the range may span at most 366 days",
        ));
    }
    let show = b.show.get().unwrap_or(3);
    if ![1, 2, 3].contains(&show) {
        return Err(ApiError::param(
            "show",
            "must be 1 (department), 2 (group) or 3 (staff)",
        ));
    }
    let desc = match b
        .orderType
        .non_empty()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(ApiError::param("orderType", "must be asc or desc")),
    };
    let order_key = b.orderKey.non_empty().unwrap_or("ad_staff_name").to_owned();
    let t = st.store.tenant(m);
    let staff = t
        .staff(&StaffFilter {
            depart_id: b.departId.filter(),
            depart_group_id: b.departGroupId.filter(),
            include_disabled: b.staffState.0.unwrap_or(false),
            staff_code: b.staffCode.non_empty().map(str::to_owned),
            staff_name: None,
        })
        .await?;
    let filter = FactFilter {
        wechat_lei: b.wechatLei.filter(),
        relation_isflock: b.relationIsFlock.filter(),
    };
    let (mut rows, of_staff) = group_rows(&staff, show);
    let bucket = |code: &str| of_staff.get(code).copied();
    let sums = stats(&st, m, start, end, filter, rows.len(), &bucket).await?;
    for (row, s) in rows.iter_mut().zip(sums) {
        row.fans_count = s.fans_served;
        row.receive_count = s.received;
        row.send_count = s.sent;
        row.avg_first_response_seconds = avg(s.first_response_sum, s.first_response_n);
        row.avg_reply_seconds = avg(s.reply_sum, s.reply_n);
        row.activation_count = s.activations;
    }
    sort_rows(&mut rows, &order_key, desc)?;
    let total = rows.len() as i64;
    let from = (pg.offset() as usize).min(rows.len());
    let to = (from + pg.size as usize).min(rows.len());
    let more = to < rows.len();
    Ok(paged(rows[from..to].to_vec(), more, pg, Some(total)))
}

/// The report's rows (empty figures), and the row each staff code counts for.
fn group_rows(staff: &[StaffRow], show: i64) -> (Vec<StaffCustomerRow>, HashMap<String, usize>) {
    let mut rows: Vec<StaffCustomerRow> = Vec::new();
    let mut index: HashMap<(i64, Option<i64>, Option<String>), usize> = HashMap::new();
    let mut of_staff = HashMap::new();
    for s in staff {
        let key = match show {
            1 => (s.departid, None, None),
            2 => (s.departid, Some(s.departgroupid), None),
            _ => (
                s.departid,
                Some(s.departgroupid),
                Some(s.ad_staff_code.clone()),
            ),
        };
        let i = *index.entry(key).or_insert_with(|| {
            rows.push(StaffCustomerRow {
                ad_staff_code: (show == 3).then(|| s.ad_staff_code.clone()),
                ad_staff_name: (show == 3).then(|| s.ad_staff_name.clone()),
                departid: s.departid,
                depart_name: s.departname.clone(),
                departgroupid: (show >= 2).then_some(s.departgroupid),
                depart_group_name: (show >= 2).then(|| s.departgroupname.clone()),
                staff_count: 0,
                fans_count: 0,
                receive_count: 0,
                send_count: 0,
                avg_first_response_seconds: None,
                avg_reply_seconds: None,
                activation_count: 0,
            });
            rows.len() - 1
        });
        rows[i].staff_count += 1;
        of_staff.insert(s.ad_staff_code.clone(), i);
    }
    (rows, of_staff)
}

fn sort_rows(rows: &mut [StaffCustomerRow], key: &str, desc: bool) -> ApiResult<()> {
    let text = |r: &StaffCustomerRow| -> String {
        match key {
            "depart_name" => r.depart_name.clone(),
            "depart_group_name" => r.depart_group_name.clone().unwrap_or_default(),
            _ => r.ad_staff_name.clone().unwrap_or_else(|| {
                r.depart_group_name
                    .clone()
                    .unwrap_or_else(|| r.depart_name.clone())
            }),
        }
    };
    let num = |r: &StaffCustomerRow| -> Option<f64> {
        Some(match key {
            "staffCount" => r.staff_count as f64,
            "fansCount" => r.fans_count as f64,
            "receiveCount" => r.receive_count as f64,
            "sendCount" => r.send_count as f64,
            "avgFirstResponseSeconds" => r.avg_first_response_seconds.unwrap_or(-1.0),
            "avgReplySeconds" => r.avg_reply_seconds.unwrap_or(-1.0),
            "activationCount" => r.activation_count as f64,
            _ => return None,
        })
    };
    let numeric = [
        "staffCount",
        "fansCount",
        "receiveCount",
        "sendCount",
        "avgFirstResponseSeconds",
        "avgReplySeconds",
        "activationCount",
    ]
    .contains(&key);
    if !numeric && !["ad_staff_name", "depart_name", "depart_group_name"].contains(&key) {
        return Err(ApiError::param(
            "orderKey",
            "must be ad_staff_name, depart_name, depart_group_name or a numeric field of the row",
        ));
    }
    rows.sort_by(|a, b| {
        let o = if numeric {
            num(a)
                .partial_cmp(&num(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        } else {
            text(a).cmp(&text(b))
        };
        let o = o
            .then_with(|| a.ad_staff_code.cmp(&b.ad_staff_code))
            .then_with(|| a.departgroupid.cmp(&b.departgroupid))
            .then_with(|| a.departid.cmp(&b.departid));
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    Ok(())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct ActivationListIn {
    /// The day: that day's midnight as Unix seconds (any time within the day works, as does `yyyy-MM-dd`).
    pub time: OptTime,
    /// Operating account type: -1 all, 0 personal WeChat, 3 WeCom.
    pub wechat_lei: OptInt,
    /// Only this staff member.
    pub ad_staff_code: OptStr,
    /// Department, -1 all (documented as a string; numbers accepted).
    pub ad_departid: OptInt,
    /// Group, -1 all.
    pub ad_departgroupid: OptInt,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct ActivationRow {
    pub ad_staff_code: String,
    pub ad_staff_name: String,
    pub ad_departid: i64,
    pub depart_name: String,
    pub ad_departgroupid: i64,
    pub depart_group_name: String,
    /// The day, `yyyy-MM-dd`.
    pub date: String,
    /// Customers this staff member activated that day.
    #[serde(rename = "activationCount")]
    pub activation_count: i64,
}

/// 获取员工激活客户数统计: activated customers per staff member for one day, most first.
#[utoipa::path(post, path = "/v2/Report/GetActivationListByStaff", tag = "Report", security(("bearer" = [])),
    request_body = ActivationListIn, responses((status = 200, body = Envelope<Vec<ActivationRow>>)))]
pub async fn get_activation_list_by_staff(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<ActivationListIn>,
) -> ApiResult<Response> {
    let ts = b.time.get().ok_or_else(|| {
        ApiError::param("time", "is required (the day's midnight as Unix seconds)")
    })?;
    let day = day_start(ts, st.offset);
    let day_end = day
        .checked_add(86400)
        .ok_or_else(|| ApiError::param("time", "is out of range"))?;
    let staff = st
        .store
        .tenant(m)
        .staff(&StaffFilter {
            depart_id: b.ad_departid.filter(),
            depart_group_id: b.ad_departgroupid.filter(),
            include_disabled: false,
            staff_code: b.ad_staff_code.non_empty().map(str::to_owned),
            staff_name: None,
        })
        .await?;
    let of_staff: HashMap<&str, usize> = staff
        .iter()
        .enumerate()
        .map(|(i, s)| (s.ad_staff_code.as_str(), i))
        .collect();
    let bucket = |code: &str| of_staff.get(code).copied();
    let filter = FactFilter {
        wechat_lei: b.wechat_lei.filter(),
        relation_isflock: None,
    };
    let sums = stats(&st, m, day, day_end, filter, staff.len(), &bucket).await?;
    let date = crate::timefmt::format_local(day, st.offset)
        .get(..10)
        .ok_or_else(|| ApiError::param("time", "is out of range"))?
        .to_owned();
    let mut rows: Vec<ActivationRow> = staff
        .iter()
        .zip(&sums)
        .map(|(s, sum)| ActivationRow {
            ad_staff_code: s.ad_staff_code.clone(),
            ad_staff_name: s.ad_staff_name.clone(),
            ad_departid: s.departid,
            depart_name: s.departname.clone(),
            ad_departgroupid: s.departgroupid,
            depart_group_name: s.departgroupname.clone(),
            date: date.clone(),
            // The range is one day, so the (day, account, fan) set is already per fan.
            activation_count: sum.activations,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.activation_count
            .cmp(&a.activation_count)
            .then_with(|| a.ad_staff_code.cmp(&b.ad_staff_code))
    });
    Ok(whole(rows))
}
