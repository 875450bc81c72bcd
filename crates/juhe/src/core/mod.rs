//! The domain layer. Entry points (HTTP today; the assistant gateway, v1 and the command
//! line next) parse their input and present the outcome; this layer decides; the store
//! persists.
//!
//! Every way a chat, a to-do or a bulk send comes into being passes through one function
//! here, so the rules that make it correct (dedupe on the assistant's message id, the
//! fan's last-chat time, ids taken in commit order, and next the event outbox) hold for
//! every path alike. Functions take a merchant-scoped [`Tenant`](crate::store::Tenant) and,
//! where the write must share a transaction with something else (an idempotency key, a
//! whole import), the caller's transaction.

pub mod activation;
pub mod bulk_run;
pub mod bulk_send;
pub mod chats;
pub mod import;
pub mod notify;
pub mod takeover;
pub mod tasks;
pub mod todo;

/// Why the domain refused an operation. Each variant names the documented request field
/// it is about; the HTTP layer maps them to result codes (`error.rs`), the gateway will map
/// them to error frames.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// A value breaks a rule of the domain (e.g. a reminder in the past).
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    /// The merchant has no such operating account (运营号).
    #[error("{field}: no operating account {id}")]
    UnknownWechat { field: &'static str, id: i64 },
    /// The merchant has no operating account by that id or original WeChat id.
    #[error(
        "{field}: no operating account {key:?} (give its ad_wechat_id or its original WeChat id)"
    )]
    UnknownWechatKey { field: &'static str, key: String },
    /// The merchant has no such staff member.
    #[error("{field}: no staff member {code}")]
    UnknownStaff { field: &'static str, code: String },
    /// The operating account has no such fan.
    #[error("{field}: {fan} is not a fan of operating account {wechat_id}")]
    UnknownFan {
        field: &'static str,
        fan: String,
        wechat_id: i64,
    },
    /// The record the operation names does not exist for this merchant.
    #[error("{field}: no {what} {id}")]
    NotFound {
        field: &'static str,
        what: &'static str,
        id: i64,
    },
    /// No assistant serves the operating account, so no task for it can run.
    #[error("{field}: no assistant serves operating account {id}")]
    NoAssistant { field: &'static str, id: i64 },
    /// The operation contradicts the current state.
    #[error("{field}: {problem}")]
    Conflict { field: String, problem: String },
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl Rejection {
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Rejection::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

pub type Outcome<T> = Result<T, Rejection>;
