//! Storage: one implementation over sqlx's `Any` driver, with SQL written in the common
//! subset of SQLite and PostgreSQL (`$n` placeholders, `ON CONFLICT`, `RETURNING`).
//! Dialect differences live only in the two embedded migration folders, which the test
//! suite proves equivalent by running everything on both backends.
//!
//! Tenancy is structural: merchant data is reachable only through [`Tenant`], which is
//! built from a [`MerchantId`], and a `MerchantId` can only be obtained from the
//! database (a verified token, or an admin lookup of an existing merchant).

pub mod activity;
pub mod admin;
pub mod bulk_run;
pub mod chats;
pub mod devices;
pub mod events;
pub mod fans;
mod fast;
mod fast_pg;
pub mod idempotency;
pub mod import;
pub mod misc;
pub mod org;
pub mod report;
pub mod takeovers;
pub mod tasks;
pub mod upkeep;

use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, FromRow, Type};

/// Which SQL engine is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A merchant (租户) that is known to exist. Only this crate's storage code can make one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct MerchantId(i64);

impl MerchantId {
    pub(crate) fn from_db(v: i64) -> Self {
        MerchantId(v)
    }
    pub fn get(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for MerchantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Outside the store no SQL can run: neither the pools nor the statement builder are
/// reachable, so every query goes through a merchant-scoped method.
///
/// ```compile_fail
/// fn unscoped(store: &juhe::store::Store) {
///     let _ = store.read_pool();
/// }
/// ```
///
/// ```compile_fail
/// let _ = juhe::store::Sql::new("SELECT * FROM chats");
/// ```
///
/// ```compile_fail
/// async fn raw(t: juhe::store::Tenant<'_>) {
///     let mut tx = t.begin().await.unwrap();
///     let _ = sqlx::query("DELETE FROM chats").execute(&mut *tx.0).await;
/// }
/// ```
#[derive(Clone)]
pub struct Store {
    /// Readers. On SQLite several connections read in parallel under WAL.
    read: AnyPool,
    /// Writers. On SQLite this pool has a single connection: SQLite allows one writer at
    /// a time, and queueing writers here avoids SQLITE_BUSY on lock upgrades. On
    /// PostgreSQL it is the same pool as `read`.
    write: AnyPool,
    backend: Backend,
    /// SQLite only: the synchronous read path for the hottest reads.
    fast: Option<std::sync::Arc<fast::FastReaders>>,
    /// PostgreSQL only: the hottest reads on native connections outside the pool.
    fast_pg: Option<std::sync::Arc<fast_pg::PgReaders>>,
    /// PostgreSQL only: the URL, for the LISTEN connection of the task queue.
    pg_url: Option<std::sync::Arc<str>>,
    /// Notified after a commit that may have written events or changed endpoints, so this
    /// process's webhook dispatcher looks at once instead of at its next poll.
    events_wake: std::sync::Arc<tokio::sync::Notify>,
    /// Bumped when this process changes an endpoint, so its dispatcher reloads them at once
    /// (other processes' changes are seen within the dispatcher's reload interval).
    endpoints_version: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Bearer tokens verified recently; shared by every clone, so that a revocation
    /// through any of them clears it.
    token_cache: std::sync::Arc<admin::TokenCache>,
}

static DRIVERS: Once = Once::new();

impl Store {
    /// Opens (and for SQLite creates) the database and applies pending migrations.
    pub async fn open(url: &str, max_connections: u32) -> anyhow::Result<Store> {
        let store = Store::connect(url, max_connections).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the database without migrating.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Store> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() || path.starts_with(":memory:") {
                anyhow::bail!("an in-memory SQLite database is not supported; give a file path such as sqlite://data/juhe.db");
            }
            if let Some(parent) = std::path::Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
            }
            let full = format!("sqlite://{path}?mode=rwc");
            let opts = AnyConnectOptions::from_str(&full)?;
            let pool = |n: u32| {
                AnyPoolOptions::new()
                    .max_connections(n)
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL lets readers run beside the writer; NORMAL sync is safe under
                            // WAL (a crash loses at most the last transactions, never corrupts).
                            conn.execute("PRAGMA journal_mode=WAL").await?;
                            conn.execute("PRAGMA synchronous=NORMAL").await?;
                            conn.execute("PRAGMA busy_timeout=10000").await?;
                            conn.execute("PRAGMA cache_size=-8000").await?;
                            // Statement journals of multi-row writes in memory, not in a
                            // temporary file: ~15% of a bulk chat import was the kernel
                            // copying them (docs/benchmarks.md, "Writing chats").
                            conn.execute("PRAGMA temp_store=MEMORY").await?;
                            Ok(())
                        })
                    })
            };
            let write = pool(1)
                .connect_with(opts.clone())
                .await
                .with_context(|| format!("opening {url}"))?;
            let read = pool(max_connections)
                .connect_with(opts)
                .await
                .with_context(|| format!("opening {url}"))?;
            let fast =
                fast::FastReaders::new(std::path::PathBuf::from(path), max_connections as usize);
            Ok(Store {
                read,
                write,
                backend: Backend::Sqlite,
                fast: Some(std::sync::Arc::new(fast)),
                fast_pg: None,
                pg_url: None,
                events_wake: Default::default(),
                endpoints_version: Default::default(),
                token_cache: Default::default(),
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            precheck_postgres(url).await?;
            let pool = AnyPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(30))
                .connect(url)
                .await
                .with_context(|| format!("connecting to {}", redact(url)))?;
            let hot = sqlx::postgres::PgConnectOptions::from_str(url)?;
            Ok(Store {
                read: pool.clone(),
                write: pool,
                backend: Backend::Postgres,
                fast: None,
                fast_pg: Some(std::sync::Arc::new(fast_pg::PgReaders::new(
                    hot,
                    max_connections as usize,
                ))),
                pg_url: Some(url.into()),
                events_wake: Default::default(),
                endpoints_version: Default::default(),
                token_cache: Default::default(),
            })
        } else {
            anyhow::bail!(
                "unsupported database url {:?}: use sqlite://PATH or postgres://…",
                redact(url)
            )
        }
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator
            .run(&self.write)
            .await
            .context("applying migrations")?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Merchant-scoped access. The only way to reach merchant data.
    pub fn tenant(&self, merchant: MerchantId) -> Tenant<'_> {
        Tenant {
            store: self,
            m: merchant,
        }
    }

    /// Platform administration: merchants, agents, credentials, tokens.
    pub fn admin(&self) -> admin::Admin<'_> {
        admin::Admin { store: self }
    }

    /// One row of a hot read: on SQLite through the synchronous path (see `fast`), on
    /// PostgreSQL on a connection of its own (see `fast_pg`).
    pub(in crate::store) async fn read_optional<R>(&self, q: Sql) -> Result<Option<R>, sqlx::Error>
    where
        R: for<'r> FromRow<'r, AnyRow>
            + for<'r> FromRow<'r, sqlx::postgres::PgRow>
            + fast::FastRow
            + Send
            + Unpin,
    {
        match (&self.fast, &self.fast_pg) {
            (Some(f), _) => Ok(f.query(&q, 1)?.pop()),
            (None, Some(p)) => Ok(p.fetch_all(&q).await?.into_iter().next()),
            (None, None) => q.fetch_optional(&self.read).await,
        }
    }

    /// All rows of a hot read, like [`Store::read_optional`].
    pub(in crate::store) async fn read_all<R>(&self, q: Sql) -> Result<Vec<R>, sqlx::Error>
    where
        R: for<'r> FromRow<'r, AnyRow>
            + for<'r> FromRow<'r, sqlx::postgres::PgRow>
            + fast::FastRow
            + Send
            + Unpin,
    {
        match (&self.fast, &self.fast_pg) {
            (Some(f), _) => f.query(&q, usize::MAX),
            (None, Some(p)) => p.fetch_all(&q).await,
            (None, None) => q.fetch_all(&self.read).await,
        }
    }

    /// The undecoded rows of a hot read written in PostgreSQL's dialect (PostgreSQL only).
    pub(in crate::store) async fn read_pg_rows(
        &self,
        q: Sql,
    ) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
        match &self.fast_pg {
            Some(p) => p.fetch_rows(&q).await,
            None => Err(sqlx::Error::Configuration(
                "a PostgreSQL read on a store that is not PostgreSQL".into(),
            )),
        }
    }

    pub(in crate::store) fn read_pool(&self) -> &AnyPool {
        &self.read
    }

    pub(in crate::store) fn write_pool(&self) -> &AnyPool {
        &self.write
    }

    /// Pool gauges for /metrics: (pool name, open connections, idle connections).
    pub fn pool_stats(&self) -> Vec<(&'static str, u32, u32)> {
        let mut v = vec![("read", self.read.size(), self.read.num_idle() as u32)];
        if self.backend == Backend::Sqlite {
            v.push(("write", self.write.size(), self.write.num_idle() as u32));
        }
        v
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Starts a write transaction. On SQLite it is `BEGIN IMMEDIATE`: a deferred
    /// transaction that reads first and writes later cannot wait for the write lock when
    /// another process (or the fast read path's file) holds it, and SQLite answers
    /// SQLITE_BUSY at once; taking the lock up front makes `busy_timeout` apply, so writers
    /// of several processes on one file queue instead of failing.
    pub(in crate::store) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.write.begin().await,
        }
    }

    /// Writes a consistent copy of the database to `to` while the server keeps running
    /// (SQLite only: `VACUUM INTO` reads one snapshot, so writes committed after it started
    /// are not in the copy and nothing half-written is). Refuses to replace an existing file
    /// unless `force`. On PostgreSQL the answer explains `pg_dump`, which does the same job
    /// better than anything this process could.
    pub async fn backup_to(&self, to: &std::path::Path, force: bool) -> anyhow::Result<u64> {
        if self.backend == Backend::Postgres {
            anyhow::bail!(
                "backup of a PostgreSQL database: use pg_dump, which takes a consistent snapshot \
                 while the server runs, e.g. `pg_dump --format=custom --file=juhe.dump \"$DATABASE_URL\"` \
                 (restore with pg_restore; see docs/operations.md)"
            );
        }
        if to.exists() {
            if !force {
                anyhow::bail!(
                    "{} already exists; pass --force to replace it",
                    to.display()
                );
            }
            std::fs::remove_file(to).with_context(|| format!("removing {}", to.display()))?;
        }
        if let Some(parent) = to.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
        }
        let target = to
            .to_str()
            .with_context(|| format!("{} is not a UTF-8 path", to.display()))?;
        // A read connection: VACUUM INTO only reads the source, so writers keep going.
        let mut q = Sql::new("VACUUM INTO ");
        q.bind(target.to_owned());
        q.execute(&self.read)
            .await
            .with_context(|| format!("writing the backup to {}", to.display()))?;
        Ok(std::fs::metadata(to).map(|m| m.len()).unwrap_or(0))
    }

    /// Closes the pools. On SQLite the WAL is first checkpointed into the database file
    /// and truncated, so a stopped server leaves one self-contained `.db` file behind
    /// (copying the file alone while a WAL holds committed pages loses those pages).
    pub async fn close(&self) {
        if self.backend == Backend::Sqlite && !self.write.is_closed() {
            // Readers must be gone first, or the checkpoint cannot reset the WAL.
            self.read.close().await;
            if let Some(f) = &self.fast {
                f.close();
            }
            match sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_optional(&self.write)
                .await
            {
                Ok(_) => tracing::debug!("WAL checkpointed"),
                Err(e) => tracing::warn!(error = %e, "WAL checkpoint at shutdown failed"),
            }
        }
        if let Some(p) = &self.fast_pg {
            p.close().await;
        }
        self.read.close().await;
        self.write.close().await;
    }
}

/// One direct connection with a short timeout before the pool is built, so an unreachable
/// or misconfigured server is reported once, at once and with its cause ("connection
/// refused to 127.0.0.1:5432"), not as the pool's 30-second acquire timeout.
async fn precheck_postgres(url: &str) -> anyhow::Result<()> {
    use sqlx::postgres::PgConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    let opts = PgConnectOptions::from_str(url)
        .with_context(|| format!("database_url {} is not a valid PostgreSQL URL", redact(url)))?;
    let at = format!("{}:{}", opts.get_host(), opts.get_port());
    let db = opts.get_database().unwrap_or("(default)").to_owned();
    match tokio::time::timeout(Duration::from_secs(5), opts.connect()).await {
        Err(_) => anyhow::bail!("PostgreSQL at {at} did not answer within 5 s"),
        Ok(Err(e)) => {
            let why = match &e {
                sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                    format!(
                        "connection refused to {at} (is PostgreSQL running and listening there?)"
                    )
                }
                sqlx::Error::Io(io) => format!("cannot reach {at}: {io}"),
                sqlx::Error::Database(d) => {
                    format!("PostgreSQL at {at}, database {db:?}: {}", d.message())
                }
                other => format!("PostgreSQL at {at}: {other}"),
            };
            Err(anyhow::anyhow!(why))
        }
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
    }
}

/// Hides the password in a database URL before it reaches a log line or error.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Merchant-scoped storage handle: every query it runs filters by `m`.
#[derive(Clone, Copy)]
pub struct Tenant<'a> {
    pub(crate) store: &'a Store,
    pub(crate) m: MerchantId,
}

impl Tenant<'_> {
    pub fn merchant(&self) -> MerchantId {
        self.m
    }
}

/// A SQL statement assembled piece by piece with `$n` placeholders, which both SQLite
/// and PostgreSQL understand. Placeholders are numbered in order of appearance. The values
/// are kept once, as [`fast::Param`]s; sqlx's arguments are built from them when the
/// statement runs, and the synchronous SQLite path (`fast`) binds them directly.
pub(in crate::store) struct Sql {
    text: String,
    params: Vec<fast::Param>,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql {
            text: text.to_owned(),
            params: Vec::new(),
        }
    }

    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a placeholder bound to `v`.
    pub fn bind<T>(&mut self, v: T) -> &mut Self
    where
        T: Into<fast::Param>,
    {
        self.params.push(v.into());
        self.text.push('$');
        self.text.push_str(&self.params.len().to_string());
        self
    }

    /// Appends `$a, $b, …` for a list of values (for `IN (…)`).
    pub fn bind_list<T>(&mut self, vs: impl IntoIterator<Item = T>) -> &mut Self
    where
        T: Into<fast::Param>,
    {
        for (i, v) in vs.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(v);
        }
        self
    }

    /// Appends ` AND col >= start` / ` AND col <= end` for the bounds that are given
    /// (every range filter of the API is inclusive).
    pub fn range<T>(&mut self, col: &str, start: Option<T>, end: Option<T>) -> &mut Self
    where
        T: Into<fast::Param>,
    {
        if let Some(s) = start {
            self.push(" AND ").push(col).push(" >= ").bind(s);
        }
        if let Some(e) = end {
            self.push(" AND ").push(col).push(" <= ").bind(e);
        }
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text and the values as sqlx arguments, moved (not copied) out of `self`.
    fn into_parts(self) -> (String, AnyArguments<'static>) {
        let mut args = AnyArguments::default();
        for p in self.params {
            p.add_to(&mut args);
        }
        (self.text, args)
    }

    pub async fn fetch_all<'e, R, E>(self, ex: E) -> Result<Vec<R>, sqlx::Error>
    where
        R: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
        E: Executor<'e, Database = Any>,
    {
        let (text, args) = self.into_parts();
        sqlx::query_as_with::<_, R, _>(&text, args)
            .fetch_all(ex)
            .await
    }

    /// Streams the rows through `each` one at a time, so a long result (a report's
    /// year of chats) never sits in memory whole.
    pub async fn for_each<'e, R, E>(
        self,
        ex: E,
        mut each: impl FnMut(&R),
    ) -> Result<(), sqlx::Error>
    where
        R: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
        E: Executor<'e, Database = Any>,
    {
        use futures_util::TryStreamExt;
        let (text, args) = self.into_parts();
        let mut rows = sqlx::query_as_with::<_, R, _>(&text, args).fetch(ex);
        while let Some(row) = rows.try_next().await? {
            each(&row);
        }
        Ok(())
    }

    pub async fn fetch_optional<'e, R, E>(self, ex: E) -> Result<Option<R>, sqlx::Error>
    where
        R: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
        E: Executor<'e, Database = Any>,
    {
        let (text, args) = self.into_parts();
        sqlx::query_as_with::<_, R, _>(&text, args)
            .fetch_optional(ex)
            .await
    }

    pub async fn fetch_one<'e, R, E>(self, ex: E) -> Result<R, sqlx::Error>
    where
        R: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
        E: Executor<'e, Database = Any>,
    {
        let (text, args) = self.into_parts();
        sqlx::query_as_with::<_, R, _>(&text, args)
            .fetch_one(ex)
            .await
    }

    pub async fn scalar<'e, T, E>(self, ex: E) -> Result<T, sqlx::Error>
    where
        T: Send + Unpin + for<'r> sqlx::Decode<'r, Any> + Type<Any>,
        E: Executor<'e, Database = Any>,
    {
        let (text, args) = self.into_parts();
        sqlx::query_scalar_with::<_, T, _>(&text, args)
            .fetch_one(ex)
            .await
    }

    pub async fn execute<'e, E>(self, ex: E) -> Result<u64, sqlx::Error>
    where
        E: Executor<'e, Database = Any>,
    {
        let (text, args) = self.into_parts();
        Ok(sqlx::query_with(&text, args)
            .execute(ex)
            .await?
            .rows_affected())
    }
}

/// Takes `n` consecutive ids of `kind` for merchant `m` inside transaction `tx`, returning
/// the first. The counter row stays locked until `tx` ends, so a transaction holding a
/// later id cannot commit before one holding an earlier id: readers that page by
/// "id greater than the last one I saw" never skip a row that commits late.
pub(crate) async fn take_ids(
    tx: &mut sqlx::Transaction<'static, Any>,
    m: MerchantId,
    kind: &str,
    n: i64,
) -> Result<i64, sqlx::Error> {
    let mut q = Sql::new("INSERT INTO id_counters (merchant_id, kind, last_id) VALUES (");
    q.bind(m.get())
        .push(", ")
        .bind(kind.to_owned())
        .push(", ")
        .bind(n);
    q.push(") ON CONFLICT (merchant_id, kind) DO UPDATE SET last_id = id_counters.last_id + ")
        .bind(n)
        .push(" RETURNING last_id");
    let last: i64 = q.scalar(&mut **tx).await?;
    Ok(last - n + 1)
}

/// Unix seconds now.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Unix milliseconds now (task pacing, delivery leases and retries work below a second).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Paging parameters after validation: 1-based index and a clamped size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub index: i64,
    pub size: i64,
}

impl Page {
    pub fn offset(&self) -> i64 {
        (self.index - 1) * self.size
    }

    /// Appends `LIMIT size+1 OFFSET …`: one extra row tells whether another page follows.
    pub(in crate::store) fn push_limit(&self, q: &mut Sql) {
        q.push(" LIMIT ")
            .bind(self.size + 1)
            .push(" OFFSET ")
            .bind(self.offset());
    }
}

/// Splits a fetched `size+1` result into the page and whether more follow.
pub fn trim_page<T>(mut rows: Vec<T>, page: Page) -> (Vec<T>, bool) {
    let more = rows.len() as i64 > page.size;
    rows.truncate(page.size as usize);
    (rows, more)
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut q = Sql::new("SELECT * FROM t WHERE a = ");
        q.bind(1_i64)
            .push(" AND b IN (")
            .bind_list(vec!["x".to_owned(), "y".to_owned()])
            .push(")");
        assert_eq!(q.text(), "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)");
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    /// Two stores on one file are what two server processes are. A write transaction that
    /// reads before it writes is the case SQLite cannot make wait once it has begun
    /// deferred (its snapshot may be stale by the time it wants to write): it must begin
    /// with the write lock and queue behind the other process instead of failing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_on_one_sqlite_file_never_fail_a_write_that_reads_first() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/two.db", dir.path().display());
        let a = Store::open(&url, 2).await.unwrap();
        let b = Store::connect(&url, 2).await.unwrap();
        sqlx::query("CREATE TABLE counter (n INTEGER NOT NULL)")
            .execute(a.write_pool())
            .await
            .unwrap();
        sqlx::query("INSERT INTO counter (n) VALUES (0)")
            .execute(a.write_pool())
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for store in [a.clone(), b.clone()] {
            for _ in 0..4 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    let mut failures = Vec::new();
                    for _ in 0..25 {
                        let r: Result<(), sqlx::Error> = async {
                            let mut tx = store.begin_write().await?;
                            let n: i64 = sqlx::query_scalar("SELECT n FROM counter")
                                .fetch_one(&mut *tx)
                                .await?;
                            tokio::task::yield_now().await;
                            sqlx::query("UPDATE counter SET n = $1")
                                .bind(n + 1)
                                .execute(&mut *tx)
                                .await?;
                            tx.commit().await
                        }
                        .await;
                        if let Err(e) = r {
                            failures.push(e.to_string());
                        }
                    }
                    failures
                }));
            }
        }
        let mut failures = Vec::new();
        for t in tasks {
            failures.extend(t.await.unwrap());
        }
        assert!(
            failures.is_empty(),
            "{} of 200 writes failed, e.g. {:?}",
            failures.len(),
            failures.first()
        );
        // Every read-modify-write saw the one before it: no lost update either.
        let n: i64 = sqlx::query_scalar("SELECT n FROM counter")
            .fetch_one(a.read_pool())
            .await
            .unwrap();
        assert_eq!(n, 200);
        a.close().await;
        b.close().await;
    }

    /// The same store without the synchronous SQLite read path: every read through sqlx.
    fn without_fast_reads(store: &Store) -> Store {
        Store {
            fast: None,
            fast_pg: None,
            ..store.clone()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_fast_read_path_returns_exactly_what_the_sqlx_path_returns() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/same.db", dir.path().display());
        let fast = Store::open(&url, 2).await.unwrap();
        assert!(fast.fast.is_some());
        let slow = without_fast_reads(&fast);
        let creds = fast.admin().create_merchant("m").await.unwrap();
        let m = fast
            .admin()
            .merchant(creds.merchant_id)
            .await
            .unwrap()
            .unwrap();
        let file =
            import::ImportFile::from_json(include_bytes!("../../tests/fixtures/org-example.json"))
                .unwrap();
        crate::core::import::import(
            fast.tenant(m),
            &file,
            chrono::FixedOffset::east_opt(8 * 3600).unwrap(),
            &|_| {},
        )
        .await
        .unwrap();
        // NULL and non-NULL optional columns, and text that needs no escaping anywhere.
        let chats: Vec<chats::NewChat> = (0..30)
            .map(|i| chats::NewChat {
                wechat_id: 135389,
                talker: "wxid_fan0001".into(),
                issend: i % 2,
                msg_type: 1 + i % 3,
                content: format!("第{i}条 'quoted' \"x\""),
                resvred: (i % 2 == 0).then(|| format!("%7B%22n%22%3A{i}%7D")),
                sermsgid: format!("same-{i}"),
                chat_time: 1_714_615_200 + i * 60,
                staff_code: (i % 3 == 0).then(|| "S001".to_owned()),
                voice_txt: (i % 5 == 0).then(|| "语音".to_owned()),
                expand: if i % 4 == 0 {
                    "x".into()
                } else {
                    String::new()
                },
            })
            .collect();
        fast.tenant(m).insert_chats(&chats).await.unwrap();
        let filters = [
            chats::ChatFilter {
                wechat_id: 135389,
                fans_key: "wxid_fan0001".into(),
                ..Default::default()
            },
            chats::ChatFilter {
                wechat_id: 135389,
                fans_key: "wxid_fan0001".into(),
                min_chatting_id: Some(5),
                start: Some(1_714_615_200 + 300),
                end: Some(1_714_615_200 + 1500),
                ..Default::default()
            },
            chats::ChatFilter {
                wechat_id: 135389,
                fans_key: "wxid_fan0001".into(),
                wechat_key: Some("shop_service01".into()),
                ..Default::default()
            },
            chats::ChatFilter {
                wechat_id: 999,
                fans_key: "nobody".into(),
                ..Default::default()
            },
        ];
        let mut compared = 0;
        for f in &filters {
            for page in [Page { index: 1, size: 7 }, Page { index: 3, size: 7 }] {
                let a = fast.tenant(m).chats_page(f, page).await.unwrap();
                let b = slow.tenant(m).chats_page(f, page).await.unwrap();
                assert_eq!(a, b, "{f:?} {page:?}");
                compared += a.rows.len();
            }
        }
        assert!(compared > 20, "the pages compared were nearly empty");
        let token = fast
            .admin()
            .issue_token(
                &creds.client_id,
                &creds.client_secret,
                "Ls.Qkl.PublicApi",
                3600,
            )
            .await
            .unwrap()
            .unwrap()
            .access_token;
        for t in [token.as_str(), "no-such-token"] {
            assert_eq!(
                fast.admin().resolve_token(t).await.unwrap(),
                slow.admin().resolve_token(t).await.unwrap()
            );
        }
        assert!(fast.admin().resolve_token(&token).await.unwrap().is_some());
        fast.close().await;
    }

    #[test]
    fn a_null_keeps_its_type() {
        assert_eq!(
            fast::Param::from(None::<i64>),
            fast::Param::Null(fast::Kind::Int)
        );
        assert_eq!(
            fast::Param::from(None::<String>),
            fast::Param::Null(fast::Kind::Text)
        );
        assert_eq!(fast::Param::from(Some(3_i64)), fast::Param::Int(3));
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("a%b_c"), "%a\\%b\\_c%");
    }
}
