//! Storage: one implementation over sqlx's `Any` driver, with SQL written in the common
//! subset of SQLite and PostgreSQL (`$n` placeholders, `ON CONFLICT`, `RETURNING`).
//! Dialect differences live only in the two embedded migration folders, which the test
//! suite proves equivalent by running everything on both backends.
//!
//! Tenancy is structural: merchant data is reachable only through [`Tenant`], which is
//! built from a [`MerchantId`], and a `MerchantId` can only be obtained from the
//! database (a verified token, or an admin lookup of an existing merchant).

pub mod admin;
pub mod chats;
pub mod fans;
mod fast;
pub mod idempotency;
pub mod import;
pub mod misc;
pub mod org;
pub mod report;

use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Arguments, Encode, Executor, FromRow, Type};

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
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = AnyPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(30))
                .connect(url)
                .await
                .with_context(|| format!("connecting to {}", redact(url)))?;
            Ok(Store {
                read: pool.clone(),
                write: pool,
                backend: Backend::Postgres,
                fast: None,
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
    /// PostgreSQL through the pool.
    pub(crate) async fn read_optional<R>(&self, q: Sql) -> Result<Option<R>, sqlx::Error>
    where
        R: for<'r> FromRow<'r, AnyRow> + fast::FastRow + Send + Unpin,
    {
        match &self.fast {
            Some(f) => Ok(f.query(&q, 1)?.pop()),
            None => q.fetch_optional(&self.read).await,
        }
    }

    /// All rows of a hot read, like [`Store::read_optional`].
    pub(crate) async fn read_all<R>(&self, q: Sql) -> Result<Vec<R>, sqlx::Error>
    where
        R: for<'r> FromRow<'r, AnyRow> + fast::FastRow + Send + Unpin,
    {
        match &self.fast {
            Some(f) => f.query(&q, usize::MAX),
            None => q.fetch_all(&self.read).await,
        }
    }

    pub(crate) fn read_pool(&self) -> &AnyPool {
        &self.read
    }

    pub(crate) fn write_pool(&self) -> &AnyPool {
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

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
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
/// and PostgreSQL understand. Placeholders are numbered in order of appearance.
pub struct Sql {
    text: String,
    args: AnyArguments<'static>,
    /// The same values again, for the synchronous SQLite read path (`fast`).
    params: Vec<fast::Param>,
    n: usize,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql {
            text: text.to_owned(),
            args: AnyArguments::default(),
            params: Vec::new(),
            n: 0,
        }
    }

    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a placeholder bound to `v`.
    pub fn bind<T>(&mut self, v: T) -> &mut Self
    where
        T: 'static + Send + Encode<'static, Any> + Type<Any> + Clone + Into<fast::Param>,
    {
        self.n += 1;
        self.text.push('$');
        self.text.push_str(&self.n.to_string());
        self.params.push(v.clone().into());
        // Adding a value of a supported type cannot fail for the Any driver.
        let _ = self.args.add(v);
        self
    }

    /// Appends `$a, $b, …` for a list of values (for `IN (…)`).
    pub fn bind_list<T>(&mut self, vs: impl IntoIterator<Item = T>) -> &mut Self
    where
        T: 'static + Send + Encode<'static, Any> + Type<Any> + Clone + Into<fast::Param>,
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
        T: 'static + Send + Encode<'static, Any> + Type<Any> + Clone + Into<fast::Param>,
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

    pub async fn fetch_all<'e, R, E>(self, ex: E) -> Result<Vec<R>, sqlx::Error>
    where
        R: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
        E: Executor<'e, Database = Any>,
    {
        sqlx::query_as_with::<_, R, _>(&self.text, self.args)
            .fetch_all(ex)
            .await
    }

    pub async fn fetch_optional<'e, R, E>(self, ex: E) -> Result<Option<R>, sqlx::Error>
    where
        R: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
        E: Executor<'e, Database = Any>,
    {
        sqlx::query_as_with::<_, R, _>(&self.text, self.args)
            .fetch_optional(ex)
            .await
    }

    pub async fn fetch_one<'e, R, E>(self, ex: E) -> Result<R, sqlx::Error>
    where
        R: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
        E: Executor<'e, Database = Any>,
    {
        sqlx::query_as_with::<_, R, _>(&self.text, self.args)
            .fetch_one(ex)
            .await
    }

    pub async fn scalar<'e, T, E>(self, ex: E) -> Result<T, sqlx::Error>
    where
        T: Send + Unpin + for<'r> sqlx::Decode<'r, Any> + Type<Any>,
        E: Executor<'e, Database = Any>,
    {
        sqlx::query_scalar_with::<_, T, _>(&self.text, self.args)
            .fetch_one(ex)
            .await
    }

    pub async fn execute<'e, E>(self, ex: E) -> Result<u64, sqlx::Error>
    where
        E: Executor<'e, Database = Any>,
    {
        Ok(sqlx::query_with(&self.text, self.args)
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
    pub fn push_limit(&self, q: &mut Sql) {
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

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("a%b_c"), "%a\\%b\\_c%");
    }
}
