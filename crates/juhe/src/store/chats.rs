//! Chat records (聊天记录) and the incremental-sync read path behind GetChat.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::fast::FastRow;
use super::{now, take_ids, trim_page, MerchantId, Page, Sql, Tenant};

/// A stored chat. Times are Unix seconds; the HTTP layer renders the documented record.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct ChatRow {
    pub chat_id: i64,
    pub talker: String,
    pub issend: i64,
    pub resvred: Option<String>,
    pub wechat_id: i64,
    pub updated_at: i64,
    pub msg_type: i64,
    pub sermsgid: String,
    pub chat_time: i64,
    pub content: String,
    pub staff_code: Option<String>,
    pub voice_txt: Option<String>,
    pub expand: String,
}

/// What a chat record shows beside the chat itself: the operating account's WeChat id and
/// the fan's avatar and nickname (empty when unknown).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    pub wechat_nober: String,
    pub fan_photo: String,
    pub fan_name: String,
}

/// One page of one conversation.
#[derive(Debug, Clone, Default)]
pub struct ChatPage {
    pub conversation: Conversation,
    pub rows: Vec<ChatRow>,
    /// Whether more records follow.
    pub more: bool,
}

impl FastRow for ChatRow {
    fn from_rusqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
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

/// A feed row: a chat with its conversation's account and fan.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRow {
    pub chat: ChatRow,
    pub conversation: Conversation,
}

impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for FeedRow {
    fn from_row(r: &'r sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(FeedRow {
            chat: ChatRow {
                chat_id: r.try_get(0)?,
                talker: r.try_get(1)?,
                issend: r.try_get(2)?,
                resvred: r.try_get(3)?,
                wechat_id: r.try_get(4)?,
                updated_at: r.try_get(5)?,
                msg_type: r.try_get(6)?,
                sermsgid: r.try_get(7)?,
                chat_time: r.try_get(8)?,
                content: r.try_get(9)?,
                staff_code: r.try_get(10)?,
                voice_txt: r.try_get(11)?,
                expand: r.try_get(12)?,
            },
            conversation: Conversation {
                wechat_nober: r.try_get(13)?,
                fan_photo: r.try_get(14)?,
                fan_name: r.try_get(15)?,
            },
        })
    }
}

impl FastRow for FeedRow {
    fn from_rusqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(FeedRow {
            chat: ChatRow::from_rusqlite(r)?,
            conversation: Conversation {
                wechat_nober: r.get(13)?,
                fan_photo: r.get(14)?,
                fan_name: r.get(15)?,
            },
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
    pub async fn chats_page(&self, f: &ChatFilter, page: Page) -> Result<ChatPage, sqlx::Error> {
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
            return Ok(ChatPage::default());
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
        Ok(ChatPage {
            conversation: Conversation {
                wechat_nober: nober,
                fan_photo: photo,
                fan_name: name,
            },
            rows,
            more,
        })
    }

    /// Stores chats in one transaction, skipping any whose (account, message id) is
    /// already stored, and returns the ids given to the new ones in input order.
    pub(crate) async fn insert_chats(&self, chats: &[NewChat]) -> Result<Vec<i64>, sqlx::Error> {
        let mut tx = self.store.write_pool().begin().await?;
        let ids = insert_chats_tx(&mut tx, self.m, chats).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// The merchant-wide chat feed: every record with an id above `after`, in id order,
    /// across all accounts and fans (optionally one account), and whether more follow.
    /// Ids are taken under the merchant's counter lock and become visible in commit order,
    /// so a reader that resumes from the last id it saw never skips a record. The
    /// `(merchant_id, chat_id)` index makes each page a range scan, however long the history.
    pub async fn chats_feed(
        &self,
        after: i64,
        wechat_id: Option<i64>,
        limit: i64,
    ) -> Result<(Vec<FeedRow>, bool), sqlx::Error> {
        let mut q = Sql::new(
            "SELECT c.chat_id, c.talker, c.issend, c.resvred, c.wechat_id, c.updated_at, c.msg_type, c.sermsgid, \
             c.chat_time, c.content, c.staff_code, c.voice_txt, c.expand, COALESCE(w.wechat_nober, ''), \
             COALESCE(f.photo, ''), COALESCE(f.name, '') FROM chats c \
             LEFT JOIN wechats w ON w.merchant_id = c.merchant_id AND w.wechat_id = c.wechat_id \
             LEFT JOIN fans f ON f.merchant_id = c.merchant_id AND f.wechat_id = c.wechat_id AND f.wenober = c.talker \
             WHERE c.merchant_id = ",
        );
        q.bind(self.m.get()).push(" AND c.chat_id > ").bind(after);
        if let Some(w) = wechat_id {
            q.push(" AND c.wechat_id = ").bind(w);
        }
        q.push(" ORDER BY c.chat_id LIMIT ").bind(limit + 1);
        let mut rows = self.store.read_all::<FeedRow>(q).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit.max(0) as usize);
        Ok((rows, more))
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
