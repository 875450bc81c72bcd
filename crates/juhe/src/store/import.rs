//! Bulk import of a merchant's organisation and history from the JSON import format
//! (`shared/fixtures/org-example.json`). Everything is validated before anything is
//! written, and everything is written in one transaction: a bad record imports nothing.
//! Re-importing the same file changes nothing (rows are matched on their natural keys
//! and only rewritten when a value differs; chats and call recordings are insert-only,
//! matched on their message id and natural key).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::chats::{insert_chats_tx, NewChat};
use super::idempotency::Tx;
use super::misc::NewMeetingCall;
use super::{now, take_ids, Sql, Tenant};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ImportFile {
    #[serde(default)]
    pub departments: Vec<ImpDepartment>,
    #[serde(default)]
    pub groups: Vec<ImpGroup>,
    #[serde(default)]
    pub staff: Vec<ImpStaff>,
    #[serde(default)]
    pub wechats: Vec<ImpWechat>,
    #[serde(default)]
    pub fans: Vec<ImpFan>,
    #[serde(default)]
    pub ads: Vec<ImpAd>,
    #[serde(default)]
    pub chats: Vec<ImpChat>,
    #[serde(default)]
    pub meeting_calls: Vec<ImpMeetingCall>,
}

impl ImportFile {
    /// Parses the JSON import format, naming the bad record on failure
    /// (e.g. `record chats[12].ad_chatting_issend: invalid type …`).
    pub fn from_json(bytes: &[u8]) -> anyhow::Result<ImportFile> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow::anyhow!("record {}: {}", e.path(), e.inner()))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ImpDepartment {
    pub departid: i64,
    pub departname: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ImpGroup {
    pub departgroupid: i64,
    pub departid: i64,
    pub departgroupname: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ImpStaff {
    pub ad_staff_code: String,
    pub ad_staff_name: String,
    pub departid: i64,
    pub departgroupid: i64,
    #[serde(default)]
    pub ad_staff_state: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ImpWechat {
    pub ad_wechat_id: i64,
    pub ad_wechat_nober: String,
    pub ad_wechat_nick: String,
    pub ad_original_nober: String,
    #[serde(default)]
    pub ad_wechat_lei: i64,
    pub ad_staff_code: Option<String>,
    pub ad_wechat_addtime: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ImpFan {
    pub ad_friend_wenober: String,
    #[serde(default)]
    pub ad_friend_uwenober: String,
    pub ad_friend_name: String,
    #[serde(default)]
    pub ad_friend_photo: String,
    pub ad_wechat_id: i64,
    pub ad_staff_code: Option<String>,
    #[serde(default)]
    pub ad_relation_scene: i64,
    #[serde(default)]
    pub ad_relation_state: i64,
    #[serde(default)]
    pub ad_relation_isflock: i64,
    pub ad_friend_addtime: String,
    pub ad_bind_time: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImpAd {
    pub code: String,
    pub name: String,
    pub costs: f64,
    pub state: i64,
    pub build_type: i64,
    pub create_time: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ImpChat {
    pub ad_wechat_id: i64,
    pub ad_chatting_talter: String,
    pub ad_chatting_issend: i64,
    pub ad_chatting_sate: i64,
    pub ad_chatting_content: String,
    pub ad_chatting_resvred: Option<String>,
    pub ad_sermsgid: String,
    pub ad_chatting_time: String,
    pub ad_staff_code: Option<String>,
    #[serde(default)]
    pub ad_voice_txt: Option<String>,
    #[serde(default)]
    pub ad_expand: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ImpMeetingCall {
    pub msg_type: String,
    pub ad_wechat_id: i64,
    pub ad_staff_code: String,
    pub fans_key: String,
    pub start_time: String,
    pub duration: i64,
    pub voice_url: String,
}

/// Per kind: how many records the file had and how many rows were written or changed.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct KindSummary {
    pub records: u64,
    pub changed: u64,
}

pub type ImportSummary = BTreeMap<&'static str, KindSummary>;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A record is wrong; the message names it (kind, position and key).
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl ImportFile {
    pub fn total_records(&self) -> u64 {
        (self.departments.len()
            + self.groups.len()
            + self.staff.len()
            + self.wechats.len()
            + self.fans.len()
            + self.ads.len()
            + self.chats.len()
            + self.meeting_calls.len()) as u64
    }
}

/// Chats handed to `insert_chats_tx` per call: large enough that its multi-row
/// statements run full, small enough for a smooth progress bar.
const IMPORT_CHATS_PER_CALL: usize = 10_000;

/// Validated, converted records, ready to write.
pub(crate) struct Prepared {
    pub(crate) wechat_times: Vec<i64>,
    pub(crate) fan_times: Vec<(i64, Option<i64>)>,
    pub(crate) ad_times: Vec<i64>,
    pub(crate) chats: Vec<NewChat>,
    pub(crate) calls: Vec<NewMeetingCall>,
}

impl Tenant<'_> {
    /// Writes a validated import (`core::import`) in one transaction. `progress` is told
    /// how many records were just handled, for a progress bar.
    pub(crate) async fn write_import(
        &self,
        f: &ImportFile,
        p: Prepared,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<ImportSummary, ImportError> {
        let m = self.m.get();
        let mut tx = self.begin().await?;
        // Lock order (see `insert_chats_tx`): the merchant's `chat` id counter before any
        // fan row. Chat recording takes them in this order; an import that upserted fans
        // first and reached the counter second could deadlock against it on PostgreSQL.
        take_ids(&mut tx.0, self.m, "chat", 0).await?;
        let mut sum = ImportSummary::new();
        let t = now();

        let mut k = KindSummary::default();
        for d in &f.departments {
            let mut q =
                Sql::new("INSERT INTO departments (merchant_id, departid, departname) VALUES (");
            q.bind(m)
                .push(", ")
                .bind(d.departid)
                .push(", ")
                .bind(d.departname.clone());
            q.push(") ON CONFLICT (merchant_id, departid) DO UPDATE SET departname = excluded.departname WHERE departments.departname IS DISTINCT FROM excluded.departname");
            k.changed += q.execute(&mut *tx.0).await?;
            k.records += 1;
            progress(1);
        }
        sum.insert("departments", k);

        let mut k = KindSummary::default();
        for g in &f.groups {
            let mut q = Sql::new("INSERT INTO depart_groups (merchant_id, departgroupid, departid, departgroupname) VALUES (");
            q.bind(m)
                .push(", ")
                .bind(g.departgroupid)
                .push(", ")
                .bind(g.departid)
                .push(", ")
                .bind(g.departgroupname.clone());
            q.push(
                ") ON CONFLICT (merchant_id, departgroupid) DO UPDATE SET departid = excluded.departid, departgroupname = excluded.departgroupname \
                 WHERE depart_groups.departid IS DISTINCT FROM excluded.departid OR depart_groups.departgroupname IS DISTINCT FROM excluded.departgroupname",
            );
            k.changed += q.execute(&mut *tx.0).await?;
            k.records += 1;
            progress(1);
        }
        sum.insert("groups", k);

        let mut k = KindSummary::default();
        for s in &f.staff {
            let mut q = Sql::new("INSERT INTO staff (merchant_id, staff_code, staff_name, departid, departgroupid, staff_state) VALUES (");
            q.bind(m)
                .push(", ")
                .bind(s.ad_staff_code.clone())
                .push(", ")
                .bind(s.ad_staff_name.clone())
                .push(", ")
                .bind(s.departid);
            q.push(", ")
                .bind(s.departgroupid)
                .push(", ")
                .bind(s.ad_staff_state);
            q.push(
                ") ON CONFLICT (merchant_id, staff_code) DO UPDATE SET staff_name = excluded.staff_name, departid = excluded.departid, \
                 departgroupid = excluded.departgroupid, staff_state = excluded.staff_state \
                 WHERE staff.staff_name IS DISTINCT FROM excluded.staff_name OR staff.departid IS DISTINCT FROM excluded.departid \
                 OR staff.departgroupid IS DISTINCT FROM excluded.departgroupid OR staff.staff_state IS DISTINCT FROM excluded.staff_state",
            );
            k.changed += q.execute(&mut *tx.0).await?;
            k.records += 1;
            progress(1);
        }
        sum.insert("staff", k);

        let mut k = KindSummary::default();
        for (w, addtime) in f.wechats.iter().zip(&p.wechat_times) {
            let mut q = Sql::new("INSERT INTO wechats (merchant_id, wechat_id, wechat_nober, wechat_nick, original_nober, wechat_lei, staff_code, addtime) VALUES (");
            q.bind(m)
                .push(", ")
                .bind(w.ad_wechat_id)
                .push(", ")
                .bind(w.ad_wechat_nober.clone())
                .push(", ")
                .bind(w.ad_wechat_nick.clone());
            q.push(", ")
                .bind(w.ad_original_nober.clone())
                .push(", ")
                .bind(w.ad_wechat_lei)
                .push(", ")
                .bind(w.ad_staff_code.clone())
                .push(", ")
                .bind(*addtime);
            q.push(
                ") ON CONFLICT (merchant_id, wechat_id) DO UPDATE SET wechat_nober = excluded.wechat_nober, wechat_nick = excluded.wechat_nick, \
                 original_nober = excluded.original_nober, wechat_lei = excluded.wechat_lei, staff_code = excluded.staff_code, addtime = excluded.addtime \
                 WHERE wechats.wechat_nober IS DISTINCT FROM excluded.wechat_nober OR wechats.wechat_nick IS DISTINCT FROM excluded.wechat_nick \
                 OR wechats.original_nober IS DISTINCT FROM excluded.original_nober OR wechats.wechat_lei IS DISTINCT FROM excluded.wechat_lei \
                 OR wechats.staff_code IS DISTINCT FROM excluded.staff_code OR wechats.addtime IS DISTINCT FROM excluded.addtime",
            );
            k.changed += q
                .execute(&mut *tx.0)
                .await
                .map_err(|e| unique_to_invalid(e, "wechats", &w.ad_wechat_id.to_string()))?;
            k.records += 1;
            progress(1);
        }
        sum.insert("wechats", k);

        let mut k = KindSummary::default();
        for (fan, (add, bind)) in f.fans.iter().zip(&p.fan_times) {
            k.changed += upsert_fan(&mut tx, self, fan, *add, *bind, t).await?;
            k.records += 1;
            progress(1);
        }
        sum.insert("fans", k);

        let mut k = KindSummary::default();
        for (a, ct) in f.ads.iter().zip(&p.ad_times) {
            let mut q = Sql::new("SELECT ad_id FROM ads WHERE merchant_id = ");
            q.bind(m).push(" AND code = ").bind(a.code.clone());
            let existing: Option<(i64,)> = q.fetch_optional(&mut *tx.0).await?;
            let n = match existing {
                Some((id,)) => {
                    let mut q = Sql::new("UPDATE ads SET name = ");
                    q.bind(a.name.clone())
                        .push(", costs = ")
                        .bind(a.costs)
                        .push(", state = ")
                        .bind(a.state)
                        .push(", build_type = ")
                        .bind(a.build_type);
                    q.push(", create_time = ")
                        .bind(*ct)
                        .push(" WHERE merchant_id = ")
                        .bind(m)
                        .push(" AND ad_id = ")
                        .bind(id);
                    q.push(" AND (name <> ")
                        .bind(a.name.clone())
                        .push(" OR costs <> ")
                        .bind(a.costs)
                        .push(" OR state <> ")
                        .bind(a.state);
                    q.push(" OR build_type <> ")
                        .bind(a.build_type)
                        .push(" OR create_time <> ")
                        .bind(*ct)
                        .push(")");
                    q.execute(&mut *tx.0).await?
                }
                None => {
                    let id = take_ids(&mut tx.0, self.m, "ad", 1).await?;
                    let mut q = Sql::new("INSERT INTO ads (merchant_id, ad_id, code, name, costs, state, build_type, create_time) VALUES (");
                    q.bind(m)
                        .push(", ")
                        .bind(id)
                        .push(", ")
                        .bind(a.code.clone())
                        .push(", ")
                        .bind(a.name.clone())
                        .push(", ")
                        .bind(a.costs);
                    q.push(", ")
                        .bind(a.state)
                        .push(", ")
                        .bind(a.build_type)
                        .push(", ")
                        .bind(*ct)
                        .push(")");
                    q.execute(&mut *tx.0).await?
                }
            };
            k.changed += n;
            k.records += 1;
            progress(1);
        }
        sum.insert("ads", k);

        let mut k = KindSummary {
            records: p.chats.len() as u64,
            changed: 0,
        };
        for chunk in p.chats.chunks(IMPORT_CHATS_PER_CALL) {
            let ids = insert_chats_tx(&mut tx.0, self.m, chunk).await?;
            super::chats::note_chats(&mut tx.2, &ids);
            k.changed += ids.len() as u64;
            progress(chunk.len() as u64);
        }
        sum.insert("chats", k);

        let mut k = KindSummary::default();
        for c in &p.calls {
            let mut q = Sql::new("SELECT COUNT(*) FROM meeting_calls WHERE merchant_id = ");
            q.bind(m)
                .push(" AND wechat_id = ")
                .bind(c.wechat_id)
                .push(" AND fans_key = ")
                .bind(c.fans_key.clone());
            q.push(" AND start_time = ")
                .bind(c.start_time)
                .push(" AND msg_type = ")
                .bind(c.msg_type.clone());
            if q.scalar::<i64, _>(&mut *tx.0).await? == 0 {
                let id = take_ids(&mut tx.0, self.m, "meeting_call", 1).await?;
                let mut q = Sql::new("INSERT INTO meeting_calls (merchant_id, call_id, msg_type, wechat_id, staff_code, fans_key, start_time, duration, voice_url) VALUES (");
                q.bind(m)
                    .push(", ")
                    .bind(id)
                    .push(", ")
                    .bind(c.msg_type.clone())
                    .push(", ")
                    .bind(c.wechat_id)
                    .push(", ")
                    .bind(c.staff_code.clone());
                q.push(", ")
                    .bind(c.fans_key.clone())
                    .push(", ")
                    .bind(c.start_time)
                    .push(", ")
                    .bind(c.duration)
                    .push(", ")
                    .bind(c.voice_url.clone())
                    .push(")");
                k.changed += q.execute(&mut *tx.0).await?;
            }
            k.records += 1;
            progress(1);
        }
        sum.insert("meeting_calls", k);

        tx.commit().await?;
        Ok(sum)
    }
}

fn unique_to_invalid(e: sqlx::Error, kind: &str, key: &str) -> ImportError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => ImportError::Invalid(format!(
            "{kind} ({key}): conflicts with an existing record ({d})"
        )),
        _ => ImportError::Db(e),
    }
}

async fn upsert_fan(
    tx: &mut Tx,
    t: &Tenant<'_>,
    fan: &ImpFan,
    add: i64,
    bind: Option<i64>,
    now: i64,
) -> Result<u64, ImportError> {
    let m = t.m.get();
    let mut q = Sql::new("SELECT fan_id FROM fans WHERE merchant_id = ");
    q.bind(m)
        .push(" AND wechat_id = ")
        .bind(fan.ad_wechat_id)
        .push(" AND wenober = ")
        .bind(fan.ad_friend_wenober.clone());
    let existing: Option<(i64,)> = q.fetch_optional(&mut *tx.0).await?;
    let n = match existing {
        Some((id,)) => {
            let mut q = Sql::new("UPDATE fans SET uwenober = ");
            q.bind(fan.ad_friend_uwenober.clone())
                .push(", name = ")
                .bind(fan.ad_friend_name.clone())
                .push(", photo = ")
                .bind(fan.ad_friend_photo.clone());
            q.push(", staff_code = ")
                .bind(fan.ad_staff_code.clone())
                .push(", relation_scene = ")
                .bind(fan.ad_relation_scene);
            q.push(", relation_state = ")
                .bind(fan.ad_relation_state)
                .push(", relation_isflock = ")
                .bind(fan.ad_relation_isflock);
            q.push(", addtime = ")
                .bind(add)
                .push(", bind_time = ")
                .bind(bind)
                .push(", updated_at = ")
                .bind(now);
            q.push(" WHERE merchant_id = ")
                .bind(m)
                .push(" AND fan_id = ")
                .bind(id)
                .push(" AND (uwenober IS DISTINCT FROM ")
                .bind(fan.ad_friend_uwenober.clone());
            q.push(" OR name IS DISTINCT FROM ")
                .bind(fan.ad_friend_name.clone())
                .push(" OR photo IS DISTINCT FROM ")
                .bind(fan.ad_friend_photo.clone());
            q.push(" OR staff_code IS DISTINCT FROM ")
                .bind(fan.ad_staff_code.clone())
                .push(" OR relation_scene IS DISTINCT FROM ")
                .bind(fan.ad_relation_scene);
            q.push(" OR relation_state IS DISTINCT FROM ")
                .bind(fan.ad_relation_state)
                .push(" OR relation_isflock IS DISTINCT FROM ")
                .bind(fan.ad_relation_isflock);
            q.push(" OR addtime IS DISTINCT FROM ")
                .bind(add)
                .push(" OR bind_time IS DISTINCT FROM ")
                .bind(bind)
                .push(")");
            q.execute(&mut *tx.0).await?
        }
        None => {
            let id = take_ids(&mut tx.0, t.m, "fan", 1).await?;
            // Chats may arrive before their fan; a separate read (not a subquery in the
            // INSERT) keeps the statement routable on a sharded (Citus) table.
            let mut q = Sql::new("SELECT MAX(chat_time) FROM chats WHERE merchant_id = ");
            q.bind(m)
                .push(" AND wechat_id = ")
                .bind(fan.ad_wechat_id)
                .push(" AND talker = ")
                .bind(fan.ad_friend_wenober.clone());
            let last_chat: Option<i64> = q.scalar(&mut *tx.0).await?;
            let mut q = Sql::new(
                "INSERT INTO fans (merchant_id, fan_id, wechat_id, wenober, uwenober, name, photo, staff_code, relation_scene, relation_state, relation_isflock, addtime, bind_time, last_chat_time, updated_at) VALUES (",
            );
            q.bind(m)
                .push(", ")
                .bind(id)
                .push(", ")
                .bind(fan.ad_wechat_id)
                .push(", ")
                .bind(fan.ad_friend_wenober.clone())
                .push(", ")
                .bind(fan.ad_friend_uwenober.clone());
            q.push(", ")
                .bind(fan.ad_friend_name.clone())
                .push(", ")
                .bind(fan.ad_friend_photo.clone())
                .push(", ")
                .bind(fan.ad_staff_code.clone());
            q.push(", ")
                .bind(fan.ad_relation_scene)
                .push(", ")
                .bind(fan.ad_relation_state)
                .push(", ")
                .bind(fan.ad_relation_isflock);
            q.push(", ")
                .bind(add)
                .push(", ")
                .bind(bind)
                .push(", ")
                .bind(last_chat)
                .push(", ")
                .bind(now)
                .push(")");
            q.execute(&mut *tx.0).await?
        }
    };
    Ok(n)
}
