//! Workers that connect after the start get a share from the next second;
//! after a restart, workers that do not come back in time are lost.

use super::RESHARE_LEAD_S;
use super::{Collector, Join, JOIN_PINGS};
use crate::registry::Route;
use crate::run::members::{self, Member};
use crate::run::setup::{self, short, stop_all, to_worker};
use tokio::time::Instant;
use volley_proto::pb;

impl Collector<'_> {
    /// After a restart, the workers that did not come back in time are lost.
    pub(super) async fn check_rejoins(&mut self) {
        let Some(by) = self.rejoin_by else { return };
        if Instant::now() < by {
            return;
        }
        self.rejoin_by = None;
        let missing: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].alive() && self.members[i].entry.tx.is_closed())
            .collect();
        for slot in missing {
            let _ = self.coord.take_expected(&self.members[slot].entry.id);
            self.on_lost(
                slot,
                "did not come back after the coordinator restarted".into(),
            )
            .await;
        }
    }

    /// Enrolls workers that connected after the start, if the run has long
    /// enough to go to make it worth it.
    pub(super) async fn look_for_joiners(&mut self) {
        if self.stopped || self.now_s() + 3.0 >= self.curve.end() {
            return;
        }
        let idle = self.coord.registry().idle();
        for entry in idle {
            let slot = self.members.len();
            let route = Route {
                run_id: self.run_id.to_string(),
                slot,
                tx: self.route_tx.clone(),
                report_every: self.report_every,
            };
            // A worker of this run back after a restart is not a joiner.
            if self.members.iter().any(|m| m.entry.id == entry.id) {
                continue;
            }
            if !self.coord.registry().assign(&entry.id, route) {
                continue;
            }
            let merger_slot = self.merger.add_worker();
            debug_assert_eq!(merger_slot, slot);
            let m = Member::new(entry);
            for _ in 0..JOIN_PINGS {
                setup::ping(&m);
            }
            self.members.push(m);
            self.joins.insert(
                slot,
                Join::Pinging {
                    pongs: 0,
                    since: Instant::now(),
                },
            );
        }
        // Joiners that never answered are let go.
        let now = Instant::now();
        let stale: Vec<usize> = self
            .joins
            .iter()
            .filter(|(_, j)| match j {
                Join::Pinging { since, .. } | Join::Assigned { since } => {
                    now - *since > setup::READY_TIMEOUT
                }
            })
            .map(|(&s, _)| s)
            .collect();
        for slot in stale {
            self.joins.remove(&slot);
            self.members[slot].done = true;
            stop_all(
                &self.members[slot..=slot],
                self.run_id,
                "did not get ready in time",
            );
        }
    }

    /// Gives a joiner the plan, owning nothing until its re-split share.
    pub(super) fn assign_joiner(&mut self, slot: usize) {
        let a = pb::Assignment {
            run_id: self.run_id.to_string(),
            plan: Some(pb::Plan::from(self.plan)),
            share: Some(pb::Share {
                cycle: 1,
                slots: vec![0],
                worker_index: slot as u32,
                worker_count: self.members.len() as u32,
            }),
            share_from_s: self.curve.end(),
            plain_histograms: crate::merge::plain_histograms(self.members.len()),
            report_every_s: self.report_every,
        };
        setup::assign(&self.members[slot], &self.data, a);
        self.joins.insert(
            slot,
            Join::Assigned {
                since: Instant::now(),
            },
        );
    }

    pub(super) async fn on_joiner_ready(&mut self, slot: usize, ready: pb::Ready) {
        if !matches!(self.joins.remove(&slot), Some(Join::Assigned { .. })) {
            return;
        }
        let id = short(&self.members[slot].entry.id);
        if !ready.ok || self.stopped {
            self.members[slot].done = true;
            if !ready.ok {
                self.note(
                    "warn",
                    format!("worker {id} could not join: {}", ready.error),
                );
            }
            return;
        }
        let from = members::next_boundary(self.now_s(), RESHARE_LEAD_S);
        let m = &mut self.members[slot];
        m.started = true;
        m.joined_at_s = Some(from);
        to_worker(m, setup::start_for(m, self.run_id, self.start_nanos));
        self.merger.activate(slot);
        self.reshare(&format!("worker {id} joined")).await;
    }
}
