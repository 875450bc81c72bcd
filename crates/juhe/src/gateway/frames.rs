//! The frames of the assistant protocol (docs/assistant-protocol.md), as the server reads
//! them. Parsing is strict about types and lenient about extra fields (forward
//! compatibility); every refusal names the field.

use serde::Deserialize;
use serde_json::Value;

/// Longest string a frame may carry in a field other than chat content.
pub const MAX_SHORT: usize = 1000;
/// Longest chat content / remark / resvred.
pub const MAX_LONG: usize = 20_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountFrame {
    pub account: String,
    #[serde(default)]
    pub wechat_no: Option<String>,
    #[serde(default)]
    pub nick: Option<String>,
    #[serde(default)]
    pub kind: Option<i64>,
    #[serde(default)]
    pub online: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FansFrame {
    pub account: String,
    pub fans: Vec<FanItem>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FanItem {
    pub wxid: String,
    pub alias: Option<String>,
    pub name: Option<String>,
    pub photo: Option<String>,
    pub remark: Option<String>,
    pub tags: Option<Vec<String>>,
    pub scene: Option<i64>,
    pub state: Option<i64>,
    pub kind: Option<i64>,
    pub add_time: Option<i64>,
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatsFrame {
    pub account: String,
    pub chats: Vec<ChatItem>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatItem {
    pub msg_id: String,
    pub talker: String,
    pub send: i64,
    #[serde(rename = "type")]
    pub msg_type: i64,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub resvred: Option<Value>,
    pub time: i64,
    pub staff_code: Option<String>,
    pub voice_text: Option<String>,
    pub sender: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallsFrame {
    pub account: String,
    pub calls: Vec<CallItem>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallItem {
    #[serde(rename = "type")]
    pub msg_type: String,
    pub fan: String,
    #[serde(default)]
    pub staff_code: String,
    pub start: i64,
    #[serde(default)]
    pub duration: i64,
    #[serde(default)]
    pub voice_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResultFrame {
    pub task_id: i64,
    pub ok: bool,
    pub code: Option<String>,
    pub message: Option<String>,
    pub msg_id: Option<String>,
    pub time: Option<i64>,
}

/// A refusal of a frame: the protocol's error code, the field (a JSON path) and why.
#[derive(Debug, Clone)]
pub struct FrameError {
    pub code: &'static str,
    pub field: Option<String>,
    pub message: String,
}

impl FrameError {
    pub fn new(code: &'static str, message: impl Into<String>) -> FrameError {
        FrameError {
            code,
            field: None,
            message: message.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> FrameError {
        FrameError {
            code: "invalid",
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

/// Reads a typed frame from its JSON, naming the field that does not fit.
pub fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, FrameError> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.inner().to_string();
        FrameError::invalid(if path == "." { String::new() } else { path }, msg)
    })
}

/// Refuses NUL characters (PostgreSQL cannot store them) and over-long strings anywhere in
/// a frame, and nesting deeper than a frame ever needs, before any typed parsing.
pub fn check_values(v: &Value) -> Result<(), FrameError> {
    fn walk(v: &Value, path: &mut String, depth: usize) -> Result<(), FrameError> {
        if depth > 16 {
            return Err(FrameError::invalid(path.clone(), "is nested too deeply"));
        }
        match v {
            Value::String(s) => {
                if s.contains('\0') {
                    return Err(FrameError::invalid(path.clone(), "must not contain NUL"));
                }
                if s.chars().count() > MAX_LONG {
                    return Err(FrameError::invalid(
                        path.clone(),
                        format!("is longer than {MAX_LONG} characters"),
                    ));
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    walk(x, path, depth + 1)?;
                    path.truncate(len);
                }
            }
            Value::Object(o) => {
                for (k, x) in o {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    walk(x, path, depth + 1)?;
                    path.truncate(len);
                }
            }
            _ => {}
        }
        Ok(())
    }
    walk(v, &mut String::new(), 0)
}

/// A required identifier: not blank, at most [`MAX_SHORT`] characters.
pub fn ident(field: &str, s: &str) -> Result<(), FrameError> {
    if s.trim().is_empty() {
        return Err(FrameError::invalid(field, "must not be empty"));
    }
    if s.chars().count() > MAX_SHORT {
        return Err(FrameError::invalid(
            field,
            format!("is longer than {MAX_SHORT} characters"),
        ));
    }
    Ok(())
}

/// An optional text field: at most [`MAX_SHORT`] characters.
pub fn short(field: impl Into<String>, s: Option<&str>) -> Result<(), FrameError> {
    if s.is_some_and(|s| s.chars().count() > MAX_SHORT) {
        return Err(FrameError::invalid(field, "is too long"));
    }
    Ok(())
}

/// A time in Unix seconds within 1970–2100, like every time the open API accepts.
pub fn time(field: &str, t: i64) -> Result<(), FrameError> {
    if !(0..=4_102_444_800).contains(&t) {
        return Err(FrameError::invalid(
            field,
            "must be Unix seconds between 1970 and 2100",
        ));
    }
    Ok(())
}
