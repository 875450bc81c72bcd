//! Deterministic demo data for a Chinese WeChat customer-service desk.
//!
//! The output is typed import records ([`ImportFile`]: the organisation, accounts, fans,
//! ads, chats and call recordings), so a fresh installation can be filled with believable
//! conversations without touching real customer data, through the same import operation
//! real data takes. Every timestamp is derived from a reference instant passed in rather
//! than read from the wall clock: [`generate`] uses a fixed one, so a seed's output is
//! identical from one run (and one day) to the next; `juhe demo` passes "a few minutes
//! ago", so the default report range (the last 30 days) shows numbers.

use std::collections::{HashSet, VecDeque};

use chrono::{DateTime, NaiveDate};
use juhe::store::import::{
    ImpAd, ImpChat, ImpDepartment, ImpFan, ImpGroup, ImpMeetingCall, ImpStaff, ImpWechat,
    ImportFile,
};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// Conversations reach this far back from the reference time.
const CHAT_WINDOW_DAYS: i64 = 60;

/// Matches the first operating account of the fixture, so demo ids look like
/// the ids the upstream platform hands out.
const FIRST_WECHAT_ID: i64 = 135_389;

/// Every `ad_chatting_sate` listed in the GetChat message type table.
const MESSAGE_TYPES: [u16; 26] = [
    1, 2, 3, 4, 34, 42, 48, 49, 50, 495, 496, 1001, 4919, 4933, 4362, 7549, 8220, 9730, 10000,
    10001, 10002, 10003, 10004, 10005, 11001, 12001,
];

/// The client shows friend requests and the "you added …" notice before any
/// dialogue, so when one of these is forced into a conversation it goes first.
const OPENING_TYPES: [u16; 3] = [10003, 10002, 10000];

/// The fixture (like the upstream platform, which uses JavaScript's
/// `encodeURIComponent`) leaves `- _ . ! ~ * ' ( )` unescaped; plain
/// `NON_ALPHANUMERIC` would turn `-1` into `%2D1` and no longer match it.
const RESVRED_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// How much data to generate.
#[derive(Debug, Clone, Copy)]
pub struct DemoScale {
    /// Number of departments.
    pub departments: usize,
    /// Groups inside each department.
    pub groups_per_department: usize,
    /// Staff members inside each group.
    pub staff_per_group: usize,
    /// Operating accounts (`wechats`).
    pub wechats: usize,
    /// Fans befriended by each operating account.
    pub fans_per_wechat: usize,
    /// Average number of chat messages per fan.
    pub chats_per_fan: usize,
    /// Advertising campaigns.
    pub ads: usize,
    /// Voice / meeting call records.
    pub meeting_calls: usize,
}

impl DemoScale {
    /// A desk that looks lived-in: a few thousand messages over two months.
    pub fn demo() -> Self {
        Self {
            departments: 3,
            groups_per_department: 2,
            staff_per_group: 3,
            wechats: 6,
            fans_per_wechat: 40,
            chats_per_fan: 12,
            ads: 8,
            meeting_calls: 30,
        }
    }

    /// The smallest set that still exercises every entity, for fast tests.
    pub fn tiny() -> Self {
        Self {
            departments: 1,
            groups_per_department: 1,
            staff_per_group: 2,
            wechats: 1,
            fans_per_wechat: 3,
            chats_per_fan: 4,
            ads: 2,
            meeting_calls: 2,
        }
    }
}

/// Deterministic for a given seed: the data set ending at a fixed instant (2024-11-20 18:00).
pub fn generate(seed: u64, scale: DemoScale) -> ImportFile {
    generate_until(seed, scale, reference_time())
}

/// The data set ending at `reference`, Unix seconds read as local wall-clock time: times
/// are written as `yyyy-MM-dd HH:mm:ss` of that clock, and the importer reads them in its
/// configured offset. To end at "now", pass now plus the offset.
pub fn generate_until(seed: u64, scale: DemoScale, reference: i64) -> ImportFile {
    let mut gen = Generator {
        rng: StdRng::seed_from_u64(seed),
        reference,
        wxids: HashSet::new(),
        sermsgids: HashSet::new(),
    };

    let (departments, groups, staff) = gen.organisation(&scale);
    let wechats = gen.wechats(&scale, &staff);
    let fans = gen.fans(&scale, &wechats, &staff);
    let ads = gen.ads(&scale);

    let mut chats = Vec::new();
    for (index, fan) in fans.iter().enumerate() {
        // Round-robin over the fans guarantees every message type shows up as
        // long as there is at least one fan, whatever the scale.
        let forced: Vec<u16> = MESSAGE_TYPES
            .iter()
            .enumerate()
            .filter(|(j, _)| j % fans.len() == index)
            .map(|(_, ty)| *ty)
            .collect();
        chats.extend(gen.conversation(&scale, fan, &wechats[fan.wechat], &staff, &forced));
    }
    // Importers assign chat ids in file order, so chronological order makes
    // those ids grow with time as they do upstream.
    chats.sort_by_key(|chat| chat.time);

    let calls = gen.meeting_calls(&scale, &fans, &wechats, &staff);

    ImportFile {
        departments,
        groups,
        staff: staff.iter().map(Staff::to_record).collect(),
        wechats: wechats.iter().map(|w| w.to_record(&staff)).collect(),
        fans: fans.iter().map(|f| f.to_record(&wechats, &staff)).collect(),
        ads,
        chats: chats.iter().map(Chat::to_record).collect(),
        meeting_calls: calls,
    }
}

/// 2024-11-20 18:00:00, the instant every generated timestamp is relative to.
fn reference_time() -> i64 {
    NaiveDate::from_ymd_opt(2024, 11, 20)
        .and_then(|date| date.and_hms_opt(18, 0, 0))
        .expect("the reference time is a valid calendar instant")
        .and_utc()
        .timestamp()
}

fn format_time(ts: i64) -> String {
    format_with(ts, "%Y-%m-%d %H:%M:%S")
}

fn format_with(ts: i64, pattern: &str) -> String {
    DateTime::from_timestamp(ts, 0)
        .expect("demo timestamps lie within a few years of 2024")
        .naive_utc()
        .format(pattern)
        .to_string()
}

fn encode_resvred(value: &Value) -> String {
    utf8_percent_encode(&value.to_string(), RESVRED_ENCODE_SET).to_string()
}

struct Staff {
    code: String,
    name: String,
    departid: u64,
    groupid: u64,
    disabled: bool,
}

impl Staff {
    fn to_record(&self) -> ImpStaff {
        ImpStaff {
            ad_staff_code: self.code.clone(),
            ad_staff_name: self.name.clone(),
            departid: self.departid as i64,
            departgroupid: self.groupid as i64,
            ad_staff_state: i64::from(self.disabled),
        }
    }
}

struct Wechat {
    id: i64,
    nober: String,
    nick: String,
    original: String,
    lei: u8,
    staff: Option<usize>,
    added: i64,
}

impl Wechat {
    fn to_record(&self, staff: &[Staff]) -> ImpWechat {
        ImpWechat {
            ad_wechat_id: self.id,
            ad_wechat_nober: self.nober.clone(),
            ad_wechat_nick: self.nick.clone(),
            ad_original_nober: self.original.clone(),
            ad_wechat_lei: i64::from(self.lei),
            ad_staff_code: staff_code(staff, self.staff),
            ad_wechat_addtime: format_time(self.added),
        }
    }
}

struct Fan {
    key: String,
    handle: String,
    name: String,
    photo: String,
    wechat: usize,
    staff: Option<usize>,
    scene: u16,
    state: u8,
    isflock: u8,
    added: i64,
    bound: i64,
}

impl Fan {
    fn to_record(&self, wechats: &[Wechat], staff: &[Staff]) -> ImpFan {
        ImpFan {
            ad_friend_wenober: self.key.clone(),
            ad_friend_uwenober: self.handle.clone(),
            ad_friend_name: self.name.clone(),
            ad_friend_photo: self.photo.clone(),
            ad_wechat_id: wechats[self.wechat].id,
            ad_staff_code: staff_code(staff, self.staff),
            ad_relation_scene: i64::from(self.scene),
            ad_relation_state: i64::from(self.state),
            ad_relation_isflock: i64::from(self.isflock),
            ad_friend_addtime: format_time(self.added),
            ad_bind_time: Some(format_time(self.bound)),
        }
    }
}

struct Chat {
    wechat_id: i64,
    fan_key: String,
    issend: bool,
    staff_code: Option<String>,
    sate: u16,
    content: String,
    resvred: Option<String>,
    sermsgid: u64,
    time: i64,
}

impl Chat {
    fn to_record(&self) -> ImpChat {
        ImpChat {
            ad_wechat_id: self.wechat_id,
            ad_chatting_talter: self.fan_key.clone(),
            ad_chatting_issend: i64::from(self.issend),
            ad_chatting_sate: i64::from(self.sate),
            ad_chatting_content: self.content.clone(),
            ad_chatting_resvred: self.resvred.clone(),
            ad_sermsgid: self.sermsgid.to_string(),
            ad_chatting_time: format_time(self.time),
            ad_staff_code: self.staff_code.clone(),
            ad_voice_txt: None,
            ad_expand: None,
        }
    }
}

fn staff_code(staff: &[Staff], index: Option<usize>) -> Option<String> {
    index.map(|i| staff[i].code.clone())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Fan,
    Staff,
}

impl Side {
    fn other(self) -> Self {
        match self {
            Side::Fan => Side::Staff,
            Side::Staff => Side::Fan,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Special(u16),
}

#[derive(Debug, Clone, Copy)]
struct Planned {
    side: Side,
    kind: Kind,
}

/// Who can plausibly produce a message of this type; `None` means either side.
fn natural_side(ty: u16) -> Option<Side> {
    match ty {
        4919 | 7549 | 9730 | 10000 | 10001 | 10002 | 10003 | 10005 => Some(Side::Fan),
        495 | 1001 | 4362 | 10004 | 11001 | 12001 => Some(Side::Staff),
        _ => None,
    }
}

/// Per-conversation state that shapes text lines: the current topic's
/// shuffled sentences and the last thing each side said (for quotes).
struct Dialogue {
    exchanges: Vec<Exchange>,
    next_question: usize,
    /// Answers to the fan's open questions, oldest first, so staff replies
    /// match what was asked even when the fan asks twice in a row.
    pending_answers: VecDeque<&'static str>,
    last_fan_text: Option<String>,
    last_staff_text: Option<String>,
    previous_was_greeting: bool,
    previous_side: Option<Side>,
}

struct Generator {
    rng: StdRng,
    reference: i64,
    wxids: HashSet<String>,
    sermsgids: HashSet<u64>,
}

impl Generator {
    fn organisation(
        &mut self,
        scale: &DemoScale,
    ) -> (Vec<ImpDepartment>, Vec<ImpGroup>, Vec<Staff>) {
        let mut departments = Vec::new();
        let mut groups = Vec::new();
        let mut staff = Vec::new();
        let mut used_names = HashSet::new();

        // Keeps group ids readable as "department digit(s) + group digit(s)",
        // like 11/12/21 in the fixture, without collisions for wide departments.
        let mut group_multiplier: u64 = 10;
        while group_multiplier <= scale.groups_per_department as u64 {
            group_multiplier *= 10;
        }

        for d in 0..scale.departments {
            let departid = d as u64 + 1;
            let base_name = DEPARTMENT_NAMES[d % DEPARTMENT_NAMES.len()];
            let departname = match d / DEPARTMENT_NAMES.len() {
                0 => base_name.to_string(),
                round => format!("{base_name}{}", round + 1),
            };
            let after_sales = departname.contains("售后");
            departments.push(ImpDepartment {
                departid: departid as i64,
                departname: departname.clone(),
            });

            for g in 0..scale.groups_per_department {
                let groupid = departid * group_multiplier + g as u64 + 1;
                let groupname = if after_sales {
                    format!("售后{}组", chinese_number(g + 1))
                } else {
                    letter_group(g)
                };
                groups.push(ImpGroup {
                    departgroupid: groupid as i64,
                    departid: departid as i64,
                    departgroupname: groupname,
                });

                for s in 0..scale.staff_per_group {
                    let name = self.unique_person_name(&mut used_names);
                    // The first member of each group stays active so every
                    // group can still own accounts and answer fans.
                    let disabled = s > 0 && self.rng.gen_bool(0.12);
                    staff.push(Staff {
                        code: format!("S{:03}", staff.len() + 1),
                        name,
                        departid,
                        groupid,
                        disabled,
                    });
                }
            }
        }

        // Demo users should see what a disabled account looks like.
        if staff.len() >= 3 && !staff.iter().any(|s| s.disabled) {
            if let Some(last) = staff.last_mut() {
                last.disabled = true;
            }
        }
        (departments, groups, staff)
    }

    fn unique_person_name(&mut self, used: &mut HashSet<String>) -> String {
        let mut name = self.person_name();
        // The name pool is finite; after a few clashes a duplicate is as
        // realistic as it gets in a large company.
        for _ in 0..32 {
            if used.insert(name.clone()) {
                break;
            }
            name = self.person_name();
        }
        name
    }

    fn person_name(&mut self) -> String {
        format!("{}{}", self.pick(SURNAMES), self.pick(GIVEN_NAMES))
    }

    fn wechats(&mut self, scale: &DemoScale, staff: &[Staff]) -> Vec<Wechat> {
        let active: Vec<usize> = (0..staff.len()).filter(|&i| !staff[i].disabled).collect();
        (0..scale.wechats)
            .map(|i| {
                // Every third account is a WeCom (企业微信) one so both kinds of
                // relation scenes and flock states appear.
                let lei = if i % 3 == 1 { 3 } else { 0 };
                let nick = match i / WECHAT_NICKS.len() {
                    0 => WECHAT_NICKS[i].to_string(),
                    round => format!("{}{}", WECHAT_NICKS[i % WECHAT_NICKS.len()], round + 1),
                };
                let nober = if lei == 3 {
                    format!("wework_kf{:02}", i + 1)
                } else {
                    format!("shop_service{:02}", i + 1)
                };
                let days_ago = self.rng.gen_range(150..=320);
                let added = self.at_office_hours(self.reference - days_ago * DAY);
                Wechat {
                    id: FIRST_WECHAT_ID + i as i64,
                    nober,
                    nick,
                    original: self.unique_wxid(),
                    lei,
                    staff: (!active.is_empty()).then(|| active[i % active.len()]),
                    added,
                }
            })
            .collect()
    }

    fn fans(&mut self, scale: &DemoScale, wechats: &[Wechat], staff: &[Staff]) -> Vec<Fan> {
        let active: Vec<usize> = (0..staff.len()).filter(|&i| !staff[i].disabled).collect();
        let mut fans = Vec::new();
        for (w, wechat) in wechats.iter().enumerate() {
            for _ in 0..scale.fans_per_wechat {
                let recent = self.rng.gen_bool(0.25);
                let added = if recent {
                    self.between(self.reference - 58 * DAY, self.reference - 2 * DAY)
                } else {
                    self.between(wechat.added + DAY, self.reference - 61 * DAY)
                };
                let added = self.at_daytime(added).max(wechat.added + MINUTE);
                let bound = if self.rng.gen_bool(0.5) {
                    added
                } else {
                    let delay = self.rng.gen_range(MINUTE..=2 * DAY);
                    (added + delay).min(self.reference).max(added)
                };
                // Colleagues sometimes take over a fan, so the owner is not
                // always the account's own staff member.
                let owner = if !active.is_empty() && self.rng.gen_bool(0.15) {
                    Some(self.pick(&active))
                } else {
                    wechat.staff
                };
                let (scene, isflock) = if wechat.lei == 3 {
                    let scene = self.pick(WECOM_SCENES);
                    (scene, if self.rng.gen_bool(0.2) { 2 } else { 0 })
                } else {
                    (self.weighted(PERSONAL_SCENES), 0)
                };
                let state = self.weighted(&[(0, 85), (1, 5), (4, 4), (5, 3), (6, 3)]);
                let name = self.fan_nickname();
                let handle = if self.rng.gen_bool(0.7) {
                    format!(
                        "{}_{}",
                        self.pick(LATIN_HANDLES),
                        self.rng.gen_range(1..10_000)
                    )
                } else {
                    String::new()
                };
                let photo = if self.rng.gen_bool(0.8) {
                    format!("https://example.com/avatar/{}.png", fans.len() + 1)
                } else {
                    String::new()
                };
                fans.push(Fan {
                    key: self.unique_wxid(),
                    handle,
                    name,
                    photo,
                    wechat: w,
                    staff: owner,
                    scene,
                    state,
                    isflock,
                    added,
                    bound,
                });
            }
        }
        fans
    }

    fn fan_nickname(&mut self) -> String {
        match self.rng.gen_range(0..100) {
            0..=34 => self.pick(FANCY_NICKNAMES).to_string(),
            35..=59 => format!("{}{}", self.pick(SURNAMES), self.pick(HONORIFICS)),
            60..=79 => self.person_name(),
            80..=89 => self.pick(LATIN_NAMES).to_string(),
            90..=94 => format!("{}{}", self.pick(LATIN_NAMES), self.pick(SURNAMES)),
            _ => format!("A-{}{}", self.pick(SURNAMES), self.pick(HONORIFICS)),
        }
    }

    fn ads(&mut self, scale: &DemoScale) -> Vec<ImpAd> {
        (0..scale.ads)
            .map(|i| {
                let name = match i / AD_NAMES.len() {
                    0 => AD_NAMES[i].to_string(),
                    round => format!("{}({}期)", AD_NAMES[i % AD_NAMES.len()], round + 1),
                };
                // Whole cents keep the float's shortest representation tidy
                // (1234.56 rather than 1234.5600000000002).
                let cents: u32 = self.rng.gen_range(5_000..=2_000_000);
                let days_ago = self.rng.gen_range(3..=200);
                let created = self.at_office_hours(self.reference - days_ago * DAY);
                ImpAd {
                    code: format!("AD2024{:03}", i + 1),
                    name,
                    costs: f64::from(cents) / 100.0,
                    state: i64::from(self.rng.gen_bool(0.6)),
                    build_type: i64::from(self.rng.gen_bool(0.4)),
                    create_time: format_time(created),
                }
            })
            .collect()
    }

    fn conversation(
        &mut self,
        scale: &DemoScale,
        fan: &Fan,
        wechat: &Wechat,
        staff: &[Staff],
        forced: &[u16],
    ) -> Vec<Chat> {
        let plan = self.plan(scale.chats_per_fan, forced);
        if plan.is_empty() {
            return Vec::new();
        }
        let (times, session_starts) = self.schedule(fan, &plan);

        let staff_code = staff_code(staff, fan.staff);
        let staff_name = fan
            .staff
            .map_or_else(|| wechat.nick.clone(), |i| staff[i].name.clone());
        let mut dialogue = self.new_dialogue();
        let mut chats = Vec::with_capacity(plan.len());

        for (i, item) in plan.iter().enumerate() {
            let first_in_session = session_starts.contains(&i);
            let last_in_session = i + 1 == plan.len() || session_starts.contains(&(i + 1));
            if first_in_session && i > 0 {
                dialogue = self.new_dialogue();
            }
            let time = times[i];

            let (sate, content, resvred) = match item.kind {
                Kind::Text => {
                    let line =
                        self.text_line(&mut dialogue, item.side, first_in_session, last_in_session);
                    let text = self.fill(&line, time);
                    match item.side {
                        Side::Fan => dialogue.last_fan_text = Some(text.clone()),
                        Side::Staff => dialogue.last_staff_text = Some(text.clone()),
                    }
                    (1, text, None)
                }
                Kind::Special(8220) => {
                    dialogue.previous_was_greeting = false;
                    let quoted = match item.side {
                        Side::Fan => dialogue.last_staff_text.clone(),
                        Side::Staff => dialogue.last_fan_text.clone(),
                    }
                    .unwrap_or_else(|| "好的".to_string());
                    let line = self.topic_line(&mut dialogue, item.side);
                    let text = self.fill(line, time);
                    let resvred = json!({
                        "type": 1,
                        "content": quoted,
                        "title": "",
                        "downloadKey": "",
                        "url": "",
                    });
                    (8220, text, Some(resvred))
                }
                Kind::Special(ty) => {
                    dialogue.previous_was_greeting = false;
                    let (content, resvred) =
                        self.special_content(ty, &fan.name, &staff_name, &wechat.nick);
                    (ty, content, resvred)
                }
            };

            chats.push(Chat {
                wechat_id: wechat.id,
                fan_key: fan.key.clone(),
                issend: item.side == Side::Staff,
                staff_code: match item.side {
                    Side::Fan => None,
                    Side::Staff => staff_code.clone(),
                },
                sate,
                content,
                resvred: resvred.as_ref().map(encode_resvred),
                sermsgid: self.unique_sermsgid(),
                time,
            });
            dialogue.previous_side = Some(item.side);
        }
        chats
    }

    /// Decides who speaks and what kind of message each turn is, before any
    /// timing or wording, so forced types can be slotted in anywhere.
    fn plan(&mut self, chats_per_fan: usize, forced: &[u16]) -> Vec<Planned> {
        if chats_per_fan == 0 {
            return Vec::new();
        }
        // Uniform over 1..=2n-1 averages n.
        let count = self.rng.gen_range(1..=2 * chats_per_fan - 1);
        let mut plan = Vec::with_capacity(count + forced.len());
        let mut side = if self.rng.gen_bool(0.85) {
            Side::Fan
        } else {
            Side::Staff
        };
        for _ in 0..count {
            let kind = if self.rng.gen_bool(0.8) {
                Kind::Text
            } else {
                let weights = match side {
                    Side::Fan => FAN_SPECIAL_TYPES,
                    Side::Staff => STAFF_SPECIAL_TYPES,
                };
                Kind::Special(self.weighted(weights))
            };
            plan.push(Planned { side, kind });
            // People often send two messages in a row instead of strictly
            // taking turns.
            if !self.rng.gen_bool(0.15) {
                side = side.other();
            }
        }

        let mut openings = 0;
        for &ty in OPENING_TYPES.iter().filter(|ty| forced.contains(ty)) {
            let side = natural_side(ty).unwrap_or(Side::Fan);
            plan.insert(
                openings,
                Planned {
                    side,
                    kind: Kind::Special(ty),
                },
            );
            openings += 1;
        }
        for &ty in forced.iter().filter(|ty| !OPENING_TYPES.contains(ty)) {
            let side = natural_side(ty).unwrap_or_else(|| {
                if self.rng.gen_bool(0.5) {
                    Side::Fan
                } else {
                    Side::Staff
                }
            });
            let kind = if ty == 1 {
                Kind::Text
            } else {
                Kind::Special(ty)
            };
            let at = self.rng.gen_range(openings..=plan.len());
            plan.insert(at, Planned { side, kind });
        }
        plan
    }

    /// Spreads the plan over a few sessions inside the fan's chat window and
    /// returns each message's timestamp plus the indices that open a session.
    fn schedule(&mut self, fan: &Fan, plan: &[Planned]) -> (Vec<i64>, Vec<usize>) {
        let (window_start, window_end) = self.chat_window(fan);
        let span = (window_end - window_start).max(HOUR);

        // Slots must stay comfortably longer than a session (at most a few
        // hours of 30-minute gaps) so sessions never run into each other.
        let max_sessions = (span / (8 * HOUR)).max(1) as usize;
        let sessions = plan.len().div_ceil(6).clamp(1, max_sessions);
        let slot = span / sessions as i64;

        let mut times = Vec::with_capacity(plan.len());
        let mut starts = Vec::with_capacity(sessions);
        let mut previous_end = window_start - 10 * MINUTE;
        let (per_session, remainder) = (plan.len() / sessions, plan.len() % sessions);
        let mut index = 0;
        for s in 0..sessions {
            let size = per_session + usize::from(s < remainder);
            if size == 0 {
                continue;
            }
            let slot_start = window_start + s as i64 * slot;
            let start = self.between(slot_start, slot_start + slot / 2);
            let earliest = slot_start.max(previous_end + 10 * MINUTE);
            let mut time = self.at_daytime(start);
            if time < earliest {
                // Clamping straight to `earliest` would pile sessions onto
                // round slot boundaries such as 18:00:00.
                time = earliest + self.rng.gen_range(MINUTE..=45 * MINUTE);
            }
            starts.push(index);
            let first = times.len();
            for k in 0..size {
                if k > 0 {
                    time += self.reply_delay(plan[index - 1].side, plan[index].side);
                }
                times.push(time);
                index += 1;
            }
            // Moving a night-time start to daytime can push the last session
            // past the reference time; pull it back as far as the previous
            // session allows instead of squashing messages onto the end.
            let overflow = time - window_end;
            if overflow > 0 {
                let room = times[first] - (previous_end + 10 * MINUTE);
                // A margin keeps the last message off the reference instant.
                let margin = self.rng.gen_range(MINUTE..=30 * MINUTE);
                let shift = (overflow + margin).min(room).max(0);
                for t in &mut times[first..] {
                    *t -= shift;
                }
            }
            previous_end = times[times.len() - 1];
        }
        // Only degenerate windows (a fan added minutes before the reference
        // time) can still overflow; clamping keeps the order intact.
        for time in &mut times {
            *time = (*time).min(window_end);
        }
        (times, starts)
    }

    fn chat_window(&self, fan: &Fan) -> (i64, i64) {
        let start = (self.reference - CHAT_WINDOW_DAYS * DAY).max(fan.added + 5 * MINUTE);
        (start.min(self.reference), self.reference)
    }

    fn reply_delay(&mut self, previous: Side, current: Side) -> i64 {
        if previous == current {
            // A follow-up message from the same person comes quickly.
            return self.rng.gen_range(10..=90);
        }
        let roll = self.rng.gen_range(0..100);
        match (current, roll) {
            (Side::Staff, 0..=54) => self.rng.gen_range(10..=120),
            (Side::Staff, 55..=84) => self.rng.gen_range(120..=600),
            (Side::Fan, 0..=69) => self.rng.gen_range(10..=600),
            _ => self.rng.gen_range(600..=1_800),
        }
    }

    fn new_dialogue(&mut self) -> Dialogue {
        let mut exchanges = self.pick(TOPICS).to_vec();
        exchanges.shuffle(&mut self.rng);
        Dialogue {
            exchanges,
            next_question: 0,
            pending_answers: VecDeque::new(),
            last_fan_text: None,
            last_staff_text: None,
            previous_was_greeting: false,
            previous_side: None,
        }
    }

    fn text_line(
        &mut self,
        dialogue: &mut Dialogue,
        side: Side,
        first_in_session: bool,
        last_in_session: bool,
    ) -> String {
        let previous_was_greeting = std::mem::take(&mut dialogue.previous_was_greeting);
        let line = match side {
            Side::Fan if first_in_session && self.rng.gen_bool(0.3) => {
                dialogue.previous_was_greeting = true;
                self.pick(FAN_GREETINGS)
            }
            Side::Staff if previous_was_greeting => self.pick(STAFF_GREETINGS),
            Side::Staff if first_in_session => self.pick(STAFF_PROACTIVE),
            Side::Fan
                if last_in_session
                    && dialogue.previous_side == Some(Side::Staff)
                    && self.rng.gen_bool(0.5) =>
            {
                self.pick(FAN_CLOSINGS)
            }
            Side::Staff
                if last_in_session
                    && !first_in_session
                    && dialogue.pending_answers.is_empty()
                    && self.rng.gen_bool(0.5) =>
            {
                self.pick(STAFF_CLOSINGS)
            }
            _ => self.topic_line(dialogue, side),
        };
        line.to_string()
    }

    fn topic_line(&mut self, dialogue: &mut Dialogue, side: Side) -> &'static str {
        match side {
            Side::Fan => {
                let (question, answer) =
                    dialogue.exchanges[dialogue.next_question % dialogue.exchanges.len()];
                dialogue.next_question += 1;
                dialogue.pending_answers.push_back(answer);
                question
            }
            Side::Staff => match dialogue.pending_answers.pop_front() {
                Some(answer) => answer,
                // Answering a question nobody asked reads as a bug in the
                // demo, so with nothing open the agent just keeps the
                // conversation going.
                None => self.pick(STAFF_FOLLOW_UPS),
            },
        }
    }

    /// Replaces the placeholders that make otherwise canned sentences look
    /// like they are about a specific order.
    fn fill(&mut self, line: &str, time: i64) -> String {
        let mut text = line.to_string();
        if text.contains("{order}") {
            let ordered = time - self.rng.gen_range(1..=10) * DAY;
            let order = format!(
                "{}{:06}",
                format_with(ordered, "%Y%m%d"),
                self.rng.gen_range(0..1_000_000)
            );
            text = text.replace("{order}", &order);
        }
        if text.contains("{city}") {
            let city = self.pick(CITIES);
            text = text.replace("{city}", city);
        }
        text
    }

    /// Content and resvred for every non-text type, following the GetChat
    /// message type table.
    fn special_content(
        &mut self,
        ty: u16,
        fan_name: &str,
        staff_name: &str,
        wechat_nick: &str,
    ) -> (String, Option<Value>) {
        match ty {
            2 | 3 => (format!("imgs[img_{}]", self.hex(8)), None),
            4 | 34 => {
                let key = format!("voice_{}", self.hex(8));
                // Type 4 is the transcribed-voice variant the table lists as
                // `audioT[…]`; 34 is the plain one.
                let tag = if ty == 4 { "audioT" } else { "audio" };
                let resvred = json!({
                    "downloadKey": key,
                    "type": -1,
                    "videoLen": self.rng.gen_range(1..=59),
                });
                (format!("{tag}[{key}]"), Some(resvred))
            }
            42 => {
                let nickname = self.fan_nickname();
                let resvred = json!({ "nickname": nickname });
                (format!("MP[{nickname}]"), Some(resvred))
            }
            48 => {
                let (title, desc) = self.pick(PLACES);
                let url = format!(
                    "https://map.example.com/p/{}",
                    self.rng.gen_range(1..100_000)
                );
                let thumb = format!("https://media.example.com/thumb/map_{}.jpg", self.hex(8));
                let resvred =
                    json!({ "desc": desc, "thumbUrl": thumb, "title": title, "url": url });
                (format!("a({url})"), Some(resvred))
            }
            49 => {
                let (title, url) = self.pick(LINKS);
                let url = url.replace("{n}", &self.rng.gen_range(100_000..1_000_000).to_string());
                let resvred = json!({ "title": title, "url": url });
                (format!("a({url})"), Some(resvred))
            }
            50 => ("[视频通话]".to_string(), None),
            495 => {
                let group = self.pick(GROUP_CHATS);
                let resvred = json!({
                    "desc": format!("\u{201c}{staff_name}\u{201d}邀请你加入群聊「{group}」,进入可查看详情。"),
                    "thumbUrl": format!("https://media.example.com/thumb/group_{}.jpg", self.hex(8)),
                    "title": "邀请你加入群聊",
                    "url": format!("https://weixin.example.com/group/invite/{}", self.hex(16)),
                });
                (format!("邀请你加入群聊「{group}」"), Some(resvred))
            }
            496 => {
                let key = format!("file_{}", self.hex(8));
                let resvred = json!({
                    "title": self.pick(FILES),
                    "totalLen": self.rng.gen_range(8_192..=5_242_880),
                    "url": "",
                });
                (format!("file[{key}]"), Some(resvred))
            }
            1001 => (format!("[分享名片]{wechat_nick}"), None),
            4919 => (format!("[聊天记录]{fan_name}和客服的聊天记录"), None),
            4933 => {
                let (display_name, title) = self.pick(MINI_PROGRAMS);
                let resvred = json!({
                    "appIconUrl": format!("https://media.example.com/miniapp/icon_{}.png", self.hex(6)),
                    "displayName": display_name,
                    "downloadKey": format!("mini_{}", self.hex(8)),
                    "title": title,
                });
                (format!("[小程序]{title}"), Some(resvred))
            }
            4362 => (self.pick(RED_PACKETS).to_string(), None),
            7549 | 9730 => {
                let (pool, tag) = if ty == 7549 {
                    (CHANNELS, "视频号")
                } else {
                    (LIVES, "直播")
                };
                let (nickname, description) = self.pick(pool);
                let resvred = json!({
                    "avatar": format!("https://media.example.com/avatar/ch_{}.jpg", self.hex(6)),
                    "description": description,
                    "nickname": nickname,
                    "thumbUrl": format!("https://media.example.com/thumb/{}.jpg", self.hex(8)),
                });
                (format!("[{tag}]{nickname}:{description}"), Some(resvred))
            }
            10000 => (format!("你已添加了{fan_name},现在可以开始聊天了。"), None),
            10001 => ("[标识符更新]对方的微信号已变更".to_string(), None),
            10002 => (format!("[好友验证]我是{fan_name}"), None),
            10003 => (format!("[好友申请]{fan_name}请求添加你为朋友"), None),
            10004 => ("[异常通知]消息已发出,但被对方拒收了。".to_string(), None),
            10005 => ("[实名信息]对方已完成实名认证".to_string(), None),
            11001 => {
                let todo = self.pick(TODOS).replace("{fan}", fan_name);
                (format!("[待办]{todo}"), None)
            }
            12001 => {
                let resvred = json!({
                    "key": format!("tg_{}", self.hex(12)),
                    "name": staff_name,
                    "reason": self.pick(TRUSTEESHIP_REASONS),
                });
                (format!("{staff_name}申请托管该会话"), Some(resvred))
            }
            _ => (self.pick(FAN_GREETINGS).to_string(), None),
        }
    }

    fn meeting_calls(
        &mut self,
        scale: &DemoScale,
        fans: &[Fan],
        wechats: &[Wechat],
        staff: &[Staff],
    ) -> Vec<ImpMeetingCall> {
        if fans.is_empty() {
            return Vec::new();
        }
        let mut calls: Vec<(i64, ImpMeetingCall)> = (0..scale.meeting_calls)
            .map(|i| {
                let fan = &fans[self.rng.gen_range(0..fans.len())];
                let (window_start, window_end) = self.chat_window(fan);
                let start = self.between(window_start, window_end - HOUR);
                let daytime = self.at_daytime(start);
                let start = if (window_start..=window_end).contains(&daytime) {
                    daytime
                } else {
                    start
                };
                let (msg_type, duration) = if self.rng.gen_bool(0.5) {
                    ("meeting_voice_call", self.rng.gen_range(60..=3_600))
                } else {
                    ("voip_voice", self.rng.gen_range(10..=900))
                };
                let call = ImpMeetingCall {
                    msg_type: msg_type.to_owned(),
                    ad_wechat_id: wechats[fan.wechat].id,
                    ad_staff_code: staff_code(staff, fan.staff).unwrap_or_default(),
                    fans_key: fan.key.clone(),
                    start_time: format_time(start),
                    duration,
                    voice_url: format!(
                        "https://media.example.com/voice/call{:04}{}.silk",
                        i + 1,
                        self.hex(8)
                    ),
                };
                (start, call)
            })
            .collect();
        calls.sort_by_key(|(start, _)| *start);
        calls.into_iter().map(|(_, call)| call).collect()
    }

    fn unique_wxid(&mut self) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        loop {
            let suffix: String = (0..14)
                .map(|_| char::from(ALPHABET[self.rng.gen_range(0..ALPHABET.len())]))
                .collect();
            let wxid = format!("wxid_{suffix}");
            if self.wxids.insert(wxid.clone()) {
                return wxid;
            }
        }
    }

    fn unique_sermsgid(&mut self) -> u64 {
        loop {
            let id = self
                .rng
                .gen_range(1_000_000_000_000_000_000..10_000_000_000_000_000_000);
            if self.sermsgids.insert(id) {
                return id;
            }
        }
    }

    fn hex(&mut self, len: usize) -> String {
        const DIGITS: &[u8] = b"0123456789abcdef";
        (0..len)
            .map(|_| char::from(DIGITS[self.rng.gen_range(0..DIGITS.len())]))
            .collect()
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        *items
            .choose(&mut self.rng)
            .expect("demo word lists are never empty")
    }

    fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u32 = items.iter().map(|(_, weight)| weight).sum();
        let mut roll = self.rng.gen_range(0..total);
        for &(item, weight) in items {
            if roll < weight {
                return item;
            }
            roll -= weight;
        }
        items[items.len() - 1].0
    }

    fn between(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            low
        } else {
            self.rng.gen_range(low..=high)
        }
    }

    /// Customers and agents rarely chat in the small hours; pulls a timestamp
    /// into 09:00–21:00 of the same day unless it already lies in 08:00–22:00.
    fn at_daytime(&mut self, ts: i64) -> i64 {
        let time_of_day = ts.rem_euclid(DAY);
        if (8 * HOUR..22 * HOUR).contains(&time_of_day) {
            ts
        } else {
            ts - time_of_day + self.rng.gen_range(9 * HOUR..21 * HOUR)
        }
    }

    fn at_office_hours(&mut self, ts: i64) -> i64 {
        ts - ts.rem_euclid(DAY) + self.rng.gen_range(9 * HOUR..18 * HOUR)
    }
}

fn chinese_number(n: usize) -> String {
    const DIGITS: [&str; 10] = ["零", "一", "二", "三", "四", "五", "六", "七", "八", "九"];
    match n {
        1..=9 => DIGITS[n].to_string(),
        10 => "十".to_string(),
        11..=19 => format!("十{}", DIGITS[n - 10]),
        _ => n.to_string(),
    }
}

fn letter_group(index: usize) -> String {
    match u8::try_from(index) {
        Ok(i) if i < 26 => format!("{}组", char::from(b'A' + i)),
        _ => format!("第{}组", index + 1),
    }
}

/// A customer question and the agent answer that belongs to it.
type Exchange = (&'static str, &'static str);

/// Customer-service topics: shipping, returns and refunds, sizes, invoices,
/// promotions and stock, quality and after-sales.
const TOPICS: &[&[Exchange]] = &[
    &[
        ("你好,我的订单什么时候发货?", "您好,今天下午就发货。"),
        (
            "请问今天下单明天能到吗?",
            "亲,一般下单后48小时内发出,江浙沪次日达哦",
        ),
        (
            "快递到哪里了?三天了还没动静",
            "麻烦提供一下订单号,我帮您查询",
        ),
        (
            "物流信息一直没更新,帮我查一下吧",
            "已经帮您催促快递了,有进展第一时间告诉您",
        ),
        ("能发顺丰吗?我着急用", "可以的,顺丰需要补一下运费差价12元"),
        (
            "我的订单号是{order},麻烦看下",
            "查到了,包裹目前在{city}转运中心,预计明天送达",
        ),
        (
            "地址填错了,还能改吗?",
            "还没发货可以改的,地址已经帮您修改好了",
        ),
        (
            "快递显示已签收,但我没收到",
            "我这边联系快递核实一下,稍后给您回复",
        ),
        (
            "可以送到公司吗?周末家里没人",
            "可以的,在订单备注里写上公司地址就行",
        ),
        (
            "下单三天了怎么还没发货",
            "非常抱歉,最近订单量大,已经帮您催促仓库今天发出",
        ),
    ],
    &[
        (
            "这个可以退吗?不太喜欢",
            "支持七天无理由退换,请在订单页面申请退货",
        ),
        (
            "我申请了退款,怎么还没到账?",
            "退款已经处理,1-3个工作日原路退回",
        ),
        (
            "收到的东西有破损,怎么处理?",
            "非常抱歉给您带来不便,麻烦拍一下破损的照片",
        ),
        (
            "退货地址是哪里?",
            "退货地址:{city}仓储中心售后部,收件人写售后组即可",
        ),
        (
            "七天无理由退货运费谁出?",
            "无理由退货运费需要您承担,质量问题运费由我们承担",
        ),
        ("退款多久能到账啊", "仓库收到退货后24小时内退款,原路返回"),
        (
            "订单{order}我想换个颜色,可以吗?",
            "可以换的,您直接申请换货,选好颜色就行",
        ),
        (
            "质量有问题,我要求退货",
            "好的,已经为您登记退货,快递员明天上门取件",
        ),
        ("少发了一件,怎么办?", "已经为您登记,补发的商品今天会寄出"),
    ],
    &[
        (
            "我身高165,体重110斤,穿什么码?",
            "根据您的身高体重,建议选M码",
        ),
        ("这款鞋偏大还是偏小?", "这款鞋版型偏小,建议拍大一码"),
        ("平时穿M码,这件要拿L吗?", "这件是宽松版,平时穿M选M就可以"),
        ("有没有尺码表可以发我看看", "尺码表发您了,您可以对照一下"),
        ("裤长是多少?", "裤长是98厘米,适合身高160-170"),
        (
            "给我老公买,他175,140斤",
            "175、140斤的话建议选XL码,穿着更舒服",
        ),
        ("小孩三岁,穿多大的?", "三岁宝宝一般穿100码,偏胖的话选110"),
    ],
    &[
        ("可以开发票吗?", "可以开的,请提供抬头和税号"),
        (
            "我要开增值税专用发票,需要提供什么?",
            "专票需要提供公司名称、税号、开户行和账号",
        ),
        (
            "发票抬头写公司名称,税号稍后发你",
            "好的,收到信息后3个工作日内开出",
        ),
        ("电子发票开好了吗?", "电子发票已开具,会发送到您的邮箱"),
        (
            "发票金额能不能分开开两张?",
            "可以分开开,您告诉我每张的金额就行",
        ),
        ("发票开错了,能重开吗?", "可以的,原发票作废后给您重新开具"),
    ],
    &[
        ("现在有什么优惠活动吗?", "现在下单满299减50,还送运费险"),
        ("双十一的价格还能保吗?", "双十一价格保到本月底哦"),
        ("这个有现货吗?", "有现货的,今天下单今天发"),
        ("优惠券怎么用不了?", "优惠券需要满199才能使用哦"),
        ("买两件能便宜点吗?", "两件可以给您打九五折"),
        ("这个颜色还有吗", "这个颜色暂时缺货,预计下周到货"),
        ("会员有折扣吗?", "会员下单享九折,生日当月还有双倍积分"),
        ("买贵了,能退差价吗?", "七天内降价可以申请价保,我帮您退差价"),
    ],
    &[
        (
            "用了两天就坏了,怎么回事?",
            "非常抱歉,麻烦拍个视频给我看一下问题",
        ),
        ("洗了一次就掉色了", "这种情况我们给您换新,运费我们承担"),
        ("这个保修多久?", "整机保修一年,在保修期内免费维修"),
        (
            "充电器充不进电,能帮忙看看吗?",
            "您先试试换个插座,还不行的话直接给您换新",
        ),
        ("说明书丢了,怎么安装啊", "安装视频链接发您了,跟着操作就可以"),
        ("有异味正常吗?", "新品会有一点味道,放在通风处两三天就散了"),
    ],
];

const FAN_GREETINGS: &[&str] = &["在吗?", "你好", "您好,咨询一下", "有人吗", "hello,在不在"];

const STAFF_GREETINGS: &[&str] = &[
    "您好,在的,请问有什么可以帮您?",
    "在的亲,您请说",
    "您好,我是您的专属客服,很高兴为您服务",
];

const STAFF_PROACTIVE: &[&str] = &[
    "您好,您的包裹已经签收了,使用上有任何问题随时找我哦~",
    "亲,本周会员日全场八折,需要的话可以看看",
    "您好,之前咨询的那款今天到货了,需要给您留一件吗?",
    "您好,麻烦您有空给我们的服务打个分,谢谢支持!",
    "亲,您购物车里的商品降价了,现在下单更划算",
    "您好,您的退款已经到账了,请注意查收",
    "双十一返场活动今晚开始,老客户额外送50元券",
    "您好,商品使用一周了,感觉怎么样?",
];

const STAFF_FOLLOW_UPS: &[&str] = &[
    "请问还有什么可以帮您?",
    "我再帮您确认一下,请稍等",
    "亲,还在吗?",
    "稍等,我这边查询一下",
    "已经帮您备注好了",
    "收到,马上为您处理",
];

const FAN_CLOSINGS: &[&str] = &[
    "好的,谢谢",
    "知道了,谢谢你",
    "行,那我等着",
    "麻烦了",
    "好的👌",
    "OK,辛苦了",
];

const STAFF_CLOSINGS: &[&str] = &[
    "不客气,祝您生活愉快!",
    "有问题随时联系我哦~",
    "好的亲,还有其他需要帮忙的吗?",
    "感谢您的耐心等待,祝您购物愉快",
];

/// Non-text types a fan sends, weighted by how often they occur in practice.
const FAN_SPECIAL_TYPES: &[(u16, u32)] = &[
    (3, 40),
    (34, 25),
    (2, 4),
    (4, 3),
    (42, 3),
    (48, 4),
    (49, 4),
    (496, 4),
    (8220, 4),
    (4919, 2),
    (4933, 2),
    (7549, 2),
    (50, 2),
    (9730, 1),
];

/// Non-text types a staff member sends, weighted by how often they occur.
const STAFF_SPECIAL_TYPES: &[(u16, u32)] = &[
    (3, 25),
    (49, 20),
    (496, 12),
    (34, 10),
    (8220, 10),
    (4933, 6),
    (4362, 5),
    (495, 3),
    (1001, 3),
    (50, 2),
    (11001, 2),
    (42, 2),
];

/// Add-friend scenes of personal accounts (QQ, WeChat id, group chat, phone
/// number, business card, QR code…), weighted toward the common ones.
const PERSONAL_SCENES: &[(u16, u32)] = &[
    (1, 3),
    (3, 15),
    (6, 2),
    (8, 4),
    (13, 6),
    (14, 15),
    (15, 18),
    (17, 14),
    (18, 2),
    (30, 21),
];

const WECOM_SCENES: &[u16] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 201, 202];

const DEPARTMENT_NAMES: &[&str] = &[
    "销售一部",
    "售后服务部",
    "市场部",
    "销售二部",
    "客户成功部",
    "电商运营部",
    "会员服务部",
    "大客户部",
    "品牌部",
    "技术支持部",
];

const SURNAMES: &[&str] = &[
    "张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "高", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹",
];

const GIVEN_NAMES: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "刚", "桂英", "浩然", "子涵", "欣怡", "梓萱", "宇轩", "思远", "雨桐",
    "佳怡", "俊杰", "晓燕", "海燕", "志强", "丽娟", "婷婷", "雪", "倩", "琳", "鑫",
];

const HONORIFICS: &[&str] = &["先生", "女士", "小姐", "姐", "哥", "老师", "总"];

const FANCY_NICKNAMES: &[&str] = &[
    "小鱼儿",
    "阳光宝贝",
    "静待花开",
    "追梦人",
    "岁月静好",
    "快乐每一天",
    "向日葵",
    "蓝色天空",
    "一路向北",
    "微笑向暖",
    "安之若素",
    "小确幸",
    "糖果屋",
    "木子",
    "橙子",
    "柠檬不萌",
    "猫小姐",
    "风轻云淡",
    "梦里花落",
    "🌸花花",
    "平安是福",
    "宝妈一枚",
];

const LATIN_NAMES: &[&str] = &[
    "Lucy", "Kevin", "Amy", "Jack", "Cindy", "Tony", "Sunny", "Coco", "Grace", "Leo", "Mia",
    "David",
];

const LATIN_HANDLES: &[&str] = &[
    "lucy", "kevin", "amy", "zhang", "wang", "li", "zhao", "liu", "chen", "yang", "huang", "sunny",
    "coco", "xiaoyu", "tiantian",
];

const WECHAT_NICKS: &[&str] = &[
    "小米客服",
    "售后小助手",
    "美妆顾问小雅",
    "潮品馆-小林",
    "优选商城客服",
    "家居生活馆",
    "母婴顾问-小雨",
    "数码专营店",
    "鲜果园客服",
    "服饰搭配师Amy",
    "会员服务中心",
    "品牌福利官",
];

const AD_NAMES: &[&str] = &[
    "双十一朋友圈投放",
    "抖音引流",
    "小红书种草笔记",
    "百度搜索推广",
    "公众号推文合作",
    "视频号直播引流",
    "618年中大促",
    "老客户回馈活动",
    "朋友圈本地推",
    "快手短视频投放",
    "线下门店扫码",
    "知乎问答推广",
];

const CITIES: &[&str] = &[
    "上海", "北京", "广州", "深圳", "杭州", "成都", "武汉", "南京", "苏州", "郑州", "西安", "长沙",
];

const PLACES: &[(&str, &str)] = &[
    ("旗舰店", "上海市浦东新区世纪大道100号"),
    ("万达广场门店", "北京市朝阳区建国路93号万达广场B1"),
    ("天河城专柜", "广州市天河区天河路208号天河城3楼"),
    ("仓储中心", "杭州市余杭区文一西路1500号"),
    ("西湖银泰店", "杭州市上城区延安路98号"),
    ("春熙路店", "成都市锦江区春熙路南段8号"),
];

const LINKS: &[(&str, &str)] = &[
    ("订单详情", "https://shop.example.com/order/{n}"),
    ("尺码对照表", "https://shop.example.com/help/size-guide"),
    ("退换货流程说明", "https://help.example.com/return-policy"),
    ("双十一主会场", "https://shop.example.com/promo/1111"),
    ("物流查询", "https://track.example.com/express/{n}"),
    ("秋冬新品上市", "https://shop.example.com/new/autumn"),
    ("电子发票下载", "https://invoice.example.com/e/{n}"),
];

const FILES: &[&str] = &[
    "发票.pdf",
    "尺码表.xlsx",
    "退货申请单.docx",
    "产品说明书.pdf",
    "报价单.xlsx",
    "保修卡.jpg",
    "合同扫描件.pdf",
];

const MINI_PROGRAMS: &[(&str, &str)] = &[
    ("优选商城", "双十一爆款直降,点击抢购"),
    ("顺丰速运+", "查快递、寄快递就用顺丰"),
    ("会员中心", "领取您的专属会员福利"),
    ("京东购物", "好物推荐,限时秒杀"),
    ("电子发票助手", "一键申请电子发票"),
];

const CHANNELS: &[(&str, &str)] = &[
    ("优选好物", "秋冬穿搭分享,三套搭配一周不重样"),
    ("小米生活家", "开箱实测:这款空气炸锅值不值得买"),
    ("潮品馆", "新品上架抢先看"),
    ("美妆顾问小雅", "敏感肌护肤步骤分享"),
];

const LIVES: &[(&str, &str)] = &[
    ("潮品馆直播间", "双十一返场,全场五折起"),
    ("优选好物直播", "工厂直发,今晚8点开播"),
    ("美妆福利直播", "新客下单送小样"),
];

const GROUP_CHATS: &[&str] = &["VIP会员福利群", "新品尝鲜群", "售后服务群", "老客户专属群"];

const RED_PACKETS: &[&str] = &[
    "[红包]恭喜发财,大吉大利",
    "[红包]售后补偿,请查收",
    "[群收款]",
    "[群红包]",
];

const TODOS: &[&str] = &[
    "明天上午回访{fan},确认收货情况",
    "{fan}需要补开发票,周五前处理",
    "跟进{fan}的退款进度",
    "提醒{fan}参加周末会员日活动",
];

const TRUSTEESHIP_REASONS: &[&str] = &[
    "客户咨询量大,申请协助接待",
    "下班时间,申请同事托管",
    "休假期间,申请托管会话",
];

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use chrono::NaiveDateTime;
    use percent_encoding::percent_decode_str;
    use serde_json::Value;

    use super::*;

    const SEED: u64 = 20_241_120;

    /// The records as the JSON import format, as an integrator would write them.
    fn generate(seed: u64, scale: DemoScale) -> Value {
        serde_json::to_value(super::generate(seed, scale)).unwrap()
    }

    fn demo() -> Value {
        generate(SEED, DemoScale::demo())
    }

    fn array<'a>(data: &'a Value, key: &str) -> &'a Vec<Value> {
        data[key]
            .as_array()
            .unwrap_or_else(|| panic!("`{key}` is an array"))
    }

    fn parse_time(value: &Value) -> NaiveDateTime {
        let text = value.as_str().expect("times are strings");
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
            .unwrap_or_else(|e| panic!("{text:?} is yyyy-MM-dd HH:mm:ss: {e}"))
    }

    fn keys(object: &Value) -> HashSet<&str> {
        object
            .as_object()
            .expect("rows are objects")
            .keys()
            .map(String::as_str)
            .collect()
    }

    fn reference() -> NaiveDateTime {
        NaiveDateTime::parse_from_str("2024-11-20 18:00:00", "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn the_same_seed_always_produces_the_same_data() {
        assert_eq!(demo(), demo());
        assert_eq!(
            generate(7, DemoScale::tiny()),
            generate(7, DemoScale::tiny())
        );
    }

    #[test]
    fn different_seeds_produce_different_data() {
        assert_ne!(
            generate(1, DemoScale::tiny()),
            generate(2, DemoScale::tiny())
        );
    }

    #[test]
    fn the_demo_scale_has_the_promised_size() {
        let data = demo();
        assert_eq!(array(&data, "departments").len(), 3);
        assert_eq!(array(&data, "groups").len(), 6);
        assert_eq!(array(&data, "staff").len(), 18);
        assert_eq!(array(&data, "wechats").len(), 6);
        assert_eq!(array(&data, "fans").len(), 240);
        assert_eq!(array(&data, "ads").len(), 8);
        assert_eq!(array(&data, "meeting_calls").len(), 30);
        let per_fan = array(&data, "chats").len() as f64 / 240.0;
        assert!((10.0..=14.0).contains(&per_fan), "{per_fan} chats per fan");
    }

    #[test]
    fn rows_use_exactly_the_field_names_of_the_import_format() {
        let data = demo();
        let expected: &[(&str, &[&str])] = &[
            ("departments", &["departid", "departname"]),
            ("groups", &["departgroupid", "departid", "departgroupname"]),
            (
                "staff",
                &[
                    "ad_staff_code",
                    "ad_staff_name",
                    "departid",
                    "departgroupid",
                    "ad_staff_state",
                ],
            ),
            (
                "wechats",
                &[
                    "ad_wechat_id",
                    "ad_wechat_nober",
                    "ad_wechat_nick",
                    "ad_original_nober",
                    "ad_wechat_lei",
                    "ad_staff_code",
                    "ad_wechat_addtime",
                ],
            ),
            (
                "fans",
                &[
                    "ad_friend_wenober",
                    "ad_friend_uwenober",
                    "ad_friend_name",
                    "ad_friend_photo",
                    "ad_wechat_id",
                    "ad_staff_code",
                    "ad_relation_scene",
                    "ad_relation_state",
                    "ad_relation_isflock",
                    "ad_friend_addtime",
                    "ad_bind_time",
                ],
            ),
            (
                "ads",
                &["code", "name", "costs", "state", "buildType", "createTime"],
            ),
            (
                "chats",
                &[
                    "ad_wechat_id",
                    "ad_chatting_talter",
                    "ad_chatting_issend",
                    "ad_chatting_sate",
                    "ad_chatting_content",
                    "ad_chatting_resvred",
                    "ad_sermsgid",
                    "ad_chatting_time",
                    "ad_staff_code",
                    // Optional fields of the format the demo leaves empty (null).
                    "ad_voice_txt",
                    "ad_expand",
                ],
            ),
            (
                "meeting_calls",
                &[
                    "msg_type",
                    "ad_wechat_id",
                    "ad_staff_code",
                    "fans_key",
                    "start_time",
                    "duration",
                    "voice_url",
                ],
            ),
        ];
        let top: HashSet<&str> = expected.iter().map(|(key, _)| *key).collect();
        assert_eq!(keys(&data), top);
        for (key, fields) in expected {
            let fields: HashSet<&str> = fields.iter().copied().collect();
            for row in array(&data, key) {
                assert_eq!(keys(row), fields, "a row of `{key}`");
            }
        }
    }

    #[test]
    fn every_message_type_in_the_reference_table_appears_at_demo_scale() {
        let data = demo();
        let seen: HashSet<u64> = array(&data, "chats")
            .iter()
            .map(|chat| chat["ad_chatting_sate"].as_u64().unwrap())
            .collect();
        for ty in MESSAGE_TYPES {
            assert!(seen.contains(&u64::from(ty)), "type {ty} is missing");
        }
        assert!(seen.iter().all(|ty| MESSAGE_TYPES.contains(&(*ty as u16))));
    }

    #[test]
    fn every_message_type_appears_even_at_tiny_scale() {
        let data = generate(SEED, DemoScale::tiny());
        let seen: HashSet<u64> = array(&data, "chats")
            .iter()
            .map(|chat| chat["ad_chatting_sate"].as_u64().unwrap())
            .collect();
        assert_eq!(seen.len(), MESSAGE_TYPES.len());
    }

    #[test]
    fn most_messages_are_plain_text() {
        let data = demo();
        let chats = array(&data, "chats");
        let text = chats
            .iter()
            .filter(|chat| chat["ad_chatting_sate"] == 1)
            .count();
        let share = text as f64 / chats.len() as f64;
        assert!((0.72..=0.88).contains(&share), "text share {share}");
    }

    #[test]
    fn sermsgids_are_unique_nineteen_digit_strings() {
        let data = demo();
        let mut seen = HashSet::new();
        for chat in array(&data, "chats") {
            let id = chat["ad_sermsgid"].as_str().expect("sermsgid is a string");
            assert_eq!(id.len(), 19, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id}");
            assert!(seen.insert(id), "{id} is duplicated");
        }
    }

    #[test]
    fn fan_keys_are_unique_wxids_of_fourteen_lowercase_alphanumerics() {
        let data = demo();
        let mut seen = HashSet::new();
        for fan in array(&data, "fans") {
            let key = fan["ad_friend_wenober"].as_str().unwrap();
            let suffix = key
                .strip_prefix("wxid_")
                .expect("fan keys start with wxid_");
            assert_eq!(suffix.len(), 14, "{key}");
            assert!(
                suffix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{key}"
            );
            assert!(seen.insert(key), "{key} is duplicated");
        }
    }

    #[test]
    fn wechat_ids_count_up_from_135389() {
        let data = demo();
        for (i, wechat) in array(&data, "wechats").iter().enumerate() {
            assert_eq!(wechat["ad_wechat_id"], 135_389 + i as i64);
        }
    }

    #[test]
    fn every_chat_refers_to_an_existing_wechat_and_fan_pair() {
        let data = demo();
        let wechats: HashSet<i64> = array(&data, "wechats")
            .iter()
            .map(|w| w["ad_wechat_id"].as_i64().unwrap())
            .collect();
        let pairs: HashSet<(i64, &str)> = array(&data, "fans")
            .iter()
            .map(|f| {
                let wechat = f["ad_wechat_id"].as_i64().unwrap();
                assert!(wechats.contains(&wechat));
                (wechat, f["ad_friend_wenober"].as_str().unwrap())
            })
            .collect();
        for chat in array(&data, "chats") {
            let pair = (
                chat["ad_wechat_id"].as_i64().unwrap(),
                chat["ad_chatting_talter"].as_str().unwrap(),
            );
            assert!(pairs.contains(&pair), "{pair:?} is not a known fan");
        }
        for call in array(&data, "meeting_calls") {
            let pair = (
                call["ad_wechat_id"].as_i64().unwrap(),
                call["fans_key"].as_str().unwrap(),
            );
            assert!(pairs.contains(&pair), "{pair:?} is not a known fan");
        }
    }

    #[test]
    fn staff_replies_carry_the_owning_staff_code_and_fan_messages_carry_none() {
        let data = demo();
        let owners: HashMap<&str, &Value> = array(&data, "fans")
            .iter()
            .map(|f| {
                (
                    f["ad_friend_wenober"].as_str().unwrap(),
                    &f["ad_staff_code"],
                )
            })
            .collect();
        let mut sent = [0usize; 2];
        for chat in array(&data, "chats") {
            let owner = owners[chat["ad_chatting_talter"].as_str().unwrap()];
            match chat["ad_chatting_issend"].as_u64() {
                Some(0) => assert!(chat["ad_staff_code"].is_null()),
                Some(1) => assert_eq!(&chat["ad_staff_code"], owner),
                other => panic!("issend is {other:?}"),
            }
            sent[chat["ad_chatting_issend"].as_u64().unwrap() as usize] += 1;
        }
        // Both sides take part in the conversations.
        assert!(sent[0] > sent[1] / 2 && sent[1] > sent[0] / 2, "{sent:?}");
    }

    #[test]
    fn resvred_percent_decodes_to_a_json_object_exactly_for_types_that_have_one() {
        let data = demo();
        let with_resvred: HashSet<u64> =
            [4, 34, 42, 48, 49, 495, 496, 4933, 7549, 8220, 9730, 12001].into();
        for chat in array(&data, "chats") {
            let ty = chat["ad_chatting_sate"].as_u64().unwrap();
            match &chat["ad_chatting_resvred"] {
                Value::Null => assert!(!with_resvred.contains(&ty), "type {ty} lacks resvred"),
                Value::String(encoded) => {
                    assert!(with_resvred.contains(&ty), "type {ty} has resvred");
                    let decoded = percent_decode_str(encoded).decode_utf8().unwrap();
                    let parsed: Value = serde_json::from_str(&decoded)
                        .unwrap_or_else(|e| panic!("{decoded} is not JSON: {e}"));
                    assert!(parsed.is_object(), "{decoded}");
                }
                other => panic!("resvred is {other}"),
            }
        }
    }

    #[test]
    fn content_follows_the_format_of_its_message_type() {
        let data = demo();
        for chat in array(&data, "chats") {
            let content = chat["ad_chatting_content"].as_str().unwrap();
            assert!(!content.is_empty());
            let ok = match chat["ad_chatting_sate"].as_u64().unwrap() {
                2 | 3 => content.starts_with("imgs[img_") && content.ends_with(']'),
                4 => content.starts_with("audioT[voice_"),
                34 => content.starts_with("audio[voice_"),
                42 => content.starts_with("MP[") && content.ends_with(']'),
                48 | 49 => content.starts_with("a(https://") && content.ends_with(')'),
                496 => content.starts_with("file[file_") && content.ends_with(']'),
                _ => true,
            };
            assert!(ok, "{chat}");
        }
    }

    #[test]
    fn resvred_is_encoded_byte_for_byte_like_the_fixture() {
        let voice = json!({ "downloadKey": "voice_77ab", "type": -1, "videoLen": 6 });
        assert_eq!(
            encode_resvred(&voice),
            "%7B%22downloadKey%22%3A%22voice_77ab%22%2C%22type%22%3A-1%2C%22videoLen%22%3A6%7D"
        );
        let link = json!({ "title": "订单详情", "url": "https://shop.example.com/order/123" });
        assert_eq!(
            encode_resvred(&link),
            "%7B%22title%22%3A%22%E8%AE%A2%E5%8D%95%E8%AF%A6%E6%83%85%22%2C%22url%22%3A%22https%3A%2F%2Fshop.example.com%2Forder%2F123%22%7D"
        );
    }

    #[test]
    fn chats_stay_inside_the_last_sixty_days_and_after_the_fan_was_added() {
        let data = demo();
        let reference = reference();
        let earliest = reference - chrono::TimeDelta::days(CHAT_WINDOW_DAYS);
        let added: HashMap<&str, NaiveDateTime> = array(&data, "fans")
            .iter()
            .map(|f| {
                (
                    f["ad_friend_wenober"].as_str().unwrap(),
                    parse_time(&f["ad_friend_addtime"]),
                )
            })
            .collect();
        let mut latest = earliest;
        for chat in array(&data, "chats") {
            let time = parse_time(&chat["ad_chatting_time"]);
            assert!(time >= earliest && time <= reference, "{chat}");
            assert!(time > added[chat["ad_chatting_talter"].as_str().unwrap()]);
            latest = latest.max(time);
        }
        assert!(reference - latest < chrono::TimeDelta::days(2), "{latest}");
    }

    #[test]
    fn consecutive_messages_with_a_fan_are_at_least_ten_seconds_apart() {
        let data = demo();
        let mut by_fan: HashMap<&str, Vec<NaiveDateTime>> = HashMap::new();
        for chat in array(&data, "chats") {
            by_fan
                .entry(chat["ad_chatting_talter"].as_str().unwrap())
                .or_default()
                .push(parse_time(&chat["ad_chatting_time"]));
        }
        for times in by_fan.values() {
            for pair in times.windows(2) {
                let gap = (pair[1] - pair[0]).num_seconds();
                assert!(gap >= 10, "gap of {gap}s");
            }
        }
    }

    #[test]
    fn bind_time_is_never_before_the_friend_was_added() {
        let data = demo();
        for fan in array(&data, "fans") {
            assert!(parse_time(&fan["ad_bind_time"]) >= parse_time(&fan["ad_friend_addtime"]));
        }
    }

    #[test]
    fn relation_fields_use_realistic_values() {
        let data = demo();
        let lei: HashMap<i64, u64> = array(&data, "wechats")
            .iter()
            .map(|w| {
                (
                    w["ad_wechat_id"].as_i64().unwrap(),
                    w["ad_wechat_lei"].as_u64().unwrap(),
                )
            })
            .collect();
        let mut states = HashSet::new();
        let mut flocked = 0;
        for fan in array(&data, "fans") {
            let scene = fan["ad_relation_scene"].as_u64().unwrap() as u16;
            let isflock = fan["ad_relation_isflock"].as_u64().unwrap();
            if lei[&fan["ad_wechat_id"].as_i64().unwrap()] == 3 {
                assert!(WECOM_SCENES.contains(&scene), "WeCom scene {scene}");
                assert!(isflock == 0 || isflock == 2);
                flocked += usize::from(isflock == 2);
            } else {
                assert!(
                    PERSONAL_SCENES.iter().any(|(s, _)| *s == scene),
                    "scene {scene}"
                );
                assert_eq!(isflock, 0);
            }
            states.insert(fan["ad_relation_state"].as_u64().unwrap());
        }
        assert!(flocked > 0);
        assert!(states.contains(&0) && states.len() > 1, "{states:?}");
        assert!(array(&data, "staff")
            .iter()
            .any(|s| s["ad_staff_state"] == 1));
    }

    #[test]
    fn ads_have_codes_names_and_cent_precise_costs() {
        let data = demo();
        for (i, ad) in array(&data, "ads").iter().enumerate() {
            assert_eq!(ad["code"], format!("AD2024{:03}", i + 1));
            assert!(!ad["name"].as_str().unwrap().is_empty());
            let costs = ad["costs"].as_f64().unwrap();
            assert!(((costs * 100.0).round() - costs * 100.0).abs() < 1e-6);
            parse_time(&ad["createTime"]);
        }
    }

    #[test]
    fn meeting_calls_are_chronological_silk_recordings() {
        let data = demo();
        let calls = array(&data, "meeting_calls");
        let mut urls = HashSet::new();
        for pair in calls.windows(2) {
            assert!(parse_time(&pair[0]["start_time"]) <= parse_time(&pair[1]["start_time"]));
        }
        for call in calls {
            let kind = call["msg_type"].as_str().unwrap();
            assert!(kind == "meeting_voice_call" || kind == "voip_voice");
            assert!(call["duration"].as_u64().unwrap() > 0);
            assert!(parse_time(&call["start_time"]) <= reference());
            let url = call["voice_url"].as_str().unwrap();
            assert!(url.starts_with("https://media.example.com/voice/") && url.ends_with(".silk"));
            assert!(urls.insert(url), "{url} is duplicated");
        }
    }

    #[test]
    fn a_scale_without_staff_or_chats_still_generates_accounts_and_fans() {
        let empty = DemoScale {
            departments: 0,
            groups_per_department: 0,
            staff_per_group: 0,
            wechats: 2,
            fans_per_wechat: 2,
            chats_per_fan: 0,
            ads: 0,
            meeting_calls: 3,
        };
        let data = generate(SEED, empty);
        assert!(array(&data, "staff").is_empty());
        assert!(array(&data, "chats").is_empty());
        assert_eq!(array(&data, "fans").len(), 4);
        assert!(array(&data, "fans")
            .iter()
            .all(|f| f["ad_staff_code"].is_null()));
    }
}
