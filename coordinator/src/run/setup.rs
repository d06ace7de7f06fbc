//! Before the first request: workers, clocks, shares, readiness, start.

use super::members::{self, Member};
use super::{fail, say, send, Events, Failure, RunSpec};
use crate::registry::{Route, RunInput, WorkerEntry};
use crate::state::Coordinator;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout_at, Instant};
use tracing::info;
use volley_plan::{Plan, RateCurve};
use volley_proto::pb::coordinator_message::Msg as Out;
use volley_proto::pb::run_event::Event as Ev;
use volley_proto::{clock, pb, CHUNK_BYTES};

/// Pings per worker for the clock offset; the one with the lowest
/// round-trip time wins (NTP's rule).
pub const PINGS: usize = 5;
/// Time from the start message to t = 0, so every worker has it first.
const START_LEAD: Duration = Duration::from_millis(500);
/// Time the workers have to answer the clock pings; one that answers none
/// is left out of the run.
const SYNC_WAIT: Duration = Duration::from_secs(2);
/// Time a worker has to check the target and confirm its assignment.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A run whose workers have all been told when t = 0 is.
pub struct Started {
    pub members: Vec<Member>,
    pub rx: mpsc::UnboundedReceiver<RunInput>,
    /// For routing joiners' messages into the same run.
    pub tx: mpsc::UnboundedSender<RunInput>,
    pub start: Instant,
    pub start_wall: SystemTime,
    pub start_nanos: u64,
    /// Warnings of the setup worth keeping in the report (a worker left out).
    pub warnings: Vec<String>,
}

pub fn to_worker(m: &Member, msg: Out) {
    let _ = m
        .entry
        .tx
        .try_send(Ok(pb::CoordinatorMessage { msg: Some(msg) }));
}

/// The data files of a plan, by the name their chunks travel under, shared
/// by every assignment of the run.
pub type DataPayload = Arc<Vec<(String, Vec<u8>)>>;

/// The bytes of `plan`'s data sets, taken from the files the client sent.
pub fn data_payload(plan: &Plan, files: &BTreeMap<String, Vec<u8>>) -> Result<DataPayload, String> {
    let mut out = Vec::with_capacity(plan.data.len());
    for d in &plan.data {
        let bytes = files.get(&d.file).ok_or_else(|| {
            format!(
                "data file {:?} of data set {:?} did not arrive",
                d.file, d.name
            )
        })?;
        out.push((d.file.clone(), bytes.clone()));
    }
    Ok(Arc::new(out))
}

/// Extra time to get ready for a worker that receives `bytes` of data
/// files: at a conservative 25 MiB/s per worker.
pub fn data_allowance(data: &DataPayload, workers: usize) -> Duration {
    let bytes: usize = data.iter().map(|(_, b)| b.len()).sum();
    Duration::from_secs_f64(bytes as f64 * workers as f64 / (25.0 * 1024.0 * 1024.0))
}

/// Sends an assignment, after the chunks of the plan's data files. Chunks
/// wait for room on the worker's stream (a data file may be hundreds of
/// MiB), so they go from a task of their own; the worker answers `Ready`
/// only once it has the whole assignment, so nothing else waits on it.
pub fn assign(m: &Member, data: &DataPayload, a: pb::Assignment) {
    if data.is_empty() {
        to_worker(m, Out::Assignment(a));
        return;
    }
    let tx = m.entry.tx.clone();
    let data = data.clone();
    tokio::spawn(async move {
        for (file, bytes) in data.iter() {
            for (i, piece) in bytes.chunks(CHUNK_BYTES).enumerate() {
                let c = pb::DataChunk {
                    run_id: a.run_id.clone(),
                    file: file.clone(),
                    offset: (i * CHUNK_BYTES) as u64,
                    total_size: bytes.len() as u64,
                    data: piece.to_vec(),
                };
                let m = pb::CoordinatorMessage {
                    msg: Some(Out::DataChunk(c)),
                };
                if tx.send(Ok(m)).await.is_err() {
                    return; // the worker is gone; the run hears of it
                }
            }
        }
        let m = pb::CoordinatorMessage {
            msg: Some(Out::Assignment(a)),
        };
        let _ = tx.send(Ok(m)).await;
    });
}

pub fn stop_all(members: &[Member], run_id: &str, reason: &str) {
    for m in members {
        let stop = pb::Stop {
            run_id: run_id.to_string(),
            reason: reason.to_string(),
            at_s: 0.0,
        };
        to_worker(m, Out::Stop(stop));
    }
}

pub fn short(id: &uuid::Uuid) -> String {
    id.simple().to_string()[..8].to_string()
}

pub fn host(e: &WorkerEntry) -> &str {
    if e.hostname.is_empty() {
        "unknown host"
    } else {
        &e.hostname
    }
}

/// Folds one pong into the member's offset: the lowest round trip wins.
pub fn on_pong(m: &mut Member, pong: &pb::Pong, recv_nanos: u64) {
    let (off, rtt) = clock::offset_and_rtt(
        pong.coordinator_send_nanos,
        pong.worker_recv_nanos,
        pong.worker_send_nanos,
        recv_nanos,
    );
    if rtt < m.best_rtt {
        m.best_rtt = rtt;
        m.offset_nanos = off;
    }
}

pub fn ping(m: &Member) {
    to_worker(
        m,
        Out::Ping(pb::Ping {
            coordinator_send_nanos: clock::unix_nanos(),
        }),
    );
}

/// `start_nanos` (coordinator clock) in the member's own clock.
pub fn start_for(m: &Member, run_id: &str, start_nanos: u64) -> Out {
    let at = (start_nanos as i128 + m.offset_nanos as i128).max(0) as u64;
    Out::Start(pb::Start {
        run_id: run_id.to_string(),
        start_at_unix_nanos: at,
    })
}

pub async fn wait_for_workers(
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
            let text = format!(
                "waiting for workers: {} of {} connected",
                idle.len(),
                spec.min_workers
            );
            say(events, "info", text).await;
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

/// Why a member is left out: it answered none of the clock pings, or it
/// was lost while they were sent (`lost`: why).
fn left_out(m: &Member, lost: Option<&str>) -> String {
    let (id, host) = (short(&m.entry.id), host(&m.entry));
    match lost {
        Some(why) => {
            format!("worker {id} ({host}) was lost before the start ({why}); left out of this run")
        }
        None => format!(
            "worker {id} ({host}) answered no clock ping within {} s; left out of this run",
            SYNC_WAIT.as_secs()
        ),
    }
}

/// The run's members, under new numbers, on a new channel.
struct Enrolled {
    members: Vec<Member>,
    tx: mpsc::UnboundedSender<RunInput>,
    rx: mpsc::UnboundedReceiver<RunInput>,
}

/// Leaves out of the run the members that answered none of the clock pings
/// or were lost meanwhile (`answered[slot]` false): gone without a word (a
/// vanished host, a frozen process) and not yet dropped by the idle
/// heartbeat timeout, they would fail the run when they missed its start. The others are enrolled again
/// under new numbers, on a new channel; a loss one of them reported under
/// its old number fails the run. Fails when fewer than `--min-workers`
/// answered.
fn leave_out_the_silent(
    coord: &Coordinator,
    run_id: &str,
    min_workers: usize,
    members: Vec<Member>,
    answered: &[bool],
    mut old_rx: mpsc::UnboundedReceiver<RunInput>,
) -> Result<Enrolled, Failure> {
    let kept: Vec<Member> = members
        .into_iter()
        .zip(answered)
        .filter_map(|(m, &ok)| ok.then_some(m))
        .collect();
    if kept.len() < min_workers {
        return Err(fail(format!(
            "only {} of the {} required workers answered the clock pings within {} s",
            kept.len(),
            min_workers,
            SYNC_WAIT.as_secs()
        )));
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let mut members = Vec::with_capacity(kept.len());
    {
        let mut reg = coord.registry();
        reg.release(run_id);
        let report_every = coord.config.report_every(kept.len());
        for m in kept {
            let route = Route {
                run_id: run_id.to_string(),
                slot: members.len(),
                tx: tx.clone(),
                report_every,
            };
            if !reg.assign(&m.entry.id, route) {
                return Err(fail("workers left while the run was being set up"));
            }
            members.push(m);
        }
    }
    while let Ok(input) = old_rx.try_recv() {
        if let RunInput::Lost { slot, reason } = input {
            if answered.get(slot) == Some(&true) {
                return Err(fail(format!(
                    "a worker was lost before the start: {reason}"
                )));
            }
        }
    }
    Ok(Enrolled { members, tx, rx })
}

/// Enrolls the idle workers, measures their clocks, assigns their shares,
/// waits for every one to be ready, and starts them all on one instant.
pub async fn start(
    coord: &Coordinator,
    run_id: &str,
    spec: &RunSpec,
    events: &Events,
    idle: Vec<WorkerEntry>,
    data: &DataPayload,
) -> Result<Started, Failure> {
    let plan = &spec.scenario.plan;
    let (mut tx, mut rx) = mpsc::unbounded_channel();
    let mut members: Vec<Member> = Vec::new();
    {
        let mut reg = coord.registry();
        // Until the clock pings, which may leave some out: the routes are
        // made again for those kept (see `enroll`).
        let report_every = coord.config.report_every(idle.len());
        for entry in idle {
            let route = Route {
                run_id: run_id.to_string(),
                slot: members.len(),
                tx: tx.clone(),
                report_every,
            };
            if reg.assign(&entry.id, route) {
                members.push(Member::new(entry));
            }
        }
    }
    if members.len() < spec.min_workers {
        return Err(fail("workers left while the run was being set up"));
    }

    for _ in 0..PINGS {
        members.iter().for_each(ping);
        sleep(Duration::from_millis(10)).await;
    }
    let mut pongs = vec![0usize; members.len()];
    // Members gone during the pings (a broken connection, or silent past
    // their timeout), and why: left out like the silent ones.
    let mut gone: Vec<Option<String>> = vec![None; members.len()];
    let sync_deadline = Instant::now() + SYNC_WAIT;
    while (0..members.len()).any(|i| gone[i].is_none() && pongs[i] < PINGS) {
        match timeout_at(sync_deadline, rx.recv()).await {
            Ok(Some(RunInput::Pong {
                slot,
                pong,
                recv_nanos,
            })) => {
                on_pong(&mut members[slot], &pong, recv_nanos);
                pongs[slot] += 1;
            }
            Ok(Some(RunInput::Lost { slot, reason })) => gone[slot] = Some(reason),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }

    let mut warnings = Vec::new();
    let answered: Vec<bool> = (0..members.len())
        .map(|i| gone[i].is_none() && pongs[i] > 0)
        .collect();
    if answered.contains(&false) {
        for (i, m) in members.iter().enumerate().filter(|&(i, _)| !answered[i]) {
            let text = left_out(m, gone[i].as_deref());
            say(events, "warn", text.clone()).await;
            warnings.push(text);
        }
        Enrolled { members, tx, rx } =
            leave_out_the_silent(coord, run_id, spec.min_workers, members, &answered, rx)?;
    }

    let curve = RateCurve::new(&plan.stages);
    let slots: Vec<usize> = (0..members.len()).collect();
    let shares = members::repartition(&mut members, &slots, &curve, plan.load.arrival, 0.0)
        .map_err(|e| fail(format!("cannot partition the load: {e}")))?;
    // Whether the busiest worker's share fits the per-worker limits: known
    // only now that the workers are.
    let largest = shares.iter().map(|(_, s)| s.fraction()).fold(0.0, f64::max);
    for w in crate::scenario::fit::warnings(plan, spec.scenario.expected_latency, largest) {
        say(events, "warn", w).await;
    }
    let wire_plan = pb::Plan::from(plan);
    let count = members.len() as u32;
    for (slot, share) in shares {
        let mut s = pb::Share::from(&share);
        s.worker_index = slot as u32;
        s.worker_count = count;
        let a = pb::Assignment {
            run_id: run_id.to_string(),
            plan: Some(wire_plan.clone()),
            share: Some(s),
            share_from_s: 0.0,
            plain_histograms: crate::merge::plain_histograms(members.len()),
            report_every_s: coord.config.report_every(members.len()),
        };
        assign(&members[slot], data, a);
    }
    let mut ready = vec![false; members.len()];
    let ready_deadline = Instant::now() + READY_TIMEOUT + data_allowance(data, members.len());
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
                let id = members[slot].entry.id;
                return Err(fail(format!(
                    "worker {id} was lost before the start: {reason}"
                )));
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                stop_all(&members, run_id, "not every worker got ready");
                return Err(fail(format!(
                    "not every worker confirmed its assignment within {}s",
                    READY_TIMEOUT.as_secs()
                )));
            }
        }
    }

    // One instant of the coordinator's clock, converted to each worker's.
    let start_wall = SystemTime::now() + START_LEAD;
    let start_nanos = clock::to_unix_nanos(start_wall);
    let start = Instant::now() + START_LEAD;
    for m in &mut members {
        to_worker(m, start_for(m, run_id, start_nanos));
        m.started = true;
    }
    let started = pb::RunStarted {
        run_id: run_id.to_string(),
        workers: members.len() as u32,
        start_at_unix_nanos: start_nanos,
    };
    send(events, Ev::Started(started)).await;
    info!(run = %run_id, workers = members.len(), "run started");
    Ok(Started {
        members,
        rx,
        tx,
        start,
        start_wall,
        start_nanos,
        warnings,
    })
}
