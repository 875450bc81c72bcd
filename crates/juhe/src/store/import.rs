//! Bulk import of a merchant's organisation and history from the JSON import format
//! (`shared/fixtures/org-example.json`). Everything is validated before anything is
//! written, and everything is written in one transaction: a bad record imports nothing.
//! Re-importing the same file changes nothing (rows are matched on their natural keys
//! and only rewritten when a value differs; chats and call recordings are insert-only,
//! matched on their message id and natural key).

use std::collections::{BTreeMap, HashSet};

use chrono::FixedOffset;
use serde::{Deserialize, Serialize};

use super::chats::{insert_chats_tx, NewChat};
use super::idempotency::Tx;
use super::misc::NewMeetingCall;
use super::{now, take_ids, Sql, Tenant};
use crate::timefmt::parse_local;

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

fn time(
    kind: &str,
    i: usize,
    key: &str,
    field: &str,
    v: &str,
    off: FixedOffset,
) -> Result<i64, ImportError> {
    parse_local(v, off).ok_or_else(|| {
        ImportError::Invalid(format!(
            "{kind}[{i}] ({key}): {field} {v:?} is not a time like 2024-05-02 10:00:00"
        ))
    })
}

fn nonempty(kind: &str, i: usize, field: &str, v: &str) -> Result<(), ImportError> {
    if v.trim().is_empty() {
        return Err(ImportError::Invalid(format!(
            "{kind}[{i}]: {field} must not be empty"
        )));
    }
    Ok(())
}

/// Chats handed to `insert_chats_tx` per call: large enough that its multi-row
/// statements run full, small enough for a smooth progress bar.
const IMPORT_CHATS_PER_CALL: usize = 10_000;

/// Validated, converted records, ready to write.
struct Prepared {
    wechat_times: Vec<i64>,
    fan_times: Vec<(i64, Option<i64>)>,
    ad_times: Vec<i64>,
    chats: Vec<NewChat>,
    calls: Vec<NewMeetingCall>,
}

fn prepare(
    f: &ImportFile,
    off: FixedOffset,
    known_wechats: &HashSet<i64>,
) -> Result<Prepared, ImportError> {
    let mut wechats: HashSet<i64> = known_wechats.clone();
    let mut seen = HashSet::new();
    for (i, d) in f.departments.iter().enumerate() {
        nonempty("departments", i, "departname", &d.departname)?;
        if !seen.insert(d.departid) {
            return Err(ImportError::Invalid(format!(
                "departments[{i}]: departid {} appears twice",
                d.departid
            )));
        }
    }
    for (i, g) in f.groups.iter().enumerate() {
        nonempty("groups", i, "departgroupname", &g.departgroupname)?;
    }
    for (i, s) in f.staff.iter().enumerate() {
        nonempty("staff", i, "ad_staff_code", &s.ad_staff_code)?;
        if !(s.ad_staff_state == 0 || s.ad_staff_state == 1) {
            return Err(ImportError::Invalid(format!(
                "staff[{i}] ({}): ad_staff_state must be 0 or 1",
                s.ad_staff_code
            )));
        }
    }
    let mut wechat_times = Vec::new();
    for (i, w) in f.wechats.iter().enumerate() {
        nonempty("wechats", i, "ad_original_nober", &w.ad_original_nober)?;
        if !(w.ad_wechat_lei == 0 || w.ad_wechat_lei == 3) {
            return Err(ImportError::Invalid(format!(
                "wechats[{i}] ({}): ad_wechat_lei must be 0 or 3",
                w.ad_wechat_id
            )));
        }
        wechat_times.push(time(
            "wechats",
            i,
            &w.ad_wechat_id.to_string(),
            "ad_wechat_addtime",
            &w.ad_wechat_addtime,
            off,
        )?);
        wechats.insert(w.ad_wechat_id);
    }
    let mut fan_times = Vec::new();
    for (i, fan) in f.fans.iter().enumerate() {
        nonempty("fans", i, "ad_friend_wenober", &fan.ad_friend_wenober)?;
        let key = &fan.ad_friend_wenober;
        if !wechats.contains(&fan.ad_wechat_id) {
            return Err(ImportError::Invalid(format!("fans[{i}] ({key}): ad_wechat_id {} is not an operating account in the file or the store", fan.ad_wechat_id)));
        }
        let add = time(
            "fans",
            i,
            key,
            "ad_friend_addtime",
            &fan.ad_friend_addtime,
            off,
        )?;
        let bind = match &fan.ad_bind_time {
            Some(b) if !b.trim().is_empty() => Some(time("fans", i, key, "ad_bind_time", b, off)?),
            _ => None,
        };
        fan_times.push((add, bind));
    }
    let mut ad_times = Vec::new();
    for (i, a) in f.ads.iter().enumerate() {
        nonempty("ads", i, "code", &a.code)?;
        if !a.costs.is_finite() {
            return Err(ImportError::Invalid(format!(
                "ads[{i}] ({}): costs must be a number",
                a.code
            )));
        }
        ad_times.push(time("ads", i, &a.code, "createTime", &a.create_time, off)?);
    }
    let mut chats = Vec::with_capacity(f.chats.len());
    for (i, c) in f.chats.iter().enumerate() {
        let key = &c.ad_sermsgid;
        nonempty("chats", i, "ad_sermsgid", key)?;
        nonempty("chats", i, "ad_chatting_talter", &c.ad_chatting_talter)?;
        if !wechats.contains(&c.ad_wechat_id) {
            return Err(ImportError::Invalid(format!("chats[{i}] ({key}): ad_wechat_id {} is not an operating account in the file or the store", c.ad_wechat_id)));
        }
        if !(c.ad_chatting_issend == 0 || c.ad_chatting_issend == 1) {
            return Err(ImportError::Invalid(format!(
                "chats[{i}] ({key}): ad_chatting_issend must be 0 or 1"
            )));
        }
        if let Some(r) = &c.ad_chatting_resvred {
            let decoded = percent_encoding::percent_decode_str(r)
                .decode_utf8()
                .map_err(|_| {
                    ImportError::Invalid(format!(
                        "chats[{i}] ({key}): ad_chatting_resvred is not url-encoded UTF-8"
                    ))
                })?;
            if serde_json::from_str::<serde_json::Value>(&decoded).is_err() {
                return Err(ImportError::Invalid(format!(
                    "chats[{i}] ({key}): ad_chatting_resvred does not url-decode to JSON"
                )));
            }
        }
        chats.push(NewChat {
            wechat_id: c.ad_wechat_id,
            talker: c.ad_chatting_talter.clone(),
            issend: c.ad_chatting_issend,
            msg_type: c.ad_chatting_sate,
            content: c.ad_chatting_content.clone(),
            resvred: c.ad_chatting_resvred.clone(),
            sermsgid: c.ad_sermsgid.clone(),
            chat_time: time(
                "chats",
                i,
                key,
                "ad_chatting_time",
                &c.ad_chatting_time,
                off,
            )?,
            staff_code: c.ad_staff_code.clone(),
            voice_txt: c.ad_voice_txt.clone(),
            expand: c.ad_expand.clone().unwrap_or_default(),
        });
    }
    // Ids follow time, so GetChat's id order is also chronological for imported history.
    chats.sort_by(|a, b| {
        a.chat_time
            .cmp(&b.chat_time)
            .then_with(|| a.sermsgid.cmp(&b.sermsgid))
    });
    let mut calls = Vec::new();
    for (i, c) in f.meeting_calls.iter().enumerate() {
        if !(c.msg_type == "meeting_voice_call" || c.msg_type == "voip_voice") {
            return Err(ImportError::Invalid(format!(
                "meeting_calls[{i}]: msg_type must be meeting_voice_call or voip_voice"
            )));
        }
        if !wechats.contains(&c.ad_wechat_id) {
            return Err(ImportError::Invalid(format!("meeting_calls[{i}]: ad_wechat_id {} is not an operating account in the file or the store", c.ad_wechat_id)));
        }
        calls.push(NewMeetingCall {
            msg_type: c.msg_type.clone(),
            wechat_id: c.ad_wechat_id,
            staff_code: c.ad_staff_code.clone(),
            fans_key: c.fans_key.clone(),
            start_time: time(
                "meeting_calls",
                i,
                &c.fans_key,
                "start_time",
                &c.start_time,
                off,
            )?,
            duration: c.duration,
            voice_url: c.voice_url.clone(),
        });
    }
    Ok(Prepared {
        wechat_times,
        fan_times,
        ad_times,
        chats,
        calls,
    })
}

impl Tenant<'_> {
    /// Imports a whole file in one transaction. `progress` is told how many records were
    /// just handled, for a progress bar.
    pub async fn import(
        &self,
        f: &ImportFile,
        off: FixedOffset,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<ImportSummary, ImportError> {
        let known: HashSet<i64> = self
            .wechats()
            .await?
            .into_iter()
            .map(|w| w.wechat_id)
            .collect();
        let p = prepare(f, off, &known)?;
        let m = self.m.get();
        let mut tx = self.begin().await?;
        // Lock order (see `insert_chats_tx`): the merchant's `chat` id counter before any
        // fan row. Chat recording takes them in this order; an import that upserted fans
        // first and reached the counter second could deadlock against it on PostgreSQL.
        take_ids(&mut tx, self.m, "chat", 0).await?;
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
            k.changed += q.execute(&mut *tx).await?;
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
            k.changed += q.execute(&mut *tx).await?;
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
            k.changed += q.execute(&mut *tx).await?;
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
                .execute(&mut *tx)
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
            let existing: Option<(i64,)> = q.fetch_optional(&mut *tx).await?;
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
                    q.execute(&mut *tx).await?
                }
                None => {
                    let id = take_ids(&mut tx, self.m, "ad", 1).await?;
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
                    q.execute(&mut *tx).await?
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
            k.changed += insert_chats_tx(&mut tx, self.m, chunk).await?.len() as u64;
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
            if q.scalar::<i64, _>(&mut *tx).await? == 0 {
                let id = take_ids(&mut tx, self.m, "meeting_call", 1).await?;
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
                k.changed += q.execute(&mut *tx).await?;
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
    let existing: Option<(i64,)> = q.fetch_optional(&mut **tx).await?;
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
            q.execute(&mut **tx).await?
        }
        None => {
            let id = take_ids(tx, t.m, "fan", 1).await?;
            // Chats may arrive before their fan; a separate read (not a subquery in the
            // INSERT) keeps the statement routable on a sharded (Citus) table.
            let mut q = Sql::new("SELECT MAX(chat_time) FROM chats WHERE merchant_id = ");
            q.bind(m)
                .push(" AND wechat_id = ")
                .bind(fan.ad_wechat_id)
                .push(" AND talker = ")
                .bind(fan.ad_friend_wenober.clone());
            let last_chat: Option<i64> = q.scalar(&mut **tx).await?;
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
            q.execute(&mut **tx).await?
        }
    };
    Ok(n)
}
