//! The run's events as the report lists them: the first [`KEPT`], then only
//! how many more there were. A worker that misbehaves every second (a late
//! or rejected report each time) would otherwise add an event a second to
//! the coordinator's memory and to the report for the whole run: 86,400 a
//! day. The data dir (`volley serve --data-dir`), when there is one, still
//! gets every event.

use crate::report::Event;

/// Events of one run the report keeps.
pub const KEPT: usize = 1_000;

#[derive(Debug, Default)]
pub struct Log {
    kept: Vec<Event>,
    left_out: u64,
}

impl Log {
    /// Keeps `e` if there is room; counts it otherwise.
    pub fn push(&mut self, e: Event) {
        if self.kept.len() < KEPT {
            self.kept.push(e);
        } else {
            self.left_out += 1;
        }
    }

    /// The events for the report, ending with one that says how many were
    /// left out (at `t_s`, the end of the run), if any were.
    pub fn take(&mut self, t_s: f64) -> Vec<Event> {
        let mut out = std::mem::take(&mut self.kept);
        let left_out = std::mem::take(&mut self.left_out);
        if left_out > 0 {
            out.push(Event {
                t_s,
                level: "warn".into(),
                text: format!(
                    "{left_out} more events of this run are not listed: the report keeps the first {KEPT} \
                     (a coordinator started with `volley serve --data-dir` keeps them all on disk)"
                ),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize) -> Event {
        Event {
            t_s: i as f64,
            level: "warn".into(),
            text: format!("late report {i}"),
        }
    }

    #[test]
    fn a_short_log_is_kept_whole() {
        let mut log = Log::default();
        for i in 0..3 {
            log.push(event(i));
        }
        let out = log.take(9.0);
        assert_eq!(out, (0..3).map(event).collect::<Vec<_>>());
        assert!(log.take(9.0).is_empty(), "taken");
    }

    #[test]
    fn past_the_cap_only_the_count_is_kept_and_said() {
        let mut log = Log::default();
        for i in 0..KEPT + 86_400 {
            log.push(event(i));
        }
        assert_eq!(log.kept.len(), KEPT);
        let out = log.take(86_400.0);
        assert_eq!(out.len(), KEPT + 1);
        assert_eq!(out[..KEPT], (0..KEPT).map(event).collect::<Vec<_>>()[..]);
        let last = out.last().unwrap();
        assert_eq!((last.t_s, last.level.as_str()), (86_400.0, "warn"));
        assert!(last.text.starts_with("86400 more events"), "{}", last.text);
    }
}
