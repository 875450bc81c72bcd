//! Todo (待办): add to-dos, list them and count them.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{idempotent, page, replay_header, Body, IdempotencyKey, Merchant};
use super::{paged, AppState};
use crate::error::{ApiError, ApiResult, Code, Envelope, Values};
use crate::lenient::{required_int, required_str, OptInt, OptStr, OptText, OptTime, StrList};
use crate::store::misc::{NewTodo, Todo, TodoFilter};
use crate::store::MerchantId;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/Todo/AddRecord", post(add_record))
        .route("/v2/Todo/AddRecordNew", post(add_record_new))
        .route(
            "/v2/Todo/GetChargeDaffairesList",
            post(get_charge_daffaires_list),
        )
        .route(
            "/v2/Todo/GetChargeDaffairesCount",
            post(get_charge_daffaires_count),
        )
}

/// A new to-do. Field names as documented, misspellings included.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct AddRecordIn {
    /// The fan's original WeChat id (required for AddRecordNew; optional for AddRecord).
    pub Weixin: OptStr,
    /// Account type: 0 WeChat (default), 1 official account, 2 mini program, 3 WeCom.
    pub From: OptInt,
    /// Creator's staff number (the original assigns the fan to the creator when the to-do
    /// is completed; completing to-dos arrives with the staff desk).
    pub SffId: OptStr,
    /// Reminder title (required).
    pub RemindTitle: OptStr,
    /// To-do content (required; at most 20000 characters).
    pub FollowupsiTuation: OptText,
    /// Reminder time `yyyy-MM-dd HH:mm:ss` (required, not in the past).
    pub RemindTime: OptTime,
    /// 1 = keep reminding, 0 = once (default).
    pub IsAlways: OptInt,
    /// Staff numbers who receive the to-do.
    pub Recipient: StrList,
    /// Operating account id (required).
    pub AdWecharId: OptInt,
    pub LevelColor: OptStr,
    pub LevelName: OptStr,
    pub EventType: OptInt,
}

async fn validate(
    st: &AppState,
    m: MerchantId,
    b: &AddRecordIn,
    weixin_required: bool,
) -> ApiResult<NewTodo> {
    let weixin = if weixin_required {
        required_str(&b.Weixin, "Weixin")?
    } else {
        b.Weixin.non_empty().unwrap_or("").to_owned()
    };
    let from_type = b.From.get().unwrap_or(0);
    if ![0, 1, 2, 3].contains(&from_type) {
        return Err(ApiError::param("From", "must be 0, 1, 2 or 3"));
    }
    let remind_title = required_str(&b.RemindTitle, "RemindTitle")?;
    let content = required_str(&b.FollowupsiTuation, "FollowupsiTuation")?;
    let remind_time = b
        .RemindTime
        .get()
        .ok_or_else(|| ApiError::param("RemindTime", "is required"))?;
    // A minute of slack: the caller's clock and ours are never exactly in step.
    if remind_time < crate::store::now() - 60 {
        return Err(ApiError::param("RemindTime", "must not be in the past"));
    }
    let is_always = b.IsAlways.get().unwrap_or(0);
    if !(is_always == 0 || is_always == 1) {
        return Err(ApiError::param("IsAlways", "must be 0 or 1"));
    }
    let wechat_id = required_int(b.AdWecharId, "AdWecharId")?;
    let t = st.store.tenant(m);
    if !t.unknown_wechats(&[wechat_id]).await?.is_empty() {
        return Err(ApiError::new(
            Code::WechatNotFound,
            format!("AdWecharId: no operating account {wechat_id}"),
        ));
    }
    if !weixin.is_empty() && !t.fan_exists(wechat_id, &weixin).await? {
        return Err(ApiError::new(
            Code::FriendNotFound,
            format!("Weixin: {weixin} is not a fan of operating account {wechat_id}"),
        ));
    }
    let sff_id = b.SffId.non_empty().map(str::to_owned);
    let mut staff: Vec<String> = b.Recipient.0.clone();
    staff.extend(sff_id.clone());
    let unknown = t.unknown_staff(&staff).await?;
    if let Some(u) = unknown.first() {
        let field = if sff_id.as_deref() == Some(u.as_str()) {
            "SffId"
        } else {
            "Recipient"
        };
        return Err(ApiError::new(
            Code::StaffNotFound,
            format!("{field}: no staff member {u}"),
        ));
    }
    Ok(NewTodo {
        weixin,
        from_type,
        sff_id,
        remind_title,
        content,
        remind_time,
        is_always,
        recipients: b.Recipient.0.clone(),
        wechat_id,
        level_color: b.LevelColor.non_empty().map(str::to_owned),
        level_name: b.LevelName.non_empty().map(str::to_owned),
        event_type: b.EventType.get(),
    })
}

async fn add(
    st: &AppState,
    m: MerchantId,
    key: IdempotencyKey,
    b: AddRecordIn,
    route: &str,
    weixin_required: bool,
) -> ApiResult<(i64, bool)> {
    let tenant = st.store.tenant(m);
    // Validation runs inside the idempotent write, after the key lookup: a retry whose
    // RemindTime has meanwhile passed still gets its original answer.
    let body = &b;
    let (v, replayed) = idempotent(st, m, &key, route, body, |mut tx| async move {
        let todo = validate(st, m, body, weixin_required).await?;
        let id = tenant.add_todo(&mut tx, &todo).await?;
        Ok((tx, serde_json::json!(id)))
    })
    .await?;
    Ok((v.as_i64().unwrap_or_default(), replayed))
}

/// 新增待办记录: adds a to-do; `values` is `true`. Send `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/v2/Todo/AddRecord", tag = "Todo", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first result instead of adding twice")),
    request_body = AddRecordIn, responses((status = 200, body = Envelope<bool>)))]
pub async fn add_record(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    key: IdempotencyKey,
    Body(b): Body<AddRecordIn>,
) -> ApiResult<Response> {
    let (_, replayed) = add(&st, m, key, b, "Todo/AddRecord", false).await?;
    Ok(replay_header(Values(true).into_response(), replayed))
}

/// 新增待办记录(返回编号): adds a to-do; `values` is the new to-do's id.
#[utoipa::path(post, path = "/v2/Todo/AddRecordNew", tag = "Todo", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first result instead of adding twice")),
    request_body = AddRecordIn, responses((status = 200, body = Envelope<i64>)))]
pub async fn add_record_new(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    key: IdempotencyKey,
    Body(b): Body<AddRecordIn>,
) -> ApiResult<Response> {
    let (id, replayed) = add(&st, m, key, b, "Todo/AddRecordNew", true).await?;
    Ok(replay_header(Values(id).into_response(), replayed))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
#[allow(non_snake_case)]
pub struct TodoQueryIn {
    /// Created at or after (Unix seconds).
    pub startTimestamp: OptTime,
    /// Created at or before.
    pub endTimestamp: OptTime,
    /// Reminder time at or after.
    pub remindStartTimestamp: OptTime,
    /// Reminder time at or before.
    pub remindEndTimestamp: OptTime,
    /// Creator's staff number.
    pub createStaff: OptStr,
    /// Receiving staff: one number, several comma-separated, or an array; any matches.
    pub remindStaff: StrList,
    /// Operating account id (sic).
    // `WechatId` and any other casing bind too (field names match case-insensitively).
    #[serde(alias = "wechatId")]
    pub WecharId: OptInt,
    /// Operating account WeChat id.
    pub wechatNober: OptStr,
    /// -1 all (default), 0 unprocessed, 1 processed (sic).
    pub usersate: OptInt,
    /// List only: page, from 1.
    pub pageIndex: OptInt,
    /// List only: page size.
    pub pageSize: OptInt,
}

/// Most staff numbers one `remindStaff` filter may name: each is one `OR` term, and SQLite
/// refuses expressions more than 1,000 deep.
const MAX_REMIND_STAFF: usize = 100;

impl TodoQueryIn {
    fn filter(&self) -> ApiResult<TodoFilter> {
        if self.remindStaff.0.len() > MAX_REMIND_STAFF {
            return Err(ApiError::param(
                "remindStaff",
                format!("must name at most {MAX_REMIND_STAFF} staff numbers"),
            ));
        }
        Ok(TodoFilter {
            created_start: self.startTimestamp.get(),
            created_end: self.endTimestamp.get(),
            remind_start: self.remindStartTimestamp.get(),
            remind_end: self.remindEndTimestamp.get(),
            create_staff: self.createStaff.non_empty().map(str::to_owned),
            remind_staff: self.remindStaff.0.clone(),
            wechat_id: self.WecharId.filter(),
            wechat_nober: self.wechatNober.non_empty().map(str::to_owned),
            state: self.usersate.filter(),
        })
    }
}

/// 获取待办列表: to-dos matching the filters, oldest first, paged.
#[utoipa::path(post, path = "/v2/Todo/GetChargeDaffairesList", tag = "Todo", security(("bearer" = [])),
    request_body = TodoQueryIn, responses((status = 200, body = Envelope<Vec<Todo>>)))]
pub async fn get_charge_daffaires_list(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<TodoQueryIn>,
) -> ApiResult<Response> {
    let pg = page(&st, b.pageIndex, b.pageSize, "pageIndex", "pageSize")?;
    let f = b.filter()?;
    let t = st.store.tenant(m);
    let (rows, more) = t.todos_page(&f, pg).await?;
    let total = t.todos_count(&f).await?;
    Ok(paged(rows, more, pg, Some(total)))
}

/// 获取待办列表总数: `values` is the count.
#[utoipa::path(post, path = "/v2/Todo/GetChargeDaffairesCount", tag = "Todo", security(("bearer" = [])),
    request_body = TodoQueryIn, responses((status = 200, body = Envelope<i64>)))]
pub async fn get_charge_daffaires_count(
    State(st): State<AppState>,
    Merchant(m): Merchant,
    Body(b): Body<TodoQueryIn>,
) -> ApiResult<Response> {
    Ok(Values(st.store.tenant(m).todos_count(&b.filter()?).await?).into_response())
}
