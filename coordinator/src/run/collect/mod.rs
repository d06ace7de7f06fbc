//! From t = 0 to the report: merge the workers' seconds, publish them, and
//! keep the run whole through faults: a lost worker's share is re-split over
//! the survivors from the next second, a worker that connects mid-run gets a
//! share too, a stop or a failed abort threshold ends the load at once, and
//! every intended request is accounted for at the end.

mod joiners;
pub(super) mod log;
mod persist;

use super::members::{self, Member};
use super::setup::{self, host, short, stop_all, to_worker, DataPayload, Started};
use super::{say, send, Events, Failure, RunSpec, Source};
use crate::analysis::{self, Threshold};
use crate::merge::{MergedInterval, Merger};
use crate::registry::RunInput;
use crate::report::build::{self, WorkerInfo};
use crate::report::{Event, IntervalReport, Report, ThresholdStatus, ThresholdVerdict};
use crate::state::Coordinator;
use crate::store::RunStore;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout_at, Instant};
use tracing::{info, warn};
use volley_plan::{Arrival, ErrorKind, KindCounts, Plan, RateCurve, RequestCounts};
use volley_proto::pb::coordinator_message::Msg as Out;
use volley_proto::pb::run_event::Event as Ev;
use volley_proto::{histogram, pb};

/// If the first seconds all fail to connect and nothing succeeds, the target
/// is down: stop rather than hammer it for the whole run.
const UNREACHABLE_AFTER_S: usize = 3;
/// A re-split applies from the first whole second at least this far ahead,
/// so every worker has it before it applies.
pub(crate) const RESHARE_LEAD_S: f64 = 0.6;
/// Pings for a joiner's clock offset.
const JOIN_PINGS: usize = 3;
/// How long a run goes on with no client following it (the client's stream
/// broke and it may attach again) before its load is stopped.
const CLIENT_GRACE: Duration = Duration::from_secs(15);

/// Per-second summaries a run reserves room for at its start (about 250
/// bytes each: 43 MB for two days, most of it never touched by a shorter
/// run); a longer run grows past it as a `Vec` does.
const RESERVED_SECONDS: usize = 2 * 86_400;

enum Join {
    Pinging { pongs: usize, since: Instant },
    Assigned { since: Instant },
}

pub struct Collector<'a> {
    coord: &'a Coordinator,
    run_id: &'a str,
    spec: &'a RunSpec,
    source: &'a Source,
    events: &'a Events,
    plan: &'a Plan,
    curve: RateCurve,
    /// Shared by every second's summary ([`build::stage_names`]).
    stage_names: Vec<std::sync::Arc<str>>,
    members: Vec<Member>,
    rx: mpsc::UnboundedReceiver<RunInput>,
    route_tx: mpsc::UnboundedSender<RunInput>,
    /// Seconds at a time the workers send their reports (the assignment's
    /// `report_every_s`), from the count at the start; joiners follow it.
    report_every: u32,
    start: Instant,
    start_wall: SystemTime,
    start_nanos: u64,
    merger: Merger,
    max_index: u32,
    aborts: Vec<Threshold>,
    joins: HashMap<usize, Join>,
    intervals: Vec<IntervalReport>,
    /// Errors by kind of the first seconds, to tell an unreachable target
    /// from one that answers with errors.
    early_errors: KindCounts,
    log: log::Log,
    incomplete: Option<String>,
    failure: Option<String>,
    aborted_by: Option<String>,
    ran_s: Option<f64>,
    stopped: bool,
    store: Option<RunStore>,
    /// Resumed after a restart: workers not back by then are lost.
    rejoin_by: Option<Instant>,
    /// The data files, for workers that join mid-run.
    data: DataPayload,
    /// How run.json names the scenario's files (written once, beside it).
    stored_files: Vec<crate::store::StoredFile>,
    /// Set when the report is built: whether the run failed, and its
    /// report's verdict (for run.json, which `volley runs` reads).
    ended: Option<(bool, crate::runs::Verdict)>,
}

impl<'a> Collector<'a> {
    pub fn new(
        coord: &'a Coordinator,
        run_id: &'a str,
        spec: &'a RunSpec,
        source: &'a Source,
        events: &'a Events,
        s: Started,
        data: DataPayload,
    ) -> Self {
        let plan = &spec.scenario.plan;
        let curve = RateCurve::new(&plan.stages);
        let max_index = (curve.end() + 2.0 * plan.target.timeout.as_secs_f64()) as u32 + 30;
        let stage_of: Vec<usize> = (0..=max_index)
            .map(|i| curve.stage_at(f64::from(i)))
            .collect();
        let spans: Vec<(f64, f64)> = curve
            .stage_starts()
            .zip(&plan.stages)
            .map(|(start, s)| (start, s.duration.as_secs_f64()))
            .collect();
        let weights: Vec<u32> = plan.target.requests.iter().map(|r| r.weight).collect();
        let merger = Merger::new(s.members.len(), stage_of, &spans).with_requests(&weights);
        // Thresholds marked `abort` are judged every second as well.
        let names: Vec<&str> = plan.stages.iter().map(|s| s.name.as_str()).collect();
        let aborts = spec
            .scenario
            .thresholds
            .iter()
            .filter_map(|e| analysis::thresholds::parse(e, &names).ok())
            .filter(|t| t.abort)
            .collect();
        let store = coord.config.data_dir.as_deref().and_then(|d| match RunStore::open(d, run_id) {
            Ok(st) => Some(st),
            Err(e) => {
                warn!(cause = %e, dir = %d.display(), "cannot write the run to the data dir; it will not survive a restart");
                None
            }
        });
        let stored_files = match store.as_ref().map(|st| st.save_files(&source.files)) {
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                warn!(cause = %e, "cannot write the scenario's files to the data dir; the run cannot resume after a restart");
                Vec::new()
            }
            None => Vec::new(),
        };
        let c = Collector {
            coord,
            run_id,
            spec,
            source,
            events,
            plan,
            curve,
            stage_names: build::stage_names(plan),
            report_every: coord.config.report_every(s.members.len()),
            members: s.members,
            rx: s.rx,
            route_tx: s.tx,
            start: s.start,
            start_wall: s.start_wall,
            start_nanos: s.start_nanos,
            data,
            stored_files,
            merger,
            max_index,
            aborts,
            joins: HashMap::new(),
            // Room for every second the run can have, up to two days, from
            // the start: the summaries then grow by one a second in place,
            // and never by a doubling (a copy, and up to twice the room) an
            // hour or a day into a soak. The pages are touched one second at
            // a time, so a short run costs nothing more.
            intervals: Vec::with_capacity((max_index as usize + 1).min(RESERVED_SECONDS)),
            early_errors: KindCounts::default(),
            log: log::Log::default(),
            incomplete: None,
            failure: None,
            aborted_by: None,
            ran_s: None,
            stopped: false,
            store,
            rejoin_by: None,
            ended: None,
        };
        c.save_meta("running");
        c
    }

    fn now_s(&self) -> f64 {
        Instant::now()
            .saturating_duration_since(self.start)
            .as_secs_f64()
    }

    /// A fact of the plan or the setup worth reading in the report (a data
    /// set that ends the run early, a worker left out), dated at t = 0.
    pub fn note_at_start(&mut self, level: &str, text: &str) {
        let e = Event {
            t_s: 0.0,
            level: level.into(),
            text: text.to_owned(),
        };
        if let Some(st) = self.store.as_mut() {
            let _ = st.append_event(&e);
        }
        self.log.push(e);
    }

    fn note(&mut self, level: &str, text: String) {
        let e = Event {
            t_s: self.now_s(),
            level: level.into(),
            text,
        };
        if let Some(st) = self.store.as_mut() {
            let _ = st.append_event(&e);
        }
        self.log.push(e);
    }

    /// Stops the load everywhere (once) and remembers why.
    async fn stop(&mut self, reason: &str, incomplete: String) {
        if self.stopped {
            return;
        }
        stop_all(&self.members, self.run_id, reason);
        self.ran_s = Some(self.now_s());
        self.incomplete = Some(incomplete);
        self.stopped = true;
    }

    pub async fn run(
        mut self,
        mut stop: watch::Receiver<Option<String>>,
    ) -> Result<Report, Failure> {
        let plan = self.plan;
        let hard_deadline = self.start
            + Duration::from_secs_f64(self.curve.end())
            + plan.target.timeout * 2
            + Duration::from_secs(20);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        while !self.merger.all_finished() || !self.joins.is_empty() {
            tokio::select! {
                input = timeout_at(hard_deadline, self.rx.recv()) => match input {
                    Ok(Some(input)) => self.on_input(input).await,
                    Ok(None) => break,
                    Err(_) => {
                        self.stop("timed out", "timed out waiting for workers to finish".into()).await;
                        break;
                    }
                },
                _ = stop.changed(), if !self.stopped => {
                    let reason = stop.borrow().clone().unwrap_or_else(|| "stopped on request".into());
                    let t = self.now_s();
                    say(self.events, "warn", format!("stopping at {t:.1} s: {reason}")).await;
                    self.note("warn", format!("stopped: {reason}"));
                    self.stop(&reason, format!("stopped early at {t:.1} s: {reason}")).await;
                }
                _ = tick.tick() => {
                    self.look_for_joiners().await;
                    self.check_rejoins().await;
                    if !self.stopped && self.events.detached_for().is_some_and(|d| d > CLIENT_GRACE) {
                        let why = "the client that submitted the run went away and did not come back; load was stopped";
                        self.note("warn", why.into());
                        self.stop("the client disconnected", why.into()).await;
                    }
                }
            }
            self.publish_ready().await;
        }
        let rest = self.merger.flush().unwrap_or_default();
        for m in rest {
            let summary = self.publish(&m).await;
            self.intervals.push(summary);
        }
        self.finish()
    }

    async fn on_input(&mut self, input: RunInput) {
        match input {
            RunInput::Interval { slot, report } => self.accept(slot, report, true),
            RunInput::Rejoined { slot, entry } => {
                info!(worker = %entry.id, "worker back after the restart");
                self.members[slot].entry = entry;
            }
            RunInput::Done { slot, done } => {
                self.members[slot].done = true;
                self.merger.finish_worker(slot);
                self.save_meta("running");
                if !done.error.is_empty() {
                    let text = format!(
                        "worker {} gave up: {}",
                        short(&self.members[slot].entry.id),
                        done.error
                    );
                    say(self.events, "error", text.clone()).await;
                    self.note("error", text);
                    self.incomplete
                        .get_or_insert_with(|| "a worker could not complete its share".into());
                }
            }
            RunInput::Lost { slot, reason } => self.on_lost(slot, reason).await,
            RunInput::Leaving { slot, reason } => self.on_leaving(slot, reason).await,
            RunInput::Pong {
                slot,
                pong,
                recv_nanos,
            } => {
                setup::on_pong(&mut self.members[slot], &pong, recv_nanos);
                if let Some(Join::Pinging { pongs, .. }) = self.joins.get_mut(&slot) {
                    *pongs += 1;
                    if *pongs >= JOIN_PINGS {
                        self.assign_joiner(slot);
                    }
                }
            }
            RunInput::Ready { slot, ready } => self.on_joiner_ready(slot, ready).await,
        }
    }

    async fn on_lost(&mut self, slot: usize, reason: String) {
        if self.members[slot].done {
            // Everything it had to send is in: a session that ends now
            // (the worker left, or exits after its share) loses nothing.
            return;
        }
        self.merger.finish_worker(slot);
        if self.joins.remove(&slot).is_some() || !self.members[slot].started {
            self.members[slot].done = true;
            return;
        }
        let t = self.now_s();
        self.members[slot].lost_at_s = Some(t);
        let m = &self.members[slot].entry;
        let text = format!(
            "worker {} ({}) lost at {t:.1} s: {reason}",
            short(&m.id),
            host(m)
        );
        say(self.events, "warn", text.clone()).await;
        self.note("warn", text);
        // A worker that was leaving already handed its share over.
        if !self.stopped && self.members[slot].left_at_s.is_none() {
            self.reshare("a worker was lost").await;
        }
        self.save_meta("running");
    }

    /// A worker shutting down (SIGTERM) asks to leave: its share goes to the
    /// others from the next second boundary, and it is told to send what is
    /// due until then, report it all and finish. Unlike a lost worker,
    /// nothing of its share is unaccounted for.
    async fn on_leaving(&mut self, slot: usize, reason: String) {
        let m = &self.members[slot];
        if !m.alive() || self.stopped {
            // Not sending a share (a joiner not yet started, a run already
            // stopping): it just stops.
            let stop = pb::Stop {
                run_id: self.run_id.to_string(),
                reason: "leaving".into(),
                at_s: 0.0,
            };
            to_worker(&self.members[slot], Out::Stop(stop));
            return;
        }
        let others = (0..self.members.len())
            .filter(|&i| i != slot && self.members[i].alive())
            .count();
        let from = members::next_boundary(self.now_s(), RESHARE_LEAD_S);
        let text = format!(
            "worker {} ({}) left at {from:.0} s: {reason}",
            short(&m.entry.id),
            host(&m.entry)
        );
        if others == 0 || from >= self.curve.end() {
            // No one to hand the share to (or nothing left of it): the
            // worker stops at the boundary like everyone would.
            say(self.events, "warn", text.clone()).await;
            self.note("warn", text);
            if others == 0 && from < self.curve.end() {
                let why = format!("the last worker left at {from:.0} s");
                let t = self.now_s();
                self.stop(&why, format!("stopped early at {t:.1} s: {why}"))
                    .await;
            }
            return;
        }
        self.members[slot].left_at_s = Some(from);
        let stop = pb::Stop {
            run_id: self.run_id.to_string(),
            reason: "leaving".into(),
            at_s: from,
        };
        to_worker(&self.members[slot], Out::Stop(stop));
        say(self.events, "info", text.clone()).await;
        self.note("info", text);
        self.reshare("a worker left").await;
    }

    /// A new partition over every live worker from the next boundary.
    async fn reshare(&mut self, why: &str) {
        let from = members::next_boundary(self.now_s(), RESHARE_LEAD_S);
        if from >= self.curve.end() {
            return;
        }
        let alive: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].alive())
            .collect();
        if alive.is_empty() {
            let text = format!("{why}, and no worker is left to take its share");
            say(self.events, "error", text.clone()).await;
            self.note("error", text.clone());
            self.incomplete.get_or_insert(text);
            return;
        }
        let arrival = self.plan.load.arrival;
        let from_k = (arrival == Arrival::Uniform).then(|| self.curve.uniform_due_before(from));
        for m in self.members.iter_mut().filter(|m| {
            (m.lost_at_s.is_some() || m.left_at_s.is_some()) && m.owned_until_k.is_none()
        }) {
            // Whatever it owned from here on goes to the others.
            m.owned_until_k = from_k;
        }
        let shares =
            match members::repartition(&mut self.members, &alive, &self.curve, arrival, from) {
                Ok(s) => s,
                Err(e) => {
                    self.note("error", format!("could not re-split the load: {e}"));
                    return;
                }
            };
        for (slot, share) in shares {
            let r = pb::Reshare {
                run_id: self.run_id.to_string(),
                share: Some(pb::Share::from(&share)),
                from_s: from,
            };
            to_worker(&self.members[slot], Out::Reshare(r));
        }
        self.save_meta("running");
        let text = format!(
            "{why}: the load is re-split over {} worker(s) from {from:.0} s",
            alive.len()
        );
        info!(run = %self.run_id, from_s = from, workers = alive.len(), "reshare");
        say(self.events, "warn", text.clone()).await;
        self.note("warn", text);
    }

    async fn publish_ready(&mut self) {
        let ready = self.merger.ready().unwrap_or_default();
        for m in ready {
            if (m.index as usize) < UNREACHABLE_AFTER_S {
                self.early_errors.add(&m.acc.counts.by_kind);
            }
            let summary = self.publish(&m).await;
            if !self.stopped {
                let failed = self
                    .aborts
                    .iter()
                    .find(|t| analysis::check_interval(t, &summary) == Some(false))
                    .map(|t| t.expr.clone());
                if let Some(expr) = failed {
                    let text = format!(
                        "threshold `{expr}` failed in second {}: load stopped (abort)",
                        summary.t_s
                    );
                    say(self.events, "error", text.clone()).await;
                    self.note("error", text);
                    let why = format!(
                        "aborted: threshold `{expr}` failed in second {}",
                        summary.t_s
                    );
                    self.stop(&format!("abort threshold `{expr}` failed"), why)
                        .await;
                    self.aborted_by = Some(expr);
                }
            }
            self.intervals.push(summary);
        }
        if self.stopped {
            return;
        }
        if let Some(seen) = target_unreachable(&self.intervals, &self.early_errors) {
            let why = format!(
                "target unreachable: every request of the first {UNREACHABLE_AFTER_S} s failed \
                 to connect to {} ({seen})",
                self.plan.target.url
            );
            self.failure = Some(why.clone());
            self.stop("target unreachable", why).await;
        }
    }

    async fn publish(&mut self, m: &MergedInterval) -> IntervalReport {
        let summary = build::interval(&self.curve, &self.stage_names, m);
        let requests = &self.plan.target.requests;
        // A mix's seconds carry their split (none for a second nobody
        // reported); a single definition has the whole second.
        let definitions: Vec<(&str, RequestCounts)> = if requests.len() <= 1 {
            let name = requests.first().map_or("", |r| r.name.as_str());
            let whole = RequestCounts {
                intended: summary.intended,
                sent: m.acc.counts.sent,
                ok: summary.ok,
                errors: summary.errors,
                dropped: summary.dropped,
            };
            vec![(name, whole)]
        } else {
            requests
                .iter()
                .map(|r| r.name.as_str())
                .zip(m.requests.iter().copied())
                .collect()
        };
        self.coord.metrics.observe(&crate::metrics::Second {
            run: self.run_id,
            interval: &summary,
            latency: &m.acc.latency,
            by_kind: &m.acc.counts.by_kind,
            definitions: &definitions,
        });
        let start = Duration::from_secs(u64::from(m.index));
        let second = Duration::from_secs(1);
        let hlog_line = histogram::interval_log_line(&m.acc.latency, start, second);
        // The per-worker log is only kept for clusters of up to
        // MAX_WORKER_LINES; a second open when joiners went past it has
        // only some of its lines, so it has none.
        let keep_lines = self.merger.keeps_worker_lines();
        let worker_hlog_lines = m
            .worker_latency
            .iter()
            .filter(|_| keep_lines)
            .map(|(slot, bytes, max_us)| {
                let tag = self.members[*slot].entry.id.to_string();
                let max_ms = *max_us as f64 / 1000.0;
                histogram::interval_log_line_encoded(bytes, start, second, max_ms, Some(&tag))
            })
            .collect();
        let s = pb::IntervalSummary {
            t_s: m.index,
            target_rps: summary.target_rps,
            achieved_rps: summary.achieved_rps,
            ok: summary.ok,
            errors: summary.errors,
            dropped: summary.dropped,
            p50_ms: summary.p50_ms.unwrap_or(0.0),
            p99_ms: summary.p99_ms.unwrap_or(0.0),
            workers: summary.workers,
            hlog_line,
            stage: summary.stage.to_string(),
            worker_hlog_lines,
            intended: summary.intended,
            sent: m.acc.counts.sent,
            check_errors: m.acc.counts.by_kind[ErrorKind::Check],
            drops: Some(pb::DropCounts::from(&m.acc.counts.drops)),
        };
        if let Some(st) = self.store.as_mut() {
            if let Err(e) = st.append_second(&s) {
                warn!(cause = %e, "cannot append the second to the data dir");
            }
        }
        send(self.events, Ev::Interval(s)).await;
        summary
    }

    /// Settles lost workers' books and builds the report.
    fn finish(mut self) -> Result<Report, Failure> {
        let end_s = self.ran_s.unwrap_or(self.curve.end());
        let end_k = self.curve.uniform_due_before(end_s);
        let uniform = self.plan.load.arrival == Arrival::Uniform;
        for slot in 0..self.members.len() {
            let Some(lost_at) = self.members[slot].lost_at_s else {
                continue;
            };
            let intended = self.merger.workers[slot].counts.intended;
            let unsent = if uniform {
                self.members[slot]
                    .owned_below(end_k)
                    .unwrap_or(0)
                    .saturating_sub(intended)
            } else {
                0
            };
            let delta = self.merger.settle_lost(slot, unsent);
            let stage = self.curve.stage_at(lost_at);
            self.merger.stages[stage].counts.add(&delta);
            if delta.lost + delta.unsent > 0 {
                let id = short(&self.members[slot].entry.id);
                self.note(
                    "warn",
                    format!(
                        "worker {id}: {} request(s) in flight when it was lost counted as errors (lost), \
                         {} it owned but never reported sending counted as dropped",
                        delta.lost, delta.unsent
                    ),
                );
            }
            if !uniform {
                self.note(
                    "warn",
                    "with Poisson arrivals the requests a lost worker never sent cannot be counted exactly; \
                     the report's intended count misses them"
                        .to_string(),
                );
            }
        }
        let total = self
            .merger
            .total()
            .map_err(|e| super::fail(format!("merge failed: {e}")))?;
        let workers: Vec<_> = self
            .members
            .iter()
            .enumerate()
            .zip(&self.merger.resources)
            .filter(|((_, m), _)| m.started || m.lost_at_s.is_some())
            .map(|((slot, m), res)| {
                let info = WorkerInfo {
                    id: m.entry.id.to_string(),
                    hostname: m.entry.hostname.clone(),
                    weight: m.entry.weight,
                    threads: (m.entry.threads > 0).then_some(m.entry.threads),
                    share: m.share_fraction(),
                    lost_at_s: m.lost_at_s,
                    left_at_s: m.left_at_s,
                    joined_at_s: m.joined_at_s,
                };
                let acc = self.merger.worker(slot);
                (info, acc.counts, build::latency(&acc.latency), *res)
            })
            .collect();
        let mut report = build::report(build::Inputs {
            run_id: self.run_id,
            scenario: &self.spec.scenario.name,
            started_at: self.start_wall,
            plan: self.plan,
            total: &total,
            requests: &self.merger.requests,
            stages: &self.merger.stages,
            soak: &self.merger.soak,
            workers: &workers,
            ran_s: self.ran_s,
            intervals: std::mem::take(&mut self.intervals),
            events: self.log.take(end_s),
            incomplete_reason: self.incomplete.take(),
        });
        // Thresholds were checked when the scenario was parsed; an error here
        // would be a bug, so it is logged rather than hidden.
        if let Err(e) = build::judge(
            &mut report,
            &self.spec.scenario.thresholds,
            &self.spec.scenario.recovery,
        ) {
            warn!(cause = %e, "threshold evaluation failed");
        }
        if let Some(expr) = self.aborted_by.take() {
            // It failed second by second even if the whole run's figure passes.
            for v in report.thresholds.iter_mut().filter(|v| v.expr == expr) {
                *v = ThresholdVerdict::new(v.expr.clone(), v.actual, ThresholdStatus::Fail);
            }
        }
        info!(run = %self.run_id, ok = report.requests.ok, errors = report.requests.errors,
              dropped = report.requests.dropped, "run finished");
        if let Some(st) = self.store.as_ref() {
            if let Err(e) = st.save_report(&report.to_json()) {
                warn!(cause = %e, "cannot save the report to the data dir");
            }
        }
        self.ended = Some((self.failure.is_some(), crate::runs::Verdict::of(&report)));
        self.save_meta("finished");
        match self.failure.take() {
            Some(message) => Err(Failure {
                message,
                report: Some(Box::new(report)),
            }),
            None => Ok(report),
        }
    }
}

/// Whether the first seconds show a target that cannot be reached, and
/// then the error kinds seen (`"connect 6,004"`): nothing succeeded and
/// every request failed to connect (refused, unreachable, TLS handshake).
/// A target that answers, even only with 5xx or resets, is reachable: that
/// is what a load test measures, and `abort` thresholds are the way to stop
/// such a run. `early` holds the errors by kind of the first
/// [`UNREACHABLE_AFTER_S`] seconds.
fn target_unreachable(intervals: &[IntervalReport], early: &KindCounts) -> Option<String> {
    let n = UNREACHABLE_AFTER_S;
    let judged = intervals.len() >= n
        && intervals.len() <= n + 1
        && intervals.iter().all(|i| i.ok == 0)
        && early.total() > 0
        && early.total() == early[ErrorKind::Connect];
    judged.then(|| {
        early
            .iter()
            .filter(|(_, c)| *c > 0)
            .map(|(k, c)| format!("{} {}", k.as_str(), crate::report::format::group(c)))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(t_s: u32, ok: u64, errors: u64) -> IntervalReport {
        IntervalReport {
            t_s,
            stage: "main".into(),
            target_rps: 100.0,
            achieved_rps: 100.0,
            intended: ok + errors,
            ok,
            errors,
            dropped: 0,
            drop_reasons: Default::default(),
            p50_ms: None,
            p90_ms: None,
            p99_ms: None,
            max_ms: None,
            workers: 1,
            worker_rss_mb_max: None,
            worker_cpu_pct_max: None,
            send_lag_ms: Default::default(),
        }
    }

    fn kinds(pairs: &[(ErrorKind, u64)]) -> KindCounts {
        KindCounts::from_fn(|k| pairs.iter().find(|(p, _)| *p == k).map_or(0, |(_, n)| *n))
    }

    #[test]
    fn only_a_target_that_never_accepted_a_connection_is_unreachable() {
        let failing: Vec<IntervalReport> = (0..3).map(|t| second(t, 0, 2000)).collect();
        let refused = kinds(&[(ErrorKind::Connect, 6004)]);
        assert_eq!(
            target_unreachable(&failing, &refused).as_deref(),
            Some("connect 6,004")
        );
        // A target answering 5xx (or resetting, or timing out) is reachable:
        // the run measures it.
        for kind in [
            ErrorKind::Status,
            ErrorKind::Reset,
            ErrorKind::Timeout,
            ErrorKind::Protocol,
            ErrorKind::Check,
        ] {
            let answered = kinds(&[(kind, 6004)]);
            assert_eq!(target_unreachable(&failing, &answered), None, "{kind:?}");
            let mixed = kinds(&[(ErrorKind::Connect, 10), (kind, 5994)]);
            assert_eq!(target_unreachable(&failing, &mixed), None, "{kind:?}");
        }
        // One success, too few seconds, or a later second: no verdict.
        let mut one_ok = failing.clone();
        one_ok[1].ok = 1;
        assert_eq!(target_unreachable(&one_ok, &refused), None);
        assert_eq!(target_unreachable(&failing[..2], &refused), None);
        let late: Vec<IntervalReport> = (0..6).map(|t| second(t, 0, 2000)).collect();
        assert_eq!(target_unreachable(&late, &refused), None);
        assert_eq!(target_unreachable(&failing, &KindCounts::default()), None);
    }
}
