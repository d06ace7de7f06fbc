//! One run, from submission to report: wait for workers, measure their
//! clocks, partition the schedule, assign, start everyone on one instant,
//! merge what they stream back, and build the report.

use crate::merge::{MergedInterval, Merger};
use crate::registry::{Route, RunInput, WorkerEntry};
use crate::report::build::{self, WorkerInfo};
use crate::report::{Event, IntervalReport, Report};
use crate::scenario::Scenario;
use crate::state::Coordinator;
use crate::wire;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout_at, Instant};
use tonic::Status;
use tracing::{info, warn};
use volley_plan::{Partition, RateCurve};
use volley_proto::pb::coordinator_message::Msg as Out;
use volley_proto::pb::run_event::Event as Ev;
use volley_proto::{clock, histogram, pb};

pub struct RunSpec {
    pub scenario: Scenario,
    pub min_workers: usize,
    pub wait: Duration,
}

type Events = mpsc::Sender<Result<pb::RunEvent, Status>>;

/// Pings per worker for the clock offset; the one with the lowest
/// round-trip time wins (NTP's rule).
const PINGS: usize = 5;
/// Time from the start message to t = 0, so every worker has it first.
const START_LEAD: Duration = Duration::from_millis(500);
/// If the first seconds all fail to connect and nothing succeeds, the target
/// is down: stop rather than hammer it for the whole run.
const UNREACHABLE_AFTER_S: usize = 3;

struct Failure {
    message: String,
    report: Option<Report>,
}

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        report: None,
    }
}

async fn send(events: &Events, e: Ev) {
    let _ = events.send(Ok(pb::RunEvent { event: Some(e) })).await;
}

async fn say(events: &Events, level: &str, text: impl Into<String>) {
    send(
        events,
        Ev::Message(pb::RunMessage {
            level: level.into(),
            text: text.into(),
        }),
    )
    .await;
}

pub async fn execute(coord: Arc<Coordinator>, spec: RunSpec, events: Events) {
    let run_id = new_run_id();
    info!(run = %run_id, scenario = %spec.scenario.name, "run submitted");
    let stop = coord.stop_switch(&run_id);
    send(
        &events,
        Ev::Accepted(pb::RunAccepted {
            run_id: run_id.clone(),
        }),
    )
    .await;
    let result = run(&coord, &run_id, &spec, &events, stop).await;
    coord.registry().release(&run_id);
    let finished = match result {
        Ok(report) => {
            let json = report.to_json();
            coord.store_report(&run_id, json.clone());
            pb::RunFinished {
                run_id: run_id.clone(),
                outcome: "completed".into(),
                error: String::new(),
                report_json: json,
            }
        }
        Err(f) => {
            warn!(run = %run_id, cause = %f.message, "run failed");
            let json = f.report.map(|r| r.to_json()).unwrap_or_default();
            if !json.is_empty() {
                coord.store_report(&run_id, json.clone());
            }
            pb::RunFinished {
                run_id: run_id.clone(),
                outcome: "failed".into(),
                error: f.message,
                report_json: json,
            }
        }
    };
    send(&events, Ev::Finished(finished)).await;
}

/// `20261127-101500-1a2b3c`: sortable, and unique enough with the suffix.
fn new_run_id() -> String {
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let stamp: String = now
        .chars()
        .filter(|c| c.is_ascii_digit())
        .take(14)
        .collect();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}-{}", &stamp[..8], &stamp[8..], &suffix[..6])
}

struct Member {
    entry: WorkerEntry,
    offset_nanos: i64,
    best_rtt: u64,
    lost_at_s: Option<f64>,
    share: f64,
}

fn to_worker(m: &Member, msg: Out) {
    let _ = m
        .entry
        .tx
        .try_send(Ok(pb::CoordinatorMessage { msg: Some(msg) }));
}

async fn wait_for_workers(
    coord: &Coordinator,
    spec: &RunSpec,
    events: &Events,
) -> Result<Vec<WorkerEntry>, Failure> {
    let started = Instant::now();
    let deadline = started + spec.wait;
    let mut last_said = None;
    loop {
        let idle = coord.registry().idle();
        if idle.len() >= spec.min_workers {
            return Ok(idle);
        }
        // Say so only when the wait is noticeable (local workers join at once).
        if last_said != Some(idle.len()) && started.elapsed() >= Duration::from_secs(1) {
            say(
                events,
                "info",
                format!(
                    "waiting for workers: {} of {} connected",
                    idle.len(),
                    spec.min_workers
                ),
            )
            .await;
            last_said = Some(idle.len());
        }
        if Instant::now() >= deadline {
            return Err(fail(format!(
                "no workers: {} of the {} required connected within {}",
                idle.len(),
                spec.min_workers,
                humantime::format_duration(spec.wait)
            )));
        }
        tokio::select! {
            _ = coord.changed.notified() => {}
            _ = sleep(Duration::from_millis(100)) => {}
        }
    }
}

async fn run(
    coord: &Coordinator,
    run_id: &str,
    spec: &RunSpec,
    events: &Events,
    mut stop: tokio::sync::watch::Receiver<Option<String>>,
) -> Result<Report, Failure> {
    let plan = &spec.scenario.plan;
    let idle = wait_for_workers(coord, spec, events).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut members: Vec<Member> = Vec::new();
    {
        let mut reg = coord.registry();
        for entry in idle {
            let route = Route {
                run_id: run_id.to_string(),
                slot: members.len(),
                tx: tx.clone(),
            };
            if reg.assign(&entry.id, route) {
                members.push(Member {
                    entry,
                    offset_nanos: 0,
                    best_rtt: u64::MAX,
                    lost_at_s: None,
                    share: 0.0,
                });
            }
        }
    }
    drop(tx);
    if members.len() < spec.min_workers {
        return Err(fail("workers left while the run was being set up"));
    }

    // Clock offsets, NTP-style.
    for _ in 0..PINGS {
        for m in &members {
            to_worker(
                m,
                Out::Ping(pb::Ping {
                    coordinator_send_nanos: clock::unix_nanos(),
                }),
            );
        }
        sleep(Duration::from_millis(10)).await;
    }
    let mut pongs = vec![0usize; members.len()];
    let sync_deadline = Instant::now() + Duration::from_secs(2);
    while pongs.iter().any(|&n| n < PINGS) {
        match timeout_at(sync_deadline, rx.recv()).await {
            Ok(Some(RunInput::Pong {
                slot,
                pong,
                recv_nanos,
            })) => {
                let (off, rtt) = clock::offset_and_rtt(
                    pong.coordinator_send_nanos,
                    pong.worker_recv_nanos,
                    pong.worker_send_nanos,
                    recv_nanos,
                );
                let m = &mut members[slot];
                if rtt < m.best_rtt {
                    m.best_rtt = rtt;
                    m.offset_nanos = off;
                }
                pongs[slot] += 1;
            }
            Ok(Some(RunInput::Lost { slot, reason })) => {
                return Err(fail(format!(
                    "worker {} was lost before the start: {reason}",
                    members[slot].entry.id
                )));
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }

    // Partition and assign.
    let weights: Vec<u32> = members.iter().map(|m| m.entry.weight).collect();
    let partition =
        Partition::new(&weights).map_err(|e| fail(format!("cannot partition the load: {e}")))?;
    let shares = partition.shares();
    let wire_plan = pb::Plan::from(plan);
    for (i, (m, share)) in members.iter_mut().zip(&shares).enumerate() {
        m.share = share.fraction();
        let mut s = pb::Share::from(share);
        s.worker_index = i as u32;
        s.worker_count = weights.len() as u32;
        to_worker(
            m,
            Out::Assignment(pb::Assignment {
                run_id: run_id.to_string(),
                plan: Some(wire_plan.clone()),
                share: Some(s),
            }),
        );
    }
    let mut ready = vec![false; members.len()];
    let ready_deadline = Instant::now() + Duration::from_secs(15);
    while ready.iter().any(|r| !r) {
        match timeout_at(ready_deadline, rx.recv()).await {
            Ok(Some(RunInput::Ready { slot, ready: r })) => {
                if !r.ok {
                    stop_all(&members, run_id, "another worker could not start");
                    let m = &members[slot].entry;
                    return Err(fail(format!(
                        "worker {} ({}): {}",
                        short(&m.id),
                        host(m),
                        r.error
                    )));
                }
                ready[slot] = true;
            }
            Ok(Some(RunInput::Lost { slot, reason })) => {
                stop_all(&members, run_id, "a worker was lost before the start");
                return Err(fail(format!(
                    "worker {} was lost before the start: {reason}",
                    members[slot].entry.id
                )));
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                stop_all(&members, run_id, "not every worker got ready");
                return Err(fail("not every worker confirmed its assignment within 15s"));
            }
        }
    }

    // Start everyone on one instant of the coordinator's clock, converted to
    // each worker's own.
    let start_wall = SystemTime::now() + START_LEAD;
    let start_nanos = clock::to_unix_nanos(start_wall);
    let start = Instant::now() + START_LEAD;
    for m in &members {
        let at = (start_nanos as i128 + m.offset_nanos as i128).max(0) as u64;
        to_worker(
            m,
            Out::Start(pb::Start {
                run_id: run_id.to_string(),
                start_at_unix_nanos: at,
            }),
        );
    }
    send(
        events,
        Ev::Started(pb::RunStarted {
            run_id: run_id.to_string(),
            workers: members.len() as u32,
            start_at_unix_nanos: start_nanos,
        }),
    )
    .await;
    info!(run = %run_id, workers = members.len(), "run started");

    // Collect.
    let curve = RateCurve::new(&plan.stages);
    let duration = Duration::from_secs_f64(curve.end());
    let max_index = (curve.end() + 2.0 * plan.target.timeout.as_secs_f64()) as u32 + 30;
    let stage_of: Vec<usize> = (0..=max_index)
        .map(|i| curve.stage_at(f64::from(i)))
        .collect();
    let spans: Vec<(f64, f64)> = curve
        .stage_starts()
        .zip(&plan.stages)
        .map(|(start, s)| (start, s.duration.as_secs_f64()))
        .collect();
    let mut merger = Merger::new(members.len(), stage_of, &spans);
    // Thresholds marked `abort` are judged every second as well.
    let stage_names: Vec<&str> = plan.stages.iter().map(|s| s.name.as_str()).collect();
    let aborts: Vec<crate::analysis::Threshold> = spec
        .scenario
        .thresholds
        .iter()
        .filter_map(|e| crate::analysis::thresholds::parse(e, &stage_names).ok())
        .filter(|t| t.abort)
        .collect();
    let mut aborted_by: Option<String> = None;
    let mut ran_s: Option<f64> = None;
    let hard_deadline = start + duration + plan.target.timeout * 2 + Duration::from_secs(20);
    let mut intervals: Vec<IntervalReport> = Vec::new();
    let mut report_events: Vec<Event> = Vec::new();
    let mut incomplete: Option<String> = None;
    let mut failure: Option<String> = None;
    let mut stopped = false;
    let since_start = |now: Instant| now.saturating_duration_since(start).as_secs_f64();
    while !merger.all_finished() {
        let input = tokio::select! {
            i = timeout_at(hard_deadline, rx.recv()) => i,
            _ = stop.changed(), if !stopped => {
                let reason = stop.borrow().clone().unwrap_or_else(|| "stopped on request".into());
                stop_all(&members, run_id, &reason);
                let t = since_start(Instant::now());
                say(events, "warn", format!("stopping at {t:.1} s: {reason}")).await;
                report_events.push(Event { t_s: t, level: "warn".into(), text: format!("stopped: {reason}") });
                incomplete = Some(format!("stopped early at {t:.1} s: {reason}"));
                ran_s = Some(t);
                stopped = true;
                continue;
            }
            _ = events.closed() => {
                if !stopped {
                    stop_all(&members, run_id, "the client disconnected");
                    incomplete = Some("the client that submitted the run disconnected; load was stopped".into());
                    stopped = true;
                }
                // Keep collecting what the workers still send.
                timeout_at(hard_deadline, rx.recv()).await
            }
        };
        match input {
            Ok(Some(RunInput::Interval { slot, report })) => {
                match wire::worker_interval(report, max_index) {
                    Ok(wi) => match merger.add(slot, wi) {
                        Ok(crate::merge::Added::Late) => report_events.push(Event {
                            t_s: since_start(Instant::now()),
                            level: "warn".into(),
                            text: format!(
                                "a late report from worker {} was counted in the totals only",
                                short(&members[slot].entry.id)
                            ),
                        }),
                        Ok(_) => {}
                        Err(e) => warn!(cause = %e, "histogram merge failed"),
                    },
                    Err(e) => {
                        warn!(worker = %members[slot].entry.id, cause = %e, "report rejected");
                        report_events.push(Event {
                            t_s: since_start(Instant::now()),
                            level: "error".into(),
                            text: format!(
                                "a report from worker {} was rejected: {e}",
                                short(&members[slot].entry.id)
                            ),
                        });
                    }
                }
            }
            Ok(Some(RunInput::Done { slot, done })) => {
                merger.finish_worker(slot);
                if !done.error.is_empty() {
                    let text = format!(
                        "worker {} gave up: {}",
                        short(&members[slot].entry.id),
                        done.error
                    );
                    say(events, "error", text.clone()).await;
                    report_events.push(Event {
                        t_s: since_start(Instant::now()),
                        level: "error".into(),
                        text,
                    });
                    incomplete
                        .get_or_insert_with(|| "a worker could not complete its share".into());
                }
            }
            Ok(Some(RunInput::Lost { slot, reason })) => {
                merger.finish_worker(slot);
                let t = since_start(Instant::now());
                let m = &mut members[slot];
                m.lost_at_s = Some(t);
                let text = format!(
                    "worker {} ({}) lost at {t:.1} s: {reason}",
                    short(&m.entry.id),
                    host(&m.entry)
                );
                say(events, "warn", text.clone()).await;
                report_events.push(Event {
                    t_s: t,
                    level: "warn".into(),
                    text,
                });
                incomplete.get_or_insert_with(|| {
                    "a worker was lost; its share after that point was not sent".into()
                });
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                incomplete = Some("timed out waiting for workers to finish".into());
                stop_all(&members, run_id, "timed out");
                break;
            }
        }
        let ready = merger.ready().unwrap_or_default();
        for m in ready {
            let summary = publish(events, &curve, plan, start_wall, &members, &m).await;
            if !stopped {
                if let Some(t) = aborts
                    .iter()
                    .find(|t| crate::analysis::check_interval(t, &summary) == Some(false))
                {
                    let at = f64::from(summary.t_s);
                    let text = format!(
                        "threshold `{}` failed in second {}: load stopped (abort)",
                        t.expr, summary.t_s
                    );
                    say(events, "error", text.clone()).await;
                    report_events.push(Event {
                        t_s: at,
                        level: "error".into(),
                        text,
                    });
                    stop_all(
                        &members,
                        run_id,
                        &format!("abort threshold `{}` failed", t.expr),
                    );
                    incomplete = Some(format!(
                        "aborted: threshold `{}` failed in second {}",
                        t.expr, summary.t_s
                    ));
                    aborted_by = Some(t.expr.clone());
                    ran_s = Some(since_start(Instant::now()));
                    stopped = true;
                }
            }
            intervals.push(summary);
        }
        if !stopped && target_unreachable(&intervals) {
            stop_all(&members, run_id, "target unreachable");
            stopped = true;
            failure = Some(format!(
                "target unreachable: every request of the first {UNREACHABLE_AFTER_S} s failed to connect to {}",
                plan.target.url
            ));
            incomplete = failure.clone();
            ran_s = Some(since_start(Instant::now()));
        }
    }
    for m in merger.flush().unwrap_or_default() {
        let summary = publish(events, &curve, plan, start_wall, &members, &m).await;
        intervals.push(summary);
    }

    let total = merger
        .total()
        .map_err(|e| fail(format!("merge failed: {e}")))?;
    let workers: Vec<(WorkerInfo, crate::merge::Acc, crate::merge::Resources)> = members
        .iter()
        .zip(&merger.workers)
        .zip(&merger.resources)
        .map(|((m, acc), res)| {
            (
                WorkerInfo {
                    id: m.entry.id.to_string(),
                    hostname: m.entry.hostname.clone(),
                    weight: m.entry.weight,
                    share: m.share,
                    lost_at_s: m.lost_at_s,
                },
                acc.clone(),
                *res,
            )
        })
        .collect();
    let mut report = build::report(build::Inputs {
        run_id,
        scenario: &spec.scenario.name,
        started_at: start_wall,
        plan,
        total: &total,
        stages: &merger.stages,
        soak: &merger.soak,
        workers: &workers,
        ran_s,
        intervals,
        events: report_events,
        incomplete_reason: incomplete,
    });
    // Thresholds were checked when the scenario was parsed; an error here
    // would be a bug, so it is reported rather than hidden.
    if let Err(e) = build::judge(
        &mut report,
        &spec.scenario.thresholds,
        &spec.scenario.recovery,
    ) {
        warn!(cause = %e, "threshold evaluation failed");
    }
    if let Some(expr) = aborted_by {
        // It failed second by second even if the whole run's figure passes.
        for v in report.thresholds.iter_mut().filter(|v| v.expr == expr) {
            v.pass = false;
            v.status = "fail".into();
        }
    }
    info!(run = %run_id, ok = report.requests.ok, errors = report.requests.errors, dropped = report.requests.dropped, "run finished");
    match failure {
        Some(message) => Err(Failure {
            message,
            report: Some(report),
        }),
        None => Ok(report),
    }
}

fn target_unreachable(intervals: &[IntervalReport]) -> bool {
    intervals.len() >= UNREACHABLE_AFTER_S
        && intervals.len() <= UNREACHABLE_AFTER_S + 1
        && intervals[..UNREACHABLE_AFTER_S].iter().all(|i| i.ok == 0)
        && intervals[..UNREACHABLE_AFTER_S]
            .iter()
            .map(|i| i.errors)
            .sum::<u64>()
            > 0
        && intervals.iter().all(|i| i.ok == 0)
}

fn stop_all(members: &[Member], run_id: &str, reason: &str) {
    for m in members {
        to_worker(
            m,
            Out::Stop(pb::Stop {
                run_id: run_id.to_string(),
                reason: reason.to_string(),
            }),
        );
    }
}

fn short(id: &uuid::Uuid) -> String {
    id.simple().to_string()[..8].to_string()
}

fn host(e: &WorkerEntry) -> &str {
    if e.hostname.is_empty() {
        "unknown host"
    } else {
        &e.hostname
    }
}

async fn publish(
    events: &Events,
    curve: &RateCurve,
    plan: &volley_plan::Plan,
    start_wall: SystemTime,
    members: &[Member],
    m: &MergedInterval,
) -> IntervalReport {
    let _ = start_wall;
    let summary = build::interval(curve, plan, m);
    let start = Duration::from_secs(u64::from(m.index));
    let hlog_line = histogram::interval_log_line(&m.acc.latency, start, Duration::from_secs(1));
    let worker_hlog_lines = m
        .worker_latency
        .iter()
        .map(|(slot, bytes, max_us)| {
            let tag = members[*slot].entry.id.to_string();
            histogram::interval_log_line_encoded(
                bytes,
                start,
                Duration::from_secs(1),
                *max_us as f64 / 1000.0,
                Some(&tag),
            )
        })
        .collect();
    send(
        events,
        Ev::Interval(pb::IntervalSummary {
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
            stage: summary.stage.clone(),
            worker_hlog_lines,
            intended: summary.intended,
            sent: m.acc.counts.sent,
        }),
    )
    .await;
    summary
}
