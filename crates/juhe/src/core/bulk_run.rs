//! Running saved bulk sends (RPA群发) through the assistants: a scheduler claims each task
//! whose time has come and expands it, in one transaction, into one `bulkSendItem` device
//! task per (account, fan), spaced `interval_seconds` apart per account. The device tasks
//! carry the pacing, the delivery and the results; the bulk send is finished when all of
//! them are. Deleting a running bulk send cancels what has not been executed.

use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::tasks::{BulkItemPayload, Message, BULK_SEND_ITEM};
use super::Outcome;
use crate::config::GatewayConfig;
use crate::gateway::Hub;
use crate::store::misc::{BulkRow, Deleted};
use crate::store::tasks::{now_ms, NewTask};
use crate::store::{MerchantId, Store, Tenant};

/// Bulk sends started per scheduler round (the rest wait for the next round).
const PER_ROUND: i64 = 20;

/// A `task_content` item (core/bulk_send.rs `ITEM_TYPES`) as the message an assistant sends.
pub fn message_of(item: &Value) -> Option<Message> {
    let ty = item.get("type")?.as_str()?;
    let data = item.get("data")?.as_object()?;
    let s = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_owned);
    let media = |name: &str, format: &str, url: &str, msg_type: &str| Message {
        msg_type: msg_type.to_owned(),
        url: s(url),
        format: s(format),
        title: s(name),
        ..Default::default()
    };
    Some(match ty {
        "0" => Message {
            msg_type: "text".into(),
            text: s("content"),
            ..Default::default()
        },
        "1" => media("imgName", "imgFormat", "imgMediaUrl", "image"),
        "2" => media("videoName", "videoFormat", "videoMediaUrl", "video"),
        "3" => media("fileName", "fileFormat", "fileMediaUrl", "file"),
        "4" => Message {
            msg_type: "link".into(),
            url: s("url"),
            title: s("title"),
            description: s("description").or_else(|| s("desc")),
            thumb_url: s("thumbUrl"),
            ..Default::default()
        },
        "5" => Message {
            msg_type: "miniprogram".into(),
            app_id: s("appId"),
            title: s("title"),
            page_path: s("pagePath"),
            thumb_url: s("thumbUrl"),
            display_name: s("displayName"),
            ..Default::default()
        },
        // A voice message has no doSendPublicMes type; the assistant sends the audio file
        // as a voice note (protocol: msgType `voice`, `url`, `format`, `title`).
        "6" => media("voiceName", "voiceFormat", "voiceMediaUrl", "voice"),
        _ => return None,
    })
}

/// Starts one due bulk send: claims it and writes its device tasks. Returns the devices to
/// wake, or `None` when it was not claimable (another process took it, or it was deleted).
pub async fn start(t: Tenant<'_>, id: i64, cfg: &GatewayConfig) -> Outcome<Option<Vec<i64>>> {
    let mut tx = t.begin().await?;
    let Some(row) = t.claim_bulk_send_in(&mut tx, id).await? else {
        tx.rollback().await?;
        return Ok(None);
    };
    let (items, wechat_ids, keys) = parse(&row);
    let base_ms = now_ms().max(row.send_time.unwrap_or(0).saturating_mul(1000));
    let interval = row.interval_seconds.max(0);
    let mut devices = Vec::new();
    let mut total = 0usize;
    for wechat_id in wechat_ids {
        let fans = t.bulk_fans_in(&mut tx, wechat_id, &keys).await?;
        for (i, fan) in fans.iter().enumerate() {
            let payload = BulkItemPayload {
                bulk_task_id: row.task_id,
                to: fan.clone(),
                items: items.clone(),
                staff_code: row.staff_code.clone(),
            };
            let payload = serde_json::to_string(&payload).unwrap_or_default();
            let offset = (i as i64).saturating_mul(interval);
            let task = NewTask {
                wechat_id,
                kind: BULK_SEND_ITEM.to_owned(),
                payload: payload.clone(),
                fan_key: Some(fan.clone()),
                bulk_task_id: Some(row.task_id),
                not_before_ms: base_ms.saturating_add(offset.saturating_mul(1000)),
                // An item scheduled late must not expire before its turn comes.
                ttl_seconds: cfg.task_ttl_seconds.saturating_add(offset),
            };
            match t.enqueue_task_in(&mut tx, &task).await? {
                Some(e) => {
                    if !devices.contains(&e.device_id) {
                        devices.push(e.device_id);
                    }
                }
                None => {
                    t.fail_unserved_bulk_item_in(&mut tx, row.task_id, wechat_id, fan, &payload)
                        .await?;
                }
            }
            total += 1;
        }
    }
    if total == 0 {
        // Nobody to send to: done at once, not running forever.
        t.set_bulk_state_in(&mut tx, row.task_id, crate::store::bulk_run::FINISHED)
            .await?;
    }
    tx.commit().await?;
    Ok(Some(devices))
}

fn parse(row: &BulkRow) -> (Vec<Message>, Vec<i64>, Vec<String>) {
    let content: Value = serde_json::from_str(&row.task_content).unwrap_or(Value::Null);
    let items = content
        .as_array()
        .map(|a| a.iter().filter_map(message_of).collect())
        .unwrap_or_default();
    let wechat_ids = serde_json::from_str(&row.wechat_ids).unwrap_or_default();
    let keys = serde_json::from_str(&row.fans_keys).unwrap_or_default();
    (items, wechat_ids, keys)
}

/// One scheduler round: finishes bulk sends whose items are all done, then starts the due
/// ones and wakes the connections that got work. Returns how many it started.
pub async fn run_once(store: &Store, hub: &Hub, cfg: &GatewayConfig) -> Outcome<usize> {
    store.finish_bulk_sends().await?;
    let mut started = 0;
    for (m, id) in store.due_bulk_sends(PER_ROUND).await? {
        if let Some(devices) = start(store.tenant(m), id, cfg).await? {
            started += 1;
            for d in devices {
                hub.wake(m, d);
            }
            tracing::info!(merchant = %m, bulk_task_id = id, "bulk send started");
        }
    }
    Ok(started)
}

/// The scheduler: a round every `gateway.poll_ms` until `token` is cancelled.
pub async fn run_loop(store: Store, hub: Hub, cfg: GatewayConfig, token: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.poll_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = run_once(&store, &hub, &cfg).await {
            tracing::warn!(error = %e, "bulk-send scheduler round failed; retrying");
        }
    }
}

/// Deletes a bulk send and stops what it has not sent; tells the devices to drop the items
/// they were given.
pub async fn delete(t: Tenant<'_>, hub: &Hub, id: i64) -> Outcome<Deleted> {
    let (out, delivered) = t.delete_and_stop_bulk_send(id).await?;
    let m: MerchantId = t.merchant();
    for task in delivered {
        hub.cancel(m, task.device_id, task.task_id);
    }
    Ok(out)
}
