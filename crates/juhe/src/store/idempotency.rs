//! Idempotency keys: a write sent again with the same `Idempotency-Key` returns the
//! original result instead of writing twice. The key and the result are stored in the
//! same transaction as the write, so a crash can never leave one without the other.

use super::{now, Sql, Tenant};

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// A remembered result.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Remembered {
    pub route: String,
    pub request_hash: String,
    pub response: String,
    pub created_at: i64,
}

impl Tenant<'_> {
    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.store.write_pool().begin().await
    }

    /// The result remembered for `key`, if it is younger than `ttl` seconds.
    pub async fn idempotency_get(
        &self,
        tx: &mut Tx,
        key: &str,
        ttl: i64,
    ) -> Result<Option<Remembered>, sqlx::Error> {
        let mut q = Sql::new("SELECT route, request_hash, response, created_at FROM idempotency_keys WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND idem_key = ")
            .bind(key.to_owned());
        let row: Option<Remembered> = q.fetch_optional(&mut **tx).await?;
        match row {
            Some(r) if r.created_at + ttl > now() => Ok(Some(r)),
            Some(_) => {
                let mut q = Sql::new("DELETE FROM idempotency_keys WHERE merchant_id = ");
                q.bind(self.m.get())
                    .push(" AND idem_key = ")
                    .bind(key.to_owned());
                q.execute(&mut **tx).await?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    pub async fn idempotency_put(
        &self,
        tx: &mut Tx,
        key: &str,
        route: &str,
        request_hash: &str,
        response: &str,
        ttl: i64,
    ) -> Result<(), sqlx::Error> {
        let mut q = Sql::new("INSERT INTO idempotency_keys (merchant_id, idem_key, route, request_hash, response, created_at) VALUES (");
        q.bind(self.m.get())
            .push(", ")
            .bind(key.to_owned())
            .push(", ")
            .bind(route.to_owned())
            .push(", ");
        q.bind(request_hash.to_owned())
            .push(", ")
            .bind(response.to_owned())
            .push(", ")
            .bind(now())
            .push(")");
        q.execute(&mut **tx).await?;
        // Keep the table to the window: drop this merchant's expired keys as new ones arrive.
        let mut q = Sql::new("DELETE FROM idempotency_keys WHERE merchant_id = ");
        q.bind(self.m.get())
            .push(" AND created_at < ")
            .bind(now() - ttl);
        q.execute(&mut **tx).await?;
        Ok(())
    }
}
