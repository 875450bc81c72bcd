//! Importing a merchant's organisation and history from the JSON import format
//! (`shared/fixtures/org-example.json`, `docs/api.md` §3). Everything is validated here
//! before anything is written; the store then writes it all in one transaction, chats
//! through the same write path as [`super::chats::record`], so a bad record imports
//! nothing and re-importing a file changes nothing.

use std::collections::HashSet;

use chrono::FixedOffset;

pub use crate::store::import::{ImportError, ImportFile, ImportSummary, KindSummary};

use super::Rejection;
use crate::store::chats::NewChat;
use crate::store::import::Prepared;
use crate::store::misc::NewMeetingCall;
use crate::store::Tenant;
use crate::timefmt::parse_local;

/// Validates `f` against itself and the merchant's stored operating accounts, then imports
/// it in one transaction. Local times in the file are read in `off`. `progress` is told how
/// many records were just written, for a progress bar.
pub async fn import(
    t: Tenant<'_>,
    f: &ImportFile,
    off: FixedOffset,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ImportSummary, ImportError> {
    let known: HashSet<i64> = t
        .wechats()
        .await?
        .into_iter()
        .map(|w| w.wechat_id)
        .collect();
    let p = prepare(f, off, &known)?;
    t.write_import(f, p, progress).await
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
        if !wechats.contains(&c.ad_wechat_id) {
            return Err(ImportError::Invalid(format!("chats[{i}] ({key}): ad_wechat_id {} is not an operating account in the file or the store", c.ad_wechat_id)));
        }
        let chat = NewChat {
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
        };
        // The same rules as every other way a chat is recorded.
        if let Err(r) = super::chats::check(&chat) {
            return Err(ImportError::Invalid(match r {
                Rejection::Invalid { field, problem } => {
                    format!("chats[{i}] ({key}): {field} {problem}")
                }
                other => format!("chats[{i}] ({key}): {other}"),
            }));
        }
        chats.push(chat);
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
