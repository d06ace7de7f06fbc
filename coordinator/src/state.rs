//! The coordinator's shared state: settings, the worker registry, the run
//! slot and the reports of finished runs.

use crate::registry::{Registry, Route};
use crate::report::Report;
use crate::run::sink::Sink;
use crate::runs::{RunState, RunStatus, Verdict};
use bytes::Bytes;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Shared token; `None` disables authentication (loopback or explicit
    /// `--insecure-no-auth` only).
    pub token: Option<String>,
    /// A worker in a run silent this long is declared lost.
    pub heartbeat_timeout: Duration,
    /// A worker in no run silent this long is dropped from the list. Longer
    /// than `heartbeat_timeout`: an idle worker's heartbeats are what
    /// thousands of them cost the coordinator while nothing runs, and one
    /// that is frozen or cut off costs nothing until a run needs it.
    pub idle_heartbeat_timeout: Duration,
    /// Where runs are written as they happen, so a restarted coordinator can
    /// resume them (`None`: nothing is written).
    pub data_dir: Option<std::path::PathBuf>,
    /// Messages of reports a second before a run asks its workers for
    /// several seconds at a time (see [`crate::merge::report_every`]).
    pub max_reports_per_second: usize,
    /// The most the ended runs' reports take in memory together (`volley
    /// serve --keep-reports-mib`); the newest is kept whatever its size.
    pub keep_reports_bytes: usize,
}

impl CoordinatorConfig {
    /// How often an otherwise silent worker in a run sends a heartbeat: a
    /// third of the timeout, so two may be lost before the worker is. Any
    /// message counts as one (a worker in a run reports every second and
    /// sends no heartbeats).
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_timeout / 3
    }

    /// How long a worker in a run whose reports go `report_every` seconds at
    /// a time (`Assignment.report_every_s`) may be silent: it beats at that
    /// many paces, so the timeout grows by the paces added, and two beats
    /// may still be lost before the worker is.
    pub fn run_timeout(&self, report_every: u32) -> Duration {
        self.heartbeat_timeout + self.heartbeat_interval() * report_every.saturating_sub(1)
    }

    /// Seconds at a time the workers of a run of `workers` send their
    /// reports (`Assignment.report_every_s`).
    pub fn report_every(&self, workers: usize) -> u32 {
        crate::merge::report_every(workers, self.max_reports_per_second)
    }

    /// The same for a worker in no run, a third of its own timeout.
    pub fn idle_heartbeat_interval(&self) -> Duration {
        self.idle_heartbeat_timeout / 3
    }
}

/// The idle timeout when none is given: five run timeouts (15 s for the
/// default 3 s), so 10,000 idle workers beat 2,000 times a second, not
/// 10,000.
pub fn default_idle_heartbeat_timeout(heartbeat_timeout: Duration) -> Duration {
    heartbeat_timeout * IDLE_TIMEOUTS
}

const IDLE_TIMEOUTS: u32 = 5;

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            token: None,
            heartbeat_timeout: Duration::from_secs(3),
            idle_heartbeat_timeout: default_idle_heartbeat_timeout(Duration::from_secs(3)),
            data_dir: None,
            max_reports_per_second: crate::merge::REPORTS_PER_SECOND,
            keep_reports_bytes: KEEP_REPORT_BYTES,
        }
    }
}

/// What `volley runs` says of a run before it has a report.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// The scenario's `name`.
    pub scenario: String,
    /// Planned seconds of load.
    pub duration_s: f64,
    /// t = 0, once the workers were started.
    pub start_unix_nanos: Option<u64>,
}

/// The running run: its id, the switch that stops it early, its events.
struct CurrentRun {
    id: String,
    stop: watch::Sender<Option<String>>,
    sink: Arc<Sink>,
    info: RunInfo,
    stopping: bool,
}

/// A run that ended on this coordinator since it started.
pub struct EndedRun {
    pub status: RunStatus,
    /// Empty when the run ended without a report. Shared with the run's
    /// `finished` event and every client it goes to: a day-long run's
    /// report is tens of megabytes.
    pub report_json: Bytes,
    /// Why it failed, when it did.
    pub error: String,
    /// Its events, for clients that fetch it (only the newest few runs keep
    /// them: an hour of seconds is megabytes).
    pub sink: Option<Arc<Sink>>,
    /// Its report was let go to keep the newer ones within
    /// [`CoordinatorConfig::keep_reports_bytes`].
    pub evicted: bool,
}

/// Ended runs kept in memory (their reports, for `GetReport`).
const KEEP_REPORTS: usize = 32;
/// Ended runs whose events stay in memory too.
const KEEP_EVENTS: usize = 4;
/// The most the ended runs' reports take in memory together, by default
/// ([`CoordinatorConfig::keep_reports_bytes`]). A day-long run's report is
/// tens of megabytes, so 32 of them would outgrow the chart's 1 GiB limit;
/// `--data-dir` keeps every report on disk.
pub const KEEP_REPORT_BYTES: usize = 256 * 1024 * 1024;

/// What the coordinator knows of a run by its id.
pub enum Known {
    Live(Arc<Sink>, RunStatus),
    Ended {
        status: RunStatus,
        report_json: Bytes,
        error: String,
        sink: Option<Arc<Sink>>,
        /// Its report was let go ([`CoordinatorConfig::keep_reports_bytes`]).
        evicted: bool,
    },
}

pub struct Coordinator {
    pub config: CoordinatorConfig,
    pub metrics: Arc<crate::metrics::Metrics>,
    registry: Mutex<Registry>,
    /// Signalled whenever a worker joins or leaves.
    pub changed: Notify,
    run_active: AtomicBool,
    /// Signalled when the run slot is free again.
    run_ended: Notify,
    /// Set once the coordinator shuts down: no new run is accepted.
    shutting_down: AtomicBool,
    /// The running run: its id, the switch that stops it early, and its
    /// events for clients that attach.
    current: Mutex<Option<CurrentRun>>,
    /// Workers a resumed run waits for, and the route each gets back when it
    /// reconnects.
    expected: Mutex<HashMap<Uuid, Route>>,
    ended: Mutex<VecDeque<EndedRun>>,
    /// Files uploaded for a run not yet submitted.
    pub uploads: crate::uploads::Uploads,
}

impl Coordinator {
    pub fn new(config: CoordinatorConfig) -> Arc<Coordinator> {
        Arc::new(Coordinator {
            config,
            metrics: Arc::default(),
            registry: Mutex::new(Registry::default()),
            changed: Notify::new(),
            run_active: AtomicBool::new(false),
            run_ended: Notify::new(),
            shutting_down: AtomicBool::new(false),
            current: Mutex::new(None),
            expected: Mutex::new(HashMap::new()),
            ended: Mutex::new(VecDeque::new()),
            uploads: crate::uploads::Uploads::default(),
        })
    }

    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (every mutation is a single insert/remove), so recover from poison.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims the single run slot; false if a run is already going.
    pub fn try_begin_run(&self) -> bool {
        !self.run_active.swap(true, Ordering::AcqRel)
    }

    /// Whether the coordinator is shutting down (no new runs).
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Shuts the coordinator down gracefully (SIGTERM, SIGINT): refuses new
    /// runs, stops the running one like `volley stop` would (its partial
    /// report goes to its client and to the data dir), waits up to `within`
    /// for it to end, then ends every worker's session so the workers know.
    /// Returns whether the run (if any) ended in time.
    pub async fn shut_down(&self, reason: &str, within: Duration) -> bool {
        self.shutting_down.store(true, Ordering::Release);
        let current = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|c| c.id.clone());
        if let Some(id) = current {
            self.request_stop(&id, reason);
        }
        let ended = tokio::time::timeout(within, async {
            loop {
                let notified = self.run_ended.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if !self.run_active.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok();
        for tx in self.registry().outbounds() {
            let _ = tx.try_send(Err(tonic::Status::unavailable(
                "the coordinator is shutting down",
            )));
        }
        ended
    }

    pub fn end_run(&self) {
        *self.current() = None;
        self.expected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.run_active.store(false, Ordering::Release);
        self.run_ended.notify_waiters();
    }

    fn current(&self) -> MutexGuard<'_, Option<CurrentRun>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ended(&self) -> MutexGuard<'_, VecDeque<EndedRun>> {
        self.ended.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the running run and its event sink; the receiver yields a
    /// reason when someone asks it to stop.
    pub fn register_run(
        &self,
        run_id: &str,
        sink: Arc<Sink>,
        info: RunInfo,
    ) -> watch::Receiver<Option<String>> {
        let (tx, rx) = watch::channel(None);
        *self.current() = Some(CurrentRun {
            id: run_id.to_string(),
            stop: tx,
            sink,
            info,
            stopping: false,
        });
        rx
    }

    /// The running run's workers were started at `start_unix_nanos`.
    pub fn run_started(&self, run_id: &str, start_unix_nanos: u64) {
        if let Some(c) = self.current().as_mut().filter(|c| c.id == run_id) {
            c.info.start_unix_nanos = Some(start_unix_nanos);
        }
    }

    /// Asks the running run to stop; false when no such run is going.
    pub fn request_stop(&self, run_id: &str, reason: &str) -> bool {
        let mut guard = self.current();
        match guard.as_mut() {
            Some(c) if c.id == run_id => {
                c.stopping = true;
                c.stop.send(Some(reason.to_string())).is_ok()
            }
            _ => false,
        }
    }

    /// The event sink of the running run `run_id`.
    pub fn sink(&self, run_id: &str) -> Option<Arc<Sink>> {
        let guard = self.current();
        guard
            .as_ref()
            .filter(|c| c.id == run_id)
            .map(|c| c.sink.clone())
    }

    /// The running run moves to the ended ones, with its report if it has
    /// one (`failed`: it could not complete), before its `finished` event
    /// goes out.
    pub fn record_end(
        &self,
        run_id: &str,
        failed: bool,
        error: String,
        report: Option<(&Report, Bytes)>,
    ) {
        let current = {
            let mut c = self.current();
            match c.as_ref() {
                Some(r) if r.id == run_id => c.take(),
                _ => None,
            }
        };
        let (info, sink) = match current {
            Some(c) => (c.info, Some(c.sink)),
            None => (
                RunInfo {
                    scenario: String::new(),
                    duration_s: 0.0,
                    start_unix_nanos: None,
                },
                None,
            ),
        };
        let (scenario, verdict, elapsed_s, report_json) = match report {
            Some((r, json)) => (r.scenario.clone(), Some(Verdict::of(r)), r.duration_s, json),
            None => (info.scenario, None, 0.0, Bytes::new()),
        };
        let status = RunStatus {
            id: run_id.to_string(),
            scenario,
            state: if failed {
                RunState::Failed
            } else {
                RunState::Finished
            },
            started_at: info.start_unix_nanos,
            elapsed_s,
            duration_s: info.duration_s,
            verdict,
        };
        let mut ended = self.ended();
        ended.retain(|e| e.status.id != run_id);
        if ended.len() >= KEEP_REPORTS {
            ended.pop_front();
        }
        ended.push_back(EndedRun {
            status,
            report_json,
            error,
            sink,
            evicted: false,
        });
        let n = ended.len();
        for e in ended.iter_mut().take(n.saturating_sub(KEEP_EVENTS)) {
            e.sink = None;
        }
        evict_reports(&mut ended, self.config.keep_reports_bytes);
    }

    /// The running run and the ended ones in memory, newest first.
    pub fn run_statuses(&self) -> Vec<RunStatus> {
        let mut out: Vec<RunStatus> = self
            .current()
            .as_ref()
            .map(live_status)
            .into_iter()
            .collect();
        out.extend(self.ended().iter().rev().map(|e| e.status.clone()));
        out
    }

    /// What is known in memory of run `run_id`.
    pub fn known(&self, run_id: &str) -> Option<Known> {
        if let Some(c) = self.current().as_ref().filter(|c| c.id == run_id) {
            return Some(Known::Live(c.sink.clone(), live_status(c)));
        }
        let ended = self.ended();
        ended
            .iter()
            .find(|e| e.status.id == run_id)
            .map(|e| Known::Ended {
                status: e.status.clone(),
                report_json: e.report_json.clone(),
                error: e.error.clone(),
                sink: e.sink.clone(),
                evicted: e.evicted,
            })
    }

    /// A resumed run waits for this worker: give it `route` when it says
    /// hello again.
    pub fn expect(&self, id: Uuid, route: Route) {
        self.expected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, route);
    }

    /// The route a reconnecting worker gets back, if a run waits for it.
    pub fn take_expected(&self, id: &Uuid) -> Option<Route> {
        self.expected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
    }

    /// Run `run_id`'s report was let go of to keep newer ones
    /// ([`CoordinatorConfig::keep_reports_bytes`]).
    pub fn report_evicted(&self, run_id: &str) -> bool {
        self.ended()
            .iter()
            .any(|e| e.status.id == run_id && e.evicted)
    }

    pub fn report(&self, run_id: &str) -> Option<Bytes> {
        self.ended()
            .iter()
            .find(|e| e.status.id == run_id && !e.report_json.is_empty())
            .map(|e| e.report_json.clone())
    }
}

/// Lets go of the older ended runs' reports, and their events (whose
/// `finished` event holds the report too), once the newer ones add up to
/// more than `budget` bytes. The newest report stays whatever its size.
fn evict_reports(ended: &mut VecDeque<EndedRun>, budget: usize) {
    let mut kept = 0usize;
    for (i, e) in ended.iter_mut().rev().enumerate() {
        kept = kept.saturating_add(e.report_json.len());
        if i > 0 && kept > budget && !e.report_json.is_empty() {
            e.report_json = Bytes::new();
            e.sink = None;
            e.evicted = true;
        }
    }
}

fn live_status(c: &CurrentRun) -> RunStatus {
    let elapsed_s = c.info.start_unix_nanos.map_or(0.0, |start| {
        let now = volley_proto::clock::unix_nanos();
        (now.saturating_sub(start) as f64 / 1e9).min(c.info.duration_s)
    });
    RunStatus {
        id: c.id.clone(),
        scenario: c.info.scenario.clone(),
        state: match (c.stopping, c.info.start_unix_nanos) {
            (true, _) => RunState::Stopping,
            (false, None) => RunState::Waiting,
            (false, Some(_)) => RunState::Running,
        },
        started_at: c.info.start_unix_nanos,
        elapsed_s,
        duration_s: c.info.duration_s,
        verdict: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(id: &str, report_bytes: usize) -> EndedRun {
        EndedRun {
            status: RunStatus {
                id: id.into(),
                scenario: "s".into(),
                state: RunState::Finished,
                started_at: None,
                elapsed_s: 1.0,
                duration_s: 1.0,
                verdict: None,
            },
            report_json: Bytes::from(vec![b'x'; report_bytes]),
            error: String::new(),
            sink: Some(Arc::new(Sink::new(None))),
            evicted: false,
        }
    }

    fn kept(runs: &VecDeque<EndedRun>) -> Vec<(&str, usize, bool, bool)> {
        runs.iter()
            .map(|e| {
                let id = e.status.id.as_str();
                (id, e.report_json.len(), e.sink.is_some(), e.evicted)
            })
            .collect()
    }

    #[test]
    fn reports_within_the_budget_are_all_kept() {
        let mut runs: VecDeque<_> = [ended("a", 40), ended("b", 30), ended("c", 30)].into();
        evict_reports(&mut runs, 100);
        assert_eq!(
            kept(&runs),
            [
                ("a", 40, true, false),
                ("b", 30, true, false),
                ("c", 30, true, false)
            ]
        );
    }

    #[test]
    fn the_oldest_reports_go_first_with_their_events() {
        let mut runs: VecDeque<_> = [ended("a", 40), ended("b", 50), ended("c", 30)].into();
        evict_reports(&mut runs, 100);
        assert_eq!(
            kept(&runs),
            [
                ("a", 0, false, true),
                ("b", 50, true, false),
                ("c", 30, true, false)
            ],
            "newest first: c 30, b 80, a 120 > 100"
        );
        // A run without a report is not evicted: there was none.
        let mut runs: VecDeque<_> = [ended("a", 0), ended("b", 200)].into();
        evict_reports(&mut runs, 100);
        assert_eq!(
            kept(&runs),
            [("a", 0, true, false), ("b", 200, true, false)]
        );
    }

    #[test]
    fn the_newest_report_stays_whatever_its_size() {
        let mut runs: VecDeque<_> = [ended("a", 10), ended("b", 500)].into();
        evict_reports(&mut runs, 100);
        assert_eq!(
            kept(&runs),
            [("a", 0, false, true), ("b", 500, true, false)]
        );
    }
}
