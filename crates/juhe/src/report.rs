//! Service metrics computed from stored chats (no rollup tables yet: the reports are
//! bounded by a time range and scan only that range's messages of one merchant).
//!
//! Definitions (also in docs/api.md):
//! - A *conversation* is one fan of one operating account.
//! - *Received* messages (issend 0) count for the conversation's owner: the fan's staff,
//!   else the operating account's staff. *Sent* messages (issend 1) count for the staff
//!   who sent them (`ad_staff_code`), else the owner.
//! - *Fans served*: distinct conversations in which the staff member sent a message.
//! - *First response time*: per conversation, from the first received message in the
//!   range to the first sent message after it; counted for the responder.
//! - *Reply time*: for every run of received messages followed by a sent message, from
//!   the first message of the run to that reply; counted for the responder.
//! - *Activation*: a staff member sends into a conversation that had no message (either
//!   way) in the preceding `activation_idle_hours`. Counted once per fan per staff per day.

use std::collections::{HashMap, HashSet};

use crate::store::report::ChatFact;

/// Per-staff sums, from which averages are taken at any grouping level.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StaffStats {
    pub fans_served: HashSet<(i64, String)>,
    pub received: i64,
    pub sent: i64,
    pub first_response_sum: i64,
    pub first_response_n: i64,
    pub reply_sum: i64,
    pub reply_n: i64,
    /// (day start, wechat id, fan) triples: distinct activations.
    pub activations: HashSet<(i64, i64, String)>,
}

impl StaffStats {
    pub fn merge(&mut self, o: &StaffStats) {
        self.fans_served.extend(o.fans_served.iter().cloned());
        self.received += o.received;
        self.sent += o.sent;
        self.first_response_sum = self.first_response_sum.saturating_add(o.first_response_sum);
        self.first_response_n += o.first_response_n;
        self.reply_sum = self.reply_sum.saturating_add(o.reply_sum);
        self.reply_n += o.reply_n;
        self.activations.extend(o.activations.iter().cloned());
    }
}

pub struct Inputs<'a> {
    /// Facts from `start - idle` to `end`, grouped by conversation, in time order.
    pub facts: &'a [ChatFact],
    pub start: i64,
    pub end: i64,
    pub idle_secs: i64,
    /// Start of the day containing a timestamp (in the configured offset).
    pub day_of: &'a dyn Fn(i64) -> i64,
    /// The owner of a conversation, if known.
    pub owner: &'a dyn Fn(i64, &str) -> Option<String>,
    /// Whether the conversation passes the request's filters (account type, fan type).
    pub include: &'a dyn Fn(i64, &str) -> bool,
}

/// Computes per-staff statistics for `[start, end)`.
pub fn compute(inp: &Inputs) -> HashMap<String, StaffStats> {
    let mut out: HashMap<String, StaffStats> = HashMap::new();
    let facts = inp.facts;
    let mut i = 0;
    while i < facts.len() {
        let (w, t) = (facts[i].wechat_id, facts[i].talker.as_str());
        let mut j = i;
        while j < facts.len() && facts[j].wechat_id == w && facts[j].talker == t {
            j += 1;
        }
        if (inp.include)(w, t) {
            conversation(inp, &facts[i..j], &mut out);
        }
        i = j;
    }
    out
}

fn conversation(inp: &Inputs, msgs: &[ChatFact], out: &mut HashMap<String, StaffStats>) {
    let owner = (inp.owner)(msgs[0].wechat_id, &msgs[0].talker);
    let key = (msgs[0].wechat_id, msgs[0].talker.clone());
    let mut prev_time: Option<i64> = None;
    let mut waiting_since: Option<i64> = None;
    let mut first_done = false;
    for m in msgs {
        let in_range = m.chat_time >= inp.start && m.chat_time < inp.end;
        if m.issend == 1 {
            let who = m.staff_code.clone().or_else(|| owner.clone());
            if let (Some(who), true) = (who, in_range) {
                let s = out.entry(who).or_default();
                s.sent += 1;
                s.fans_served.insert(key.clone());
                if let Some(since) = waiting_since {
                    // Saturating: stored times come from imports too, not only the parser.
                    let d = m.chat_time.saturating_sub(since);
                    s.reply_sum = s.reply_sum.saturating_add(d);
                    s.reply_n += 1;
                    if !first_done {
                        s.first_response_sum = s.first_response_sum.saturating_add(d);
                        s.first_response_n += 1;
                        first_done = true;
                    }
                }
                let idle = prev_time.is_none_or(|p| m.chat_time.saturating_sub(p) >= inp.idle_secs);
                if idle {
                    s.activations
                        .insert(((inp.day_of)(m.chat_time), key.0, key.1.clone()));
                }
            }
            waiting_since = None;
        } else if in_range {
            // Only fan messages inside the range start a reply clock.
            if let Some(o) = &owner {
                out.entry(o.clone()).or_default().received += 1;
            }
            if waiting_since.is_none() {
                waiting_since = Some(m.chat_time);
            }
        }
        prev_time = Some(m.chat_time);
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
        }
    }

    fn run(facts: &[ChatFact], start: i64) -> HashMap<String, StaffStats> {
        compute(&Inputs {
            facts,
            start,
            end: 1_000_000,
            idle_secs: 3600,
            day_of: &|t| t - t % 86400,
            owner: &|_, _| Some("S1".into()),
            include: &|_, _| true,
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
        let s2 = &r["S2"];
        assert_eq!(
            (s2.sent, s2.first_response_sum, s2.first_response_n),
            (2, 60, 1)
        );
        assert_eq!((s2.reply_sum, s2.reply_n), (70, 2));
        assert_eq!(r["S1"].received, 3);
        assert_eq!(s2.fans_served.len(), 1);
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
        let r = run(&facts, 0);
        // 10_000 (no earlier message) and 20_000 (7_900 s of silence) activate; same day, same fan: one.
        assert_eq!(r["S1"].activations.len(), 1);
        let facts = vec![
            f("a", 1, Some("S1"), 10_000),
            f("a", 1, Some("S1"), 100_000),
        ];
        assert_eq!(run(&facts, 0)["S1"].activations.len(), 2);
    }

    #[test]
    fn messages_before_the_range_only_serve_as_history() {
        let facts = vec![f("a", 0, None, 100), f("a", 1, Some("S1"), 5_000)];
        let r = run(&facts, 1_000);
        let s = &r["S1"];
        // The earlier fan message neither counts as received nor starts a reply clock,
        // but it is history: 4_900 s of silence before the send is an activation.
        assert_eq!((s.received, s.sent, s.reply_n), (0, 1, 0));
        assert_eq!(s.activations.len(), 1);
    }
}
