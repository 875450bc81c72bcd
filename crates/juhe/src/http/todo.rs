//! Todo (待办): add to-dos, list them and count them.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{idempotent, page, replay_header, Body, IdempotencyKey, Merchant};
use super::{paged, wire, AppState};
use crate::error::{ApiError, ApiResult, Envelope, Values};
use crate::lenient::{required_int, required_str, OptInt, OptStr, OptText, OptTime, StrList};
use crate::store::misc::{NewTodo, TodoFilter, TodoRow};
use crate::store::MerchantId;
use crate::timefmt::LocalTime;

/// A to-do as the list returns it; field names follow AddRecordNew's request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[allow(non_snake_case)]
pub struct Todo {
    /// The to-do's id (what AddRecordNew returns).
    pub Id: i64,
    pub Weixin: String,
    pub From: i64,
    pub SffId: Option<String>,
    pub RemindTitle: String,
    pub FollowupsiTuation: String,
    pub RemindTime: LocalTime,
    pub IsAlways: i64,
    pub Recipient: Vec<String>,
    pub AdWecharId: i64,
    /// WeChat id of the operating account.
    pub wechatNober: String,
    pub LevelColor: Option<String>,
    pub LevelName: Option<String>,
    pub EventType: Option<i64>,
    /// 0 unprocessed, 1 processed.
    pub usersate: i64,
    pub CreateTime: LocalTime,
}

impl From<TodoRow> for Todo {
    fn from(r: TodoRow) -> Self {
        Todo {
            Id: r.todo_id,
            Weixin: r.weixin,
            From: r.from_type,
            SffId: r.sff_id,
            RemindTitle: r.remind_title,
            FollowupsiTuation: r.content,
            RemindTime: LocalTime(r.remind_time),
            IsAlways: r.is_always,
            Recipient: serde_json::from_str(&r.recipients).unwrap_or_default(),
            AdWecharId: r.wechat_id,
            wechatNober: r.wechat_nober.unwrap_or_default(),
            LevelColor: r.level_color,
            LevelName: r.level_name,
            EventType: r.event_type,
            usersate: r.state,
            CreateTime: LocalTime(r.created_at),
        }
    }
}

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

/// Parses the request into a to-do; the domain's checks run in `core::todo::add`.
fn parse(b: &AddRecordIn, weixin_required: bool) -> ApiResult<NewTodo> {
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
    let is_always = b.IsAlways.get().unwrap_or(0);
    if !(is_always == 0 || is_always == 1) {
        return Err(ApiError::param("IsAlways", "must be 0 or 1"));
    }
    let wechat_id = required_int(b.AdWecharId, "AdWecharId")?;
    Ok(NewTodo {
        weixin,
        from_type,
        sff_id: b.SffId.non_empty().map(str::to_owned),
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
    let todo = &parse(&b, weixin_required)?;
    // The domain's checks run after the key lookup, so a retry whose RemindTime has
    // meanwhile passed still gets its original answer, and before the transaction, so no
    // request holds a connection while it waits for another.
    let (v, replayed) = idempotent(
        st,
        m,
        &key,
        route,
        &b,
        || async {
            crate::core::todo::check(tenant, todo, crate::store::now())
                .await
                .map_err(ApiError::from)
        },
        |mut tx, ()| async move {
            let id = crate::core::todo::save(tenant, &mut tx, todo).await?;
            Ok((tx, serde_json::json!(id)))
        },
    )
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
    Ok(paged(wire::<_, Todo>(rows), more, pg, Some(total)))
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
