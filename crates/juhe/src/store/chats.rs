//! Chat records (聊天记录) and the incremental-sync read path behind GetChat.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::fast::FastRow;
use super::{now, take_ids, trim_page, Backend, MerchantId, Page, Sql, Tenant};

/// A stored chat. Times are Unix seconds; the HTTP layer renders the documented record.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub wechat_nober: String,
    pub fan_photo: String,
    pub fan_name: String,
}

/// One page of one conversation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatPage {
    pub conversation: Conversation,
    pub rows: Vec<ChatRow>,
    /// Whether more records follow.
    pub more: bool,
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

/// A feed row: a chat with its conversation's account and fan.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRow {
    pub chat: ChatRow,
    pub conversation: Conversation,
}

impl<'r, R> sqlx::FromRow<'r, R> for FeedRow
where
    R: sqlx::Row,
    ChatRow: sqlx::FromRow<'r, R>,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(r: &'r R) -> Result<Self, sqlx::Error> {
        Ok(FeedRow {
            chat: ChatRow::from_row(r)?,
            conversation: Conversation {
                wechat_nober: r.try_get("nober")?,
                fan_photo: r.try_get("photo")?,
                fan_name: r.try_get("name")?,
            },
        })
    }
}

impl FastRow for FeedRow {
    // The chat's columns first, at the positions ChatRow reads them from.
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
        "nober",
        "photo",
        "name",
    ]);
    fn from_columns(r: &super::fast::Columns<'_>) -> rusqlite::Result<Self> {
        Ok(FeedRow {
            chat: ChatRow::from_columns(r)?,
            conversation: Conversation {
                wechat_nober: r.get(13)?,
                fan_photo: r.get(14)?,
                fan_name: r.get(15)?,
            },
        })
    }
}

const CHAT_COLUMNS: &str =
    "SELECT chat_id, talker, issend, resvred, wechat_id, updated_at, msg_type, sermsgid, \
     chat_time, content, staff_code, voice_txt, expand";

/// The feed's rows (a chat with its account and fan), up to `WHERE c.merchant_id = `.
const FEED_SELECT: &str =
    "SELECT c.chat_id, c.talker, c.issend, c.resvred, c.wechat_id, c.updated_at, c.msg_type, c.sermsgid, \
     c.chat_time, c.content, c.staff_code, c.voice_txt, c.expand, COALESCE(w.wechat_nober, '') AS nober, \
     COALESCE(f.photo, '') AS photo, COALESCE(f.name, '') AS name FROM chats c \
     LEFT JOIN wechats w ON w.merchant_id = c.merchant_id AND w.wechat_id = c.wechat_id \
     LEFT JOIN fans f ON f.merchant_id = c.merchant_id AND f.wechat_id = c.wechat_id AND f.wenober = c.talker \
     WHERE c.merchant_id = ";

/// A chat of a PostgreSQL page row, its columns at `at` (the positions of
/// `ChatRow::COLUMNS`, found once per statement by [`pg_positions`]): looking each
/// column up by name in every row was a visible share of a GetChat request.
fn chat_from_pg(r: &sqlx::postgres::PgRow, at: &[usize]) -> Result<ChatRow, sqlx::Error> {
    use sqlx::Row;
    Ok(ChatRow {
        chat_id: r.try_get(at[0])?,
        talker: r.try_get(at[1])?,
        issend: r.try_get(at[2])?,
        resvred: r.try_get(at[3])?,
        wechat_id: r.try_get(at[4])?,
        updated_at: r.try_get(at[5])?,
        msg_type: r.try_get(at[6])?,
        sermsgid: r.try_get(at[7])?,
        chat_time: r.try_get(at[8])?,
        content: r.try_get(at[9])?,
        staff_code: r.try_get(at[10])?,
        voice_txt: r.try_get(at[11])?,
        expand: r.try_get(at[12])?,
    })
}

/// Where each of [`ChatRow`]'s columns is in the statement's rows (by name, as the sqlx
/// derive reads them, so a reordered SELECT still reads the right column).
fn pg_positions(r: &sqlx::postgres::PgRow) -> Result<Vec<usize>, sqlx::Error> {
    use sqlx::{Column, Row};
    let names = <ChatRow as FastRow>::COLUMNS.unwrap_or(&[]);
    names
        .iter()
        .map(|n| {
            r.columns()
                .iter()
                .position(|c| c.name() == *n)
                .ok_or_else(|| sqlx::Error::ColumnNotFound((*n).to_owned()))
        })
        .collect()
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

/// Rows per multi-row INSERT. 14 values a row: 1,000 rows stay under SQLite's 32,766
/// variables and PostgreSQL's 65,535 parameters, and amortise the round trip and the
/// statement's parse over many rows (see docs/benchmarks.md, "Writing chats").
const INSERT_CHUNK: usize = 1000;

/// Fans per last-chat-time update statement (three placeholders each).
const TOUCH_CHUNK: usize = 500;

impl Tenant<'_> {
    /// One page of a conversation's chats in ascending id order, and whether more follow.
    /// The hottest read of the API (incremental sync polls it): on SQLite both statements
    /// take the synchronous read path (`Store::read_all`). The account and fan columns are
    /// read once per page rather than joined into every row.
    pub async fn chats_page(&self, f: &ChatFilter, page: Page) -> Result<ChatPage, sqlx::Error> {
        if self.store.backend() == Backend::Postgres {
            return self.chats_page_one_statement(f, page).await;
        }
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
        let mut q = Sql::new(CHAT_COLUMNS);
        q.push(" FROM chats WHERE merchant_id = ");
        self.push_page_filter(&mut q, f, page);
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

    /// `merchant_id = …` onwards: the conversation, cursor, time range, order and limit.
    fn push_page_filter(&self, q: &mut Sql, f: &ChatFilter, page: Page) {
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
        page.push_limit(q);
    }

    /// [`Tenant::chats_page`] on PostgreSQL, in one round trip instead of two (each costs
    /// more than the query itself; see docs/benchmarks.md). The account and fan columns are
    /// uncorrelated scalar subqueries, which PostgreSQL evaluates once per statement (as
    /// InitPlans), not once per row; the EXISTS hides the chats of an unknown account, or
    /// of one the wechatKey does not match, as the two-statement form does.
    async fn chats_page_one_statement(
        &self,
        f: &ChatFilter,
        page: Page,
    ) -> Result<ChatPage, sqlx::Error> {
        let m = self.m.get();
        let mut q = Sql::new(CHAT_COLUMNS);
        q.push(", (SELECT wechat_nober FROM wechats WHERE merchant_id = ")
            .bind(m)
            .push(" AND wechat_id = ")
            .bind(f.wechat_id)
            .push(") AS nober");
        for col in ["photo", "name"] {
            q.push(", COALESCE((SELECT ")
                .push(col)
                .push(" FROM fans WHERE merchant_id = ")
                .bind(m)
                .push(" AND wechat_id = ")
                .bind(f.wechat_id)
                .push(" AND wenober = ")
                .bind(f.fans_key.clone())
                .push("), '') AS ")
                .push(col);
        }
        q.push(" FROM chats WHERE EXISTS (SELECT 1 FROM wechats w WHERE w.merchant_id = ")
            .bind(m)
            .push(" AND w.wechat_id = ")
            .bind(f.wechat_id);
        if let Some(k) = &f.wechat_key {
            q.push(" AND (w.original_nober = ")
                .bind(k.clone())
                .push(" OR w.wechat_nober = ")
                .bind(k.clone())
                .push(")");
        }
        q.push(") AND merchant_id = ");
        self.push_page_filter(&mut q, f, page);
        let (rows, more) = trim_page(self.store.read_pg_rows(q).await?, page);
        let Some(first) = rows.first() else {
            return Ok(ChatPage {
                more,
                ..ChatPage::default()
            });
        };
        // The account and fan columns are the same in every row: decoded once.
        use sqlx::Row;
        let conversation = Conversation {
            wechat_nober: first.try_get("nober")?,
            fan_photo: first.try_get("photo")?,
            fan_name: first.try_get("name")?,
        };
        let at = pg_positions(first)?;
        let rows = rows
            .iter()
            .map(|r| chat_from_pg(r, &at))
            .collect::<Result<_, _>>()?;
        Ok(ChatPage {
            conversation,
            rows,
            more,
        })
    }

    /// Stores chats in one transaction, skipping any whose (account, message id) is
    /// already stored, and returns the ids given to the new ones in input order.
    pub(crate) async fn insert_chats(&self, chats: &[NewChat]) -> Result<Vec<i64>, sqlx::Error> {
        let mut tx = self.store.write_pool().begin().await?;
        let ids = insert_chats_tx(&mut tx, self.m, chats).await?;
        let mut pending = super::events::Pending::default();
        note_chats(&mut pending, &ids);
        super::events::flush_tx(&mut tx, self.m, pending).await?;
        tx.commit().await?;
        self.store.events_changed();
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
        let mut q = Sql::new(FEED_SELECT);
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

    /// [`Tenant::insert_chats`] inside a transaction the caller holds (from
    /// [`Tenant::begin`]), so several writes commit together. Until that transaction ends,
    /// every other chat or fan writer of this merchant waits (see [`insert_chats_tx`]).
    pub(crate) async fn insert_chats_in(
        &self,
        tx: &mut super::idempotency::Tx,
        chats: &[NewChat],
    ) -> Result<Vec<i64>, sqlx::Error> {
        let ids = insert_chats_tx(&mut tx.0, self.m, chats).await?;
        note_chats(&mut tx.2, &ids);
        Ok(ids)
    }

    /// The (operating account, message id) of the chats `ids`, in the caller's transaction:
    /// which of a batch's messages went in when some were duplicates.
    pub(crate) async fn chat_keys_in(
        &self,
        tx: &mut super::idempotency::Tx,
        ids: &[i64],
    ) -> Result<std::collections::HashMap<(i64, String), i64>, sqlx::Error> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let mut q = Sql::new("SELECT chat_id, wechat_id, sermsgid FROM chats WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND chat_id IN (")
            .bind_list(ids.iter().copied())
            .push(")");
        let rows: Vec<(i64, i64, String)> = q.fetch_all(&mut *tx.0).await?;
        Ok(rows.into_iter().map(|(id, w, s)| ((w, s), id)).collect())
    }
}

/// A statement with many values for the write path. Like [`Sql`], but on SQLite the
/// placeholders are positional (`?`): sqlx binds a `$n` by asking SQLite for each
/// parameter's name, and SQLite finds a name by walking the statement's parameter list,
/// so binding `$n` costs O(parameters²) — seconds for a 14,000-value INSERT. PostgreSQL
/// only understands `$n`, and binds it in linear time.
pub(in crate::store) struct Bulk {
    text: String,
    args: sqlx::any::AnyArguments<'static>,
    n: usize,
    positional: bool,
}

impl Bulk {
    pub(in crate::store) fn new(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        text: &str,
    ) -> Bulk {
        let conn: &mut sqlx::AnyConnection = tx;
        Bulk {
            text: text.to_owned(),
            args: Default::default(),
            n: 0,
            positional: conn.backend_name().eq_ignore_ascii_case("sqlite"),
        }
    }

    pub(in crate::store) fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    pub(in crate::store) fn bind<T>(&mut self, v: T) -> &mut Self
    where
        T: 'static + Send + sqlx::Encode<'static, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        use sqlx::Arguments;
        self.n += 1;
        if self.positional {
            self.text.push('?');
        } else {
            self.text.push('$');
            self.text.push_str(&self.n.to_string());
        }
        // Adding a value of a supported type cannot fail for the Any driver.
        let _ = self.args.add(v);
        self
    }

    pub(in crate::store) async fn execute(
        self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    ) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query_with(&self.text, self.args)
            .execute(&mut **tx)
            .await?
            .rows_affected())
    }

    /// Kept as a prepared statement, like [`Bulk::execute`]: its uses (which ids of a
    /// range went in, the outbox's sequence upsert) have the same plan whatever the values.
    pub(in crate::store) async fn fetch_all<R>(
        self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    ) -> Result<Vec<R>, sqlx::Error>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        sqlx::query_as_with::<_, R, _>(&self.text, self.args)
            .fetch_all(&mut **tx)
            .await
    }
}

/// After an insert that skipped duplicates: the `kept` rows (ascending) of the ids
/// `first..first + n` are renumbered `first, first + 1, …` in their order, and the
/// merchant's counter gives back the ids not used, so ids stay dense and in input order
/// (GetChat shows a conversation in id order). The caller holds the counter row (see
/// `take_ids`), so no other writer took ids meanwhile. Two steps, through negative ids:
/// PostgreSQL checks the primary key row by row during an UPDATE, and moving a row down
/// onto an id another row of the same statement has not left yet would fail.
async fn close_id_gaps(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    m: MerchantId,
    first: i64,
    n: i64,
    kept: &[i64],
) -> Result<(), sqlx::Error> {
    let moves: Vec<(i64, i64)> = kept
        .iter()
        .zip(first..)
        .filter(|(old, new)| *old != new)
        .map(|(old, new)| (*old, new))
        .collect();
    for step in [false, true] {
        for chunk in moves.chunks(TOUCH_CHUNK) {
            let mut q = Bulk::new(tx, "UPDATE chats SET chat_id = v.column2 FROM (VALUES ");
            for (i, (old, new)) in chunk.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                let (from, to) = if step { (-old, *new) } else { (*old, -old) };
                q.push("(").bind(from).push(", ").bind(to).push(")");
            }
            q.push(") AS v WHERE chats.merchant_id = ")
                .bind(m.get())
                .push(" AND chats.chat_id = v.column1");
            q.execute(tx).await?;
        }
    }
    let unused = n - kept.len() as i64;
    let mut q = Bulk::new(tx, "UPDATE id_counters SET last_id = last_id - ");
    q.bind(unused)
        .push(" WHERE merchant_id = ")
        .bind(m.get())
        .push(" AND kind = 'chat'");
    q.execute(tx).await?;
    Ok(())
}

/// The body of [`Tenant::insert_chats`], usable inside a larger transaction (import).
///
/// Lock order, the same in every write path that touches chats or fans (chat recording
/// here, import in `import.rs`): first the merchant's `chat` row of `id_counters`, then
/// fan rows (and other id counters), then chat rows. A path that locked a fan first and
/// the counter second could deadlock against this one on PostgreSQL; see
/// docs/architecture.md, "Write transactions and lock order".
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
    // insert below sees everything they committed.
    take_ids(tx, m, "chat", 0).await?;

    // Duplicates within the input: the first occurrence wins.
    let mut seen: HashSet<(i64, &str)> = HashSet::with_capacity(chats.len());
    let mut candidates: Vec<&NewChat> = Vec::with_capacity(chats.len());
    for c in chats {
        if seen.insert((c.wechat_id, c.sermsgid.as_str())) {
            candidates.push(c);
        }
    }
    // Duplicates of stored chats: every candidate is inserted with the next id, and the
    // unique index (merchant_id, wechat_id, sermsgid) turns a stored one into "nothing
    // inserted". A separate duplicate check before the insert cost as much again, and
    // PostgreSQL planned it badly while its statistics did not yet know the merchant's new
    // rows (docs/benchmarks.md, "Writing chats"). Only a statement that inserted fewer rows
    // than it carried is asked which went in, through the primary key: `RETURNING` on
    // every statement made SQLite's import 17% slower (each row crosses sqlx's channel).
    let n = candidates.len() as i64;
    let first = take_ids(tx, m, "chat", n).await?;
    let t = now();
    // The ids that went in, ascending.
    let mut inserted: Vec<i64> = Vec::with_capacity(candidates.len());
    let mut next = first;
    for chunk in candidates.chunks(INSERT_CHUNK) {
        let mut q = Bulk::new(
            tx,
            "INSERT INTO chats (merchant_id, chat_id, wechat_id, talker, issend, msg_type, content, resvred, sermsgid, chat_time, updated_at, staff_code, voice_txt, expand) VALUES ",
        );
        for (i, c) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push("(")
                .bind(m.get())
                .push(", ")
                .bind(next)
                .push(", ")
                .bind(c.wechat_id)
                .push(", ")
                .bind(c.talker.clone());
            next += 1;
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
        let lo = next - chunk.len() as i64;
        if q.execute(tx).await? == chunk.len() as u64 {
            inserted.extend(lo..next);
        } else {
            let mut q = Bulk::new(tx, "SELECT chat_id FROM chats WHERE merchant_id = ");
            q.bind(m.get())
                .push(" AND chat_id >= ")
                .bind(lo)
                .push(" AND chat_id < ")
                .bind(next)
                .push(" ORDER BY chat_id");
            let got: Vec<(i64,)> = q.fetch_all(tx).await?;
            inserted.extend(got.into_iter().map(|(id,)| id));
        }
    }
    let fresh: Vec<&NewChat> = if inserted.len() == candidates.len() {
        candidates
    } else {
        let mut went_in = inserted.iter().peekable();
        let fresh = (first..)
            .zip(candidates)
            .filter(|(id, _)| went_in.next_if_eq(&id).is_some())
            .map(|(_, c)| c)
            .collect();
        close_id_gaps(tx, m, first, n, &inserted).await?;
        fresh
    };
    if fresh.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = (first..first + fresh.len() as i64).collect();
    // Keep each fan's last-chat time current for the fan list's filters: one statement
    // per few hundred fans rather than one per fan.
    let mut latest: BTreeMap<(i64, &str), i64> = BTreeMap::new();
    for c in &fresh {
        let e = latest
            .entry((c.wechat_id, c.talker.as_str()))
            .or_insert(c.chat_time);
        *e = (*e).max(c.chat_time);
    }
    let latest: Vec<((i64, &str), i64)> = latest.into_iter().collect();
    for chunk in latest.chunks(TOUCH_CHUNK) {
        // `(VALUES …) AS v` with the default column names column1…: the one spelling of an
        // inline table that SQLite and PostgreSQL both accept in UPDATE … FROM.
        let mut q = Bulk::new(
            tx,
            "UPDATE fans SET last_chat_time = v.column3 FROM (VALUES ",
        );
        for (i, ((wechat_id, talker), t)) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push("(")
                .bind(*wechat_id)
                .push(", ")
                .bind((*talker).to_owned())
                .push(", ")
                .bind(*t)
                .push(")");
        }
        q.push(") AS v WHERE fans.merchant_id = ")
            .bind(m.get())
            .push(
                " AND fans.wechat_id = v.column1 AND fans.wenober = v.column2 \
                 AND (fans.last_chat_time IS NULL OR fans.last_chat_time < v.column3)",
            );
        q.execute(tx).await?;
    }
    Ok(ids)
}

/// One `chat` event per record with an id in `first..=last`, carrying the record as GetChat
/// shows it.
pub(in crate::store) async fn chat_events_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    m: MerchantId,
    first: i64,
    last: i64,
) -> Result<Vec<super::events::NewEvent>, sqlx::Error> {
    use super::events::{self, EventData, NewEvent};
    let mut q = Sql::new(FEED_SELECT);
    q.bind(m.get())
        .push(" AND c.chat_id >= ")
        .bind(first)
        .push(" AND c.chat_id <= ")
        .bind(last)
        .push(" ORDER BY c.chat_id");
    let rows: Vec<FeedRow> = q.fetch_all(&mut **tx).await?;
    Ok(rows
        .into_iter()
        .map(|r| NewEvent {
            event_type: events::CHAT,
            conversation: Some((r.chat.wechat_id, r.chat.talker.clone())),
            data: EventData::Chat {
                chat: r.chat,
                conversation: r.conversation,
            },
        })
        .collect())
}

/// Notes the chats `ids` (consecutive, as [`insert_chats_tx`] gives them) for their events
/// at commit.
pub(in crate::store) fn note_chats(pending: &mut super::events::Pending, ids: &[i64]) {
    if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
        pending.chats.push((*first, *last));
    }
}
