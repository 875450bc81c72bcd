//! Chat records (聊天记录) and the incremental-sync read path behind GetChat.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::fast::FastRow;
use super::{now, take_ids, trim_page, MerchantId, Page, Sql, Tenant};
use crate::timefmt::LocalTime;

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

/// A stored chat row, before the account and fan columns are added.
#[derive(Debug, Clone, sqlx::FromRow)]
struct ChatRow {
    chat_id: i64,
    talker: String,
    issend: i64,
    resvred: Option<String>,
    wechat_id: i64,
    updated_at: i64,
    msg_type: i64,
    sermsgid: String,
    chat_time: i64,
    content: String,
    staff_code: Option<String>,
    voice_txt: Option<String>,
    expand: String,
}

impl FastRow for ChatRow {
    const COLUMNS: Option<&'static [&'static str]> = Some(&[
        "chat_id",
        "talker",
        "issend",
        "resvred",
        "wechat_id",
        "updated_at",
        "msg_type",
        "sermsgid",
        "chat_time",
        "content",
        "staff_code",
        "voice_txt",
        "expand",
    ]);
    fn from_columns(r: &super::fast::Columns<'_>) -> rusqlite::Result<Self> {
        Ok(ChatRow {
            chat_id: r.get(0)?,
            talker: r.get(1)?,
            issend: r.get(2)?,
            resvred: r.get(3)?,
            wechat_id: r.get(4)?,
            updated_at: r.get(5)?,
            msg_type: r.get(6)?,
            sermsgid: r.get(7)?,
            chat_time: r.get(8)?,
            content: r.get(9)?,
            staff_code: r.get(10)?,
            voice_txt: r.get(11)?,
            expand: r.get(12)?,
        })
    }
}

/// A chat message to store (from import, and later from the assistant gateway).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct NewChat {
    pub wechat_id: i64,
    pub talker: String,
    pub issend: i64,
    pub msg_type: i64,
    pub content: String,
    pub resvred: Option<String>,
    pub sermsgid: String,
    pub chat_time: i64,
    pub staff_code: Option<String>,
    pub voice_txt: Option<String>,
    pub expand: String,
}

/// GetChat's filter: one conversation, optionally after a cursor and within a time range.
#[derive(Debug, Clone, Default)]
pub struct ChatFilter {
    pub wechat_id: i64,
    pub fans_key: String,
    pub wechat_key: Option<String>,
    pub min_chatting_id: Option<i64>,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

/// Rows per multi-row INSERT: 11 values each keeps well under SQLite's variable limit.
const INSERT_CHUNK: usize = 400;

impl Tenant<'_> {
    /// One page of a conversation's chats in ascending id order, and whether more follow.
    /// The hottest read of the API (incremental sync polls it): on SQLite both statements
    /// take the synchronous read path (`Store::read_all`). The account and fan columns are
    /// read once per page rather than joined into every row.
    pub async fn chats_page(
        &self,
        f: &ChatFilter,
        page: Page,
    ) -> Result<(Vec<ChatRecord>, bool), sqlx::Error> {
        let mut q = Sql::new(
            "SELECT w.wechat_nober, COALESCE(f.photo, ''), COALESCE(f.name, '') FROM wechats w \
             LEFT JOIN fans f ON f.merchant_id = w.merchant_id AND f.wechat_id = w.wechat_id AND f.wenober = ",
        );
        q.bind(f.fans_key.clone())
            .push(" WHERE w.merchant_id = ")
            .bind(self.m.get())
            .push(" AND w.wechat_id = ")
            .bind(f.wechat_id);
        if let Some(k) = &f.wechat_key {
            q.push(" AND (w.original_nober = ")
                .bind(k.clone())
                .push(" OR w.wechat_nober = ")
                .bind(k.clone())
                .push(")");
        }
        // An unknown account (or one the wechatKey does not match) has no chats to show.
        let Some((nober, photo, name)): Option<(String, String, String)> =
            self.store.read_optional(q).await?
        else {
            return Ok((Vec::new(), false));
        };
        let mut q = Sql::new(
            "SELECT chat_id, talker, issend, resvred, wechat_id, updated_at, msg_type, sermsgid, chat_time, content, \
             staff_code, voice_txt, expand FROM chats WHERE merchant_id = ",
        );
        q.bind(self.m.get())
            .push(" AND wechat_id = ")
            .bind(f.wechat_id)
            .push(" AND talker = ")
            .bind(f.fans_key.clone());
        if let Some(min) = f.min_chatting_id {
            q.push(" AND chat_id > ").bind(min);
        }
        if let Some(s) = f.start {
            q.push(" AND chat_time >= ").bind(s);
        }
        if let Some(e) = f.end {
            q.push(" AND chat_time <= ").bind(e);
        }
        q.push(" ORDER BY chat_id");
        page.push_limit(&mut q);
        let (rows, more) = trim_page(self.store.read_all::<ChatRow>(q).await?, page);
        let merchantid = self.m.get().to_string();
        let records = rows
            .into_iter()
            .map(|r| ChatRecord {
                ad_chatting_id: r.chat_id,
                ad_chatting_talter: r.talker,
                ad_chatting_issend: r.issend,
                ad_chatting_resvred: r.resvred,
                ad_wechat_id: r.wechat_id,
                merchantid: merchantid.clone(),
                ad_chatting_updatetime: LocalTime(r.updated_at),
                ad_chatting_sate: r.msg_type,
                ad_sermsgid: r.sermsgid,
                ad_chatting_time: LocalTime(r.chat_time),
                ad_chatting_content: r.content,
                ad_staff_code: r.staff_code,
                ad_voice_txt: r.voice_txt,
                ad_friend_photo: photo.clone(),
                ad_friend_name: name.clone(),
                ad_expand: r.expand,
                ad_wechat_nober: nober.clone(),
            })
            .collect();
        Ok((records, more))
    }

    /// Stores chats in one transaction, skipping any whose (account, message id) is
    /// already stored, and returns the ids given to the new ones in input order.
    pub async fn insert_chats(&self, chats: &[NewChat]) -> Result<Vec<i64>, sqlx::Error> {
        let mut tx = self.store.write_pool().begin().await?;
        let ids = insert_chats_tx(&mut tx, self.m, chats).await?;
        tx.commit().await?;
        Ok(ids)
    }
}

/// The body of [`Tenant::insert_chats`], usable inside a larger transaction (import).
pub(crate) async fn insert_chats_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    m: MerchantId,
    chats: &[NewChat],
) -> Result<Vec<i64>, sqlx::Error> {
    if chats.is_empty() {
        return Ok(Vec::new());
    }
    // Lock the counter row first (a zero-sized take): from here on this transaction is
    // ordered against every other chat writer of this merchant (see `take_ids`), and the
    // duplicate check below sees everything they committed.
    take_ids(tx, m, "chat", 0).await?;
    let mut fresh: Vec<&NewChat> = Vec::with_capacity(chats.len());
    let mut seen = HashSet::new();
    for chunk in chats.chunks(INSERT_CHUNK) {
        let mut q = Sql::new("SELECT wechat_id, sermsgid FROM chats WHERE merchant_id = ");
        q.bind(m.get())
            .push(" AND sermsgid IN (")
            .bind_list(chunk.iter().map(|c| c.sermsgid.clone()))
            .push(")");
        let existing: Vec<(i64, String)> = q.fetch_all(&mut **tx).await?;
        let existing: HashSet<(i64, String)> = existing.into_iter().collect();
        for c in chunk {
            let key = (c.wechat_id, c.sermsgid.clone());
            if !existing.contains(&key) && seen.insert(key) {
                fresh.push(c);
            }
        }
    }
    if fresh.is_empty() {
        return Ok(Vec::new());
    }
    let first = take_ids(tx, m, "chat", fresh.len() as i64).await?;
    let t = now();
    let mut ids = Vec::with_capacity(fresh.len());
    for (ci, chunk) in fresh.chunks(INSERT_CHUNK).enumerate() {
        let mut q = Sql::new(
            "INSERT INTO chats (merchant_id, chat_id, wechat_id, talker, issend, msg_type, content, resvred, sermsgid, chat_time, updated_at, staff_code, voice_txt, expand) VALUES ",
        );
        for (i, c) in chunk.iter().enumerate() {
            let id = first + (ci * INSERT_CHUNK + i) as i64;
            ids.push(id);
            if i > 0 {
                q.push(", ");
            }
            q.push("(")
                .bind(m.get())
                .push(", ")
                .bind(id)
                .push(", ")
                .bind(c.wechat_id)
                .push(", ")
                .bind(c.talker.clone());
            q.push(", ")
                .bind(c.issend)
                .push(", ")
                .bind(c.msg_type)
                .push(", ")
                .bind(c.content.clone())
                .push(", ")
                .bind(c.resvred.clone());
            q.push(", ")
                .bind(c.sermsgid.clone())
                .push(", ")
                .bind(c.chat_time)
                .push(", ")
                .bind(t)
                .push(", ")
                .bind(c.staff_code.clone());
            q.push(", ")
                .bind(c.voice_txt.clone())
                .push(", ")
                .bind(c.expand.clone())
                .push(")");
        }
        q.push(" ON CONFLICT (merchant_id, wechat_id, sermsgid) DO NOTHING");
        q.execute(&mut **tx).await?;
    }
    // Keep each fan's last-chat time current for the fan list's filters.
    let mut latest: std::collections::HashMap<(i64, &str), i64> = std::collections::HashMap::new();
    for c in &fresh {
        let e = latest
            .entry((c.wechat_id, c.talker.as_str()))
            .or_insert(c.chat_time);
        *e = (*e).max(c.chat_time);
    }
    for ((wechat_id, talker), t) in latest {
        let mut q = Sql::new("UPDATE fans SET last_chat_time = ");
        q.bind(t)
            .push(" WHERE merchant_id = ")
            .bind(m.get())
            .push(" AND wechat_id = ")
            .bind(wechat_id);
        q.push(" AND wenober = ")
            .bind(talker.to_owned())
            .push(" AND (last_chat_time IS NULL OR last_chat_time < ")
            .bind(t)
            .push(")");
        q.execute(&mut **tx).await?;
    }
    Ok(ids)
}
