//! `juhe events …`: an operator's view of a merchant's events and their deliveries, and
//! replay. The same reads and writes as the `/v2/Public/…Event…` endpoints.

use anyhow::{bail, Context};
use juhe::config::Config;
use juhe::http::callbacks::{attempt_out, Delivery, EventDetail};
use juhe::store::events::EventFilter;
use juhe::store::{MerchantId, Page, Store};
use juhe::webhooks::payload;

use crate::cli::{merchant, EventsCmd};

fn print(v: &impl serde::Serialize, offset: chrono::FixedOffset) -> anyhow::Result<()> {
    let line = juhe::timefmt::with_offset(offset, || serde_json::to_string(v))?;
    println!("{line}");
    Ok(())
}

fn event_id(m: MerchantId, s: &str) -> anyhow::Result<i64> {
    payload::parse_event_key(m, s)
        .with_context(|| format!("{s:?} is not an event of merchant {m} (evt_{m}_N or N)"))
}

pub async fn run(store: &Store, cfg: &Config, cmd: EventsCmd) -> anyhow::Result<()> {
    let offset = cfg.offset()?;
    match cmd {
        EventsCmd::List {
            merchant: id,
            after,
            event_type,
            limit,
        } => {
            let m = merchant(store, id).await?;
            let f = EventFilter {
                min_event_id: Some(after),
                event_type,
                ..Default::default()
            };
            let (rows, _) = store
                .tenant(m)
                .events_page(
                    &f,
                    Page {
                        index: 1,
                        size: limit.clamp(1, 10_000),
                    },
                )
                .await?;
            for e in &rows {
                print(&payload::event(m, e, offset), offset)?;
            }
        }
        EventsCmd::Show {
            merchant: id,
            event,
        } => {
            let m = merchant(store, id).await?;
            let n = event_id(m, &event)?;
            let t = store.tenant(m);
            let Some(e) = t.event(n).await? else {
                bail!(
                    "merchant {id} has no event {event} (events are kept webhooks.retention_days)"
                );
            };
            // The same object as GetEvent's `values`.
            let detail = EventDetail {
                event: payload::event(m, &e, offset),
                deliveries: t
                    .event_deliveries(n)
                    .await?
                    .into_iter()
                    .map(Delivery::from)
                    .collect(),
            };
            print(&detail, offset)?;
        }
        EventsCmd::Attempts {
            merchant: id,
            event,
        } => {
            let m = merchant(store, id).await?;
            let n = event_id(m, &event)?;
            for a in store.tenant(m).attempts(n, None).await? {
                print(&attempt_out(m, a), offset)?;
            }
        }
        EventsCmd::Replay {
            merchant: id,
            event,
            failed_since,
            endpoint,
        } => {
            let m = merchant(store, id).await?;
            let t = store.tenant(m);
            let n = match (event, failed_since) {
                (Some(e), None) => {
                    let n = event_id(m, &e)?;
                    t.replay_event(n, endpoint)
                        .await?
                        .with_context(|| format!("merchant {id} has no event {e}"))?
                }
                (None, Some(since)) => t.replay_failed_since(since * 1000, endpoint).await?,
                _ => bail!("name one EVENT, or --failed-since SECONDS"),
            };
            println!("{}", serde_json::json!({"deliveries": n}));
        }
    }
    Ok(())
}
