//! A synchronous read path for SQLite, used by the hottest reads (token lookup, GetChat).
//!
//! Why: sqlx runs every SQLite connection on its own thread and passes each command and
//! row through channels, so a request's two small queries cost several thread hand-offs —
//! more than the queries themselves on a 2-core machine (see docs/benchmarks.md). Here the
//! query runs on the request's own thread through `rusqlite`, on the same SQLite library
//! (`libsqlite3-sys`) sqlx links. These are short, bounded, read-only statements (one
//! index range of at most `api.max_page_size` rows), so running them inline is cheaper
//! than any hand-off. Writes and everything else keep using sqlx.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{OpenFlags, ToSql};

use super::Sql;

/// A bound value, kept beside sqlx's arguments so either driver can run a [`Sql`].
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}
impl From<f64> for Param {
    fn from(v: f64) -> Self {
        Param::Real(v)
    }
}
impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Text(v)
    }
}
impl<T: Into<Param>> From<Option<T>> for Param {
    fn from(v: Option<T>) -> Self {
        v.map(Into::into).unwrap_or(Param::Null)
    }
}

impl ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Param::Null => ToSqlOutput::Owned(Value::Null),
            Param::Int(v) => ToSqlOutput::Owned(Value::Integer(*v)),
            Param::Real(v) => ToSqlOutput::Owned(Value::Real(*v)),
            Param::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
        })
    }
}

/// A row type the fast path can produce.
pub trait FastRow: Sized {
    fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

impl<A: rusqlite::types::FromSql, B: rusqlite::types::FromSql, C: rusqlite::types::FromSql> FastRow
    for (A, B, C)
{
    fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    }
}

/// Read-only connections to the same file as the sqlx pools, opened on demand.
pub struct FastReaders {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    keep: usize,
}

impl FastReaders {
    pub fn new(path: PathBuf, keep: usize) -> FastReaders {
        FastReaders {
            path,
            idle: Mutex::new(Vec::new()),
            keep: keep.max(1),
        }
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch("PRAGMA busy_timeout=10000; PRAGMA cache_size=-8000;")?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    /// Drops the idle connections (at shutdown, so the WAL checkpoint can truncate).
    pub fn close(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    /// Runs `q` and maps every row, stopping after `limit` rows.
    pub fn query<R: FastRow>(&self, q: &Sql, limit: usize) -> Result<Vec<R>, sqlx::Error> {
        let conn = match self.idle.lock().ok().and_then(|mut v| v.pop()) {
            Some(c) => c,
            None => self.open().map_err(to_sqlx)?,
        };
        let out = (|| {
            let mut stmt = conn.prepare_cached(q.text())?;
            let mut rows = stmt.query(rusqlite::params_from_iter(q.params.iter()))?;
            let mut out = Vec::new();
            while out.len() < limit {
                match rows.next()? {
                    Some(row) => out.push(R::from_rusqlite(row)?),
                    None => break,
                }
            }
            Ok(out)
        })()
        .map_err(to_sqlx);
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.keep {
                idle.push(conn);
            }
        }
        out
    }
}

fn to_sqlx(e: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Protocol(format!("sqlite (fast read path): {e}"))
}
