//! ChatMess: reading chat history (GetChat). Sending, takeover and activation arrive with
//! the assistant gateway.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{page, Body, Merchant};
use super::AppState;
use crate::error::{ApiError, ApiResult, Envelope, PageInfo, Paged};
use crate::lenient::{required_int, OptInt, OptStr, OptTime};
use crate::store::chats::{ChatFilter, ChatRow, Conversation};
use crate::timefmt::LocalTime;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/ChatMess/GetChat", post(get_chat))
        .route("/v2/ChatMess/GetChatFeed", post(get_chat_feed))
}

/// One chat record exactly as GetChat documents it: 17 fields, all always present.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct ChatRecord {
    /// 聊天ID. Increases in commit order within a merchant: page with `minChattingId`.
    pub ad_chatting_id: i64,
    /// 粉丝标识: the fan's original WeChat id.
    pub ad_chatting_talter: String,
    /// 1 = sent by the operating account, 0 = sent by the fan.
    pub ad_chatting_issend: i64,
    /// 附加数据: url-encoded JSON whose shape depends on the message type, or null.
    pub ad_chatting_resvred: Option<String>,
    /// 运营号ID.
    pub ad_wechat_id: i64,
    /// 租户ID (the merchant id, as a string).
    pub merchantid: String,
    /// When the record last changed.
    pub ad_chatting_updatetime: LocalTime,
    /// 消息类型 (see the message type table).
    pub ad_chatting_sate: i64,
    /// 消息ID: the message id on the WeChat side.
    pub ad_sermsgid: String,
    /// When the message was sent.
    pub ad_chatting_time: LocalTime,
    /// 聊天内容, formatted per message type.
    pub ad_chatting_content: String,
    /// Staff member who sent it (outgoing messages), else null.
    pub ad_staff_code: Option<String>,
    /// 语音转文字: speech-to-text of a voice message, when available.
    pub ad_voice_txt: Option<String>,
    /// 粉丝头像.
    pub ad_friend_photo: String,
    /// 粉丝昵称.
    pub ad_friend_name: String,
    /// 聊天归属: attribution of the chat ("" when none).
    pub ad_expand: String,
    /// 运营机微信号.
    pub ad_wechat_nober: String,
}

impl ChatRecord {
    /// The documented record of a stored chat; `merchantid` is the merchant id as text.
    pub fn new(r: ChatRow, merchantid: &str, c: &Conversation) -> ChatRecord {
        ChatRecord {
            ad_chatting_id: r.chat_id,
            ad_chatting_talter: r.talker,
            ad_chatting_issend: r.issend,
            ad_chatting_resvred: r.resvred,
            ad_wechat_id: r.wechat_id,
            merchantid: merchantid.to_owned(),
            ad_chatting_updatetime: LocalTime(r.updated_at),
            ad_chatting_sate: r.msg_type,
            ad_sermsgid: r.sermsgid,
            ad_chatting_time: LocalTime(r.chat_time),
            ad_chatting_content: r.content,
            ad_staff_code: r.staff_code,
            ad_voice_txt: r.voice_txt,
            ad_friend_photo: c.fan_photo.clone(),
            ad_friend_name: c.fan_name.clone(),
            ad_expand: r.expand,
            ad_wechat_nober: c.wechat_nober.clone(),
        }
    }
}

/// A stored chat written as its [`ChatRecord`] straight from the row and the page's
/// conversation: the same 17 fields in the same order, without copying the account and fan
/// columns and the merchant id into every record (four allocations per record, 200 per
/// GetChat page, were a visible share of a request's cost).
pub struct RecordOut<'a> {
    pub row: &'a ChatRow,
    pub merchantid: &'a str,
    pub conversation: &'a Conversation,
}

impl Serialize for RecordOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (r, c) = (self.row, self.conversation);
        let mut o = s.serialize_struct("ChatRecord", 17)?;
        o.serialize_field("ad_chatting_id", &r.chat_id)?;
        o.serialize_field("ad_chatting_talter", &r.talker)?;
        o.serialize_field("ad_chatting_issend", &r.issend)?;
        o.serialize_field("ad_chatting_resvred", &r.resvred)?;
        o.serialize_field("ad_wechat_id", &r.wechat_id)?;
        o.serialize_field("merchantid", self.merchantid)?;
        o.serialize_field("ad_chatting_updatetime", &LocalTime(r.updated_at))?;
        o.serialize_field("ad_chatting_sate", &r.msg_type)?;
        o.serialize_field("ad_sermsgid", &r.sermsgid)?;
        o.serialize_field("ad_chatting_time", &LocalTime(r.chat_time))?;
        o.serialize_field("ad_chatting_content", &r.content)?;
        o.serialize_field("ad_staff_code", &r.staff_code)?;
        o.serialize_field("ad_voice_txt", &r.voice_txt)?;
        o.serialize_field("ad_friend_photo", &c.fan_photo)?;
        o.serialize_field("ad_friend_name", &c.fan_name)?;
        o.serialize_field("ad_expand", &r.expand)?;
        o.serialize_field("ad_wechat_nober", &c.wechat_nober)?;
        o.end()
    }
}

/// The records of a page, serialised one by one as [`RecordOut`].
struct RecordsOut<'a> {
    rows: &'a [ChatRow],
    merchantid: &'a str,
    conversation: &'a Conversation,
}

impl Serialize for RecordsOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.rows.iter().map(|row| RecordOut {
            row,
            merchantid: self.merchantid,
            conversation: self.conversation,
        }))
    }
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
    let page = st.store.tenant(m).chats_page(&f, pg).await?;
    let merchantid = m.get().to_string();
    let more = page.more;
    let last = page.rows.last().map(|r| r.chat_id);
    let values = RecordsOut {
        rows: &page.rows,
        merchantid: &merchantid,
        conversation: &page.conversation,
    };
    let info = PageInfo {
        page_index: pg.index,
        page_size: pg.size,
        total: None,
        has_more: more,
        next_page_index: more.then_some(pg.index + 1),
        next_min_chatting_id: last.or(min),
    };
    Ok(Paged { values, page: info }.into_response())
}

/// GetChatFeed request (Juhe): the merchant-wide feed of new chat records.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct GetChatFeedIn {
    /// 最小聊天ID: return records with a larger `ad_chatting_id`; `0` (or absent) from the
    /// beginning. Send `page.nextMinChattingId` of the previous answer.
    pub minChattingId: OptInt,
    /// 运营号ID: only this operating account's records; absent or `-1` for all.
    #[serde(alias = "WechatId")]
    pub wechatId: OptInt,
    /// Records per call (default 20 here, at most 1000).
    pub pageSize: OptInt,
}

/// 聊天记录订阅 (Juhe): every chat record of the merchant, in ascending `ad_chatting_id`
/// order, across all accounts and fans.
///
/// For an integrator that mirrors all chats: start with `minChattingId` 0, store the
/// records, and call again with `page.nextMinChattingId` until `page.hasMore` is false; then
/// poll with the same cursor. Ids become visible in order, so no record written
/// concurrently is ever skipped. Records are GetChat's 17-field records.
#[utoipa::path(post, path = "/v2/ChatMess/GetChatFeed", tag = "ChatMess", security(("bearer" = [])),
    request_body = GetChatFeedIn, responses((status = 200, body = Envelope<Vec<ChatRecord>>)))]
pub async fn get_chat_feed(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<GetChatFeedIn>,
) -> ApiResult<Response> {
    let min = b.minChattingId.get().unwrap_or(0);
    if min < 0 {
        return Err(ApiError::param("minChattingId", "must not be negative"));
    }
    let pg = page(&st, OptInt(None), b.pageSize, "pageIndex", "pageSize")?;
    let (rows, more) = st
        .store
        .tenant(m)
        .chats_feed(min, b.wechatId.filter(), pg.size)
        .await?;
    let merchantid = m.get().to_string();
    let rows: Vec<ChatRecord> = rows
        .into_iter()
        .map(|r| ChatRecord::new(r.chat, &merchantid, &r.conversation))
        .collect();
    let page = PageInfo {
        page_index: 1,
        page_size: pg.size,
        total: None,
        has_more: more,
        next_page_index: None,
        next_min_chatting_id: Some(rows.last().map_or(min, |r| r.ad_chatting_id)),
    };
    Ok(Paged { values: rows, page }.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record written from the row is, byte for byte, the documented record.
    #[test]
    fn a_record_written_from_the_row_is_the_documented_record() {
        let c = Conversation {
            wechat_nober: "shop_01".into(),
            fan_photo: "http://p/1.jpg".into(),
            fan_name: "粉丝 \"A\"".into(),
        };
        for (resvred, staff, voice) in [
            (None, None, None),
            (
                Some("%7B%7D".to_owned()),
                Some("S001".to_owned()),
                Some("语音".to_owned()),
            ),
        ] {
            let row = ChatRow {
                chat_id: 42,
                talker: "wxid_fan".into(),
                issend: 1,
                resvred,
                wechat_id: 135389,
                updated_at: 1_714_615_260,
                msg_type: 34,
                sermsgid: "m-1".into(),
                chat_time: 1_714_615_200,
                content: "第一条\n\"quoted\"".into(),
                staff_code: staff,
                voice_txt: voice,
                expand: String::new(),
            };
            let out = serde_json::to_string(&RecordOut {
                row: &row,
                merchantid: "7",
                conversation: &c,
            })
            .unwrap();
            let documented = serde_json::to_string(&ChatRecord::new(row, "7", &c)).unwrap();
            assert_eq!(out, documented);
        }
    }
}
