//! A minimal assistant for the gateway tests: a real WebSocket client speaking
//! docs/assistant-protocol.md, with helpers to wait for a given frame.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::TestApp;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Assistant {
    pub ws: Ws,
    pub welcome: Value,
    next_id: i64,
    /// Frames read while waiting for another one, in order.
    pub seen: Vec<Value>,
}

/// The gateway's URL for an app.
pub fn ws_url(app: &TestApp) -> String {
    format!("{}/assistant/ws", app.base.replacen("http://", "ws://", 1))
}

impl Assistant {
    pub async fn connect(app: &TestApp, token: &str) -> Assistant {
        Assistant::try_connect(app, token)
            .await
            .expect("the gateway accepts the device token")
    }

    pub async fn try_connect(
        app: &TestApp,
        token: &str,
    ) -> Result<Assistant, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = ws_url(app).into_client_request().unwrap();
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        let mut a = Assistant {
            ws,
            welcome: Value::Null,
            next_id: 0,
            seen: Vec::new(),
        };
        a.welcome = a.expect_type("welcome").await;
        Ok(a)
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.unwrap();
    }

    /// The next frame, or `None` when the connection closed (a close frame is returned as
    /// `{"type": "close", "code": n}`).
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a frame within 10 s")?;
            match m {
                Ok(Message::Text(t)) => return Some(serde_json::from_str(t.as_str()).unwrap()),
                Ok(Message::Close(c)) => {
                    return Some(json!({"type": "close", "code": c.map(|c| u16::from(c.code))}))
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Waits for a frame of `kind`, keeping the others in `seen`.
    pub async fn expect_type(&mut self, kind: &str) -> Value {
        loop {
            let f = self
                .next()
                .await
                .unwrap_or_else(|| panic!("connection closed while waiting for {kind}"));
            if f["type"] == kind {
                return f;
            }
            self.seen.push(f);
        }
    }

    /// Sends a report frame with a fresh id and returns the answer to it (ack or error).
    pub async fn request(&mut self, mut frame: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        frame["id"] = json!(id);
        self.send(frame).await;
        loop {
            let f = self
                .next()
                .await
                .expect("an answer before the connection closed");
            if f["id"] == json!(id) && (f["type"] == "ack" || f["type"] == "error") {
                return f;
            }
            self.seen.push(f);
        }
    }

    /// Reports an operating account and returns its `ad_wechat_id`.
    pub async fn account(&mut self, wxid: &str) -> i64 {
        let a = self
            .request(json!({"type": "account", "account": wxid, "nick": "客服", "kind": 0}))
            .await;
        assert_eq!(a["type"], "ack", "{a}");
        a["wechatId"].as_i64().unwrap()
    }

    /// Reports fans of an account.
    pub async fn fans(&mut self, wxid: &str, fans: &[&str]) {
        let list: Vec<Value> = fans
            .iter()
            .map(|f| json!({"wxid": f, "name": format!("粉丝{f}"), "scene": 1}))
            .collect();
        let a = self
            .request(json!({"type": "fans", "account": wxid, "fans": list}))
            .await;
        assert_eq!(a["type"], "ack", "{a}");
    }
}

/// A merchant with a token and a device.
pub async fn merchant_with_device(app: &TestApp, name: &str) -> (crate::helpers::Tenant, String) {
    let t = app.merchant(name).await;
    let d = app.store.admin().create_device(t.id, "test").await.unwrap();
    (t, d.device_token)
}

/// Makes a device serve the fixture's operating account 135389 (`wxid_op0001`), so the
/// documented examples of the actions (`doSendPublicMes`, …) have an assistant to queue for.
/// The device disconnects again: its tasks wait in the queue. Enqueues task 1.
pub async fn serve_fixture_account(app: &TestApp, t: &crate::helpers::Tenant) {
    let d = app
        .store
        .admin()
        .create_device(t.id, "fixture")
        .await
        .unwrap();
    let mut a = Assistant::connect(app, &d.device_token).await;
    assert_eq!(a.account("wxid_op0001").await, 135389);
    // Task 1, which the GetTaskResult example reads.
    let task = app
        .values(
            "/v2/ChatMess/doSendPublicMes",
            &t.token,
            json!({"WechatId": 135389, "ToUserName": "wxid_fan0001", "MsgType": "text", "Text": "您好"}),
        )
        .await;
    assert_eq!(task["taskId"], 1);
}
