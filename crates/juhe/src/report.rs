//! Service metrics computed from stored chats, in one pass over a stream of messages in
//! conversation order and in memory bounded by the number of output rows (plus one
//! conversation's small state), whatever the range or the merchant's history.
//!
//! Definitions (also in docs/api.md):
//! - A *conversation* is one fan of one operating account.
//! - A *session* is a run of a conversation's messages with no silence of
//!   `reply_window_hours` or more between two consecutive messages (either way).
//! - *Received* messages (issend 0) count for the conversation's owner: the fan's staff,
//!   else the operating account's staff. *Sent* messages (issend 1) count for the staff
//!   who sent them (`ad_staff_code`), else the owner.
//! - *Fans served*: distinct conversations in which the staff member sent a message.
//! - *Reply time*: from the first fan message of the range that is still unanswered to the
//!   next staff message of the same session; counted for the responder. A staff message
//!   after the session has ended (silence of `reply_window_hours`) answers nothing: the
//!   fan message stays unanswered and gives no sample, so a reply time is never days of
//!   silence between two sessions.
//! - *First response time*: the first reply time of each conversation in the range.
//! - *Activation*: a staff member sends into a conversation that had no message (either
//!   way) in the preceding `activation_idle_hours`, or ActivationConversation activates the
//!   conversation for the staff member. Counted once per fan per staff per day, whichever
//!   way (or both) it happened.

/// One chat message, reduced to what the metrics need, with its conversation's owner.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ChatFact {
    pub wechat_id: i64,
    pub talker: String,
    pub issend: i64,
    pub staff_code: Option<String>,
    pub chat_time: i64,
    /// The fan's staff, else the operating account's staff.
    pub owner: Option<String>,
}

/// Sums for one output row (a staff member, a group or a department), from which
/// averages are taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub fans_served: i64,
    pub received: i64,
    pub sent: i64,
    pub first_response_sum: i64,
    pub first_response_n: i64,
    pub reply_sum: i64,
    pub reply_n: i64,
    /// Distinct (day, conversation) activations.
    pub activations: i64,
}

/// The fixed parameters of one report.
pub struct Window<'a> {
    pub start: i64,
    pub end: i64,
    pub idle_secs: i64,
    pub reply_window_secs: i64,
    /// Start of the day containing a timestamp (in the configured offset).
    pub day_of: &'a (dyn Fn(i64) -> i64 + Sync),
    /// The output row a staff code counts for, if any.
    pub bucket: &'a (dyn Fn(&str) -> Option<usize> + Sync),
}

/// Consumes messages grouped by conversation, in time order within each, and sums them
/// into `buckets` rows.
pub struct Aggregator<'a> {
    w: Window<'a>,
    out: Vec<Sums>,
    conv: Option<Conversation>,
    /// Recorded activations (ActivationConversation) not yet matched by a chat-derived
    /// one: (account, fan, bucket, day).
    recorded: std::collections::HashSet<(i64, String, usize, i64)>,
}

/// The state of the conversation being read.
struct Conversation {
    wechat_id: i64,
    talker: String,
    owner: Option<String>,
    prev_time: Option<i64>,
    waiting_since: Option<i64>,
    first_done: bool,
    /// Buckets that sent in this conversation (few: the staff of one conversation).
    served: Vec<usize>,
    /// (bucket, day) activations in this conversation.
    activated: Vec<(usize, i64)>,
}

impl<'a> Aggregator<'a> {
    pub fn new(w: Window<'a>, buckets: usize) -> Aggregator<'a> {
        Aggregator {
            w,
            out: vec![Sums::default(); buckets],
            conv: None,
            recorded: Default::default(),
        }
    }

    /// Adds an activation recorded by ActivationConversation at `at` (inside the window)
    /// for `bucket`. Counted once with the chat-derived activation of the same fan, bucket
    /// and day, if there is one.
    pub fn push_recorded(&mut self, wechat_id: i64, fan: &str, bucket: usize, at: i64) {
        if bucket < self.out.len() {
            let day = (self.w.day_of)(at);
            self.recorded
                .insert((wechat_id, fan.to_owned(), bucket, day));
        }
    }

    pub fn push(&mut self, m: &ChatFact) {
        let same = self
            .conv
            .as_ref()
            .is_some_and(|c| c.wechat_id == m.wechat_id && c.talker == m.talker);
        if !same {
            self.close();
            self.conv = Some(Conversation {
                wechat_id: m.wechat_id,
                talker: m.talker.clone(),
                owner: m.owner.clone(),
                prev_time: None,
                waiting_since: None,
                first_done: false,
                served: Vec::new(),
                activated: Vec::new(),
            });
        }
        let w = &self.w;
        let Some(c) = self.conv.as_mut() else {
            return;
        };
        let in_range = m.chat_time >= w.start && m.chat_time < w.end;
        let silence = c.prev_time.map(|p| m.chat_time.saturating_sub(p));
        let new_session = silence.is_none_or(|s| s >= w.reply_window_secs);
        if new_session {
            // Whatever was waiting went unanswered within its session.
            c.waiting_since = None;
        }
        if m.issend == 1 {
            let who = m.staff_code.as_deref().or(c.owner.as_deref());
            if let (Some(b), true) = (who.and_then(|s| (w.bucket)(s)), in_range) {
                let s = &mut self.out[b];
                s.sent += 1;
                if !c.served.contains(&b) {
                    c.served.push(b);
                }
                if let Some(since) = c.waiting_since {
                    let d = m.chat_time.saturating_sub(since);
                    s.reply_sum = s.reply_sum.saturating_add(d);
                    s.reply_n += 1;
                    if !c.first_done {
                        s.first_response_sum = s.first_response_sum.saturating_add(d);
                        s.first_response_n += 1;
                        c.first_done = true;
                    }
                }
                if silence.is_none_or(|s| s >= w.idle_secs) {
                    let day = (w.day_of)(m.chat_time);
                    if !c.activated.contains(&(b, day)) {
                        c.activated.push((b, day));
                    }
                }
            }
            c.waiting_since = None;
        } else if in_range {
            // Only fan messages inside the range start a reply clock.
            if let Some(b) = c.owner.as_deref().and_then(|o| (w.bucket)(o)) {
                self.out[b].received += 1;
            }
            if c.waiting_since.is_none() {
                c.waiting_since = Some(m.chat_time);
            }
        }
        c.prev_time = Some(m.chat_time);
    }

    fn close(&mut self) {
        if let Some(c) = self.conv.take() {
            for b in c.served {
                self.out[b].fans_served += 1;
            }
            for (b, day) in c.activated {
                self.recorded
                    .remove(&(c.wechat_id, c.talker.clone(), b, day));
                self.out[b].activations += 1;
            }
        }
    }

    pub fn finish(mut self) -> Vec<Sums> {
        self.close();
        for (_, _, b, _) in std::mem::take(&mut self.recorded) {
            self.out[b].activations += 1;
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(talker: &str, issend: i64, staff: Option<&str>, t: i64) -> ChatFact {
        ChatFact {
            wechat_id: 1,
            talker: talker.into(),
            issend,
            staff_code: staff.map(Into::into),
            chat_time: t,
            owner: Some("S1".into()),
        }
    }

    /// Buckets: 0 = S1, 1 = S2, 2 = a group of both.
    fn run_with(
        facts: &[ChatFact],
        start: i64,
        bucket: &(dyn Fn(&str) -> Option<usize> + Sync),
    ) -> Vec<Sums> {
        let mut a = Aggregator::new(
            Window {
                start,
                end: 1_000_000,
                idle_secs: 3600,
                reply_window_secs: 1800,
                day_of: &|t| t - t % 86400,
                bucket,
            },
            2,
        );
        for x in facts {
            a.push(x);
        }
        a.finish()
    }

    fn run(facts: &[ChatFact], start: i64) -> Vec<Sums> {
        run_with(facts, start, &|s| match s {
            "S1" => Some(0),
            "S2" => Some(1),
            _ => None,
        })
    }

    #[test]
    fn first_response_and_reply_times_are_measured_from_the_first_unanswered_message() {
        let facts = vec![
            f("a", 0, None, 100),
            f("a", 0, None, 130),
            f("a", 1, Some("S2"), 160),
            f("a", 0, None, 200),
            f("a", 1, Some("S2"), 210),
        ];
        let r = run(&facts, 0);
        let s2 = r[1];
        assert_eq!(
            (s2.sent, s2.first_response_sum, s2.first_response_n),
            (2, 60, 1)
        );
        assert_eq!((s2.reply_sum, s2.reply_n), (70, 2));
        assert_eq!(r[0].received, 3);
        assert_eq!(s2.fans_served, 1);
    }

    #[test]
    fn a_staff_message_after_the_session_ended_is_not_a_reply() {
        // The fan's last message of a session, then the staff writes two days later: that
        // is a new session (and an activation), not a reply time of two days.
        let facts = vec![
            f("a", 0, None, 1_000),
            f("a", 1, Some("S1"), 1_100),
            f("a", 0, None, 1_200),
            f("a", 1, Some("S1"), 1_200 + 2 * 86400),
        ];
        let s = run(&facts, 0)[0];
        assert_eq!((s.reply_n, s.reply_sum), (1, 100));
        assert_eq!((s.first_response_n, s.first_response_sum), (1, 100));
        assert_eq!(s.activations, 1, "the send after two days of silence");
    }

    #[test]
    fn an_activation_needs_the_idle_gap_and_counts_once_per_fan_and_day() {
        let facts = vec![
            f("a", 1, Some("S1"), 10_000),
            f("a", 1, Some("S1"), 10_100),
            f("a", 0, None, 12_000),
            f("a", 1, Some("S1"), 12_100),
            f("a", 1, Some("S1"), 20_000),
        ];
        // 10_000 (no earlier message) and 20_000 (7_900 s of silence) activate; same day, same fan: one.
        assert_eq!(run(&facts, 0)[0].activations, 1);
        let facts = vec![
            f("a", 1, Some("S1"), 10_000),
            f("a", 1, Some("S1"), 100_000),
        ];
        assert_eq!(run(&facts, 0)[0].activations, 2);
    }

    #[test]
    fn a_recorded_activation_counts_once_with_the_chats_and_alone_where_they_show_none() {
        let mut a = Aggregator::new(
            Window {
                start: 0,
                end: 1_000_000,
                idle_secs: 3600,
                reply_window_secs: 3600,
                day_of: &|t| t - t % 86400,
                bucket: &|s| (s == "S1").then_some(0),
            },
            1,
        );
        // Fan "a": activated by a chat and by the API the same day: one. Fan "b": only by
        // the API: one more. Fan "a" again on another day by the API: one more.
        a.push_recorded(1, "a", 0, 10_500);
        a.push_recorded(1, "b", 0, 10_600);
        a.push_recorded(1, "a", 0, 10_000 + 86400);
        a.push(&f("a", 1, Some("S1"), 10_000));
        assert_eq!(a.finish()[0].activations, 3);
    }

    #[test]
    fn messages_before_the_range_only_serve_as_history() {
        let facts = vec![f("a", 0, None, 100), f("a", 1, Some("S1"), 5_000)];
        let s = run(&facts, 1_000)[0];
        // The earlier fan message neither counts as received nor starts a reply clock,
        // but it is history: 4_900 s of silence before the send is an activation.
        assert_eq!((s.received, s.sent, s.reply_n), (0, 1, 0));
        assert_eq!(s.activations, 1);
    }

    #[test]
    fn a_group_counts_a_conversation_served_by_two_of_its_staff_once() {
        let facts = vec![
            f("a", 0, None, 100),
            f("a", 1, Some("S1"), 110),
            f("a", 1, Some("S2"), 120),
            f("b", 1, Some("S2"), 130),
        ];
        let both = run_with(&facts, 0, &|_| Some(0));
        assert_eq!((both[0].fans_served, both[0].sent), (2, 3));
        let each = run(&facts, 0);
        assert_eq!((each[0].fans_served, each[1].fans_served), (1, 2));
    }
}
