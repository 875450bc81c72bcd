//! Friend (粉丝): the fan list and its count, sharing one filter.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{page, Body, Merchant};
use super::{paged, wire, AppState};
use crate::error::{ApiResult, Envelope, Values};
use crate::lenient::{OptInt, OptStr, OptTime};
use crate::store::fans::{FanFilter, FanRow};
use crate::timefmt::LocalTime;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Fan {
    /// Fan record id (unique within the merchant).
    pub ad_friend_id: i64,
    /// The fan's original WeChat id (wxid); this is `fansKey` elsewhere.
    pub ad_friend_wenober: String,
    /// The fan's user-visible WeChat id (微信号); may be empty.
    pub ad_friend_uwenober: String,
    /// Nickname.
    pub ad_friend_name: String,
    /// Avatar URL; may be empty.
    pub ad_friend_photo: String,
    /// Operating account the fan belongs to.
    pub ad_wechat_id: i64,
    /// That account's WeChat id.
    pub ad_wechat_nober: String,
    /// 0 personal WeChat, 3 WeCom.
    pub ad_wechat_lei: i64,
    /// Owning staff member, if assigned.
    pub ad_staff_code: Option<String>,
    /// How the fan was added (see the 来源 table in docs/api.md).
    pub ad_relation_scene: i64,
    /// 0 valid, 1 deleted by us, 4 deleted by them, 5 blocked by us, 6 blocked by them.
    pub ad_relation_state: i64,
    /// 0 friend, 1 group, 2 WeCom individual, 3 WeCom group.
    pub ad_relation_isflock: i64,
    /// When the fan was added.
    pub ad_friend_addtime: LocalTime,
    /// When the fan was bound to its staff member.
    pub ad_bind_time: Option<LocalTime>,
    /// Time of the last chat message with this fan.
    pub ad_updatechatting_time: Option<LocalTime>,
    /// When this record last changed (what `minUpdateTime` filters on).
    pub ad_relation_updatetime: LocalTime,
}

impl From<FanRow> for Fan {
    fn from(r: FanRow) -> Self {
        Fan {
            ad_friend_id: r.ad_friend_id,
            ad_friend_wenober: r.ad_friend_wenober,
            ad_friend_uwenober: r.ad_friend_uwenober,
            ad_friend_name: r.ad_friend_name,
            ad_friend_photo: r.ad_friend_photo,
            ad_wechat_id: r.ad_wechat_id,
            ad_wechat_nober: r.ad_wechat_nober,
            ad_wechat_lei: r.ad_wechat_lei,
            ad_staff_code: r.ad_staff_code,
            ad_relation_scene: r.ad_relation_scene,
            ad_relation_state: r.ad_relation_state,
            ad_relation_isflock: r.ad_relation_isflock,
            ad_friend_addtime: LocalTime(r.ad_friend_addtime),
            ad_bind_time: r.ad_bind_time.map(LocalTime),
            ad_updatechatting_time: r.ad_updatechatting_time.map(LocalTime),
            ad_relation_updatetime: LocalTime(r.ad_relation_updatetime),
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/Friend/GetFansList", post(get_fans_list))
        .route("/v2/Friend/GetFansCount", post(get_fans_count))
}

/// Filters of GetFansList and GetFansCount. Time fields take Unix seconds (or a local
/// `yyyy-MM-dd HH:mm:ss` string); ranges are inclusive.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct FansQueryIn {
    /// Operating account id.
    pub wechatId: OptInt,
    /// Operating account identifier: its original id (wxid) or WeChat id.
    pub wechatKey: OptStr,
    /// Fan identifier (original WeChat id), exact. Documented as `fansKe` (sic); `fansKey`
    /// is accepted too. Marked required in the original docs but it is a filter: optional here.
    #[serde(alias = "fansKey")]
    pub fansKe: OptStr,
    /// Part of the fan's nickname.
    pub fansName: OptStr,
    pub addStartTime: OptTime,
    pub addEndTime: OptTime,
    pub bindStartTime: OptTime,
    pub bindEndTime: OptTime,
    pub lastChatStartTime: OptTime,
    pub lastChatEndTime: OptTime,
    /// Owning staff number.
    pub staffCode: OptStr,
    /// Only fans whose record changed after this time.
    pub minUpdateTime: OptTime,
    /// Customer type: -1 all, 0 friend, 1 group, 2 WeCom individual, 3 WeCom group.
    pub relationType: OptInt,
    /// Relation state: -1 all, 0 valid, 1 deleted by us, 4 deleted by them, 5 blocked by us, 6 blocked by them.
    pub relationState: OptInt,
    /// Operating account type: -1 all, 0 personal WeChat, 3 WeCom.
    pub wechatType: OptInt,
    /// List only: page, from 1.
    pub pageIndex: OptInt,
    /// List only: page size (default 20, at most 1000).
    pub pageSize: OptInt,
}

impl FansQueryIn {
    fn filter(&self) -> FanFilter {
        FanFilter {
            wechat_id: self.wechatId.filter(),
            wechat_key: self.wechatKey.non_empty().map(str::to_owned),
            fans_key: self.fansKe.non_empty().map(str::to_owned),
            fans_name: self.fansName.non_empty().map(str::to_owned),
            add_start: self.addStartTime.get(),
            add_end: self.addEndTime.get(),
            bind_start: self.bindStartTime.get(),
            bind_end: self.bindEndTime.get(),
            last_chat_start: self.lastChatStartTime.get(),
            last_chat_end: self.lastChatEndTime.get(),
            staff_code: self.staffCode.non_empty().map(str::to_owned),
            min_update_time: self.minUpdateTime.get(),
            relation_type: self.relationType.filter(),
            relation_state: self.relationState.filter(),
            wechat_type: self.wechatType.filter(),
        }
    }
}

/// 读取粉丝列表: fans matching the filters, in id order, paged.
#[utoipa::path(post, path = "/v2/Friend/GetFansList", tag = "Friend", security(("bearer" = [])),
    request_body = FansQueryIn, responses((status = 200, body = Envelope<Vec<Fan>>)))]
pub async fn get_fans_list(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<FansQueryIn>,
) -> ApiResult<Response> {
    let pg = page(&st, b.pageIndex, b.pageSize, "pageIndex", "pageSize")?;
    let f = b.filter();
    let t = st.store.tenant(m);
    let (rows, more) = t.fans_page(&f, pg).await?;
    let total = t.fans_count(&f).await?;
    Ok(paged(wire::<_, Fan>(rows), more, pg, Some(total)))
}

/// 读取粉丝总数: how many fans match; `values` is the count.
#[utoipa::path(post, path = "/v2/Friend/GetFansCount", tag = "Friend", security(("bearer" = [])),
    request_body = FansQueryIn, responses((status = 200, body = Envelope<i64>)))]
pub async fn get_fans_count(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<FansQueryIn>,
) -> ApiResult<Response> {
    Ok(Values(st.store.tenant(m).fans_count(&b.filter()).await?).into_response())
}
