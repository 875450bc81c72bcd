//! System (组织架构): departments, groups and staff.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{page, Body, Merchant};
use super::{paged, whole, AppState};
use crate::error::{ApiResult, Envelope};
use crate::lenient::{OptInt, OptStr};
use crate::store::org::{DepartGroup, Department, Staff, StaffFilter};

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
}

/// 获取部门列表: all departments.
#[utoipa::path(get, path = "/v2/System/GetDepartList", tag = "System", security(("bearer" = [])),
    responses((status = 200, body = Envelope<Vec<Department>>)))]
pub async fn get_depart_list(
    State(st): State<AppState>,
    Merchant(m): Merchant,
) -> ApiResult<Response> {
    Ok(whole(st.store.tenant(m).departments().await?))
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
    Ok(whole(
        st.store
            .tenant(m)
            .depart_groups(b.departId.filter())
            .await?,
    ))
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
    Ok(whole(st.store.tenant(m).staff(&f).await?))
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
    Ok(paged(rows, more, pg, Some(total)))
}
