//! Exact merge of the workers' per-second reports.
//!
//! Histograms are added bucket by bucket (never by averaging percentiles), so
//! the merged p99 is the p99 of one histogram holding every worker's data.
//! An interval is emitted once every worker still in the run has reported it
//! (workers report in order) or has finished; reports are deduplicated by
//! (worker, interval). Only open intervals hold full histograms; emitted ones
//! shrink to a summary, so memory is bounded for day-long runs.
//!
//! - [`Merger`] (here): the books of one run, second by second.
//! - `interval`: what goes in, a worker's second ([`WorkerInterval`]).
//! - `acc`: what is kept over a span ([`Acc`], [`RequestAcc`]).
//! - `resources`: each worker's own memory and CPU ([`Resources`]).
//! - `soak`: the first and last tenth of long stages ([`SoakWindows`]).
//! - `apportion`: exact splits of a count over weights ([`apportion`]).
//!
//! The counters themselves ([`Counts`], [`RequestCounts`]) are the outcome
//! vocabulary shared with the workers, in `volley_plan::outcome`.

mod acc;
mod apportion;
mod interval;
mod resources;
mod soak;
#[cfg(test)]
mod tests;

pub use acc::{Acc, RequestAcc};
pub use apportion::apportion;
pub use interval::{CheckFailures, RequestInterval, WorkerInterval};
pub use resources::Resources;
pub use soak::SoakWindows;

use std::collections::BTreeMap;
use volley_plan::{Counts, RequestCounts};
use volley_proto::histogram::{Coarse, Dense, HistError};

/// Most workers whose per-second latency lines go into `workers.hlog`: each
/// line is about 3.6 KB, and past a few hundred workers the event carrying
/// them would outgrow the message limit.
pub const MAX_WORKER_LINES: usize = 256;

/// Whether a run of `workers` asks them for plain histograms
/// (`Assignment.plain_histograms`): it keeps no per-worker lines, so the
/// latency histogram need not arrive deflated, and inflating it would be
/// the coordinator's cost for nothing (a third of its CPU at 1,000 workers
/// of 20,000 requests a second).
pub fn plain_histograms(workers: usize) -> bool {
    workers > MAX_WORKER_LINES
}

/// Messages of reports a second a coordinator takes before it asks for
/// batches (`volley serve --max-reports-per-second`): at about 15 µs of
/// HTTP/2, tonic and session work per message, 2,500 a second are under 4 %
/// of a core. The merge itself costs per report whatever the batching.
pub const REPORTS_PER_SECOND: usize = 2_500;

/// Most seconds a worker holds its reports (`Assignment.report_every_s`):
/// the live view and the abort thresholds lag by up to one less.
pub const MAX_REPORT_EVERY: u32 = 5;

/// How many seconds at a time the workers of a run of `workers` send their
/// reports: 1 (each second as it ends) up to `budget` workers (messages a
/// second, [`REPORTS_PER_SECOND`] by default), then as many as keep the
/// messages a second within it, at most [`MAX_REPORT_EVERY`]. Fewer
/// messages, not fewer reports: every second of every worker still arrives
/// and is merged exactly, only later.
pub fn report_every(workers: usize, budget: usize) -> u32 {
    let every = workers.div_ceil(budget.max(1)).max(1);
    u32::try_from(every)
        .unwrap_or(MAX_REPORT_EVERY)
        .min(MAX_REPORT_EVERY)
}

/// A finished second of the whole cluster.
#[derive(Debug, Clone)]
pub struct MergedInterval {
    pub index: u32,
    pub acc: Acc,
    /// Workers that reported this second.
    pub workers: u32,
    /// (worker slot, encoded latency histogram, its max) for the per-worker
    /// log; empty past [`MAX_WORKER_LINES`] workers.
    pub worker_latency: Vec<(usize, Vec<u8>, u64)>,
    /// Largest worker RSS and CPU use (percent of one core) this second.
    pub rss_max_bytes: u64,
    pub cpu_pct_max: Option<f64>,
    /// This second per request definition (in plan order); empty unless the
    /// plan has more than one (see [`Merger::with_requests`]).
    pub requests: Vec<RequestCounts>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Track {
    next: u32,
    finished: bool,
}

/// A second still being merged. Its histograms are [`Dense`]
/// accumulators, added to by bucket index as each worker's report comes in,
/// and become the [`Acc`]'s histograms when the second is emitted.
#[derive(Debug, Default)]
struct Open {
    /// Its counters (its histograms stay empty until it is emitted).
    acc: Acc,
    latency: Dense,
    service: Dense,
    send_lag: Dense,
    workers: u32,
    worker_latency: Vec<(usize, Vec<u8>, u64)>,
    rss_max_bytes: u64,
    cpu_pct_max: Option<f64>,
    requests: Vec<RequestCounts>,
}

impl Open {
    fn add(&mut self, w: &WorkerInterval) -> Result<(), HistError> {
        w.latency.add_to_dense(&mut self.latency)?;
        w.service.add_to_dense(&mut self.service)?;
        w.send_lag.add_to_dense(&mut self.send_lag)?;
        self.acc.add_counts(w);
        Ok(())
    }
}

/// What happened to a report handed to [`Merger::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Merged,
    /// Already seen (a redelivery after a reconnect): ignored.
    Duplicate,
    /// For a second already emitted: counted in the totals, stage and worker,
    /// but the per-second series had to go out without it.
    Late,
}

#[derive(Debug)]
pub struct Merger {
    tracks: Vec<Track>,
    open: BTreeMap<u32, Open>,
    next_emit: u32,
    stage_of: Vec<usize>,
    /// Per stage (by interval start), per worker.
    pub stages: Vec<Acc>,
    /// Per worker: its counters (its histograms stay empty; see
    /// [`Merger::worker`]).
    pub workers: Vec<Acc>,
    /// Per worker: its latency over the run at 2 digits.
    books: Vec<Coarse>,
    pub resources: Vec<Resources>,
    pub soak: Vec<Option<SoakWindows>>,
    pub late: u64,
    /// Per request definition (in plan order), over the whole run; empty
    /// unless the plan has more than one (see [`Merger::with_requests`]).
    pub requests: Vec<RequestAcc>,
    /// Per worker, per request definition: what a lost worker had in flight
    /// of each, to settle its books.
    worker_requests: Vec<Vec<RequestCounts>>,
    /// The request definitions' weights, for what cannot be attributed.
    request_weights: Vec<u64>,
}

impl Merger {
    /// `stage_of[i]` is the stage of interval `i`; intervals past its end
    /// belong to the last stage (requests draining after the run).
    /// `stages` are (start, duration) in seconds.
    pub fn new(workers: usize, stage_of: Vec<usize>, stages: &[(f64, f64)]) -> Merger {
        let soak = stages
            .iter()
            .map(|&(s, d)| SoakWindows::for_stage(s, d))
            .collect();
        let stages = stages.len();
        Merger {
            tracks: vec![Track::default(); workers],
            open: BTreeMap::new(),
            next_emit: 0,
            stage_of,
            // Built one by one, not cloned: a fresh histogram's counts are
            // zeroed pages the OS has not handed out yet, a clone's are
            // written (370 MB at 1,000 workers).
            stages: (0..stages.max(1)).map(|_| Acc::default()).collect(),
            workers: (0..workers).map(|_| Acc::per_worker()).collect(),
            books: (0..workers).map(|_| Coarse::default()).collect(),
            resources: vec![Resources::default(); workers],
            soak,
            late: 0,
            requests: Vec::new(),
            worker_requests: vec![Vec::new(); workers],
            request_weights: Vec::new(),
        }
    }

    /// Keeps per-request totals for a plan whose request definitions have
    /// these weights (in plan order). With a single definition there is
    /// nothing to split and nothing is kept.
    pub fn with_requests(mut self, weights: &[u32]) -> Merger {
        if weights.len() > 1 {
            self.requests = weights.iter().map(|_| RequestAcc::default()).collect();
            self.worker_requests =
                vec![vec![RequestCounts::default(); weights.len()]; self.tracks.len()];
            self.request_weights = weights.iter().map(|&w| u64::from(w)).collect();
        }
        self
    }

    fn stage(&self, index: u32) -> usize {
        let last = self.stages.len() - 1;
        self.stage_of
            .get(index as usize)
            .copied()
            .unwrap_or(last)
            .min(last)
    }

    pub fn add(&mut self, worker: usize, w: WorkerInterval) -> Result<Added, HistError> {
        let track = &mut self.tracks[worker];
        if w.index < track.next {
            return Ok(Added::Duplicate);
        }
        track.next = w.index + 1;
        self.add_requests(worker, &w.requests)?;
        self.workers[worker].add_counts(&w);
        self.books[worker].add(&w.latency)?;
        let cpu_pct = self.resources[worker].sample(w.index, w.rss_bytes, w.cpu_nanos);
        if w.index < self.next_emit {
            let s = self.stage(w.index);
            self.stages[s].add_interval(&w)?;
            self.late += 1;
            return Ok(Added::Late);
        }
        let keep_line = self.keeps_worker_lines();
        let open = self.open.entry(w.index).or_default();
        if !self.requests.is_empty() {
            open.requests
                .resize(self.requests.len(), RequestCounts::default());
            for r in &w.requests {
                if let Some(c) = open.requests.get_mut(r.index as usize) {
                    c.add(&r.counts);
                }
            }
        }
        open.add(&w)?;
        open.workers += 1;
        open.rss_max_bytes = open.rss_max_bytes.max(w.rss_bytes);
        if let Some(p) = cpu_pct {
            open.cpu_pct_max = Some(open.cpu_pct_max.map_or(p, |m: f64| m.max(p)));
        }
        if keep_line {
            open.worker_latency
                .push((worker, w.latency_encoded, w.latency.max()));
        }
        Ok(Added::Merged)
    }

    /// Adds a report's per-request entries to the run's and the worker's
    /// per-request totals. `wire` has checked every index against the plan;
    /// one beyond it (impossible) is skipped rather than trusted.
    fn add_requests(
        &mut self,
        worker: usize,
        requests: &[RequestInterval],
    ) -> Result<(), HistError> {
        if self.requests.is_empty() {
            return Ok(());
        }
        for r in requests {
            let i = r.index as usize;
            let (Some(acc), Some(mine)) = (
                self.requests.get_mut(i),
                self.worker_requests[worker].get_mut(i),
            ) else {
                continue;
            };
            r.latency.add_to(&mut acc.latency)?;
            acc.counts.add(&r.counts);
            mine.add(&r.counts);
        }
        Ok(())
    }

    /// Closes the books of a lost worker (see [`Counts::settle_lost`]) and
    /// returns what was added, for its stage. Per request definition, what
    /// it had in flight ends as errors of the definitions it was in flight
    /// for (exact); what it owned and never sent is split over the
    /// definitions by weight, the mix it would have followed (the nearest
    /// whole numbers, adding up to the total).
    pub fn settle_lost(&mut self, worker: usize, unsent: u64) -> Counts {
        let delta = self.workers[worker].counts.settle_lost(unsent);
        if self.requests.is_empty() {
            return delta;
        }
        let mine = &mut self.worker_requests[worker];
        let mut in_flight: Vec<u64> = mine.iter().map(RequestCounts::outstanding).collect();
        if in_flight.iter().all(|&n| n == 0) {
            // Only with reports that did not add up, which `wire` refuses.
            in_flight.clone_from(&self.request_weights);
        }
        let lost = apportion(delta.lost, &in_flight);
        let unsent = apportion(delta.unsent, &self.request_weights);
        for (i, (lost, unsent)) in lost.into_iter().zip(unsent).enumerate() {
            let d = RequestCounts {
                intended: unsent,
                dropped: unsent,
                errors: lost,
                ..RequestCounts::default()
            };
            mine[i].add(&d);
            self.requests[i].counts.add(&d);
        }
        delta
    }

    /// The worker will send nothing more (done, or lost).
    pub fn finish_worker(&mut self, worker: usize) {
        self.tracks[worker].finished = true;
    }

    /// Worker `worker`'s accumulator for the report: its counters, and its
    /// latency over the run as a 2-digit histogram (the workers table's
    /// percentiles within 1 %; the run, stage and per-second figures keep 3
    /// digits).
    pub fn worker(&self, worker: usize) -> Acc {
        let mut acc = self.workers[worker].clone();
        acc.latency = self.books[worker].to_hist();
        acc
    }

    /// Whether the seconds keep each worker's latency bytes for the
    /// per-worker log: not past [`MAX_WORKER_LINES`] workers (joiners
    /// included), where holding them would only cost memory.
    pub fn keeps_worker_lines(&self) -> bool {
        self.tracks.len() <= MAX_WORKER_LINES
    }

    /// Adds a worker joining mid-run; it is not waited for until
    /// [`Merger::activate`]. Returns its slot.
    pub fn add_worker(&mut self) -> usize {
        self.tracks.push(Track {
            next: 0,
            finished: true,
        });
        self.workers.push(Acc::per_worker());
        self.books.push(Coarse::default());
        self.resources.push(Resources::default());
        self.worker_requests
            .push(vec![RequestCounts::default(); self.requests.len()]);
        self.tracks.len() - 1
    }

    /// A joiner has started: wait for its reports from the next second to
    /// emit on (earlier ones are of seconds already out, and empty).
    pub fn activate(&mut self, worker: usize) {
        self.tracks[worker] = Track {
            next: self.next_emit,
            finished: false,
        };
    }

    pub fn all_finished(&self) -> bool {
        self.tracks.iter().all(|t| t.finished)
    }

    /// Emits, in order, every second that all live workers have reported.
    pub fn ready(&mut self) -> Result<Vec<MergedInterval>, HistError> {
        let mut out = Vec::new();
        loop {
            let i = self.next_emit;
            let complete = self.tracks.iter().all(|t| t.finished || t.next > i);
            let has_data = self.tracks.iter().any(|t| t.next > i);
            if !(complete && has_data) {
                break;
            }
            out.push(self.emit(i)?);
        }
        Ok(out)
    }

    /// Emits everything still open, complete or not (end of run).
    pub fn flush(&mut self) -> Result<Vec<MergedInterval>, HistError> {
        let mut out = Vec::new();
        while let Some((&i, _)) = self.open.iter().next() {
            while self.next_emit < i {
                let e = self.next_emit;
                out.push(self.emit(e)?);
            }
            out.push(self.emit(i)?);
        }
        Ok(out)
    }

    fn emit(&mut self, i: u32) -> Result<MergedInterval, HistError> {
        let Open {
            mut acc,
            latency,
            service,
            send_lag,
            workers,
            worker_latency,
            rss_max_bytes,
            cpu_pct_max,
            requests,
        } = self.open.remove(&i).unwrap_or_default();
        latency.add_into(&mut acc.latency)?;
        service.add_into(&mut acc.service)?;
        send_lag.add_into(&mut acc.send_lag)?;
        let s = self.stage(i);
        self.stages[s].add(&acc)?;
        for w in self.soak.iter_mut().flatten() {
            if w.first.contains(&i) {
                w.first_acc.add(&acc)?;
            }
            if w.last.contains(&i) {
                w.last_acc.add(&acc)?;
            }
        }
        self.next_emit = i + 1;
        Ok(MergedInterval {
            index: i,
            acc,
            workers,
            worker_latency,
            rss_max_bytes,
            cpu_pct_max,
            requests,
        })
    }

    /// The whole run: the sum of the stages.
    pub fn total(&self) -> Result<Acc, HistError> {
        let mut t = Acc::default();
        for s in &self.stages {
            t.add(s)?;
        }
        Ok(t)
    }
}
