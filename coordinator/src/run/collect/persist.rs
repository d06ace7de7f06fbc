//! The run on disk: what a restarted coordinator needs to pick it up, and
//! the replay of what was stored.

use super::{log, Collector};
use crate::merge::Added;
use crate::report::Event;
use crate::run::setup::short;
use crate::store::{EpochMeta, MemberMeta, RunMeta};
use crate::wire;
use tokio::time::Instant;
use tracing::warn;
use volley_proto::pb;

impl Collector<'_> {
    /// What a restarted coordinator needs to pick the run up again.
    pub(super) fn save_meta(&self, status: &str) {
        let Some(st) = self.store.as_ref() else {
            return;
        };
        let members = self
            .members
            .iter()
            .map(|m| MemberMeta {
                id: m.entry.id.to_string(),
                weight: m.entry.weight,
                hostname: m.entry.hostname.clone(),
                started: m.started,
                done: m.done,
                lost_at_s: m.lost_at_s,
                left_at_s: m.left_at_s,
                joined_at_s: m.joined_at_s,
                owned_until_k: m.owned_until_k,
                epochs: m
                    .epochs
                    .iter()
                    .map(|e| EpochMeta {
                        from_s: e.from_s,
                        from_k: e.from_k,
                        cycle: e.share.cycle,
                        slots: e.share.slots.clone(),
                    })
                    .collect(),
            })
            .collect();
        let meta = RunMeta {
            run_id: self.run_id.to_string(),
            scenario_toml: self.source.scenario_toml.clone(),
            scenario_name: self.source.scenario_name.clone(),
            builtin_target_url: self.source.builtin_target_url.clone(),
            files: self.stored_files.clone(),
            vars: self.source.vars.clone(),
            env: self.source.env.clone(),
            start_unix_nanos: self.start_nanos,
            members,
            status: status.into(),
            name: self.spec.scenario.name.clone(),
            duration_s: self.curve.end(),
            failed: self.ended.is_some_and(|(failed, _)| failed),
            verdict: self.ended.map(|(_, v)| v),
            ran_s: self.ended.map(|_| self.ran_s.unwrap_or(self.curve.end())),
        };
        if let Err(e) = st.save_meta(&meta) {
            warn!(cause = %e, "cannot save the run's state");
        }
    }

    /// Members that will send nothing more (lost or done before a restart).
    pub fn mark_finished(&mut self, slots: &[usize]) {
        for &s in slots {
            self.merger.finish_worker(s);
        }
    }

    /// Resumes from the data dir: the events so far, then every stored
    /// report replayed through the merge, exactly as when they arrived.
    pub async fn replay(
        &mut self,
        events: Vec<Event>,
        records: Vec<(usize, pb::IntervalReport)>,
        rejoin_by: Instant,
    ) {
        self.log = log::Log::default();
        for e in events {
            self.log.push(e);
        }
        for (slot, report) in records {
            if slot < self.members.len() {
                self.accept(slot, report, false);
            }
        }
        self.rejoin_by = Some(rejoin_by);
        self.publish_ready().await;
    }

    /// Validates and merges one worker report; `persist` appends it to the
    /// data dir first.
    pub(super) fn accept(&mut self, slot: usize, report: pb::IntervalReport, persist: bool) {
        // Kept for the data dir only if there is one (a copy of every
        // histogram's bytes otherwise).
        let raw = (persist && self.store.is_some()).then(|| report.clone());
        let bounds = wire::Bounds {
            max_index: self.max_index,
            requests: self.plan.target.requests.len(),
            checks: self
                .plan
                .target
                .requests
                .iter()
                .map(|r| r.expect.checks.len())
                .max()
                .unwrap_or(0),
        };
        match wire::worker_interval(report, bounds) {
            Ok(wi) => {
                if let (Some(st), Some(raw)) = (self.store.as_mut(), raw) {
                    if let Err(e) = st.append_interval(slot, &raw) {
                        warn!(cause = %e, "cannot append to the data dir");
                    }
                }
                match self.merger.add(slot, wi) {
                    Ok(Added::Late) => {
                        let id = short(&self.members[slot].entry.id);
                        self.note(
                            "warn",
                            format!(
                                "a late report from worker {id} was counted in the totals only"
                            ),
                        );
                    }
                    Ok(_) => {}
                    Err(e) => warn!(cause = %e, "histogram merge failed"),
                }
            }
            Err(e) => {
                let id = short(&self.members[slot].entry.id);
                warn!(worker = %id, cause = %e, "report rejected");
                self.note(
                    "error",
                    format!("a report from worker {id} was rejected: {e}"),
                );
            }
        }
    }
}
