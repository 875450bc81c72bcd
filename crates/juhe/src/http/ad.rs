//! AdManage (广告): the ad list and its count (the docs' folder says "Ad", the path says AdManage).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{page, Body, Merchant};
use super::{paged, wire, AppState};
use crate::error::{ApiResult, Envelope, Values};
use crate::lenient::{OptInt, OptNum, OptStr, OptTime};
use crate::store::misc::{AdFilter, AdRow};
use crate::timefmt::LocalTime;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Ad {
    /// Ad record id.
    pub id: i64,
    /// 广告编号.
    pub code: String,
    pub name: String,
    /// Spend.
    pub costs: f64,
    /// 0 offline, 1 online.
    pub state: i64,
    /// 0 self-built, 1 企客宝.
    pub build_type: i64,
    pub create_time: LocalTime,
}

impl From<AdRow> for Ad {
    fn from(r: AdRow) -> Self {
        Ad {
            id: r.id,
            code: r.code,
            name: r.name,
            costs: r.costs,
            state: r.state,
            build_type: r.build_type,
            create_time: LocalTime(r.create_time),
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/AdManage/GetAdList", post(get_ad_list))
        .route("/v2/AdManage/GetAdCount", post(get_ad_count))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct AdQueryIn {
    /// Ad number, exact.
    pub code: OptStr,
    /// Part of the ad name. Marked required in the original docs, but it is a filter: optional here.
    pub name: OptStr,
    /// Costs at least this.
    pub minCosts: OptNum,
    /// Costs at most this.
    pub maxCosts: OptNum,
    /// Created at or after (`yyyy-MM-dd HH:mm:ss` or Unix seconds).
    pub startTime: OptTime,
    /// Created at or before.
    pub endTime: OptTime,
    /// -1 all (default), 0 offline, 1 online.
    pub state: OptInt,
    /// -1 all (default), 0 self-built, 1 企客宝.
    pub buildType: OptInt,
    /// List only: page, from 1.
    pub pageIndex: OptInt,
    /// List only: page size.
    pub pageSize: OptInt,
}

impl AdQueryIn {
    fn filter(&self) -> AdFilter {
        AdFilter {
            code: self.code.non_empty().map(str::to_owned),
            name: self.name.non_empty().map(str::to_owned),
            min_costs: self.minCosts.0,
            max_costs: self.maxCosts.0,
            start: self.startTime.get(),
            end: self.endTime.get(),
            state: self.state.filter(),
            build_type: self.buildType.filter(),
        }
    }
}

/// 读取广告列表.
#[utoipa::path(post, path = "/v2/AdManage/GetAdList", tag = "AdManage", security(("bearer" = [])),
    request_body = AdQueryIn, responses((status = 200, body = Envelope<Vec<Ad>>)))]
pub async fn get_ad_list(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<AdQueryIn>,
) -> ApiResult<Response> {
    let pg = page(&st, b.pageIndex, b.pageSize, "pageIndex", "pageSize")?;
    let f = b.filter();
    let t = st.store.tenant(m);
    let (rows, more) = t.ads_page(&f, pg).await?;
    let total = t.ads_count(&f).await?;
    Ok(paged(wire::<_, Ad>(rows), more, pg, Some(total)))
}

/// 读取广告条数: `values` is the count.
#[utoipa::path(post, path = "/v2/AdManage/GetAdCount", tag = "AdManage", security(("bearer" = [])),
    request_body = AdQueryIn, responses((status = 200, body = Envelope<i64>)))]
pub async fn get_ad_count(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<AdQueryIn>,
) -> ApiResult<Response> {
    Ok(Values(st.store.tenant(m).ads_count(&b.filter()).await?).into_response())
}
