//! SIGKILL of `juhe serve` while tasks or webhook deliveries are in flight: after a restart
//! every task is still delivered (or would fail by expiry), none is lost and none is executed
//! into GetChat twice; every event still arrives, a repeat with the same `webhook-id`.

use std::collections::VecDeque;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(db: &str, port: u16) -> Child {
    serve_with(db, port, &[])
}

fn serve_with(db: &str, port: u16, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_juhe"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("JUHE_DATABASE_URL", db)
        .env("JUHE_GATEWAY__SEND_INTERVAL_MS", "0")
        .env_remove("JUHE_LISTEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

async fn connect(port: u16, token: &str) -> Ws {
    let mut req = format!("ws://127.0.0.1:{port}/assistant/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws
}

async fn next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap_or_else(|_| panic!("no frame within 10 s"))
            .expect("open")
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// Sends a frame and waits for its answer; frames that arrive meanwhile (tasks) are kept in
/// `later`, in order.
async fn request(ws: &mut Ws, later: &mut VecDeque<Value>, frame: Value) -> Value {
    let id = frame["id"].clone();
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
    loop {
        let f = next(ws).await;
        if f["id"] == id && (f["type"] == "ack" || f["type"] == "error") {
            return f;
        }
        later.push_back(f);
    }
}

async fn next_kept(ws: &mut Ws, later: &mut VecDeque<Value>) -> Value {
    match later.pop_front() {
        Some(f) => f,
        None => next(ws).await,
    }
}

/// A fresh database: PostgreSQL when `JUHE_TEST_POSTGRES_URL` is set (as in CI), else SQLite.
async fn database(dir: &std::path::Path) -> String {
    match std::env::var("JUHE_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(admin) => {
            use sqlx::Connection;
            let name = format!("juhe_t_{}", uuid::Uuid::new_v4().simple());
            let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::Executor::execute(&mut c, format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap();
            let slash = admin.rfind('/').unwrap();
            format!("{}/{name}", &admin[..slash])
        }
        None => format!("sqlite://{}/j.db", dir.display()),
    }
}

/// A new merchant with one assistant device.
async fn merchant_with_device(
    store: &juhe::store::Store,
    name: &str,
) -> (
    juhe::store::admin::MerchantCredentials,
    juhe::store::MerchantId,
    juhe::store::devices::DeviceCredentials,
) {
    let creds = store.admin().create_merchant(name).await.unwrap();
    let m = store
        .admin()
        .merchant(creds.merchant_id)
        .await
        .unwrap()
        .unwrap();
    let device = store.admin().create_device(m, "phone").await.unwrap();
    (creds, m, device)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_in_flight_when_the_server_is_killed_are_delivered_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let store = juhe::store::Store::open(&db, 2).await.unwrap();
    let (creds, _, device) = merchant_with_device(&store, "kill").await;
    store.close().await;

    let port = free_port();
    let mut server = serve(&db, port);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let tok: Value = http
        .post(format!("{base}/connect/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", creds.client_id.as_str()),
            ("client_secret", creds.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap().to_owned();

    let mut ws = connect(port, &device.device_token).await;
    assert_eq!(next(&mut ws).await["type"], "welcome");
    let mut later = VecDeque::new();
    let acct = request(
        &mut ws,
        &mut later,
        json!({"type": "account", "id": 1, "account": "wxid_op"}),
    )
    .await;
    let wechat_id = acct["wechatId"].as_i64().unwrap();
    request(
        &mut ws,
        &mut later,
        json!({"type": "fans", "id": 2, "account": "wxid_op", "fans": [{"wxid": "wxid_fan"}]}),
    )
    .await;

    let mut tasks = Vec::new();
    for i in 0..20 {
        let r: Value = http
            .post(format!("{base}/v2/ChatMess/doSendPublicMes"))
            .bearer_auth(&token)
            .json(&json!({"WechatId": wechat_id, "ToUserName": "wxid_fan", "MsgType": "text", "Text": format!("第{i}条")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tasks.push(r["values"]["taskId"].as_i64().expect("a task id"));
    }
    // The assistant executes five, then the server dies with the rest handed over or queued.
    let mut answered = 0;
    while answered < 5 {
        let f = next_kept(&mut ws, &mut later).await;
        if f["type"] == "task" {
            let id = f["taskId"].as_i64().unwrap();
            let ack = request(&mut ws, &mut later, json!({"type": "taskResult", "id": format!("r{id}"), "taskId": id, "ok": true, "msgId": format!("sent-{id}")})).await;
            assert_eq!(ack["state"], "succeeded");
            answered += 1;
        }
    }
    server.kill().unwrap();
    server.wait().unwrap();
    drop(ws);

    let mut server = serve(&db, port);
    let mut ws = connect(port, &device.device_token).await;
    let mut later = VecDeque::new();
    let mut done = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while done.len() < 15 {
        assert!(
            Instant::now() < deadline,
            "only {} of 15 tasks came back",
            done.len()
        );
        let f = next_kept(&mut ws, &mut later).await;
        if f["type"] == "task" {
            let id = f["taskId"].as_i64().unwrap();
            // Executed before the kill: an assistant remembers and only answers again.
            let ack = request(&mut ws, &mut later, json!({"type": "taskResult", "id": format!("r{id}"), "taskId": id, "ok": true, "msgId": format!("sent-{id}")})).await;
            assert_eq!(ack["type"], "ack", "{ack}");
            done.insert(id);
        }
    }
    for id in &tasks {
        let r: Value = http
            .post(format!("{base}/v2/ChatMess/GetTaskResult"))
            .bearer_auth(&token)
            .json(&json!({"taskId": id}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["values"]["state"], "succeeded", "task {id}: {r}");
    }
    let chats: Value = http
        .post(format!("{base}/v2/ChatMess/GetChat"))
        .bearer_auth(&token)
        .json(&json!({"wechatId": wechat_id, "fansKey": "wxid_fan", "pageSize": 100}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        chats["values"].as_array().unwrap().len(),
        20,
        "each message once"
    );
    server.kill().unwrap();
    let _ = server.wait();
}

/// A receiver that answers after `delay`, recording each request's `webhook-id`.
async fn slow_receiver(delay: Duration) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let g = g.clone();
        async move {
            let id = headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            tokio::time::sleep(delay).await;
            g.lock().unwrap().push(id);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_in_flight_when_the_server_is_killed_all_arrive_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let store = juhe::store::Store::open(&db, 2).await.unwrap();
    let (_, m, device) = merchant_with_device(&store, "kill-events").await;
    let (url, got) = slow_receiver(Duration::from_millis(200)).await;
    store
        .tenant(m)
        .upsert_endpoint(&url, None, None, Some("chat"))
        .await
        .unwrap();
    store.close().await;
    let env = [
        ("JUHE_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true"),
        ("JUHE_WEBHOOKS__TIMEOUT_SECONDS", "2"),
        ("JUHE_WEBHOOKS__PER_ENDPOINT_CONCURRENCY", "4"),
        ("JUHE_WEBHOOKS__POLL_MS", "200"),
    ];

    let port = free_port();
    let mut server = serve_with(&db, port, &env);
    let mut ws = connect(port, &device.device_token).await;
    assert_eq!(next(&mut ws).await["type"], "welcome");
    let mut later = VecDeque::new();
    request(
        &mut ws,
        &mut later,
        json!({"type": "account", "id": 1, "account": "wxid_op"}),
    )
    .await;
    let chats: Vec<Value> = (0..60)
        .map(|i| json!({"msgId": format!("k{i}"), "talker": "wxid_fan", "send": 0, "type": 1, "content": format!("第{i}条"), "time": 1_764_400_000 + i}))
        .collect();
    let ack = request(
        &mut ws,
        &mut later,
        json!({"type": "chats", "id": 2, "account": "wxid_op", "chats": chats}),
    )
    .await;
    assert_eq!(ack["stored"], 60, "{ack}");
    // Killed with deliveries in flight: some delivered, four being sent, the rest waiting.
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.lock().unwrap().len() < 8 {
        assert!(Instant::now() < deadline, "no deliveries before the kill");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    drop(ws);
    let before = got.lock().unwrap().len();
    assert!(
        before < 60,
        "everything was delivered before the kill ({before})"
    );

    let mut server = serve_with(&db, port, &env);
    let deadline = Instant::now() + Duration::from_secs(60);
    let distinct = loop {
        let mut ids = got.lock().unwrap().clone();
        ids.sort();
        ids.dedup();
        if ids.len() >= 60 || Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let expected: Vec<String> = {
        let mut v: Vec<String> = (1..=60).map(|n| format!("evt_{}_{n}", m.get())).collect();
        v.sort();
        v
    };
    assert_eq!(distinct, expected, "every event arrived, under its own id");
    server.kill().unwrap();
    let _ = server.wait();
}
