//! Upkeep of the tables on PostgreSQL: above all the queue tables, `deliveries` (the webhook
//! outbox's work) and `device_tasks` (the assistants' work).
//!
//! Why: every claim rewrites a queue row and every finished delivery deletes one, and a
//! PostgreSQL index keeps the entries of dead row versions until VACUUM. The claims scan
//! their due index from its oldest entry, so between vacuums each claim reads past every
//! row finished since the last one: after a million deliveries without a vacuum, a claim
//! read 12,000 index pages (14 ms) to find nothing (docs/benchmarks.md). And a table
//! filled before its first ANALYZE is planned blind: with a million due deliveries and no
//! statistics, a claim sorted the whole backlog (0.5 s) instead of reading the due index.
//! Autovacuum's defaults wait for a fifth of a table to be dead (a tenth changed, for
//! statistics) and look once a minute, and some installations turn it off. So each process
//! reads the tables' counters every few seconds, vacuums a queue table with enough dead
//! rows, and analyzes a queue table (with autovacuum off: any table) with enough changed
//! rows; `SKIP_LOCKED` leaves a table that another process or autovacuum is already on.
//! SQLite deletes index entries with their rows and plans without statistics; none of
//! this applies to it.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio_util::sync::CancellationToken;

use super::{Backend, Store};

/// The tables whose rows are claimed and finished at the rate of the traffic.
const QUEUE_TABLES: [&str; 2] = ["deliveries", "device_tasks"];
/// How often the dead-row counts are read.
const EVERY: Duration = Duration::from_secs(5);
/// Dead row versions that make a vacuum worth it: at least this many, and at least a fifth
/// of the live rows (each vacuum reads the table's whole indexes, so a large backlog is
/// vacuumed less often).
const MIN_DEAD: i64 = 20_000;
/// Rows written since the last ANALYZE that make new statistics worth it: this many, and a
/// tenth of the live rows (autovacuum's own default fraction).
const MIN_MODIFIED: i64 = 10_000;

impl Store {
    /// PostgreSQL's `autovacuum` setting (`None` on SQLite).
    pub async fn autovacuum_on(&self) -> Result<Option<bool>, sqlx::Error> {
        if self.backend() != Backend::Postgres {
            return Ok(None);
        }
        let (v,): (String,) = sqlx::query_as("SELECT current_setting('autovacuum')")
            .fetch_one(self.read_pool())
            .await?;
        Ok(Some(v == "on"))
    }

    /// What the tables need now: a vacuum for a queue table with enough dead rows, fresh
    /// statistics for one (or, when autovacuum is off, for any table) with enough rows
    /// written since its last ANALYZE.
    async fn tables_needing_upkeep(&self, autovacuum: bool) -> Result<Vec<Upkeep>, sqlx::Error> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT relname::text, n_live_tup, n_dead_tup, n_mod_since_analyze \
             FROM pg_stat_user_tables WHERE schemaname = current_schema()",
        )
        .fetch_all(self.read_pool())
        .await?;
        let mut out = Vec::new();
        for (table, live, dead, modified) in rows {
            // The statement is built from the name: only names that need no quoting (all
            // of Juhe's) are taken, anything else in the schema is left alone.
            if !table
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                continue;
            }
            let queue = QUEUE_TABLES.contains(&table.as_str());
            if queue && dead >= MIN_DEAD.max(live / 5) {
                out.push(Upkeep::Vacuum(table, dead));
            } else if (queue || !autovacuum) && modified >= MIN_MODIFIED.max(live / 10) {
                out.push(Upkeep::Analyze(table, modified));
            }
        }
        Ok(out)
    }

    /// Runs one upkeep statement.
    async fn upkeep(&self, u: &Upkeep) -> Result<(), sqlx::Error> {
        let Some(url) = &self.pg_url else {
            return Ok(());
        };
        let statement = match u {
            Upkeep::Vacuum(t, _) => format!("VACUUM (ANALYZE, SKIP_LOCKED) {t}"),
            Upkeep::Analyze(t, _) => format!("ANALYZE (SKIP_LOCKED) {t}"),
        };
        // A connection of its own: a vacuum takes seconds that the pool's requests should
        // not wait for, and its duration is logged here rather than as sqlx's slow-statement
        // warning. VACUUM cannot run in a transaction, so it goes as a simple query.
        let mut conn = PgConnectOptions::from_str(url)?
            .disable_statement_logging()
            .connect()
            .await?;
        sqlx::Executor::execute(&mut conn, statement.as_str()).await?;
        conn.close().await?;
        Ok(())
    }
}

enum Upkeep {
    /// A queue table and its dead rows.
    Vacuum(String, i64),
    /// A table and the rows written since its last ANALYZE.
    Analyze(String, i64),
}

/// Runs until `stop`: warns once if autovacuum is off, then keeps the queue tables vacuumed
/// and analyzed (and, with autovacuum off, every table analyzed). Does nothing on SQLite.
pub async fn run(store: Store, stop: CancellationToken) {
    let autovacuum = match store.autovacuum_on().await {
        Ok(None) => return,
        Ok(Some(on)) => on,
        Err(e) => {
            tracing::warn!(error = %e, "reading the autovacuum setting failed; assuming it is on");
            true
        }
    };
    if !autovacuum {
        tracing::warn!(
            "PostgreSQL's autovacuum is off: Juhe vacuums its own queue tables and analyzes \
             its tables, but nothing else is vacuumed; turn autovacuum on (docs/operations.md §5.1)"
        );
    }
    // The first tick is at once: a database that received a backlog before this start
    // (and before any ANALYZE) gets its statistics before the first claims are planned.
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let todo = match store.tables_needing_upkeep(autovacuum).await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(error = %e, "reading table statistics failed");
                continue;
            }
        };
        for u in todo {
            let started = Instant::now();
            let done = tokio::select! {
                _ = stop.cancelled() => return,
                r = store.upkeep(&u) => r,
            };
            let ms = started.elapsed().as_millis() as u64;
            match (&u, done) {
                (Upkeep::Vacuum(table, dead), Ok(())) => {
                    tracing::info!(table, dead, ms, "queue table vacuumed")
                }
                (Upkeep::Analyze(table, modified), Ok(())) => {
                    tracing::info!(table, modified, ms, "table analyzed")
                }
                (_, Err(e)) => tracing::warn!(error = %e, "table upkeep failed"),
            }
        }
    }
}
