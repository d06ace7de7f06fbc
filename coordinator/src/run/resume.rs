//! Picking a run up again after the coordinator was killed: its scenario,
//! start instant and members come from `run.json`, its data from replaying
//! `intervals.bin`; the workers, which kept sending and buffered their
//! reports, are routed back to it as they reconnect, and the client attaches
//! again with `AttachRun`.

use super::collect::Collector;
use super::members::{Epoch, Member};
use super::setup::{self, Started};
use super::sink::Sink;
use super::{finish, send, RunSpec, Source};
use crate::registry::{Route, WorkerEntry};
use crate::state::Coordinator;
use crate::store::{self, RunMeta, RunStore};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};
use volley_plan::Share;
use volley_proto::pb::run_event::Event as Ev;
use volley_proto::{clock, pb};

/// Grace after a restart for workers to come back before they count as lost.
const REJOIN_GRACE: Duration = Duration::from_secs(10);

/// Resumes the newest unfinished run in the data dir, if any; older ones are
/// marked abandoned (one run at a time).
pub fn resume_unfinished(coord: Arc<Coordinator>) {
    let Some(dir) = coord.config.data_dir.clone() else {
        return;
    };
    let mut runs = store::unfinished(&dir);
    let Some(latest) = runs.pop() else { return };
    for mut old in runs {
        old.status = "abandoned".into();
        if let Ok(st) = RunStore::open(&dir, &old.run_id) {
            let _ = st.save_meta(&old);
        }
    }
    if !coord.try_begin_run() {
        return;
    }
    tokio::spawn(async move {
        let run_id = latest.run_id.clone();
        info!(run = %run_id, "resuming run after a restart");
        resume(coord.clone(), latest).await;
        coord.end_run();
        info!(run = %run_id, "resumed run finished");
    });
}

async fn resume(coord: Arc<Coordinator>, meta: RunMeta) {
    let dir = coord
        .config
        .data_dir
        .clone()
        .expect("resume needs a data dir");
    let run_id = meta.run_id.clone();
    let files = match store::load_files(&dir, &meta) {
        Ok(f) => f,
        Err(e) => {
            warn!(run = %run_id, cause = %e, "cannot read the run's files; it cannot resume");
            return;
        }
    };
    let source = Source {
        scenario_toml: meta.scenario_toml.clone(),
        scenario_name: meta.scenario_name.clone(),
        builtin_target_url: meta.builtin_target_url.clone(),
        files,
        vars: meta.vars.clone(),
        env: meta.env.clone(),
    };
    let events = Arc::new(Sink::new(None));
    let listed = meta.status();
    let info = crate::state::RunInfo {
        scenario: listed.scenario,
        duration_s: meta.duration_s,
        start_unix_nanos: listed.started_at,
    };
    let stop = coord.register_run(&run_id, events.clone(), info);
    send(
        &events,
        Ev::Accepted(pb::RunAccepted {
            run_id: run_id.clone(),
        }),
    )
    .await;
    let scenario = match source.scenario() {
        Ok(s) => s,
        Err(e) => {
            warn!(run = %run_id, cause = %e, "cannot resume: the stored scenario does not parse");
            finish(
                &coord,
                &run_id,
                &events,
                Err(super::fail(format!("cannot resume: {e}"))),
            )
            .await;
            return;
        }
    };
    let records = match store::recover_intervals(&dir, &run_id) {
        Ok(r) => r,
        Err(e) => {
            finish(
                &coord,
                &run_id,
                &events,
                Err(super::fail(format!("cannot resume: {e}"))),
            )
            .await;
            return;
        }
    };
    let stored_events = store::read_events(&dir, &run_id);

    let (tx, rx) = mpsc::unbounded_channel();
    // As the run's assignments said (joiners aside, which follow it).
    let report_every = coord.config.report_every(meta.members.len());
    let members: Vec<Member> = meta
        .members
        .iter()
        .enumerate()
        .filter_map(|(slot, m)| {
            let id = uuid::Uuid::parse_str(&m.id).ok()?;
            // No session yet: a closed channel until the worker is back.
            let (dead, _) = mpsc::channel(1);
            let mut member = Member::new(WorkerEntry {
                id,
                weight: m.weight,
                // Not kept in the run's metadata; the worker says again
                // when it is back.
                threads: 0,
                hostname: m.hostname.clone(),
                version: String::new(),
                conn: 0,
                tx: dead,
                last_seen: std::time::Instant::now(),
                route: None,
                run_pace_since: None,
                clock: None,
            });
            member.started = m.started;
            member.done = m.done;
            member.lost_at_s = m.lost_at_s;
            member.left_at_s = m.left_at_s;
            member.joined_at_s = m.joined_at_s;
            member.owned_until_k = m.owned_until_k;
            member.epochs = m
                .epochs
                .iter()
                .map(|e| Epoch {
                    from_s: e.from_s,
                    from_k: e.from_k,
                    share: Share {
                        cycle: e.cycle,
                        slots: e.slots.clone(),
                    },
                })
                .collect();
            if member.alive() {
                let route = Route {
                    run_id: run_id.clone(),
                    slot,
                    tx: tx.clone(),
                    report_every,
                };
                coord.expect(id, route);
            }
            Some(member)
        })
        .collect();
    if members.len() != meta.members.len() {
        finish(
            &coord,
            &run_id,
            &events,
            Err(super::fail(
                "cannot resume: a stored worker id is unreadable",
            )),
        )
        .await;
        return;
    }
    let start_wall = clock::from_unix_nanos(meta.start_unix_nanos);
    let since = SystemTime::now()
        .duration_since(start_wall)
        .unwrap_or_default();
    let start = Instant::now()
        .checked_sub(since)
        .unwrap_or_else(Instant::now);
    let started = pb::RunStarted {
        run_id: run_id.clone(),
        workers: members.len() as u32,
        start_at_unix_nanos: meta.start_unix_nanos,
    };
    send(&events, Ev::Started(started)).await;
    let spec = RunSpec {
        scenario,
        min_workers: 0,
        wait: Duration::ZERO,
    };
    let finished_members: Vec<usize> = (0..members.len())
        .filter(|&i| !members[i].alive())
        .collect();
    let s = Started {
        members,
        rx,
        tx,
        start,
        start_wall,
        start_nanos: meta.start_unix_nanos,
        // Said when the run began; its events are in the store already.
        warnings: Vec::new(),
    };
    // Workers still in the run kept their data; a joiner gets it again.
    let data = setup::data_payload(&spec.scenario.plan, &source.files).unwrap_or_default();
    let mut collector = Collector::new(&coord, &run_id, &spec, &source, &events, s, data);
    collector.mark_finished(&finished_members);
    collector
        .replay(
            stored_events,
            records,
            Instant::now() + coord.config.heartbeat_timeout + REJOIN_GRACE,
        )
        .await;
    let result = collector.run(stop).await;
    finish(&coord, &run_id, &events, result).await;
}
