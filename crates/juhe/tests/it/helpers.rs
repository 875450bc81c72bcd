//! Test harness: the real application on 127.0.0.1:0 with its own database per test —
//! a SQLite file in a temporary folder, or a fresh PostgreSQL database when
//! `JUHE_TEST_POSTGRES_URL` is set (e.g. postgres://postgres@127.0.0.1:5432/test).

use juhe::app::Application;
use juhe::config::{Config, Overrides};
use juhe::store::import::ImportFile;
use juhe::store::{MerchantId, Store};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub store: Store,
    pub http: reqwest::Client,
    pub db_url: String,
    kind: Db,
    shutdown: CancellationToken,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

/// A merchant with a token.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: MerchantId,
    pub token: String,
}

pub fn pg_admin_url() -> Option<String> {
    std::env::var("JUHE_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

fn with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let slash = base.rfind('/').expect("postgres url has a path");
    let mut out = format!("{}/{}", &base[..slash], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl TestApp {
    pub async fn spawn(db: Db) -> Option<TestApp> {
        TestApp::spawn_with(db, |_| {}).await
    }

    /// `None` when the PostgreSQL variant is asked for and no PostgreSQL is configured.
    pub async fn spawn_with(db: Db, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
        let mut cfg = Config::defaults_with(&Overrides {
            listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        })
        .unwrap();
        let (url, dir, pg) = match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                (
                    format!("sqlite://{}/juhe.db", dir.path().display()),
                    Some(dir),
                    None,
                )
            }
            Db::Postgres => {
                let admin = pg_admin_url()?;
                let name = format!("juhe_t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .expect("JUHE_TEST_POSTGRES_URL is set but PostgreSQL is unreachable");
                sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
                    .await
                    .unwrap();
                (with_db(&admin, &name), None, Some((admin, name)))
            }
        };
        cfg.database_url = url.clone();
        // Tests fire requests faster than a real integrator; the rate-limit test turns it on.
        cfg.rate_limit.per_second = 0;
        // Likewise the authentication limits (tests send bad tokens and take many tokens on
        // purpose from one address); ops_hardening.rs turns them on.
        cfg.auth.token_per_client_per_minute = 0;
        cfg.auth.token_per_ip_per_minute = 0;
        cfg.auth.failed_auth_per_ip_per_minute = 0;
        tweak(&mut cfg);
        if std::env::var_os("TEST_LOG").is_some() {
            juhe::app::init_logging(juhe::config::LogFormat::Text, "info,sqlx=warn");
        }
        let app = Application::build(cfg).await.unwrap();
        let addr = app.local_addr();
        let store = app.store().clone();
        let shutdown = app.shutdown_token();
        tokio::spawn(app.run());
        Some(TestApp {
            base: format!("http://{addr}"),
            store,
            http: reqwest::Client::new(),
            db_url: url,
            kind: db,
            shutdown,
            _dir: dir,
            pg,
        })
    }

    /// The backend this app runs on, to start another one like it.
    pub fn db(&self) -> Db {
        self.kind
    }

    pub async fn merchant(&self, name: &str) -> Tenant {
        let c = self.store.admin().create_merchant(name).await.unwrap();
        let token = self.token(&c.client_id, &c.client_secret).await;
        Tenant {
            id: self
                .store
                .admin()
                .merchant(c.merchant_id)
                .await
                .unwrap()
                .unwrap(),
            token,
        }
    }

    /// A merchant with the fixture imported.
    pub async fn fixture_merchant(&self, name: &str) -> Tenant {
        let t = self.merchant(name).await;
        self.import(&t, &fixture()).await;
        t
    }

    pub async fn import(&self, t: &Tenant, file: &Value) {
        let f: ImportFile = serde_json::from_value(file.clone()).unwrap();
        juhe::core::import::import(
            self.store.tenant(t.id),
            &f,
            chrono::FixedOffset::east_opt(8 * 3600).unwrap(),
            &|_| {},
        )
        .await
        .unwrap();
    }

    pub async fn token(&self, id: &str, secret: &str) -> String {
        let r = self
            .http
            .post(format!("{}/connect/token", self.base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "Ls.Qkl.PublicApi"),
                ("client_id", id),
                ("client_secret", secret),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// POSTs a JSON body with a token; returns status and the parsed response.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{}", self.base, path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")),
        )
    }

    /// POSTs and asserts success; returns the whole envelope.
    pub async fn ok(&self, path: &str, token: &str, body: Value) -> Value {
        let (status, v) = self.post(path, token, body).await;
        assert_eq!(status, 200, "{path}: {v}");
        assert_eq!(v["errmsg"], 20000, "{path}: {v}");
        assert_eq!(v["succeed"], true, "{path}: {v}");
        v
    }

    /// POSTs and returns `values` of a successful answer.
    pub async fn values(&self, path: &str, token: &str, body: Value) -> Value {
        self.ok(path, token, body).await["values"].clone()
    }

    /// POSTs expecting a failure; asserts the HTTP status and result code, returns errdesc.
    pub async fn fails(
        &self,
        path: &str,
        token: &str,
        body: Value,
        status: u16,
        code: i64,
    ) -> String {
        let (s, v) = self.post(path, token, body).await;
        assert_eq!(
            (s, v["errmsg"].as_i64().unwrap_or(0)),
            (status, code),
            "{path}: {v}"
        );
        assert_eq!(v["succeed"], false);
        v["errdesc"].as_str().unwrap_or("").to_owned()
    }

    /// A raw connection to the test's database, for checks the API cannot make.
    pub async fn raw(&self) -> sqlx::AnyConnection {
        sqlx::any::install_default_drivers();
        <sqlx::AnyConnection as sqlx::Connection>::connect(&self.db_url)
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some((admin, name)) = self.pg.take() {
            // Dropping needs its own runtime: Drop cannot await, and the test's runtime is ending.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    if let Ok(mut conn) =
                        <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await
                    {
                        let _ = sqlx::Executor::execute(
                            &mut conn,
                            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                        )
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

pub fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/org-example.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Local `yyyy-MM-dd HH:mm:ss` (+08:00) to Unix seconds.
pub fn ts(s: &str) -> i64 {
    juhe::timefmt::parse_local(s, chrono::FixedOffset::east_opt(8 * 3600).unwrap()).unwrap()
}

/// Says once per test binary, where `cargo test` shows it, that the PostgreSQL variants
/// are skipped and why. Written to the process's stderr directly: libtest captures
/// `eprintln!` of passing tests, which is how a whole backend used to go silently untested.
pub fn note_postgres_skipped(_test: &str) {
    use std::io::Write;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\nPostgreSQL: the PostgreSQL variants of these tests are SKIPPED: JUHE_TEST_POSTGRES_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)"
        );
    });
}

/// Runs each test body on SQLite and, when `JUHE_TEST_POSTGRES_URL` is set, on PostgreSQL.
#[macro_export]
macro_rules! on_both {
    ($(async fn $name:ident($app:ident) $body:block)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $app = $crate::helpers::TestApp::spawn($crate::helpers::Db::Sqlite).await.unwrap();
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some($app) = $crate::helpers::TestApp::spawn($crate::helpers::Db::Postgres).await else {
                        $crate::helpers::note_postgres_skipped(stringify!($name));
                        return;
                    };
                    $body
                }
            )*
        }
    };
}

/// [`on_both!`] with a configuration tweak (`fn(&mut Config)`) applied to every app.
#[macro_export]
macro_rules! on_both_with {
    ($tweak:expr; $(async fn $name:ident($app:ident) $body:block)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $app = $crate::helpers::TestApp::spawn_with($crate::helpers::Db::Sqlite, $tweak).await.unwrap();
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some($app) = $crate::helpers::TestApp::spawn_with($crate::helpers::Db::Postgres, $tweak).await else {
                        $crate::helpers::note_postgres_skipped(stringify!($name));
                        return;
                    };
                    $body
                }
            )*
        }
    };
}

impl TestApp {
    /// Another server on this app's database, as a second process would be, with the same
    /// tweak applied to its configuration. Stops when the token is cancelled.
    pub async fn another_server(
        &self,
        tweak: impl FnOnce(&mut Config),
    ) -> (String, CancellationToken) {
        let mut cfg = Config::defaults_with(&Overrides {
            listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        })
        .unwrap();
        cfg.database_url = self.db_url.clone();
        cfg.rate_limit.per_second = 0;
        cfg.auth.token_per_client_per_minute = 0;
        cfg.auth.token_per_ip_per_minute = 0;
        cfg.auth.failed_auth_per_ip_per_minute = 0;
        tweak(&mut cfg);
        let app = Application::build(cfg).await.unwrap();
        let base = format!("http://{}", app.local_addr());
        let token = app.shutdown_token();
        tokio::spawn(app.run());
        (base, token)
    }
}
