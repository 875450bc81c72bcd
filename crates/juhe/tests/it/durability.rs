//! Durability and fairness: idempotent writes under concurrency, one merchant's write burst
//! beside another merchant's reads, several processes on one SQLite file, online backup,
//! and a clean shutdown that leaves a self-contained database file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use juhe::app::Application;
use juhe::config::{Config, Overrides};
use juhe::store::chats::NewChat;
use juhe::store::Store;
use serde_json::{json, Value};

use crate::helpers::{Db, TestApp};
use crate::on_both;

fn future(days: i64) -> String {
    let t = chrono::Utc::now().timestamp() + days * 86400;
    juhe::timefmt::format_local(t, chrono::FixedOffset::east_opt(8 * 3600).unwrap())
}

fn todo(title: &str) -> Value {
    json!({
        "Weixin": "wxid_fan0001", "SffId": "S001", "RemindTitle": title,
        "FollowupsiTuation": "回访", "RemindTime": future(1),
        "Recipient": ["S001"], "AdWecharId": 135389
    })
}

fn chat(tag: &str, i: usize) -> NewChat {
    NewChat {
        wechat_id: 135389,
        talker: "wxid_fan0001".into(),
        issend: (i % 2) as i64,
        msg_type: 1,
        content: format!("{tag} {i}"),
        resvred: None,
        sermsgid: format!("{tag}-{i}"),
        chat_time: 1_714_615_200 + i as i64,
        staff_code: None,
        voice_txt: None,
        expand: String::new(),
    }
}

/// POSTs AddRecordNew with an optional Idempotency-Key; returns (status, envelope).
async fn add_todo(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    key: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut req = http
        .post(format!("{base}/v2/Todo/AddRecordNew"))
        .bearer_auth(token)
        .json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

on_both! {
    async fn ten_concurrent_requests_with_one_idempotency_key_write_once_and_all_get_the_same_answer(app) {
        let t = app.fixture_merchant("m").await;
        let body = todo("once");
        let mut calls = Vec::new();
        for _ in 0..10 {
            let (http, base, token, body) = (app.http.clone(), app.base.clone(), t.token.clone(), body.clone());
            calls.push(tokio::spawn(async move {
                add_todo(&http, &base, &token, Some("same-key"), &body).await
            }));
        }
        let mut answers = Vec::new();
        for c in calls {
            let (status, v) = c.await.unwrap();
            assert_eq!((status, &v["errmsg"]), (200, &json!(20000)), "{v}");
            answers.push(v["values"].clone());
        }
        assert!(answers[0].is_i64(), "{answers:?}");
        assert!(answers.iter().all(|a| a == &answers[0]), "different answers: {answers:?}");
        assert_eq!(app.values("/v2/Todo/GetChargeDaffairesCount", &t.token, json!({})).await, 1);
    }

    async fn fifty_parallel_writes_of_one_merchant_at_the_default_pool_size_all_succeed_while_another_merchants_reads_stay_fast(app) {
        assert_eq!(
            Config::defaults_with(&Overrides::default()).unwrap().db_max_connections,
            8,
            "this test is about the default pool size"
        );
        let a = app.fixture_merchant("a").await;
        let b = app.fixture_merchant("b").await;
        app.values("/v2/Todo/AddRecordNew", &b.token, todo("b's")).await;
        let writes_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (http, base, token, done) = (app.http.clone(), app.base.clone(), b.token.clone(), writes_done.clone());
            tokio::spawn(async move {
                let mut slowest = Duration::ZERO;
                let mut n = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) || n < 5 {
                    let start = Instant::now();
                    let v: Value = http
                        .post(format!("{base}/v2/Todo/GetChargeDaffairesList"))
                        .bearer_auth(&token)
                        .json(&json!({"pageIndex": 1, "pageSize": 10}))
                        .timeout(Duration::from_secs(60))
                        .send().await.unwrap().json().await.unwrap();
                    assert_eq!(v["values"].as_array().map(Vec::len), Some(1), "{v}");
                    slowest = slowest.max(start.elapsed());
                    n += 1;
                }
                (slowest, n)
            })
        };
        let mut writes = Vec::new();
        for i in 0..50 {
            let (http, base, token) = (app.http.clone(), app.base.clone(), a.token.clone());
            // Half with a key (the idempotent path), half without.
            let key = (i % 2 == 0).then(|| format!("burst-{i}"));
            writes.push(tokio::spawn(async move {
                add_todo(&http, &base, &token, key.as_deref(), &todo(&format!("burst {i}"))).await
            }));
        }
        for w in writes {
            let (status, v) = w.await.unwrap();
            assert_eq!((status, &v["errmsg"]), (200, &json!(20000)), "{v}");
        }
        writes_done.store(true, std::sync::atomic::Ordering::SeqCst);
        let (slowest, reads) = reader.await.unwrap();
        assert!(slowest < Duration::from_secs(1), "a read of merchant b took {slowest:?} ({reads} reads)");
        assert_eq!(app.values("/v2/Todo/GetChargeDaffairesCount", &a.token, json!({})).await, 50);
    }
}

/// A second server on the test app's SQLite file, as a second process would be.
async fn second_server(db_url: &str) -> (String, tokio_util::sync::CancellationToken) {
    let mut cfg = Config::defaults_with(&Overrides {
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    })
    .unwrap();
    cfg.database_url = db_url.to_owned();
    cfg.rate_limit.per_second = 0;
    let app = Application::build(cfg).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let token = app.shutdown_token();
    tokio::spawn(app.run());
    (base, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_sqlite_file_writing_at_once_never_answer_database_is_locked() {
    let app = TestApp::spawn(Db::Sqlite).await.unwrap();
    let t = app.fixture_merchant("m").await;
    let (other, stop) = second_server(&app.db_url).await;
    let mut calls = Vec::new();
    for i in 0..60 {
        let base = if i % 2 == 0 {
            app.base.clone()
        } else {
            other.clone()
        };
        let (http, token) = (app.http.clone(), t.token.clone());
        calls.push(tokio::spawn(async move {
            // With a key the write transaction reads before it writes: the case that made a
            // deferred transaction fail with SQLITE_BUSY instead of waiting.
            let key = (i % 3 != 0).then(|| format!("two-{i}"));
            add_todo(
                &http,
                &base,
                &token,
                key.as_deref(),
                &todo(&format!("p{i}")),
            )
            .await
        }));
    }
    let mut failed = Vec::new();
    for c in calls {
        let (status, v) = c.await.unwrap();
        if status != 200 {
            failed.push(v);
        }
    }
    stop.cancel();
    assert!(
        failed.is_empty(),
        "{} of 60 writes failed: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(
        app.values("/v2/Todo/GetChargeDaffairesCount", &t.token, json!({}))
            .await,
        60
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_write_load_holds_every_row_committed_before_it_and_passes_integrity_check()
{
    let app = TestApp::spawn(Db::Sqlite).await.unwrap();
    let t = app.fixture_merchant("m").await;
    let tenant_store = app.store.clone();
    let m = t.id;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let committed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let writer = {
        let (stop, committed) = (stop.clone(), committed.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let batch: Vec<NewChat> = (i..i + 20).map(|k| chat("load", k)).collect();
                juhe::core::chats::record(tenant_store.tenant(m), &batch)
                    .await
                    .unwrap();
                committed
                    .lock()
                    .unwrap()
                    .extend(batch.into_iter().map(|c| c.sermsgid));
                i += 20;
            }
        })
    };
    // Let the load build up, then take what is committed before the backup starts.
    while committed.lock().unwrap().len() < 400 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before: Vec<String> = committed.lock().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("backup.db");
    let bytes = app.store.backup_to(&copy, false).await.unwrap();
    assert!(bytes > 0);
    // The writer kept going during the backup.
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.await.unwrap();
    let after = committed.lock().unwrap().len();
    assert!(after > before.len(), "no writes happened during the backup");

    // A second backup to the same file is refused without --force, and replaces it with it.
    let err = app
        .store
        .backup_to(&copy, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already exists"), "{err}");

    // Restore: open the copy as a database of its own.
    let restored = Store::open(&format!("sqlite://{}", copy.display()), 2)
        .await
        .unwrap();
    let mut conn = {
        sqlx::any::install_default_drivers();
        <sqlx::AnyConnection as sqlx::Connection>::connect(&format!("sqlite://{}", copy.display()))
            .await
            .unwrap()
    };
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    let in_copy: Vec<String> =
        sqlx::query_scalar("SELECT sermsgid FROM chats WHERE sermsgid LIKE 'load-%'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let in_copy: std::collections::HashSet<String> = in_copy.into_iter().collect();
    let missing: Vec<&String> = before.iter().filter(|s| !in_copy.contains(*s)).collect();
    assert!(
        missing.is_empty(),
        "{} rows committed before the backup are missing, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    // The copy is a working store: the merchant's data reads back through it.
    let page = restored
        .tenant(m)
        .chats_page(
            &juhe::store::chats::ChatFilter {
                wechat_id: 135389,
                fans_key: "wxid_fan0001".into(),
                ..Default::default()
            },
            juhe::store::Page { index: 1, size: 5 },
        )
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 5);
    restored.close().await;

    app.store.backup_to(&copy, true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_clean_shutdown_the_sqlite_file_alone_holds_every_committed_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("juhe.db");
    let mut cfg = Config::defaults_with(&Overrides {
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    })
    .unwrap();
    cfg.database_url = format!("sqlite://{}", db.display());
    let app = Application::build(cfg).await.unwrap();
    let store = app.store().clone();
    let token = app.shutdown_token();
    let running = tokio::spawn(app.run());
    let c = store.admin().create_merchant("m").await.unwrap();
    let m = store
        .admin()
        .merchant(c.merchant_id)
        .await
        .unwrap()
        .unwrap();
    let org: juhe::store::import::ImportFile =
        serde_json::from_value(crate::helpers::fixture()).unwrap();
    juhe::core::import::import(
        store.tenant(m),
        &org,
        chrono::FixedOffset::east_opt(8 * 3600).unwrap(),
        &|_| {},
    )
    .await
    .unwrap();
    let chats: Vec<NewChat> = (0..200).map(|i| chat("wal", i)).collect();
    juhe::core::chats::record(store.tenant(m), &chats)
        .await
        .unwrap();
    // Exercise the fast read path too: its connections must not keep the WAL alive.
    let f = juhe::store::chats::ChatFilter {
        wechat_id: 135389,
        fans_key: "wxid_fan0001".into(),
        ..Default::default()
    };
    store
        .tenant(m)
        .chats_page(&f, juhe::store::Page { index: 1, size: 5 })
        .await
        .unwrap();
    token.cancel();
    running.await.unwrap().unwrap();
    let wal = dir.path().join("juhe.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(
        wal_len, 0,
        "the WAL still holds {wal_len} bytes after shutdown"
    );
    // Copy the .db file alone, as an operator would after stopping the server.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap();
    sqlx::any::install_default_drivers();
    let mut conn =
        <sqlx::AnyConnection as sqlx::Connection>::connect(&format!("sqlite://{}", copy.display()))
            .await
            .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chats WHERE sermsgid LIKE 'wal-%'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 200);
}

/// Opens a connection and sends a POST whose body never completes: the request is in
/// flight (past authentication and any middleware) until the connection is dropped.
async fn stuck_request(base: &str, path: &str, token: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// Reads what the server answered on a raw connection (status line and body).
async fn read_answer(s: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("no answer within 10 s")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_outlives_the_timeout_is_answered_with_the_envelope_not_left_hanging() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| c.api.request_timeout_seconds = 1)
        .await
        .unwrap();
    let t = app.fixture_merchant("m").await;
    let start = Instant::now();
    let mut s = stuck_request(&app.base, "/v2/Todo/AddRecordNew", &t.token).await;
    let answer = read_answer(&mut s).await;
    let took = start.elapsed();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"errmsg\":200108"), "{answer}");
    assert!(answer.contains("request_timeout_seconds"), "{answer}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(
        app.values("/v2/Todo/GetChargeDaffairesCount", &t.token, json!({}))
            .await,
        0
    );
}

/// The per-merchant cap on expensive requests.
mod cap {
    use super::*;

    on_both! {
        async fn expensive_requests_over_the_per_merchant_cap_get_429_with_retry_after_and_other_merchants_are_unaffected(app) {
            // The default cap is 2: hold both of merchant a's slots with reports still in flight.
            let a = app.fixture_merchant("a").await;
            let b = app.fixture_merchant("b").await;
            let report = "/v2/Report/GetDataByStaffCustomer";
            let held1 = stuck_request(&app.base, report, &a.token).await;
            let held2 = stuck_request(&app.base, "/v2/Friend/GetFansCount", &a.token).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let r = app.http.post(format!("{}/v2/Todo/GetChargeDaffairesCount", app.base)).bearer_auth(&a.token).json(&json!({})).send().await.unwrap();
            assert_eq!(r.status(), 429);
            assert_eq!(r.headers()["retry-after"], "1");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["errmsg"], 200103, "{v}");
            assert!(v["errdesc"].as_str().unwrap().contains("max_concurrent_expensive"), "{v}");
            // Cheap requests of the same merchant and expensive ones of another still run.
            app.ok("/v2/Todo/GetChargeDaffairesList", &a.token, json!({})).await;
            assert_eq!(app.values("/v2/Todo/GetChargeDaffairesCount", &b.token, json!({})).await, 0);
            // Slots come back when the requests end.
            drop(held1);
            drop(held2);
            let start = Instant::now();
            loop {
                let (status, v) = app.post("/v2/Todo/GetChargeDaffairesCount", &a.token, json!({})).await;
                if status == 200 {
                    assert_eq!(v["values"], 0);
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(5), "slots were not released: {v}");
            }
        }
    }
}
