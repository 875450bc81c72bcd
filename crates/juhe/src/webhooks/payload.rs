//! The documented event payload (docs/events.md), rendered from a stored event. Records in
//! `data` are exactly what the v2 API's reads show (a `chat` event's data is a GetChat
//! record, a fan's is a GetFansList row), so one parser serves both.

use chrono::FixedOffset;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::chat::ChatRecord;
use crate::http::chatmess::TaskOut;
use crate::http::conversation::{Notification, TakeOver};
use crate::http::friend::Fan;
use crate::store::events::{EventData, EventRow};
use crate::store::MerchantId;
use crate::timefmt::LocalTime;

/// The id of an event as receivers see it (`eventId` and the `webhook-id` header): the
/// same on every attempt and every replay.
pub fn event_key(m: MerchantId, event_id: i64) -> String {
    format!("evt_{m}_{event_id}")
}

/// The stored event id of an `eventId` as sent (`evt_{merchant}_{id}` or the bare number).
pub fn parse_event_key(m: MerchantId, s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let rest = s.strip_prefix("evt_")?;
    let (merchant, id) = rest.split_once('_')?;
    if merchant != m.to_string() {
        return None;
    }
    id.parse().ok()
}

/// Every event delivered: the envelope around `data`.
#[derive(Debug, Serialize, ToSchema)]
#[allow(non_snake_case)]
pub struct Event {
    /// Unique per event (`evt_{merchantId}_{n}`); also the `webhook-id` header. A receiver
    /// that has seen it has seen this event: retries and replays carry the same id.
    pub eventId: String,
    /// One of the subscribable types (docs/events.md).
    pub eventType: String,
    pub merchantId: i64,
    /// When the event happened, local time in the server's offset.
    pub eventTime: LocalTime,
    /// The same moment in Unix milliseconds.
    pub timestamp: i64,
    /// For conversation events: 1, 2, 3 … per (operating account, fan, event type), with no
    /// gaps; a gap means an event is still to come (a retry) or was missed (read GetChat
    /// with `minChattingId`). Null for events of no conversation.
    pub sequence: Option<i64>,
    /// The conversation, for conversation events.
    pub conversation: Option<ConversationRef>,
    /// Depends on `eventType`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
#[allow(non_snake_case)]
pub struct ConversationRef {
    pub ad_wechat_id: i64,
    /// The fan's (or group's) original WeChat id.
    pub fansKey: String,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct FanData {
    change: String,
    fan: Fan,
    previousStaffCode: Option<String>,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct ActivationData {
    ad_wechat_id: i64,
    ad_friend_wenober: String,
    staff_code: String,
    activationType: i64,
    enforceAttribution: i64,
    previousStaffCode: Option<String>,
    activationTime: LocalTime,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct BulkData {
    bulkTaskId: i64,
    state: String,
    total: i64,
    pending: i64,
    sent: i64,
    failed: i64,
    cancelled: i64,
    ad_friend_wenober: Option<String>,
    itemState: Option<String>,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct EndpointData {
    endpointId: i64,
    url: String,
    reason: String,
    failingSince: LocalTime,
}

/// The wire value of an event's data.
fn data_value(m: MerchantId, data: EventData) -> serde_json::Value {
    let v = match data {
        EventData::Chat { chat, conversation } => {
            serde_json::to_value(ChatRecord::new(chat, &m.to_string(), &conversation))
        }
        EventData::Fan {
            change,
            fan,
            previous_staff,
        } => serde_json::to_value(FanData {
            change,
            fan: Fan::from(fan),
            previousStaffCode: previous_staff,
        }),
        EventData::Task { task } => serde_json::to_value(TaskOut::from(task)),
        EventData::TakeOver { takeover } => serde_json::to_value(TakeOver::from(takeover)),
        EventData::Activation {
            wechat_id,
            fan_key,
            staff_code,
            activation_type,
            enforce_attribution,
            previous_staff,
            at,
        } => serde_json::to_value(ActivationData {
            ad_wechat_id: wechat_id,
            ad_friend_wenober: fan_key,
            staff_code,
            activationType: activation_type,
            enforceAttribution: i64::from(enforce_attribution),
            previousStaffCode: previous_staff,
            activationTime: LocalTime(at),
        }),
        EventData::Notification { notification } => {
            serde_json::to_value(Notification::from(notification))
        }
        EventData::Bulk {
            bulk_task_id,
            state,
            total,
            pending,
            sent,
            failed,
            cancelled,
            fan_key,
            item_state,
        } => serde_json::to_value(BulkData {
            bulkTaskId: bulk_task_id,
            state,
            total,
            pending,
            sent,
            failed,
            cancelled,
            ad_friend_wenober: fan_key,
            itemState: item_state,
        }),
        EventData::Endpoint {
            endpoint_id,
            url,
            reason,
            failing_since,
        } => serde_json::to_value(EndpointData {
            endpointId: endpoint_id,
            url,
            reason,
            failingSince: LocalTime(failing_since),
        }),
    };
    v.unwrap_or(serde_json::Value::Null)
}

/// The event as a value (for the API's event reads), times in `offset`.
pub fn event(m: MerchantId, e: &EventRow, offset: FixedOffset) -> Event {
    let data = serde_json::from_str::<EventData>(&e.data)
        .map(|d| crate::timefmt::with_offset(offset, || data_value(m, d)))
        .unwrap_or(serde_json::Value::Null);
    Event {
        eventId: event_key(m, e.event_id),
        eventType: e.event_type.clone(),
        merchantId: m.get(),
        eventTime: LocalTime(e.created_ms.div_euclid(1000)),
        timestamp: e.created_ms,
        sequence: e.seq,
        conversation: match (e.wechat_id, &e.fan_key) {
            (Some(w), Some(f)) => Some(ConversationRef {
                ad_wechat_id: w,
                fansKey: f.clone(),
            }),
            _ => None,
        },
        data,
    }
}

/// The body sent: the same bytes on every attempt (the data is stored, the offset is
/// configuration).
pub fn render(m: MerchantId, e: &EventRow, offset: FixedOffset) -> Vec<u8> {
    let ev = event(m, e, offset);
    crate::timefmt::with_offset(offset, || serde_json::to_vec(&ev)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_key_reads_back_for_its_merchant_only() {
        let m = MerchantId::from_db(7);
        assert_eq!(event_key(m, 42), "evt_7_42");
        assert_eq!(parse_event_key(m, "evt_7_42"), Some(42));
        assert_eq!(parse_event_key(m, "42"), Some(42));
        assert_eq!(parse_event_key(m, "evt_8_42"), None);
        assert_eq!(parse_event_key(m, "nonsense"), None);
    }
}
