//! What an operator sees of a cluster (`volley workers`, `volley runs`): the
//! vocabulary of run states and verdicts, defined once, and the listing
//! entries with their wire form (`ListWorkers`, `ListRuns`), validated on
//! the way in. The JSON of `--output json` is these types' serde form.

use crate::exit::Exit;
use crate::report::Report;
use serde::Serialize;
use std::fmt;
use volley_proto::pb;

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Accepted; waiting for workers or setting them up.
    Waiting,
    Running,
    /// Asked to stop; the load is ending and the partial report comes next.
    Stopping,
    /// Ended with a report (its verdict says whether it passed, or was
    /// incomplete).
    Finished,
    /// Ended without completing: no workers, target unreachable.
    Failed,
    /// Left unfinished by a coordinator that died and did not resume it.
    Abandoned,
}

impl RunState {
    pub const ALL: [RunState; 6] = [
        RunState::Waiting,
        RunState::Running,
        RunState::Stopping,
        RunState::Finished,
        RunState::Failed,
        RunState::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Waiting => "waiting",
            RunState::Running => "running",
            RunState::Stopping => "stopping",
            RunState::Finished => "finished",
            RunState::Failed => "failed",
            RunState::Abandoned => "abandoned",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Still going: its report is not there yet.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            RunState::Waiting | RunState::Running | RunState::Stopping
        )
    }
}

/// What a finished run's report says, as the exit code of `volley run`
/// would (without a baseline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Incomplete,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [Verdict::Pass, Verdict::Fail, Verdict::Incomplete];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Incomplete => "incomplete",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn of(r: &Report) -> Verdict {
        match crate::verdict::exit_code(r, false) {
            Exit::Ok => Verdict::Pass,
            Exit::Failed => Verdict::Fail,
            Exit::BadInput | Exit::Incomplete => Verdict::Incomplete,
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One run of `volley runs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStatus {
    pub id: String,
    /// The scenario's `name`.
    pub scenario: String,
    pub state: RunState,
    /// t = 0 (RFC 3339, UTC); `None` before the start.
    #[serde(serialize_with = "rfc3339")]
    pub started_at: Option<u64>,
    /// Seconds of load so far (at the end: how long it ran).
    pub elapsed_s: f64,
    /// Planned seconds of load.
    pub duration_s: f64,
    pub verdict: Option<Verdict>,
}

fn rfc3339<S: serde::Serializer>(nanos: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match nanos {
        Some(n) => s.serialize_str(&format_start(*n)),
        None => s.serialize_none(),
    }
}

/// `2026-11-27T10:15:00Z`.
pub fn format_start(unix_nanos: u64) -> String {
    humantime::format_rfc3339_seconds(volley_proto::clock::from_unix_nanos(unix_nanos)).to_string()
}

impl From<&RunStatus> for pb::RunStatus {
    fn from(r: &RunStatus) -> Self {
        pb::RunStatus {
            run_id: r.id.clone(),
            scenario: r.scenario.clone(),
            state: r.state.as_str().into(),
            start_unix_nanos: r.started_at.unwrap_or(0),
            elapsed_s: r.elapsed_s,
            duration_s: r.duration_s,
            verdict: r.verdict.map(|v| v.as_str().into()).unwrap_or_default(),
        }
    }
}

impl TryFrom<pb::RunStatus> for RunStatus {
    type Error = String;

    fn try_from(r: pb::RunStatus) -> Result<Self, String> {
        volley_proto::convert::check_run_id(&r.run_id)?;
        let state = RunState::parse(&r.state)
            .ok_or_else(|| format!("run {}: unknown state {:?}", r.run_id, r.state))?;
        let verdict = match r.verdict.as_str() {
            "" => None,
            v => Some(
                Verdict::parse(v)
                    .ok_or_else(|| format!("run {}: unknown verdict {v:?}", r.run_id))?,
            ),
        };
        let seconds = |v: f64| if v.is_finite() && v >= 0.0 { v } else { 0.0 };
        Ok(RunStatus {
            id: r.run_id,
            scenario: r.scenario,
            state,
            started_at: (r.start_unix_nanos > 0).then_some(r.start_unix_nanos),
            elapsed_s: seconds(r.elapsed_s),
            duration_s: seconds(r.duration_s),
            verdict,
        })
    }
}

/// One worker of `volley workers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerStatus {
    pub id: String,
    pub host: String,
    pub version: String,
    pub weight: u32,
    /// Its engine threads; `None` when the worker did not say (older).
    pub threads: Option<u32>,
    /// The worker's clock minus the coordinator's; `None` until measured.
    pub clock_offset_ms: Option<f64>,
    /// Milliseconds since the coordinator last heard from it.
    pub last_heartbeat_ago_ms: u64,
    /// The run it takes part in.
    pub run: Option<String>,
}

impl From<&WorkerStatus> for pb::WorkerStatus {
    fn from(w: &WorkerStatus) -> Self {
        pb::WorkerStatus {
            worker_id: w.id.clone(),
            hostname: w.host.clone(),
            version: w.version.clone(),
            weight: w.weight,
            threads: w.threads.unwrap_or(0),
            clock_offset_known: w.clock_offset_ms.is_some(),
            clock_offset_nanos: w.clock_offset_ms.map_or(0, |ms| (ms * 1e6).round() as i64),
            last_heartbeat_ms_ago: w.last_heartbeat_ago_ms,
            run_id: w.run.clone().unwrap_or_default(),
        }
    }
}

impl TryFrom<pb::WorkerStatus> for WorkerStatus {
    type Error = String;

    fn try_from(w: pb::WorkerStatus) -> Result<Self, String> {
        uuid::Uuid::parse_str(&w.worker_id)
            .map_err(|_| format!("worker id {:?} is not a uuid", w.worker_id))?;
        let run = match w.run_id.as_str() {
            "" => None,
            id => {
                volley_proto::convert::check_run_id(id)?;
                Some(w.run_id)
            }
        };
        Ok(WorkerStatus {
            id: w.worker_id,
            host: w.hostname,
            version: w.version,
            weight: w.weight,
            threads: (w.threads > 0).then_some(w.threads),
            clock_offset_ms: w
                .clock_offset_known
                .then_some(w.clock_offset_nanos as f64 / 1e6),
            last_heartbeat_ago_ms: w.last_heartbeat_ms_ago,
            run,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_ones_are_refused() {
        for s in RunState::ALL {
            assert_eq!(RunState::parse(s.as_str()), Some(s));
        }
        for v in Verdict::ALL {
            assert_eq!(Verdict::parse(v.as_str()), Some(v));
        }
        assert_eq!(RunState::parse("done"), None);
        let mut wire = pb::RunStatus {
            run_id: "20261127-101500-1a2b3c".into(),
            scenario: "peak".into(),
            state: "running".into(),
            start_unix_nanos: 1_700_000_000_000_000_000,
            elapsed_s: 3.0,
            duration_s: 60.0,
            verdict: String::new(),
        };
        let r = RunStatus::try_from(wire.clone()).unwrap();
        assert_eq!(pb::RunStatus::from(&r), wire);
        assert_eq!(
            serde_json::to_value(&r).unwrap()["started_at"],
            "2023-11-14T22:13:20Z"
        );
        wire.state = "done".into();
        assert!(RunStatus::try_from(wire.clone())
            .unwrap_err()
            .contains("unknown state \"done\""));
        wire.state = "finished".into();
        wire.run_id = "../x".into();
        assert!(RunStatus::try_from(wire).is_err());
    }

    #[test]
    fn a_worker_round_trips_and_its_json_says_what_is_unknown() {
        let w = WorkerStatus {
            id: uuid::Uuid::new_v4().to_string(),
            host: "pod-1".into(),
            version: "0.1.0".into(),
            weight: 3,
            threads: Some(3),
            clock_offset_ms: None,
            last_heartbeat_ago_ms: 120,
            run: None,
        };
        assert_eq!(
            WorkerStatus::try_from(pb::WorkerStatus::from(&w)).unwrap(),
            w
        );
        let json = serde_json::to_value(&w).unwrap();
        assert!(json["clock_offset_ms"].is_null() && json["run"].is_null());
        assert_eq!(json["threads"], 3);
        // An older worker does not say: unknown, not zero.
        let older = WorkerStatus {
            threads: None,
            ..w.clone()
        };
        assert_eq!(
            WorkerStatus::try_from(pb::WorkerStatus::from(&older)).unwrap(),
            older
        );
        assert!(serde_json::to_value(&older).unwrap()["threads"].is_null());
        let measured = WorkerStatus {
            clock_offset_ms: Some(-1.5),
            ..w
        };
        assert_eq!(
            WorkerStatus::try_from(pb::WorkerStatus::from(&measured)).unwrap(),
            measured
        );
    }
}
