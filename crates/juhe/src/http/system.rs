//! System (组织架构): departments, groups and staff.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{page, Body, Merchant};
use super::{paged, whole, wire, AppState};
use crate::error::{ApiResult, Envelope};
use crate::lenient::{OptInt, OptStr};
use crate::store::org::{DepartGroupRow, DepartmentRow, StaffFilter, StaffRow};
use crate::timefmt::LocalTime;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Department {
    /// Department id.
    pub departid: i64,
    /// Department name.
    pub departname: String,
}

impl From<DepartmentRow> for Department {
    fn from(r: DepartmentRow) -> Self {
        Department {
            departid: r.departid,
            departname: r.departname,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct DepartGroup {
    /// Group id.
    pub departgroupid: i64,
    /// Department the group belongs to.
    pub departid: i64,
    /// Group name.
    pub departgroupname: String,
}

impl From<DepartGroupRow> for DepartGroup {
    fn from(r: DepartGroupRow) -> Self {
        DepartGroup {
            departgroupid: r.departgroupid,
            departid: r.departid,
            departgroupname: r.departgroupname,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Staff {
    /// Staff number (员工编号), the staff member's key everywhere in the API.
    pub ad_staff_code: String,
    pub ad_staff_name: String,
    pub departid: i64,
    /// Department name ("" when the department is unknown).
    pub departname: String,
    pub departgroupid: i64,
    /// Group name ("" when the group is unknown).
    pub departgroupname: String,
    /// 0 = active, 1 = disabled.
    pub ad_staff_state: i64,
}

impl From<StaffRow> for Staff {
    fn from(r: StaffRow) -> Self {
        Staff {
            ad_staff_code: r.ad_staff_code,
            ad_staff_name: r.ad_staff_name,
            departid: r.departid,
            departname: r.departname,
            departgroupid: r.departgroupid,
            departgroupname: r.departgroupname,
            ad_staff_state: r.ad_staff_state,
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        // Documented as GET; POST is accepted too because clients of the other System
        // endpoints tend to POST everything.
        .route(
            "/v2/System/GetDepartList",
            get(get_depart_list).post(get_depart_list),
        )
        .route("/v2/System/GetDepartGroupList", post(get_depart_group_list))
        .route("/v2/System/GetStaffList", post(get_staff_list))
        .route("/v2/System/GetAllStaffList", post(get_all_staff_list))
        .route("/v2/System/GetWechatList", post(get_wechat_list))
}

/// The request of an endpoint that takes no parameters.
#[derive(Debug, Default, Deserialize)]
pub struct NoParams {}

/// 获取部门列表: all departments.
#[utoipa::path(get, path = "/v2/System/GetDepartList", tag = "System", security(("bearer" = [])),
    responses((status = 200, body = Envelope<Vec<Department>>)))]
pub async fn get_depart_list(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    // No parameters, but a body that is sent is parsed like any endpoint's: a malformed
    // one is refused and its fields are named in X-Juhe-Unknown-Fields.
    _: Body<NoParams>,
) -> ApiResult<Response> {
    Ok(whole(wire::<_, Department>(
        st.store.tenant(m).departments().await?,
    )))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct DepartGroupListIn {
    /// Department id; `-1` (or absent) for all departments.
    pub departId: OptInt,
}

/// 根据部门获得组: the groups of a department.
#[utoipa::path(post, path = "/v2/System/GetDepartGroupList", tag = "System", security(("bearer" = [])),
    request_body = DepartGroupListIn, responses((status = 200, body = Envelope<Vec<DepartGroup>>)))]
pub async fn get_depart_group_list(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<DepartGroupListIn>,
) -> ApiResult<Response> {
    Ok(whole(wire::<_, DepartGroup>(
        st.store
            .tenant(m)
            .depart_groups(b.departId.filter())
            .await?,
    )))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct StaffListIn {
    /// Department id; `-1` for all.
    pub departId: OptInt,
    /// Group id; `-1` for all.
    pub departGroupId: OptInt,
    /// `0` only active staff (default), `1` all states.
    pub staffState: OptInt,
}

/// 根据组获得员工: the staff of a department and/or group.
#[utoipa::path(post, path = "/v2/System/GetStaffList", tag = "System", security(("bearer" = [])),
    request_body = StaffListIn, responses((status = 200, body = Envelope<Vec<Staff>>)))]
pub async fn get_staff_list(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<StaffListIn>,
) -> ApiResult<Response> {
    let include_disabled = staff_state(b.staffState, 0)?;
    let f = StaffFilter {
        depart_id: b.departId.filter(),
        depart_group_id: b.departGroupId.filter(),
        include_disabled,
        ..Default::default()
    };
    Ok(whole(wire::<_, Staff>(st.store.tenant(m).staff(&f).await?)))
}

fn staff_state(v: OptInt, default: i64) -> ApiResult<bool> {
    match v.get().unwrap_or(default) {
        0 => Ok(false),
        1 | -1 => Ok(true),
        _ => Err(crate::error::ApiError::param(
            "staffState",
            "must be 0 (active only) or 1 (all)",
        )),
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct AllStaffListIn {
    /// Exact staff number.
    pub staffCode: OptStr,
    /// Part of the staff name.
    pub staffName: OptStr,
    /// Department id; `-1` for all.
    pub departId: OptInt,
    /// Group id; `-1` for all.
    pub departGroupId: OptInt,
    /// `0` only active staff, `1` all states (default).
    pub staffState: OptInt,
    /// Page, from 1 (default 1).
    pub pageIndex: OptInt,
    /// Page size (default 20, at most 1000).
    pub pageSize: OptInt,
}

/// 获得员工列表 (designed here; the original page is missing): every staff member,
/// filtered and paged.
#[utoipa::path(post, path = "/v2/System/GetAllStaffList", tag = "System", security(("bearer" = [])),
    request_body = AllStaffListIn, responses((status = 200, body = Envelope<Vec<Staff>>)))]
pub async fn get_all_staff_list(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<AllStaffListIn>,
) -> ApiResult<Response> {
    let pg = page(&st, b.pageIndex, b.pageSize, "pageIndex", "pageSize")?;
    let f = StaffFilter {
        depart_id: b.departId.filter(),
        depart_group_id: b.departGroupId.filter(),
        include_disabled: staff_state(b.staffState, 1)?,
        staff_code: b.staffCode.non_empty().map(str::to_owned),
        staff_name: b.staffName.non_empty().map(str::to_owned),
    };
    let t = st.store.tenant(m);
    let (rows, more) = t.staff_page(&f, pg).await?;
    let total = t.staff_count(&f).await?;
    Ok(paged(wire::<_, Staff>(rows), more, pg, Some(total)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct WechatListIn {
    /// 运营号类型: `0` personal WeChat, `3` WeCom (企业微信); absent or `-1` for all.
    #[serde(alias = "AdWechatLei")]
    pub ad_wechat_lei: OptInt,
    /// Only the accounts of this staff member.
    #[serde(alias = "StaffCode")]
    pub staffCode: OptStr,
    /// Page, from 1 (default 1).
    pub pageIndex: OptInt,
    /// Page size (default 20, at most 1000).
    pub pageSize: OptInt,
}

/// One operating account (运营号), with the field names of the v1 `WeCaht` page.
#[derive(Debug, Clone, serde::Serialize, ToSchema, PartialEq)]
pub struct WechatOut {
    /// 运营号ID: the `wechatId` / `AdWecharId` of the other endpoints.
    pub ad_wechat_id: i64,
    /// 微信号 (user-visible WeChat id).
    pub ad_wechat_nober: String,
    /// 昵称.
    pub ad_wechat_nick: String,
    /// 原始微信号 (wxid).
    pub ad_original_nober: String,
    /// 0 personal WeChat, 3 WeCom.
    pub ad_wechat_lei: i64,
    /// Staff member the account belongs to, or null.
    pub ad_staff_code: Option<String>,
    /// 添加时间.
    pub ad_wechat_addtime: crate::timefmt::LocalTime,
}

/// 运营号列表 (Juhe): the merchant's operating accounts, in `ad_wechat_id` order.
///
/// The v2 API has no way to list the accounts whose ids every other call needs; the v1
/// API has one (`GET WeCaht`). Same fields, v2 envelope and paging.
#[utoipa::path(post, path = "/v2/System/GetWechatList", tag = "System", security(("bearer" = [])),
    request_body = WechatListIn, responses((status = 200, body = Envelope<Vec<WechatOut>>)))]
pub async fn get_wechat_list(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<WechatListIn>,
) -> ApiResult<Response> {
    let pg = page(&st, b.pageIndex, b.pageSize, "pageIndex", "pageSize")?;
    let lei = b.ad_wechat_lei.filter();
    if lei.is_some_and(|l| l != 0 && l != 3) {
        return Err(crate::error::ApiError::param(
            "ad_wechat_lei",
            "must be 0 (WeChat), 3 (WeCom) or -1 (all)",
        ));
    }
    let staff = b.staffCode.non_empty();
    // A merchant has tens of accounts, not thousands: filter and page in memory.
    let all: Vec<WechatOut> = st
        .store
        .tenant(m)
        .wechats()
        .await?
        .into_iter()
        .filter(|w| lei.is_none_or(|l| w.wechat_lei == l))
        .filter(|w| staff.is_none_or(|s| w.staff_code.as_deref() == Some(s)))
        .map(|w| WechatOut {
            ad_wechat_id: w.wechat_id,
            ad_wechat_nober: w.wechat_nober,
            ad_wechat_nick: w.wechat_nick,
            ad_original_nober: w.original_nober,
            ad_wechat_lei: w.wechat_lei,
            ad_staff_code: w.staff_code,
            ad_wechat_addtime: LocalTime(w.addtime),
        })
        .collect();
    let total = all.len() as i64;
    let values: Vec<WechatOut> = all
        .into_iter()
        .skip(pg.offset() as usize)
        .take(pg.size as usize)
        .collect();
    let more = pg.offset() + (values.len() as i64) < total;
    Ok(paged(values, more, pg, Some(total)))
}
