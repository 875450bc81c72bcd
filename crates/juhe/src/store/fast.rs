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

/// The type of a bound value, kept for NULLs: PostgreSQL must know what a NULL
/// parameter is (`$1 IS DISTINCT FROM col`, an INSERT into a BIGINT column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Real,
    Text,
}

/// A bound value of a [`Sql`]: the one copy both drivers read (sqlx arguments are built
/// from it when the statement runs).
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Null(Kind),
    Int(i64),
    Real(f64),
    Text(String),
}

/// A Rust type that binds as one SQL type.
pub trait HasKind {
    const KIND: Kind;
}
impl HasKind for i64 {
    const KIND: Kind = Kind::Int;
}
impl HasKind for f64 {
    const KIND: Kind = Kind::Real;
}
impl HasKind for String {
    const KIND: Kind = Kind::Text;
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
impl<T: Into<Param> + HasKind> From<Option<T>> for Param {
    fn from(v: Option<T>) -> Self {
        match v {
            Some(v) => v.into(),
            None => Param::Null(T::KIND),
        }
    }
}

impl Param {
    /// Adds the value to sqlx arguments, with NULLs typed by their [`Kind`].
    pub(crate) fn add_to(self, args: &mut sqlx::any::AnyArguments<'static>) {
        use sqlx::Arguments;
        // Adding a value of a supported type cannot fail for the Any driver.
        let _ = match self {
            Param::Null(Kind::Int) => args.add(None::<i64>),
            Param::Null(Kind::Real) => args.add(None::<f64>),
            Param::Null(Kind::Text) => args.add(None::<String>),
            Param::Int(v) => args.add(v),
            Param::Real(v) => args.add(v),
            Param::Text(v) => args.add(v),
        };
    }
}

impl ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Param::Null(_) => ToSqlOutput::Owned(Value::Null),
            Param::Int(v) => ToSqlOutput::Owned(Value::Integer(*v)),
            Param::Real(v) => ToSqlOutput::Owned(Value::Real(*v)),
            Param::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
        })
    }
}

/// A row type the fast path can produce. Columns are found by name: `COLUMNS` lists the
/// names the row reads, `from_columns` reads them by their position in that list, and the
/// fast path maps each name to the statement's column once per query. A SELECT that
/// reorders or renames its columns therefore reads the right value or fails loudly, as
/// sqlx's `FromRow` derive does, instead of silently reading a neighbour.
pub trait FastRow: Sized {
    /// The column names read, or `None` for a row read by position (tuples, as sqlx reads
    /// tuples too).
    const COLUMNS: Option<&'static [&'static str]>;
    fn from_columns(row: &Columns<'_>) -> rusqlite::Result<Self>;
}

/// One result row, with `COLUMNS` resolved to the statement's column indices.
pub struct Columns<'a> {
    row: &'a rusqlite::Row<'a>,
    index: &'a [usize],
}

impl Columns<'_> {
    /// The `i`-th column of the row type's `COLUMNS` (or of the statement, by position).
    pub fn get<T: rusqlite::types::FromSql>(&self, i: usize) -> rusqlite::Result<T> {
        match self.index.get(i) {
            Some(&at) => self.row.get(at),
            None => self.row.get(i),
        }
    }
}

impl<A: rusqlite::types::FromSql, B: rusqlite::types::FromSql, C: rusqlite::types::FromSql> FastRow
    for (A, B, C)
{
    const COLUMNS: Option<&'static [&'static str]> = None;
    fn from_columns(row: &Columns<'_>) -> rusqlite::Result<Self> {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    }
}

/// Maps each wanted column name to its index in the statement.
fn resolve(stmt: &rusqlite::Statement<'_>, wanted: &[&str]) -> rusqlite::Result<Vec<usize>> {
    let names = stmt.column_names();
    wanted
        .iter()
        .map(|w| {
            names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(w))
                .ok_or_else(|| rusqlite::Error::InvalidColumnName((*w).to_owned()))
        })
        .collect()
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
            let index = match R::COLUMNS {
                Some(wanted) => resolve(&stmt, wanted)?,
                None => Vec::new(),
            };
            let mut rows = stmt.query(rusqlite::params_from_iter(q.params.iter()))?;
            let mut out = Vec::new();
            while out.len() < limit {
                match rows.next()? {
                    Some(row) => out.push(R::from_columns(&Columns { row, index: &index })?),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Ab {
        a: i64,
        b: String,
    }

    impl FastRow for Ab {
        const COLUMNS: Option<&'static [&'static str]> = Some(&["a", "b"]);
        fn from_columns(r: &Columns<'_>) -> rusqlite::Result<Self> {
            Ok(Ab {
                a: r.get(0)?,
                b: r.get(1)?,
            })
        }
    }

    #[test]
    fn columns_are_read_by_name_whatever_their_order_in_the_select() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        rusqlite::Connection::open(&path).unwrap();
        let f = FastReaders::new(path, 1);
        let rows: Vec<Ab> = f
            .query(&Sql::new("SELECT 'x' AS b, 7 AS a"), usize::MAX)
            .unwrap();
        assert_eq!(
            rows,
            vec![Ab {
                a: 7,
                b: "x".into()
            }]
        );
        let err = f
            .query::<Ab>(&Sql::new("SELECT 7 AS a, 'x' AS c"), usize::MAX)
            .unwrap_err();
        assert!(err.to_string().contains("b"), "{err}");
    }
}
