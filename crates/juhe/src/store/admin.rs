//! Platform administration: merchants, agents (代理商), OAuth2 clients and tokens.
//! Not merchant-scoped by nature; used by the CLI and by the token endpoint/extractor.

use std::collections::HashMap;
use std::time::{Duration, Instant};

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
        let done = tx.commit().await;
        self.store.token_cache.revoked();
        done?;
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
        let deleted = q.execute(self.store.write_pool()).await;
        self.store.token_cache.revoked();
        Ok(deleted? > 0)
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
        let deleted = q.execute(self.store.write_pool()).await;
        self.store.token_cache.revoked();
        deleted
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
        let found = self.read_token(hex::encode(token_key(token))).await?;
        Ok(found
            .filter(|&(_, expires_at)| expires_at > now())
            .map(|(p, _)| p))
    }

    /// [`Admin::resolve_token`], answered from memory when this process verified the token
    /// less than `max_age` ago (zero: always read). See [`TokenCache`] for how revocation
    /// still takes effect.
    pub async fn resolve_token_cached(
        &self,
        token: &str,
        max_age: Duration,
    ) -> Result<Option<Principal>, sqlx::Error> {
        if max_age.is_zero() {
            return self.resolve_token(token).await;
        }
        let key = token_key(token);
        let generation = match self.store.token_cache.token(&key, max_age) {
            Ok(principal) => return Ok(Some(principal)),
            Err(generation) => generation,
        };
        let Some((principal, expires_at)) = self.read_token(hex::encode(key)).await? else {
            return Ok(None);
        };
        if expires_at <= now() {
            return Ok(None);
        }
        self.store
            .token_cache
            .put_token(generation, key, principal, expires_at);
        Ok(Some(principal))
    }

    /// [`Admin::agent_tenant`], answered from memory like [`Admin::resolve_token_cached`].
    pub async fn agent_tenant_cached(
        &self,
        agent_id: i64,
        merchant_id: i64,
        max_age: Duration,
    ) -> Result<Option<MerchantId>, sqlx::Error> {
        if max_age.is_zero() {
            return self.agent_tenant(agent_id, merchant_id).await;
        }
        let generation = match self.store.token_cache.link(agent_id, merchant_id, max_age) {
            Ok(()) => return Ok(Some(MerchantId::from_db(merchant_id))),
            Err(generation) => generation,
        };
        let found = self.agent_tenant(agent_id, merchant_id).await?;
        if found.is_some() {
            self.store
                .token_cache
                .put_link(generation, agent_id, merchant_id);
        }
        Ok(found)
    }

    /// The principal and expiry of the token with this hash, expired or not.
    async fn read_token(&self, hash: String) -> Result<Option<(Principal, i64)>, sqlx::Error> {
        let mut q = Sql::new(
            "SELECT owner_kind, owner_id, expires_at FROM access_tokens WHERE token_hash = ",
        );
        q.bind(hash);
        // Every API request whose token is not cached runs this: it takes the hot read path.
        let Some((owner_kind, owner_id, expires_at)): Option<(String, i64, i64)> =
            self.store.read_optional(q).await?
        else {
            return Ok(None);
        };
        let principal = match owner_kind.as_str() {
            "merchant" => Principal::Merchant(MerchantId::from_db(owner_id)),
            "agent" => Principal::Agent(owner_id),
            _ => return Ok(None),
        };
        Ok(Some((principal, expires_at)))
    }
}

/// What a token is stored and cached under: its SHA-256 (the stored `token_hash` is its
/// hex), so the cache holds no usable token either.
fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Bearer tokens verified recently, so that a request does not pay a database read (on
/// PostgreSQL a whole round trip, as much as the page it asks for) to learn what the
/// previous request of the same integrator already learned.
///
/// Staleness is bounded two ways. In this process every revocation path of [`Admin`]
/// clears the cache after its commit, and a lookup that started before a revocation never
/// stores what it read (the generation check), so revocation here takes effect with the
/// next request. A revocation made by another process (`juhe merchant revoke-tokens`
/// against a running server, or a second server on the same PostgreSQL) reaches this
/// process when its entries age out, after at most `auth.token_cache_ms`. A token's own
/// expiry is checked on every hit. Only verified tokens are kept, so a guesser cannot
/// fill it.
#[derive(Default)]
pub(crate) struct TokenCache {
    inner: std::sync::Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    /// Bumped by every revocation: a lookup stores its result only if none happened
    /// while it read the database.
    generation: u64,
    tokens: HashMap<[u8; 32], CachedToken>,
    /// Agent → merchant links verified recently, with when they were read.
    links: HashMap<(i64, i64), Instant>,
}

#[derive(Clone, Copy)]
struct CachedToken {
    principal: Principal,
    expires_at: i64,
    read_at: Instant,
}

/// Enough for every live token of a large deployment; beyond it the cache starts over
/// rather than grow (a miss costs one read, nothing more).
const CACHE_MAX_ENTRIES: usize = 16_384;

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // The maps are left consistent by every holder, so a panic elsewhere does not
        // make them unusable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached principal, or the generation to store a fresh read under.
    fn token(&self, key: &[u8; 32], max_age: Duration) -> Result<Principal, u64> {
        let inner = self.lock();
        match inner.tokens.get(key) {
            Some(c) if c.read_at.elapsed() < max_age && c.expires_at > now() => Ok(c.principal),
            _ => Err(inner.generation),
        }
    }

    fn put_token(&self, generation: u64, key: [u8; 32], principal: Principal, expires_at: i64) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.tokens.len() >= CACHE_MAX_ENTRIES {
            inner.tokens.clear();
        }
        inner.tokens.insert(
            key,
            CachedToken {
                principal,
                expires_at,
                read_at: Instant::now(),
            },
        );
    }

    fn link(&self, agent: i64, merchant: i64, max_age: Duration) -> Result<(), u64> {
        let inner = self.lock();
        match inner.links.get(&(agent, merchant)) {
            Some(at) if at.elapsed() < max_age => Ok(()),
            _ => Err(inner.generation),
        }
    }

    fn put_link(&self, generation: u64, agent: i64, merchant: i64) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.links.len() >= CACHE_MAX_ENTRIES {
            inner.links.clear();
        }
        inner.links.insert((agent, merchant), Instant::now());
    }

    /// Forgets everything, after a revocation has committed.
    fn revoked(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.tokens.clear();
        inner.links.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    async fn token(store: &Store, c: &MerchantCredentials) -> String {
        store
            .admin()
            .issue_token(&c.client_id, &c.client_secret, "s", 3600)
            .await
            .unwrap()
            .unwrap()
            .access_token
    }

    /// Two stores on one file are two server processes: a revocation through one clears
    /// its own cache at once and reaches the other when that one's entry ages out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revocation_applies_at_once_here_and_within_the_cache_time_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/cache.db", dir.path().display());
        let here = Store::open(&url, 2).await.unwrap();
        let there = Store::connect(&url, 2).await.unwrap();
        let c = here.admin().create_merchant("m").await.unwrap();
        let m = MerchantId::from_db(c.merchant_id);
        let max_age = Duration::from_millis(300);
        let t = token(&here, &c).await;
        for s in [&here, &there] {
            let p = s.admin().resolve_token_cached(&t, max_age).await.unwrap();
            assert_eq!(p, Some(Principal::Merchant(m)));
        }
        here.admin().revoke_merchant_tokens(m).await.unwrap();
        let now_here = here.admin().resolve_token_cached(&t, max_age).await;
        assert_eq!(
            now_here.unwrap(),
            None,
            "revoked through this store: at once"
        );
        let now_there = there.admin().resolve_token_cached(&t, max_age).await;
        assert_eq!(
            now_there.unwrap(),
            Some(Principal::Merchant(m)),
            "another process keeps its entry until it ages out"
        );
        tokio::time::sleep(max_age).await;
        let later = there.admin().resolve_token_cached(&t, max_age).await;
        assert_eq!(later.unwrap(), None, "and then reads the revocation");
        let off = there.admin().resolve_token_cached(&t, Duration::ZERO).await;
        assert_eq!(off.unwrap(), None);
        here.close().await;
        there.close().await;
    }

    /// A lookup that read the token before a revocation committed must not put what it
    /// read into the cache after the revocation cleared it.
    #[test]
    fn a_read_from_before_a_revocation_is_not_cached() {
        let cache = TokenCache::default();
        let key = token_key("t");
        let generation = cache.token(&key, Duration::from_secs(1)).unwrap_err();
        cache.revoked();
        let p = Principal::Merchant(MerchantId::from_db(1));
        cache.put_token(generation, key, p, now() + 60);
        assert!(cache.token(&key, Duration::from_secs(1)).is_err());
        let generation = cache.token(&key, Duration::from_secs(1)).unwrap_err();
        cache.put_token(generation, key, p, now() + 60);
        assert_eq!(cache.token(&key, Duration::from_secs(1)), Ok(p));
        // An entry whose token has expired is not answered, however fresh.
        cache.put_token(generation, key, p, now() - 1);
        assert!(cache.token(&key, Duration::from_secs(1)).is_err());
    }
}
