//! MeetingCall: the WeCom call-recording archive (音频存档).

use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{page, Body, Merchant};
use super::{paged, wire, AppState};
use crate::error::{ApiError, ApiResult, Envelope};
use crate::lenient::{OptInt, OptStr, OptTime};
use crate::store::misc::{MeetingCallFilter, MeetingCallRow};
use crate::timefmt::LocalTime;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct MeetingCall {
    pub id: i64,
    /// `meeting_voice_call` (WeCom session archive) or `voip_voice` (VoIP recording).
    pub msg_type: String,
    pub ad_wechat_id: i64,
    pub ad_wechat_nober: String,
    pub ad_wechat_nick: String,
    pub ad_staff_code: String,
    /// The fan's original WeChat id.
    pub fans_key: String,
    pub start_time: LocalTime,
    pub end_time: LocalTime,
    /// Seconds.
    pub duration: i64,
    /// Where the recording can be downloaded.
    pub voice_url: String,
}

impl From<MeetingCallRow> for MeetingCall {
    fn from(r: MeetingCallRow) -> Self {
        MeetingCall {
            id: r.id,
            msg_type: r.msg_type,
            ad_wechat_id: r.ad_wechat_id,
            ad_wechat_nober: r.ad_wechat_nober,
            ad_wechat_nick: r.ad_wechat_nick,
            ad_staff_code: r.ad_staff_code,
            fans_key: r.fans_key,
            start_time: LocalTime(r.start_time),
            end_time: LocalTime(r.end_time),
            duration: r.duration,
            voice_url: r.voice_url,
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v2/MeetingCall/GetMeetingVoiceCall",
        post(get_meeting_voice_call),
    )
}

/// Documented with snake_case and PascalCase paging; `pageIndex`/`pageSize` work too.
/// Fields marked required in the original docs are filters and optional here.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct MeetingVoiceCallIn {
    /// Calls starting at or after (`yyyy-MM-dd HH:mm:ss` or Unix seconds).
    pub startDate: OptTime,
    /// Calls ending at or before.
    pub endDate: OptTime,
    /// Part of the operating account's WeChat id / WeCom staff number.
    pub ad_wechat_nober: OptStr,
    /// Part of the operating account's nickname / WeCom staff name.
    pub ad_wechat_nick: OptStr,
    /// Staff number.
    pub ad_staff_code: OptStr,
    /// `meeting_voice_call` (session archive) or `voip_voice` (VoIP recording); absent for both.
    pub msg_type: OptStr,
    /// -1 all, 0 personal WeChat, 3 WeCom (sent as a string in the docs).
    pub wechat_lei: OptInt,
    /// Operating account id (sent as a string in the docs).
    pub wechat_id: OptInt,
    /// The fan's original WeChat id, exact.
    pub fans_key: OptStr,
    pub PageIndex: OptInt,
    pub PageSize: OptInt,
}

/// 获取音频存档列表: call recordings, newest first, paged.
#[utoipa::path(post, path = "/v2/MeetingCall/GetMeetingVoiceCall", tag = "MeetingCall", security(("bearer" = [])),
    request_body = MeetingVoiceCallIn, responses((status = 200, body = Envelope<Vec<MeetingCall>>)))]
pub async fn get_meeting_voice_call(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<MeetingVoiceCallIn>,
) -> ApiResult<Response> {
    let pg = page(&st, b.PageIndex, b.PageSize, "PageIndex", "PageSize")?;
    let msg_type = b.msg_type.non_empty().map(str::to_owned);
    if let Some(t) = &msg_type {
        if t != "meeting_voice_call" && t != "voip_voice" {
            return Err(ApiError::param(
                "msg_type",
                "must be meeting_voice_call or voip_voice",
            ));
        }
    }
    let f = MeetingCallFilter {
        start: b.startDate.get(),
        end: b.endDate.get(),
        wechat_nober: b.ad_wechat_nober.non_empty().map(str::to_owned),
        wechat_nick: b.ad_wechat_nick.non_empty().map(str::to_owned),
        staff_code: b.ad_staff_code.non_empty().map(str::to_owned),
        msg_type,
        wechat_lei: b.wechat_lei.filter(),
        wechat_id: b.wechat_id.filter(),
        fans_key: b.fans_key.non_empty().map(str::to_owned),
    };
    let t = st.store.tenant(m);
    let (rows, more) = t.meeting_calls_page(&f, pg).await?;
    let total = t.meeting_calls_count(&f).await?;
    Ok(paged(wire::<_, MeetingCall>(rows), more, pg, Some(total)))
}
