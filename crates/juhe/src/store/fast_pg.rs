//! The hot reads on PostgreSQL (token lookup, GetChat page) on connections of their own,
//! outside the sqlx pool.
//!
//! Why: every checkout from a sqlx pool costs a round trip to the server before the query
//! (`test_before_acquire` pings the idle connection) and another after it (a connection is
//! always pinged when it goes back), and the `Any` driver copies every row into an `AnyRow`,
//! column descriptions included. For a GetChat page those three round trips and the copies
//! cost more than the page itself on a 2-core machine (docs/benchmarks.md, "Issue 5
//! targets, third round"). Here a read takes an idle native connection, runs one statement,
//! and puts the connection back only after the statement finished cleanly; anything else
//! (an error, or the request being dropped mid-read) drops the connection instead, so a
//! connection in an unknown state is never reused. Writes and every other read keep using
//! the pool.

use std::sync::Mutex;

use sqlx::postgres::{PgArguments, PgConnectOptions, PgRow};
use sqlx::{Arguments, ConnectOptions, Connection, FromRow, PgConnection};
use tokio::sync::Semaphore;

use super::fast::{Kind, Param};
use super::Sql;

pub struct PgReaders {
    opts: PgConnectOptions,
    idle: Mutex<Vec<PgConnection>>,
    /// At most this many hot reads at once (and so connections), like the pool's size.
    permits: Semaphore,
}

impl PgReaders {
    pub fn new(opts: PgConnectOptions, max: usize) -> PgReaders {
        PgReaders {
            opts,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max.max(1)),
        }
    }

    /// Runs `q` and maps every row.
    pub async fn fetch_all<R>(&self, q: &Sql) -> Result<Vec<R>, sqlx::Error>
    where
        R: for<'r> FromRow<'r, PgRow>,
    {
        self.fetch_rows(q).await?.iter().map(R::from_row).collect()
    }

    /// Runs `q` and returns its rows undecoded (each holds its slice of the answer), for a
    /// caller that decodes some columns once per statement rather than once per row.
    pub async fn fetch_rows(&self, q: &Sql) -> Result<Vec<PgRow>, sqlx::Error> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let reused = idle.is_some();
        let mut conn = match idle {
            Some(c) => c,
            None => self.opts.connect().await?,
        };
        let rows = match run(&mut conn, q).await {
            Ok(rows) => rows,
            // An idle connection the server has closed meanwhile (a restart, an idle
            // timeout, an administrator) fails its first statement; the pool's ping would
            // have caught it. A read can safely run again, once, on a fresh connection.
            Err(e) if reused && closed_by_server(&e) => {
                conn = self.opts.connect().await?;
                run(&mut conn, q).await?
            }
            Err(e) => return Err(e),
        };
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        Ok(rows)
    }

    /// Closes the idle connections (at shutdown).
    pub async fn close(&self) {
        self.permits.close();
        let conns = match self.idle.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(_) => Vec::new(),
        };
        for c in conns {
            let _ = c.close().await;
        }
    }
}

/// Whether `e` says the connection is gone rather than the statement wrong: an I/O or
/// protocol error, or PostgreSQL's last word before it closes a connection (SQLSTATE 57P…:
/// shutdown, `pg_terminate_backend`, idle-session timeout; not 57014, a cancelled query)
/// or a connection exception (class 08).
fn closed_by_server(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")),
        _ => false,
    }
}

async fn run(conn: &mut PgConnection, q: &Sql) -> Result<Vec<PgRow>, sqlx::Error> {
    sqlx::query_with(q.text(), args(&q.params))
        .fetch_all(conn)
        .await
}

fn args(params: &[Param]) -> PgArguments {
    let mut a = PgArguments::default();
    for p in params {
        // Adding a value of a supported type cannot fail.
        let _ = match p {
            Param::Null(Kind::Int) => a.add(None::<i64>),
            Param::Null(Kind::Real) => a.add(None::<f64>),
            Param::Null(Kind::Text) => a.add(None::<String>),
            Param::Int(v) => a.add(*v),
            Param::Real(v) => a.add(*v),
            Param::Text(v) => a.add(v.as_str()),
        };
    }
    a
}
