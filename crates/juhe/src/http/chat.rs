//! ChatMess: reading chat history (GetChat). Sending, takeover and activation arrive with
//! the assistant gateway.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{page, Body, Merchant};
use super::AppState;
use crate::error::{ApiError, ApiResult, Envelope, PageInfo, Paged};
use crate::lenient::{required_int, OptInt, OptStr, OptTime};
use crate::store::chats::{ChatFilter, ChatRecord};

pub fn router() -> Router<AppState> {
    Router::new().route("/v2/ChatMess/GetChat", post(get_chat))
}

/// GetChat request, as documented. `pageSize`/`pageIndex` are documented as strings and
/// accepted as strings or numbers.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct GetChatIn {
    /// 开始时间戳(秒): messages at or after this time.
    pub startTimestamp: OptTime,
    /// 结束时间戳(秒): messages at or before this time.
    pub endTimestamp: OptTime,
    /// 粉丝标识 (required): the fan's original WeChat id.
    #[serde(alias = "fansKe")]
    pub fansKey: OptStr,
    /// 运营号ID (required).
    pub wechatId: OptInt,
    /// 运营号标识: when given, must match the account's original id or WeChat id.
    pub wechatKey: OptStr,
    /// 最小聊天ID: only records with a larger `ad_chatting_id`, ascending. For incremental
    /// sync, send the last id you stored and `pageIndex` 1.
    pub minChattingId: OptInt,
    /// Page size (required by the original docs; default 20 here, at most 1000).
    pub pageSize: OptInt,
    /// Page, from 1 (required by the original docs; default 1 here).
    pub pageIndex: OptInt,
}

/// 读取聊天记录: one conversation's chat records in ascending `ad_chatting_id` order.
///
/// Incremental sync: keep the largest `ad_chatting_id` you have stored and send it as
/// `minChattingId` with `pageIndex` 1; `page.nextMinChattingId` is the value for the next
/// call. Ids become visible in order, so this never skips a record written concurrently.
#[utoipa::path(post, path = "/v2/ChatMess/GetChat", tag = "ChatMess", security(("bearer" = [])),
    request_body = GetChatIn, responses((status = 200, body = Envelope<Vec<ChatRecord>>)))]
pub async fn get_chat(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<GetChatIn>,
) -> ApiResult<Response> {
    let fans_key = b
        .fansKey
        .non_empty()
        .map(str::to_owned)
        .ok_or_else(|| ApiError::param("fansKey", "is required"))?;
    let wechat_id = required_int(b.wechatId, "wechatId")?;
    let pg = page(&st, b.pageIndex, b.pageSize, "pageIndex", "pageSize")?;
    let min = b.minChattingId.get();
    if min.is_some_and(|v| v < 0) {
        return Err(ApiError::param("minChattingId", "must not be negative"));
    }
    let f = ChatFilter {
        wechat_id,
        fans_key,
        wechat_key: b.wechatKey.non_empty().map(str::to_owned),
        min_chatting_id: min,
        start: b.startTimestamp.get(),
        end: b.endTimestamp.get(),
    };
    let (rows, more) = st.store.tenant(m).chats_page(&f, pg).await?;
    let last = rows.last().map(|r| r.ad_chatting_id);
    let page = PageInfo {
        page_index: pg.index,
        page_size: pg.size,
        total: None,
        has_more: more,
        next_page_index: more.then_some(pg.index + 1),
        next_min_chatting_id: last.or(min),
    };
    Ok(Paged { values: rows, page }.into_response())
}
