//! Platform administration: merchants, agents (代理商), OAuth2 clients and tokens.
//! Not merchant-scoped by nature; used by the CLI and by the token endpoint/extractor.

use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{now, MerchantId, Sql, Store};

pub struct Admin<'a> {
    pub(crate) store: &'a Store,
}

/// Credentials printed once at creation; only hashes are stored.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MerchantCredentials {
    pub merchant_id: i64,
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCredentials {
    pub agent_id: i64,
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct MerchantRow {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
}

/// Who a bearer token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    Merchant(MerchantId),
    /// An agent; it must name a linked merchant in the `TenantId` header.
    Agent(i64),
}

/// What revoking a merchant's access removed.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revoked {
    pub tokens: u64,
    pub agent_links: u64,
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
    pub scope: String,
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn random_token() -> String {
    use base64::Engine;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[derive(sqlx::FromRow)]
struct ClientRow {
    secret_hash: String,
    owner_kind: String,
    owner_id: i64,
}

impl Admin<'_> {
    async fn create_client(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        kind: &str,
        owner: i64,
    ) -> Result<(String, String), sqlx::Error> {
        // Same shape as the original's 计费云 credentials: `y` + 32 hex, and 32 hex.
        let client_id = format!("y{}", random_hex(16));
        let secret = random_hex(16);
        let mut q = Sql::new("INSERT INTO api_clients (client_id, secret_hash, owner_kind, owner_id, created_at) VALUES (");
        q.bind(client_id.clone())
            .push(", ")
            .bind(sha256_hex(&secret))
            .push(", ")
            .bind(kind.to_owned())
            .push(", ")
            .bind(owner)
            .push(", ")
            .bind(now())
            .push(")");
        q.execute(&mut **tx).await?;
        Ok((client_id, secret))
    }

    pub async fn create_merchant(&self, name: &str) -> Result<MerchantCredentials, sqlx::Error> {
        let mut tx = self.store.write_pool().begin().await?;
        let mut q = Sql::new("INSERT INTO merchants (name, created_at) VALUES (");
        q.bind(name.to_owned())
            .push(", ")
            .bind(now())
            .push(") RETURNING id");
        let id: i64 = q.scalar(&mut *tx).await?;
        let (client_id, client_secret) = self.create_client(&mut tx, "merchant", id).await?;
        tx.commit().await?;
        Ok(MerchantCredentials {
            merchant_id: id,
            client_id,
            client_secret,
        })
    }

    /// New client credentials for an existing merchant (the old ones stay valid).
    pub async fn add_merchant_client(
        &self,
        m: MerchantId,
    ) -> Result<MerchantCredentials, sqlx::Error> {
        let mut tx = self.store.write_pool().begin().await?;
        let (client_id, client_secret) = self.create_client(&mut tx, "merchant", m.get()).await?;
        tx.commit().await?;
        Ok(MerchantCredentials {
            merchant_id: m.get(),
            client_id,
            client_secret,
        })
    }

    pub async fn list_merchants(&self) -> Result<Vec<MerchantRow>, sqlx::Error> {
        Sql::new("SELECT id, name, created_at FROM merchants ORDER BY id")
            .fetch_all(self.store.read_pool())
            .await
    }

    /// The merchant with this id, if it exists.
    /// Chats stored across every merchant: a platform figure for the operator (benchmarks,
    /// capacity planning), never merchant data.
    pub async fn count_all_chats(&self) -> Result<i64, sqlx::Error> {
        Sql::new("SELECT COUNT(*) FROM chats")
            .scalar(self.store.read_pool())
            .await
    }

    pub async fn merchant(&self, id: i64) -> Result<Option<MerchantId>, sqlx::Error> {
        let mut q = Sql::new("SELECT id FROM merchants WHERE id = ");
        q.bind(id);
        let row: Option<(i64,)> = q.fetch_optional(self.store.read_pool()).await?;
        Ok(row.map(|(id,)| MerchantId::from_db(id)))
    }

    /// Revokes a merchant's access, effective at once: deletes every token issued to the
    /// merchant and unlinks every agent acting for it (an agent's token is the agent's, not
    /// the merchant's, so deleting tokens alone would leave agents acting). The merchant's
    /// client credentials stay valid; agents need `juhe agent link` again.
    pub async fn revoke_merchant_tokens(&self, m: MerchantId) -> Result<u64, sqlx::Error> {
        Ok(self.revoke_merchant_access(m).await?.tokens)
    }

    /// Like [`Admin::revoke_merchant_tokens`], with both counts.
    pub async fn revoke_merchant_access(&self, m: MerchantId) -> Result<Revoked, sqlx::Error> {
        let mut tx = self.store.write_pool().begin().await?;
        let mut q =
            Sql::new("DELETE FROM access_tokens WHERE owner_kind = 'merchant' AND owner_id = ");
        q.bind(m.get());
        let tokens = q.execute(&mut *tx).await?;
        let mut q = Sql::new("DELETE FROM agent_merchants WHERE merchant_id = ");
        q.bind(m.get());
        let agent_links = q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Revoked {
            tokens,
            agent_links,
        })
    }

    /// Stops the agent acting for the merchant, effective with its next request. Returns
    /// whether a link existed.
    pub async fn unlink_agent(&self, agent_id: i64, m: MerchantId) -> Result<bool, sqlx::Error> {
        let mut q = Sql::new("DELETE FROM agent_merchants WHERE agent_id = ");
        q.bind(agent_id).push(" AND merchant_id = ").bind(m.get());
        Ok(q.execute(self.store.write_pool()).await? > 0)
    }

    /// Deletes tokens that expired before `before` (Unix seconds), through the index on
    /// `expires_at`; returns how many.
    pub async fn delete_expired_tokens(&self, before: i64) -> Result<u64, sqlx::Error> {
        let mut q = Sql::new("DELETE FROM access_tokens WHERE expires_at < ");
        q.bind(before);
        q.execute(self.store.write_pool()).await
    }

    pub async fn revoke_agent_tokens(&self, agent_id: i64) -> Result<u64, sqlx::Error> {
        let mut q =
            Sql::new("DELETE FROM access_tokens WHERE owner_kind = 'agent' AND owner_id = ");
        q.bind(agent_id);
        q.execute(self.store.write_pool()).await
    }

    pub async fn create_agent(&self, name: &str) -> Result<AgentCredentials, sqlx::Error> {
        let mut tx = self.store.write_pool().begin().await?;
        let mut q = Sql::new("INSERT INTO agents (name, created_at) VALUES (");
        q.bind(name.to_owned())
            .push(", ")
            .bind(now())
            .push(") RETURNING id");
        let id: i64 = q.scalar(&mut *tx).await?;
        let (client_id, client_secret) = self.create_client(&mut tx, "agent", id).await?;
        tx.commit().await?;
        Ok(AgentCredentials {
            agent_id: id,
            client_id,
            client_secret,
        })
    }

    pub async fn agent_exists(&self, agent_id: i64) -> Result<bool, sqlx::Error> {
        let mut q = Sql::new("SELECT COUNT(*) FROM agents WHERE id = ");
        q.bind(agent_id);
        Ok(q.scalar::<i64, _>(self.store.read_pool()).await? > 0)
    }

    /// Lets the agent act for the merchant. Linking twice is harmless.
    pub async fn link_agent(&self, agent_id: i64, m: MerchantId) -> Result<(), sqlx::Error> {
        let mut q =
            Sql::new("INSERT INTO agent_merchants (agent_id, merchant_id, created_at) VALUES (");
        q.bind(agent_id)
            .push(", ")
            .bind(m.get())
            .push(", ")
            .bind(now())
            .push(") ON CONFLICT (agent_id, merchant_id) DO NOTHING");
        q.execute(self.store.write_pool()).await?;
        Ok(())
    }

    /// The merchant an agent may act for, if it is linked.
    pub async fn agent_tenant(
        &self,
        agent_id: i64,
        merchant_id: i64,
    ) -> Result<Option<MerchantId>, sqlx::Error> {
        let mut q = Sql::new("SELECT merchant_id FROM agent_merchants WHERE agent_id = ");
        q.bind(agent_id)
            .push(" AND merchant_id = ")
            .bind(merchant_id);
        let row: Option<(i64,)> = q.fetch_optional(self.store.read_pool()).await?;
        Ok(row.map(|(id,)| MerchantId::from_db(id)))
    }

    /// Client-credentials grant. `None` means the client id or secret is wrong.
    pub async fn issue_token(
        &self,
        client_id: &str,
        client_secret: &str,
        scope: &str,
        ttl: i64,
    ) -> Result<Option<IssuedToken>, sqlx::Error> {
        let mut q = Sql::new(
            "SELECT secret_hash, owner_kind, owner_id FROM api_clients WHERE client_id = ",
        );
        q.bind(client_id.to_owned());
        let Some(client): Option<ClientRow> = q.fetch_optional(self.store.read_pool()).await?
        else {
            return Ok(None);
        };
        let presented = sha256_hex(client_secret);
        // Compare hashes in constant time so response timing says nothing about the secret.
        let same = presented.len() == client.secret_hash.len()
            && presented
                .bytes()
                .zip(client.secret_hash.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return Ok(None);
        }
        let token = random_token();
        let t = now();
        let mut q = Sql::new("INSERT INTO access_tokens (token_hash, owner_kind, owner_id, client_id, scope, expires_at, created_at) VALUES (");
        q.bind(sha256_hex(&token))
            .push(", ")
            .bind(client.owner_kind)
            .push(", ")
            .bind(client.owner_id)
            .push(", ");
        q.bind(client_id.to_owned())
            .push(", ")
            .bind(scope.to_owned())
            .push(", ")
            .bind(t + ttl)
            .push(", ")
            .bind(t)
            .push(")");
        q.execute(self.store.write_pool()).await?;
        Ok(Some(IssuedToken {
            access_token: token,
            expires_in: ttl,
            scope: scope.to_owned(),
        }))
    }

    /// The principal behind a bearer token, if the token exists and has not expired.
    pub async fn resolve_token(&self, token: &str) -> Result<Option<Principal>, sqlx::Error> {
        let mut q = Sql::new(
            "SELECT owner_kind, owner_id, expires_at FROM access_tokens WHERE token_hash = ",
        );
        q.bind(sha256_hex(token));
        // Every API request runs this: it takes the hot read path.
        let Some((owner_kind, owner_id, expires_at)): Option<(String, i64, i64)> =
            self.store.read_optional(q).await?
        else {
            return Ok(None);
        };
        if expires_at <= now() {
            return Ok(None);
        }
        Ok(match owner_kind.as_str() {
            "merchant" => Some(Principal::Merchant(MerchantId::from_db(owner_id))),
            "agent" => Some(Principal::Agent(owner_id)),
            _ => None,
        })
    }
}
