//! Issue 5, the operator's side: authentication limits, token cleanup, agent revocation,
//! reports in bounded memory and with sane definitions.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Db, TestApp};

/// Runs each test body on SQLite and on PostgreSQL (when configured), with a config tweak.
macro_rules! on_both_with {
    ($tweak:expr; $(async fn $name:ident($app:ident) $body:block)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $app = TestApp::spawn_with(Db::Sqlite, $tweak).await.unwrap();
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
                    let Some($app) = TestApp::spawn_with(Db::Postgres, $tweak).await else {
                        crate::helpers::note_postgres_skipped(stringify!($name));
                        return;
                    };
                    $body
                }
            )*
        }
    };
}

fn tight(c: &mut juhe::config::Config) {
    c.auth.token_per_client_per_minute = 1;
    c.auth.token_per_client_burst = 3;
    c.auth.token_per_ip_per_minute = 1;
    c.auth.token_per_ip_burst = 6;
    c.auth.failed_auth_per_ip_per_minute = 1;
    c.auth.failed_auth_per_ip_burst = 3;
    c.auth.expired_token_sweep_seconds = 1;
}

/// A client whose connections come from another loopback address (Linux routes all of
/// 127.0.0.0/8 to the loopback interface), i.e. another source IP for the server.
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(ip)))
        .build()
        .unwrap()
}

async fn token_status(
    http: &reqwest::Client,
    app: &TestApp,
    id: &str,
    secret: &str,
) -> (u16, Option<u64>, Value) {
    let r = http
        .post(format!("{}/connect/token", app.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, retry, r.json().await.unwrap())
}

async fn get_status(http: &reqwest::Client, app: &TestApp, token: &str) -> (u16, Value) {
    let r = http
        .post(format!("{}/v2/System/GetDepartList", app.base))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Reads one HTTP/1.1 response with a Content-Length body from a raw stream.
async fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().unwrap();
                return (status, head);
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("the server answers within 5 s")
            .unwrap();
        assert!(
            n > 0,
            "the server closed the connection; read so far: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

on_both_with! { tight;
    async fn token_requests_over_the_per_client_limit_get_429_slow_down_while_another_client_gets_its_token(app) {
        let a = app.store.admin().create_merchant("a").await.unwrap();
        let b = app.store.admin().create_merchant("b").await.unwrap();
        for _ in 0..3 {
            let (s, _, v) = token_status(&app.http, &app, &a.client_id, &a.client_secret).await;
            assert_eq!(s, 200, "{v}");
        }
        let (s, retry, v) = token_status(&app.http, &app, &a.client_id, &a.client_secret).await;
        assert_eq!((s, v["error"].as_str().unwrap()), (429, "slow_down"), "{v}");
        assert!(retry.unwrap() >= 1);
        assert!(v["error_description"].as_str().unwrap().contains("client_id"), "{v}");
        // Wrong secrets count too: they are how a secret is guessed.
        let (s, _, _) = token_status(&app.http, &app, &a.client_id, "guess").await;
        assert_eq!(s, 429);
        let (s, _, v) = token_status(&app.http, &app, &b.client_id, &b.client_secret).await;
        assert_eq!(s, 200, "{v}");
    }

    async fn token_requests_over_the_per_address_limit_get_429_while_another_address_is_served(app) {
        let mut clients = Vec::new();
        for i in 0..7 {
            clients.push(app.store.admin().create_merchant(&format!("m{i}")).await.unwrap());
        }
        for c in &clients[..6] {
            let (s, _, v) = token_status(&app.http, &app, &c.client_id, &c.client_secret).await;
            assert_eq!(s, 200, "{v}");
        }
        let c = &clients[6];
        let (s, retry, v) = token_status(&app.http, &app, &c.client_id, &c.client_secret).await;
        assert_eq!((s, v["error"].as_str().unwrap()), (429, "slow_down"), "{v}");
        assert!(retry.is_some());
        let (s, _, v) = token_status(&client_from([127, 0, 0, 2]), &app, &c.client_id, &c.client_secret).await;
        assert_eq!(s, 200, "{v}");
    }

    async fn an_address_sending_bad_tokens_gets_429_even_with_a_good_token_while_other_addresses_are_served(app) {
        let t = app.merchant("m").await;
        let other = client_from([127, 0, 0, 3]);
        for _ in 0..3 {
            let (s, v) = get_status(&other, &app, "guess").await;
            assert_eq!((s, v["errmsg"].as_i64().unwrap()), (401, 10003), "{v}");
        }
        let r = other.post(format!("{}/v2/System/GetDepartList", app.base)).bearer_auth("guess").json(&json!({})).send().await.unwrap();
        assert_eq!(r.status(), 429);
        assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
        let v: Value = r.json().await.unwrap();
        assert_eq!((v["errmsg"].as_i64().unwrap(), v["succeed"].as_bool().unwrap()), (200103, false), "{v}");
        assert!(v["errdesc"].as_str().unwrap().starts_with("Authorization"), "{v}");
        // A right guess looks the same as a wrong one from a blocked address.
        let (s, _) = get_status(&other, &app, &t.token).await;
        assert_eq!(s, 429);
        // The merchant's own address is untouched.
        let (s, v) = get_status(&app.http, &app, &t.token).await;
        assert_eq!(s, 200, "{v}");
    }

    async fn after_a_429_the_same_keep_alive_connection_still_answers_or_the_429_says_connection_close(app) {
        let addr = app.base.trim_start_matches("http://").to_owned();
        let mut s = TcpStream::connect(&addr).await.unwrap();
        // Without a body: the connection stays usable.
        let bad = "GET /v2/System/GetDepartList HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer guess\r\n\r\n";
        let mut statuses = Vec::new();
        for _ in 0..4 {
            s.write_all(bad.as_bytes()).await.unwrap();
            let (status, head) = read_response(&mut s).await;
            assert!(!head.contains("connection: close"), "{head}");
            statuses.push(status);
        }
        assert_eq!(statuses, [401, 401, 401, 429]);
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert_eq!(read_response(&mut s).await.0, 200);
        // With a large body the server does not read: the 429 says the connection closes,
        // and a new connection works.
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let body = format!("{{\"x\": \"{}\"}}", "a".repeat(900_000));
        let head = format!("POST /v2/System/GetDepartList HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer guess\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
        s.write_all(head.as_bytes()).await.unwrap();
        // The server may answer and close before all of the body is sent.
        let _ = s.write_all(body.as_bytes()).await;
        let (status, head) = read_response(&mut s).await;
        assert_eq!(status, 429);
        assert!(head.contains("connection: close"), "{head}");
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert_eq!(read_response(&mut s).await.0, 200);
        // The token endpoint reads its body first, so its 429 keeps the connection.
        let form = "grant_type=client_credentials&client_id=x&client_secret=y";
        let mut statuses = Vec::new();
        for _ in 0..8 {
            s.write_all(format!("POST /connect/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}", form.len()).as_bytes()).await.unwrap();
            let (status, head) = read_response(&mut s).await;
            assert!(!head.contains("connection: close"), "{head}");
            statuses.push(status);
        }
        assert!(statuses.contains(&429), "{statuses:?}");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert_eq!(read_response(&mut s).await.0, 200);
    }

    async fn expired_tokens_are_swept_through_an_index(app) {
        let t = app.merchant("m").await;
        let live = app.merchant("n").await;
        let mut raw = app.raw().await;
        sqlx::query(&format!("UPDATE access_tokens SET expires_at = 1 WHERE owner_id = {}", t.id.get())).execute(&mut raw).await.unwrap();
        let mut left = 2;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            left = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM access_tokens").fetch_one(&mut raw).await.unwrap();
            if left == 1 {
                break;
            }
        }
        assert_eq!(left, 1, "the expired token is deleted, the live one kept");
        app.values("/v2/System/GetDepartList", &live.token, json!({})).await;
        let plan_sql = if app.db_url.starts_with("sqlite") {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'access_tokens_expires_at'"
        } else {
            "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'access_tokens_expires_at'"
        };
        let n: i64 = sqlx::query_scalar(plan_sql).fetch_one(&mut raw).await.unwrap();
        assert_eq!(n, 1);
        if app.db_url.starts_with("sqlite") {
            let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as("EXPLAIN QUERY PLAN DELETE FROM access_tokens WHERE expires_at < 5").fetch_all(&mut raw).await.unwrap();
            assert!(plan.iter().any(|p| p.3.contains("access_tokens_expires_at")), "{plan:?}");
        }
    }

    async fn an_unlinked_agent_is_refused_at_once(app) {
        let m = app.merchant("m").await;
        let a = app.store.admin().create_agent("agent").await.unwrap();
        app.store.admin().link_agent(a.agent_id, m.id).await.unwrap();
        let token = app.token(&a.client_id, &a.client_secret).await;
        let call = || app.http.post(format!("{}/v2/System/GetDepartList", app.base)).bearer_auth(&token).header("TenantId", m.id.get().to_string()).json(&json!({})).send();
        assert_eq!(call().await.unwrap().status(), 200);
        assert!(app.store.admin().unlink_agent(a.agent_id, m.id).await.unwrap());
        let r = call().await.unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(r.json::<Value>().await.unwrap()["errmsg"], 200104);
        assert!(!app.store.admin().unlink_agent(a.agent_id, m.id).await.unwrap(), "unlinking twice is harmless");
    }

    async fn revoking_a_merchants_access_also_stops_agents_acting_for_it_until_relinked(app) {
        let m = app.merchant("m").await;
        let other = app.merchant("other").await;
        let a = app.store.admin().create_agent("agent").await.unwrap();
        app.store.admin().link_agent(a.agent_id, m.id).await.unwrap();
        app.store.admin().link_agent(a.agent_id, other.id).await.unwrap();
        let token = app.token(&a.client_id, &a.client_secret).await;
        let call = |tenant: i64| app.http.post(format!("{}/v2/System/GetDepartList", app.base)).bearer_auth(&token).header("TenantId", tenant.to_string()).json(&json!({})).send();
        assert_eq!(call(m.id.get()).await.unwrap().status(), 200);
        let r = app.store.admin().revoke_merchant_access(m.id).await.unwrap();
        assert_eq!((r.tokens, r.agent_links), (1, 1));
        assert_eq!(call(m.id.get()).await.unwrap().status(), 403);
        let (s, _) = get_status(&app.http, &app, &m.token).await;
        assert_eq!(s, 401);
        assert_eq!(call(other.id.get()).await.unwrap().status(), 200, "the agent's other merchants are untouched");
        app.store.admin().link_agent(a.agent_id, m.id).await.unwrap();
        assert_eq!(call(m.id.get()).await.unwrap().status(), 200);
    }
}

mod reports {
    use serde_json::json;

    use crate::helpers::ts;
    use crate::on_both;

    fn chat(n: u32, fan: &str, issend: i64, time: &str) -> serde_json::Value {
        json!({"ad_wechat_id": 135389, "ad_chatting_talter": fan, "ad_chatting_issend": issend, "ad_chatting_sate": 1,
               "ad_chatting_content": "x", "ad_chatting_resvred": null, "ad_sermsgid": format!("rw-{n}"),
               "ad_chatting_time": time, "ad_staff_code": if issend == 1 { Some("S001") } else { None }})
    }

    on_both! {
        async fn a_staff_message_days_after_the_fans_last_message_is_not_counted_as_a_reply(app) {
            let t = app.fixture_merchant("m").await;
            // A fresh fan conversation in 2025: a quick reply (60 s), then the fan writes
            // again and the staff only writes back three days later.
            app.import(&t, &json!({"chats": [
                chat(1, "wxid_fan0002", 0, "2025-03-01 10:00:00"),
                chat(2, "wxid_fan0002", 1, "2025-03-01 10:01:00"),
                chat(3, "wxid_fan0002", 0, "2025-03-01 10:05:00"),
                chat(4, "wxid_fan0002", 1, "2025-03-04 10:05:00"),
            ]})).await;
            let v = app.values("/v2/Report/GetDataByStaffCustomer", &t.token, json!({"startDate": "2025-03-01 00:00:00", "endDate": "2025-03-31 00:00:00", "staffCode": "S001"})).await;
            let r = &v[0];
            assert_eq!(r["sendCount"], 2, "{r}");
            assert_eq!(r["avgReplySeconds"], 60.0, "{r}");
            assert_eq!(r["avgFirstResponseSeconds"], 60.0, "{r}");
            assert_eq!(r["activationCount"], 1, "the late message starts a new session after 72 h of silence: {r}");
            let v = app.values("/v2/Report/GetActivationListByStaff", &t.token, json!({"time": ts("2025-03-04 00:00:00"), "ad_staff_code": "S001"})).await;
            assert_eq!(v[0]["activationCount"], 1);
        }
    }
}
