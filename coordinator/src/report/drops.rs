//! Why requests were dropped, in words: for each cause what happened and
//! the setting to change. `report.md` and `report.html` print [`sentence`]
//! (one sentence for the run, the largest cause first); the live output
//! prints [`Advice`] once per cause as it first appears. Written once here
//! so the three say the same thing.
//!
//! Settings are quoted in backticks (`` `load.connections` ``): Markdown
//! shows them as code, the HTML page turns them into `<code>`.

use super::format::group;
use super::{LoadInfo, Report};
use volley_plan::outcome::{BEHIND_SCHEDULE_LIMIT, WORKER_LOST_CAUSE};
use volley_plan::DropCause;

/// What a cause of drops means and what to change, for one run's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// "all 256 connections of a worker were busy".
    pub why: String,
    /// "raise `load.connections` (or add workers)"; empty when nothing in
    /// the scenario is to blame (a lost worker).
    pub fix: &'static str,
}

impl Advice {
    /// The cause named `key` in `drop_reasons`, with the run's limits when
    /// the report has them. `None` for a key this version does not know.
    pub fn of(key: &str, load: Option<&LoadInfo>) -> Option<Advice> {
        if key == WORKER_LOST_CAUSE {
            return Some(Advice {
                why: "a worker was lost before it reported sending them (some may have reached the target)"
                    .to_string(),
                fix: "",
            });
        }
        let cause = DropCause::parse(key)?;
        Some(match cause {
            DropCause::ConnectionsBusy => Advice {
                why: match load {
                    Some(l) if l.per_connection > 1 => format!(
                        "all {} connections of a worker were busy ({} requests each)",
                        group(u64::from(l.connections)),
                        group(u64::from(l.per_connection))
                    ),
                    Some(l) => format!(
                        "all {} connections of a worker were busy",
                        group(u64::from(l.connections))
                    ),
                    None => "all connections of a worker were busy".to_string(),
                },
                fix: "raise `load.connections` (or add workers)",
            },
            DropCause::MaxInFlight => Advice {
                why: match load {
                    Some(l) => format!(
                        "a worker already had `load.max_in_flight` = {} requests in flight",
                        group(u64::from(l.max_in_flight))
                    ),
                    None => {
                        "a worker already had `load.max_in_flight` requests in flight".to_string()
                    }
                },
                fix: "raise `load.max_in_flight` (or add workers)",
            },
            DropCause::BehindSchedule => Advice {
                why: format!(
                    "the generator ran out of CPU and fell more than {} s (or the timeout) \
                     behind schedule",
                    BEHIND_SCHEDULE_LIMIT.as_secs()
                ),
                fix: "add workers or cores",
            },
        })
    }

    /// "N because WHY: FIX".
    fn clause(&self, n: u64) -> String {
        if self.fix.is_empty() {
            format!("{} because {}", group(n), self.why)
        } else {
            format!("{} because {}: {}", group(n), self.why, self.fix)
        }
    }
}

/// The one sentence that says why the run's requests were dropped, the
/// largest cause first; `None` when nothing was dropped. Drops the report
/// cannot attribute (a report from before `drop_reasons`) are said as such.
pub fn sentence(r: &Report) -> Option<String> {
    let dropped = r.requests.dropped;
    if dropped == 0 {
        return None;
    }
    let mut causes: Vec<(&str, u64)> = r
        .drop_reasons
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (k.as_str(), *n))
        .collect();
    // Largest first; equal counts in the order of the names (stable).
    causes.sort_by_key(|c| std::cmp::Reverse(c.1));
    let clauses: Vec<String> = causes
        .iter()
        .filter_map(|&(k, n)| Advice::of(k, r.load.as_ref()).map(|a| a.clause(n)))
        .collect();
    let told: u64 = causes.iter().map(|c| c.1).sum();
    let requests = if dropped == 1 {
        "request was"
    } else {
        "requests were"
    };
    Some(match clauses.as_slice() {
        [] => format!(
            "{} {requests} dropped; this report does not say why.",
            group(dropped)
        ),
        [one] if told == dropped => {
            // "12,340 requests were dropped because all …: raise …."
            let (_, rest) = one.split_once(' ').unwrap_or(("", one));
            format!("{} {requests} dropped {rest}.", group(dropped))
        }
        many => format!(
            "{} {requests} dropped: {}.",
            group(dropped),
            many.join("; ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(reasons: &[(&str, u64)], load: Option<LoadInfo>) -> Report {
        let mut r = crate::analysis::fixture::report();
        r.requests.dropped = reasons.iter().map(|x| x.1).sum();
        r.drop_reasons = reasons.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        r.load = load;
        r
    }

    const LOAD: LoadInfo = LoadInfo {
        wake_gap_us: 1000,
        connections: 128,
        per_connection: 1,
        max_in_flight: 10_000,
    };

    #[test]
    fn one_cause_is_one_sentence_with_its_setting() {
        let r = report(
            &[
                ("connections_busy", 12_340),
                ("max_in_flight", 0),
                ("behind_schedule", 0),
                ("worker_lost", 0),
            ],
            Some(LOAD),
        );
        assert_eq!(
            sentence(&r).unwrap(),
            "12,340 requests were dropped because all 128 connections of a worker were busy: \
             raise `load.connections` (or add workers)."
        );
        let r = report(&[("max_in_flight", 7)], Some(LOAD));
        assert_eq!(
            sentence(&r).unwrap(),
            "7 requests were dropped because a worker already had `load.max_in_flight` = 10,000 \
             requests in flight: raise `load.max_in_flight` (or add workers)."
        );
        let r = report(&[("behind_schedule", 1)], None);
        assert_eq!(
            sentence(&r).unwrap(),
            "1 request was dropped because the generator ran out of CPU and fell more than 1 s \
             (or the timeout) behind schedule: add workers or cores."
        );
    }

    #[test]
    fn several_causes_come_largest_first_and_nothing_dropped_says_nothing() {
        let h2 = LoadInfo {
            wake_gap_us: 1000,
            connections: 4,
            per_connection: 100,
            max_in_flight: 10_000,
        };
        let r = report(
            &[
                ("connections_busy", 5),
                ("max_in_flight", 0),
                ("behind_schedule", 20),
                ("worker_lost", 3),
            ],
            Some(h2),
        );
        assert_eq!(
            sentence(&r).unwrap(),
            "28 requests were dropped: 20 because the generator ran out of CPU and fell more \
             than 1 s (or the timeout) behind schedule: add workers or cores; \
             5 because all 4 connections of a worker were busy (100 requests each): raise \
             `load.connections` (or add workers); 3 because a worker was lost before it reported \
             sending them (some may have reached the target)."
        );
        assert_eq!(sentence(&report(&[], Some(LOAD))), None);
        let mut old = report(&[], None);
        old.requests.dropped = 9;
        assert_eq!(
            sentence(&old).unwrap(),
            "9 requests were dropped; this report does not say why."
        );
    }
}
