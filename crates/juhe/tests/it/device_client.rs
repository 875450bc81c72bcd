//! A minimal assistant (助手) for the tests of what the API does through the gateway: it
//! connects over a real WebSocket to /assistant/ws, reports accounts and fans, and reads
//! the tasks and state frames the server sends (docs/assistant-protocol.md).

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Tenant, TestApp};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Device {
    ws: Ws,
    next_id: i64,
    /// Frames received while waiting for something else (tasks, state frames).
    pending: VecDeque<Value>,
    pub welcome: Value,
}

/// A new device of the merchant: its token.
pub async fn create(app: &TestApp, t: &Tenant) -> String {
    app.store
        .admin()
        .create_device(t.id, "t")
        .await
        .unwrap()
        .device_token
}

impl Device {
    pub async fn connect(app: &TestApp, token: &str) -> Device {
        let url = format!("{}/assistant/ws", app.base.replacen("http://", "ws://", 1));
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let mut d = Device {
            ws,
            next_id: 1,
            pending: VecDeque::new(),
            welcome: Value::Null,
        };
        let w = d
            .read(Duration::from_secs(5))
            .await
            .expect("a welcome frame");
        assert_eq!(w["type"], "welcome", "{w}");
        d.welcome = w;
        d
    }

    async fn read(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(wait, self.ws.next())
                .await
                .ok()??
                .ok()?;
            match m {
                Message::Text(t) => return serde_json::from_str(t.as_str()).ok(),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    /// Sends a report frame and waits for its `ack` (or `error`), keeping other frames.
    pub async fn report(&mut self, mut frame: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        frame["id"] = json!(id);
        self.send(frame).await;
        loop {
            let f = self
                .read(Duration::from_secs(10))
                .await
                .expect("an answer to the report");
            if f["id"] == json!(id) && (f["type"] == "ack" || f["type"] == "error") {
                return f;
            }
            self.pending.push_back(f);
        }
    }

    /// Reports an operating account online; returns its `ad_wechat_id`.
    pub async fn account(&mut self, account: &str) -> i64 {
        let a = self
            .report(json!({"type": "account", "account": account, "nick": account}))
            .await;
        assert_eq!(a["type"], "ack", "{a}");
        a["wechatId"].as_i64().unwrap()
    }

    /// Reports valid fans of an account.
    pub async fn fans(&mut self, account: &str, fans: &[&str]) {
        let list: Vec<Value> = fans
            .iter()
            .map(|f| json!({"wxid": f, "name": f, "state": 0}))
            .collect();
        let a = self
            .report(json!({"type": "fans", "account": account, "fans": list}))
            .await;
        assert_eq!(a["type"], "ack", "{a}");
    }

    /// The next frame of `ty` within `wait` (earlier frames of other types are kept).
    pub async fn next_of(&mut self, ty: &str, wait: Duration) -> Option<Value> {
        if let Some(i) = self.pending.iter().position(|f| f["type"] == ty) {
            return self.pending.remove(i);
        }
        let until = tokio::time::Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let f = self.read(left).await?;
            if f["type"] == ty {
                return Some(f);
            }
            self.pending.push_back(f);
        }
    }

    /// Answers a task.
    pub async fn result(&mut self, task_id: i64, ok: bool, msg_id: Option<&str>) -> Value {
        let mut r = json!({"type": "taskResult", "taskId": task_id, "ok": ok});
        if let Some(m) = msg_id {
            r["msgId"] = json!(m);
        }
        if !ok {
            r["code"] = json!("not_friend");
            r["message"] = json!("对方不是你的好友");
        }
        self.report(r).await
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
