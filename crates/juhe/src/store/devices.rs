//! Assistant devices (助手) and what they report: the operating accounts they serve, fans
//! and voice calls. Chats go through `core::chats` like every other chat; tasks are in
//! `tasks.rs`. See docs/assistant-protocol.md.

use serde::Serialize;

use super::admin::{sha256_hex, Admin};
use super::idempotency::Tx;
use super::{now, take_ids, MerchantId, Sql, Store, Tenant};

/// Printed once by `juhe device create`; only the token's hash is stored.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCredentials {
    pub device_id: i64,
    pub device_token: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRow {
    pub device_id: i64,
    pub name: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_seen_at: Option<i64>,
    /// Operating accounts this device serves.
    pub accounts: i64,
}

/// Who a device token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceAuth {
    pub merchant: MerchantId,
    pub device_id: i64,
}

fn device_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    format!("dev_{}", hex::encode(b))
}

impl Admin<'_> {
    pub async fn create_device(
        &self,
        m: MerchantId,
        name: &str,
    ) -> Result<DeviceCredentials, sqlx::Error> {
        let token = device_token();
        let mut tx = self.store.begin_write().await?;
        let id = take_ids(&mut tx, m, "device", 1).await?;
        let mut q = Sql::new(
            "INSERT INTO devices (merchant_id, device_id, name, token_hash, created_at) VALUES (",
        );
        q.bind(m.get())
            .push(", ")
            .bind(id)
            .push(", ")
            .bind(name.to_owned())
            .push(", ")
            .bind(sha256_hex(&token))
            .push(", ")
            .bind(now())
            .push(")");
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(DeviceCredentials {
            device_id: id,
            device_token: token,
        })
    }

    pub async fn devices(&self, m: MerchantId) -> Result<Vec<DeviceRow>, sqlx::Error> {
        let mut q = Sql::new(
            "SELECT d.device_id, d.name, d.created_at, d.revoked_at, d.last_seen_at, \
             (SELECT COUNT(*) FROM wechats w WHERE w.merchant_id = d.merchant_id AND w.device_id = d.device_id) AS accounts \
             FROM devices d WHERE d.merchant_id = ",
        );
        q.bind(m.get()).push(" ORDER BY d.device_id");
        q.fetch_all(self.store.read_pool()).await
    }

    /// Revokes a device's token. Its connections close within a poll interval in every
    /// process (`revoked_since`); its accounts stay, and can be claimed by another device.
    /// `false`: no such device, or already revoked.
    pub async fn revoke_device(&self, m: MerchantId, device_id: i64) -> Result<bool, sqlx::Error> {
        let mut tx = self.store.begin_write().await?;
        let mut q = Sql::new("UPDATE devices SET revoked_at = ");
        q.bind(now())
            .push(" WHERE merchant_id = ")
            .bind(m.get())
            .push(" AND device_id = ")
            .bind(device_id)
            .push(" AND revoked_at IS NULL");
        let n = q.execute(&mut *tx).await?;
        if n > 0 {
            let mut q =
                Sql::new("UPDATE wechats SET device_id = NULL, online = 0 WHERE merchant_id = ");
            q.bind(m.get()).push(" AND device_id = ").bind(device_id);
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }
}

impl Store {
    /// The device a token belongs to, unless it was revoked.
    pub async fn device_by_token(&self, token: &str) -> Result<Option<DeviceAuth>, sqlx::Error> {
        let mut q = Sql::new("SELECT merchant_id, device_id FROM devices WHERE token_hash = ");
        q.bind(sha256_hex(token)).push(" AND revoked_at IS NULL");
        let row: Option<(i64, i64)> = q.fetch_optional(self.read_pool()).await?;
        Ok(row.map(|(m, d)| DeviceAuth {
            merchant: MerchantId::from_db(m),
            device_id: d,
        }))
    }

    /// Devices revoked at or after `since` (Unix seconds), in any merchant: every process
    /// polls this to close their connections.
    pub async fn revoked_since(&self, since: i64) -> Result<Vec<DeviceAuth>, sqlx::Error> {
        let mut q = Sql::new("SELECT merchant_id, device_id FROM devices WHERE revoked_at >= ");
        q.bind(since);
        let rows: Vec<(i64, i64)> = q.fetch_all(self.read_pool()).await?;
        Ok(rows
            .into_iter()
            .map(|(m, d)| DeviceAuth {
                merchant: MerchantId::from_db(m),
                device_id: d,
            })
            .collect())
    }
}

/// An operating account as an assistant reports it.
#[derive(Debug, Clone, Default)]
pub struct AccountReport {
    pub original_nober: String,
    pub wechat_nober: String,
    pub nick: String,
    pub wechat_lei: i64,
    pub online: bool,
}

/// What reporting an account found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountClaim {
    Served {
        wechat_id: i64,
        created: bool,
    },
    /// Another device serves it.
    OtherDevice,
}

/// A fan as an assistant reports it; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct FanReport {
    pub wenober: String,
    pub uwenober: Option<String>,
    pub name: Option<String>,
    pub photo: Option<String>,
    pub remark: Option<String>,
    /// JSON array of strings.
    pub tags: Option<String>,
    pub scene: Option<i64>,
    pub state: Option<i64>,
    pub isflock: Option<i64>,
    pub addtime: Option<i64>,
}

/// A voice-call record as an assistant reports it.
#[derive(Debug, Clone)]
pub struct CallReport {
    pub msg_type: String,
    pub fans_key: String,
    pub staff_code: String,
    pub start_time: i64,
    pub duration: i64,
    pub voice_url: String,
}

#[derive(sqlx::FromRow)]
struct StoredFan {
    fan_id: i64,
    uwenober: String,
    name: String,
    photo: String,
    remark: String,
    tags: String,
    relation_scene: i64,
    relation_state: i64,
    relation_isflock: i64,
    addtime: i64,
}

impl Store {
    /// The goodbye of [`Tenant::device_disconnected`] for these (merchant, device) pairs,
    /// a few hundred to a transaction: at shutdown, for the connections this process still
    /// holds. Each pair names its own merchant.
    pub async fn devices_offline(&self, devices: &[(i64, i64)]) -> Result<(), sqlx::Error> {
        let t = now();
        for chunk in devices.chunks(500) {
            let mut tx = self.begin_write().await?;
            for (m, d) in chunk {
                disconnect_tx(&mut tx, *m, *d, t).await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }
}

/// Marks every account of the device offline and notes when the device was last seen.
async fn disconnect_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    m: i64,
    device_id: i64,
    t: i64,
) -> Result<(), sqlx::Error> {
    let mut q = Sql::new("UPDATE wechats SET online = 0, status_at = ");
    q.bind(t)
        .push(" WHERE merchant_id = ")
        .bind(m)
        .push(" AND device_id = ")
        .bind(device_id)
        .push(" AND online = 1");
    q.execute(&mut **tx).await?;
    let mut q = Sql::new("UPDATE devices SET last_seen_at = ");
    q.bind(t)
        .push(" WHERE merchant_id = ")
        .bind(m)
        .push(" AND device_id = ")
        .bind(device_id);
    q.execute(&mut **tx).await?;
    Ok(())
}

impl Tenant<'_> {
    /// Records an account's profile and status for `device_id`, creating the account on
    /// first sight (a new `ad_wechat_id`) and claiming an imported account no device serves.
    pub async fn report_account(
        &self,
        device_id: i64,
        a: &AccountReport,
    ) -> Result<AccountClaim, sqlx::Error> {
        let mut tx = self.store.begin_write().await?;
        let mut q = Sql::new("SELECT wechat_id, device_id FROM wechats WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND original_nober = ")
            .bind(a.original_nober.clone());
        let found: Option<(i64, Option<i64>)> = q.fetch_optional(&mut *tx).await?;
        let t = now();
        let claim = match found {
            Some((_, Some(d))) if d != device_id => AccountClaim::OtherDevice,
            Some((wechat_id, _)) => {
                let mut q = Sql::new("UPDATE wechats SET device_id = ");
                q.bind(device_id)
                    .push(", wechat_nober = ")
                    .bind(a.wechat_nober.clone())
                    .push(", wechat_nick = ")
                    .bind(a.nick.clone())
                    .push(", wechat_lei = ")
                    .bind(a.wechat_lei);
                q.push(", online = ")
                    .bind(a.online as i64)
                    .push(", status_at = ")
                    .bind(t)
                    .push(" WHERE merchant_id = ")
                    .bind(self.m.get())
                    .push(" AND wechat_id = ")
                    .bind(wechat_id);
                q.execute(&mut *tx).await?;
                AccountClaim::Served {
                    wechat_id,
                    created: false,
                }
            }
            None => {
                // The counter first (it serialises concurrent creations), then the highest
                // id in use: imported accounts carry their own ids, which the counter never
                // saw.
                let next = take_ids(&mut tx, self.m, "wechat", 1).await?;
                let mut q = Sql::new(
                    "SELECT COALESCE(MAX(wechat_id), 0) FROM wechats WHERE merchant_id = ",
                );
                q.bind(self.m.get());
                let max: i64 = q.scalar(&mut *tx).await?;
                let id = next.max(max + 1);
                if id != next {
                    let mut q = Sql::new("UPDATE id_counters SET last_id = ");
                    q.bind(id)
                        .push(" WHERE merchant_id = ")
                        .bind(self.m.get())
                        .push(" AND kind = 'wechat'");
                    q.execute(&mut *tx).await?;
                }
                let mut q = Sql::new("INSERT INTO wechats (merchant_id, wechat_id, wechat_nober, wechat_nick, original_nober, wechat_lei, staff_code, addtime, device_id, online, status_at) VALUES (");
                q.bind(self.m.get())
                    .push(", ")
                    .bind(id)
                    .push(", ")
                    .bind(a.wechat_nober.clone())
                    .push(", ")
                    .bind(a.nick.clone())
                    .push(", ")
                    .bind(a.original_nober.clone());
                q.push(", ")
                    .bind(a.wechat_lei)
                    .push(", NULL, ")
                    .bind(t)
                    .push(", ")
                    .bind(device_id)
                    .push(", ")
                    .bind(a.online as i64)
                    .push(", ")
                    .bind(t)
                    .push(")");
                q.execute(&mut *tx).await?;
                AccountClaim::Served {
                    wechat_id: id,
                    created: true,
                }
            }
        };
        tx.commit().await?;
        Ok(claim)
    }

    /// The accounts `device_id` serves: `(ad_wechat_id, original id)`.
    pub async fn device_accounts(&self, device_id: i64) -> Result<Vec<(i64, String)>, sqlx::Error> {
        let mut q = Sql::new("SELECT wechat_id, original_nober FROM wechats WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND device_id = ")
            .bind(device_id)
            .push(" ORDER BY wechat_id");
        q.fetch_all(self.store.read_pool()).await
    }

    /// Marks every account of the device offline (its connection closed) and notes when
    /// the device was last seen.
    pub async fn device_disconnected(&self, device_id: i64) -> Result<(), sqlx::Error> {
        let mut tx = self.store.begin_write().await?;
        disconnect_tx(&mut tx, self.m.get(), device_id, now()).await?;
        tx.commit().await
    }

    /// Upserts reported fans of one account in the caller's transaction: a fan seen first is
    /// created (owned by the account's staff member), a known fan gets the fields that were
    /// reported. Returns (created, updated).
    pub async fn report_fans_in(
        &self,
        tx: &mut Tx,
        wechat_id: i64,
        fans: &[FanReport],
    ) -> Result<(u64, u64), sqlx::Error> {
        // Lock order: the chat counter before any fan row (docs/architecture.md).
        take_ids(&mut tx.0, self.m, "chat", 0).await?;
        let mut q = Sql::new("SELECT staff_code FROM wechats WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND wechat_id = ")
            .bind(wechat_id);
        let owner: Option<(Option<String>,)> = q.fetch_optional(&mut *tx.0).await?;
        let owner = owner.and_then(|(s,)| s);
        let t = now();
        let (mut created, mut updated) = (0, 0);
        // (fan id, change) of every fan this report changed, for fansInfoChange events.
        let mut changed: Vec<(i64, &'static str)> = Vec::new();
        for f in fans {
            let mut q = Sql::new("SELECT fan_id, uwenober, name, photo, remark, tags, relation_scene, relation_state, relation_isflock, addtime FROM fans WHERE merchant_id = ");
            q.bind(self.m.get())
                .push(" AND wechat_id = ")
                .bind(wechat_id)
                .push(" AND wenober = ")
                .bind(f.wenober.clone());
            let stored: Option<StoredFan> = q.fetch_optional(&mut *tx.0).await?;
            match stored {
                Some(s) => {
                    let new = StoredFan {
                        fan_id: s.fan_id,
                        uwenober: f.uwenober.clone().unwrap_or(s.uwenober.clone()),
                        name: f.name.clone().unwrap_or(s.name.clone()),
                        photo: f.photo.clone().unwrap_or(s.photo.clone()),
                        remark: f.remark.clone().unwrap_or(s.remark.clone()),
                        tags: f.tags.clone().unwrap_or(s.tags.clone()),
                        relation_scene: f.scene.unwrap_or(s.relation_scene),
                        relation_state: f.state.unwrap_or(s.relation_state),
                        relation_isflock: f.isflock.unwrap_or(s.relation_isflock),
                        addtime: f.addtime.unwrap_or(s.addtime),
                    };
                    let same = new.uwenober == s.uwenober
                        && new.name == s.name
                        && new.photo == s.photo
                        && new.remark == s.remark
                        && new.tags == s.tags
                        && new.relation_scene == s.relation_scene
                        && new.relation_state == s.relation_state
                        && new.relation_isflock == s.relation_isflock
                        && new.addtime == s.addtime;
                    if same {
                        continue;
                    }
                    let mut q = Sql::new("UPDATE fans SET uwenober = ");
                    q.bind(new.uwenober)
                        .push(", name = ")
                        .bind(new.name)
                        .push(", photo = ")
                        .bind(new.photo)
                        .push(", remark = ")
                        .bind(new.remark)
                        .push(", tags = ")
                        .bind(new.tags);
                    q.push(", relation_scene = ")
                        .bind(new.relation_scene)
                        .push(", relation_state = ")
                        .bind(new.relation_state)
                        .push(", relation_isflock = ")
                        .bind(new.relation_isflock)
                        .push(", addtime = ")
                        .bind(new.addtime)
                        .push(", updated_at = ")
                        .bind(t);
                    q.push(" WHERE merchant_id = ")
                        .bind(self.m.get())
                        .push(" AND fan_id = ")
                        .bind(s.fan_id);
                    q.execute(&mut *tx.0).await?;
                    updated += 1;
                    let deleted = new.relation_state != 0 && s.relation_state == 0;
                    changed.push((s.fan_id, if deleted { "deleted" } else { "changed" }));
                }
                None => {
                    let id = take_ids(&mut tx.0, self.m, "fan", 1).await?;
                    let mut q = Sql::new("SELECT MAX(chat_time) FROM chats WHERE merchant_id = ");
                    q.bind(self.m.get())
                        .push(" AND wechat_id = ")
                        .bind(wechat_id)
                        .push(" AND talker = ")
                        .bind(f.wenober.clone());
                    let last_chat: Option<i64> = q.scalar(&mut *tx.0).await?;
                    let mut q = Sql::new(
                        "INSERT INTO fans (merchant_id, fan_id, wechat_id, wenober, uwenober, name, photo, staff_code, relation_scene, relation_state, relation_isflock, addtime, bind_time, last_chat_time, updated_at, remark, tags) VALUES (",
                    );
                    q.bind(self.m.get())
                        .push(", ")
                        .bind(id)
                        .push(", ")
                        .bind(wechat_id)
                        .push(", ")
                        .bind(f.wenober.clone())
                        .push(", ")
                        .bind(f.uwenober.clone().unwrap_or_default());
                    q.push(", ")
                        .bind(f.name.clone().unwrap_or_default())
                        .push(", ")
                        .bind(f.photo.clone().unwrap_or_default())
                        .push(", ")
                        .bind(owner.clone());
                    q.push(", ")
                        .bind(f.scene.unwrap_or(0))
                        .push(", ")
                        .bind(f.state.unwrap_or(0))
                        .push(", ")
                        .bind(f.isflock.unwrap_or(0));
                    q.push(", ")
                        .bind(f.addtime.unwrap_or(t))
                        .push(", ")
                        .bind(owner.as_ref().map(|_| t))
                        .push(", ")
                        .bind(last_chat)
                        .push(", ")
                        .bind(t);
                    q.push(", ")
                        .bind(f.remark.clone().unwrap_or_default())
                        .push(", ")
                        .bind(f.tags.clone().unwrap_or_else(|| "[]".to_owned()))
                        .push(")");
                    q.execute(&mut *tx.0).await?;
                    created += 1;
                    changed.push((id, "added"));
                }
            }
        }
        self.emit_fan_events_in(tx, &changed);
        Ok((created, updated))
    }

    /// Stores reported voice calls of one account, skipping those already stored (same
    /// account, fan, start and type). Returns (stored, duplicates).
    pub async fn report_calls_in(
        &self,
        tx: &mut Tx,
        wechat_id: i64,
        calls: &[CallReport],
    ) -> Result<(u64, u64), sqlx::Error> {
        let (mut stored, mut dups) = (0, 0);
        for c in calls {
            let mut q = Sql::new("SELECT COUNT(*) FROM meeting_calls WHERE merchant_id = ");
            q.bind(self.m.get())
                .push(" AND wechat_id = ")
                .bind(wechat_id)
                .push(" AND fans_key = ")
                .bind(c.fans_key.clone())
                .push(" AND start_time = ")
                .bind(c.start_time)
                .push(" AND msg_type = ")
                .bind(c.msg_type.clone());
            if q.scalar::<i64, _>(&mut *tx.0).await? > 0 {
                dups += 1;
                continue;
            }
            let id = take_ids(&mut tx.0, self.m, "meeting_call", 1).await?;
            let mut q = Sql::new("INSERT INTO meeting_calls (merchant_id, call_id, msg_type, wechat_id, staff_code, fans_key, start_time, duration, voice_url) VALUES (");
            q.bind(self.m.get())
                .push(", ")
                .bind(id)
                .push(", ")
                .bind(c.msg_type.clone())
                .push(", ")
                .bind(wechat_id)
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
            q.execute(&mut *tx.0).await?;
            stored += 1;
        }
        Ok((stored, dups))
    }
}

impl Tenant<'_> {
    /// The operating account with this original id: `(ad_wechat_id, serving device)`.
    pub async fn wechat_by_original(
        &self,
        original: &str,
    ) -> Result<Option<(i64, Option<i64>)>, sqlx::Error> {
        let mut q = Sql::new("SELECT wechat_id, device_id FROM wechats WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND original_nober = ")
            .bind(original.to_owned());
        q.fetch_optional(self.store.read_pool()).await
    }
}
