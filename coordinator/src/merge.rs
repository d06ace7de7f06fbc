//! Exact merge of the workers' per-second reports.
//!
//! Histograms are added bucket by bucket (never by averaging percentiles), so
//! the merged p99 is the p99 of one histogram holding every worker's data.
//! An interval is emitted once every worker still in the run has reported it
//! (workers report in order) or has finished; reports are deduplicated by
//! (worker, interval). Only open intervals hold full histograms; emitted ones
//! shrink to a summary, so memory is bounded for day-long runs.

use std::collections::BTreeMap;
use volley_proto::histogram::{self, Decoded, Hist, HistError};

use volley_plan::{Counts, RequestCounts};

/// How often one check of one request definition failed:
/// ((request, check), count).
pub type CheckFailures = ((u32, u32), u64);

/// One request definition's share of a worker's second, decoded and
/// validated (see `wire`).
#[derive(Debug, Clone)]
pub struct RequestInterval {
    /// Into `plan.target.requests`.
    pub index: u32,
    pub counts: RequestCounts,
    /// Latency from the scheduled send time of its ok requests.
    pub latency: Decoded,
}

/// One request definition over the whole run.
#[derive(Debug, Clone)]
pub struct RequestAcc {
    pub counts: RequestCounts,
    pub latency: Hist,
}

impl Default for RequestAcc {
    fn default() -> Self {
        RequestAcc {
            counts: RequestCounts::default(),
            latency: histogram::new_hist(),
        }
    }
}

/// Splits `total` over `weights` in proportion, to whole units, by largest
/// remainder (ties to the first): the parts always add up to `total`, and a
/// part is exact wherever `total * weight` divides evenly. All-zero weights
/// count as equal ones.
pub fn apportion(total: u64, weights: &[u64]) -> Vec<u64> {
    if weights.is_empty() {
        return Vec::new();
    }
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    let (weights, sum): (Vec<u128>, u128) = if sum == 0 {
        (vec![1; weights.len()], weights.len() as u128)
    } else {
        (weights.iter().map(|&w| u128::from(w)).collect(), sum)
    };
    let t = u128::from(total);
    // Each part's floor fits in u64: it is at most `total`.
    let mut parts: Vec<u64> = weights.iter().map(|&w| (t * w / sum) as u64).collect();
    let given: u64 = parts.iter().sum();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(t * weights[i] % sum));
    for &i in by_remainder.iter().take((total - given) as usize) {
        parts[i] += 1;
    }
    parts
}

/// One worker's second, decoded and validated (see `wire`).
#[derive(Debug, Clone)]
pub struct WorkerInterval {
    pub index: u32,
    pub counts: Counts,
    /// Failing HTTP statuses, (code, count).
    pub status_codes: Vec<(u32, u64)>,
    /// Non-zero `grpc-status` values of failed gRPC calls, (code, count).
    pub grpc_status_codes: Vec<(u32, u64)>,
    /// Per request definition, when the plan has more than one (else empty);
    /// they add up to `counts`.
    pub requests: Vec<RequestInterval>,
    /// Failed response checks: ((request, check), count), adding up to the
    /// `check` errors.
    pub checks: Vec<CheckFailures>,
    pub latency: Decoded,
    pub service: Decoded,
    pub in_flight: u64,
    /// The worker process's resident memory and cumulative CPU time.
    pub rss_bytes: u64,
    pub cpu_nanos: u64,
    /// The latency histogram as the worker encoded it, for the per-worker log.
    pub latency_encoded: Vec<u8>,
}

/// Counters and histograms accumulated over some span (a second, a stage, a
/// worker, the run).
#[derive(Debug, Clone)]
pub struct Acc {
    pub counts: Counts,
    pub status_codes: BTreeMap<u32, u64>,
    pub grpc_status_codes: BTreeMap<u32, u64>,
    /// Failed response checks by (request definition, check).
    pub checks: BTreeMap<(u32, u32), u64>,
    pub latency: Hist,
    pub service: Hist,
}

impl Default for Acc {
    fn default() -> Self {
        Acc {
            counts: Counts::default(),
            status_codes: BTreeMap::new(),
            grpc_status_codes: BTreeMap::new(),
            checks: BTreeMap::new(),
            latency: histogram::new_hist(),
            service: histogram::new_hist(),
        }
    }
}

/// Significant digits of the per-worker histograms. A run keeps one
/// accumulator per worker for the whole run: at the standard 3 digits that
/// is ~380 KB each (3.8 GB at 10,000 workers); at 2 digits ~50 KB. The
/// workers table's p99 is then within 1 % (the run, stage and per-second
/// figures keep 3 digits).
const PER_WORKER_SIGFIG: u8 = 2;

impl Acc {
    /// A worker's accumulator: exact counts, a 2-digit latency histogram,
    /// and no service-time histogram (the report has none per worker; it
    /// stays empty, at the smallest size a histogram can have).
    pub fn per_worker() -> Acc {
        Acc {
            latency: Hist::new_with_bounds(
                histogram::LOWEST_US,
                histogram::HIGHEST_US,
                PER_WORKER_SIGFIG,
            )
            .expect("constant bounds are valid"),
            service: Hist::new_with_bounds(1, 2, 0).expect("constant bounds are valid"),
            ..Acc::default()
        }
    }

    pub fn add_interval(&mut self, w: &WorkerInterval) -> Result<(), HistError> {
        w.service.add_to(&mut self.service)?;
        self.add_interval_but_service(w)
    }

    /// [`Acc::add_interval`] without the service-time histogram (for a
    /// worker's own accumulator, see [`Acc::per_worker`]).
    pub fn add_interval_but_service(&mut self, w: &WorkerInterval) -> Result<(), HistError> {
        w.latency.add_to(&mut self.latency)?;
        self.counts.add(&w.counts);
        for &(code, n) in &w.status_codes {
            *self.status_codes.entry(code).or_default() += n;
        }
        for &(code, n) in &w.grpc_status_codes {
            *self.grpc_status_codes.entry(code).or_default() += n;
        }
        for &(key, n) in &w.checks {
            *self.checks.entry(key).or_default() += n;
        }
        Ok(())
    }

    pub fn add(&mut self, o: &Acc) -> Result<(), HistError> {
        histogram::merge(&mut self.latency, &o.latency)?;
        histogram::merge(&mut self.service, &o.service)?;
        self.counts.add(&o.counts);
        for (&code, &n) in &o.status_codes {
            *self.status_codes.entry(code).or_default() += n;
        }
        for (&code, &n) in &o.grpc_status_codes {
            *self.grpc_status_codes.entry(code).or_default() += n;
        }
        for (&key, &n) in &o.checks {
            *self.checks.entry(key).or_default() += n;
        }
        Ok(())
    }
}

/// A finished second of the whole cluster.
#[derive(Debug, Clone)]
pub struct MergedInterval {
    pub index: u32,
    pub acc: Acc,
    /// Workers that reported this second.
    pub workers: u32,
    /// (worker slot, encoded latency histogram) for the per-worker log.
    pub worker_latency: Vec<(usize, Vec<u8>, u64)>,
    /// Largest worker RSS and CPU use (percent of one core) this second.
    pub rss_max_bytes: u64,
    pub cpu_pct_max: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Track {
    next: u32,
    finished: bool,
}

/// One worker's own memory and CPU over the run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Resources {
    pub rss_first: u64,
    pub rss_last: u64,
    pub rss_peak: u64,
    /// (interval, cumulative CPU nanoseconds) of the first and last report.
    pub cpu_first: Option<(u32, u64)>,
    pub cpu_last: Option<(u32, u64)>,
}

impl Resources {
    /// Mean CPU use between the first and the last report, percent of a core.
    pub fn cpu_pct_mean(&self) -> Option<f64> {
        let ((i0, c0), (i1, c1)) = (self.cpu_first?, self.cpu_last?);
        (i1 > i0).then(|| c1.saturating_sub(c0) as f64 / (f64::from(i1 - i0) * 1e9) * 100.0)
    }

    fn sample(&mut self, index: u32, rss: u64, cpu: u64) -> Option<f64> {
        if rss > 0 {
            if self.rss_first == 0 {
                self.rss_first = rss;
            }
            self.rss_last = rss;
            self.rss_peak = self.rss_peak.max(rss);
        }
        if cpu == 0 {
            return None;
        }
        let pct = self.cpu_last.and_then(|(i, c)| {
            (index > i).then(|| cpu.saturating_sub(c) as f64 / (f64::from(index - i) * 1e9) * 100.0)
        });
        self.cpu_first.get_or_insert((index, cpu));
        self.cpu_last = Some((index, cpu));
        pct
    }
}

#[derive(Debug, Default)]
struct Open {
    acc: Acc,
    workers: u32,
    worker_latency: Vec<(usize, Vec<u8>, u64)>,
    rss_max_bytes: u64,
    cpu_pct_max: Option<f64>,
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

/// The first and last tenth of a long stage, accumulated for the soak
/// figures.
#[derive(Debug, Clone)]
pub struct SoakWindows {
    pub first: std::ops::Range<u32>,
    pub last: std::ops::Range<u32>,
    pub first_acc: Acc,
    pub last_acc: Acc,
}

impl SoakWindows {
    /// Windows for a stage `[start, start + duration)` in seconds; `None` for
    /// stages shorter than 10 s, whose tenths would be under a second.
    pub fn for_stage(start: f64, duration: f64) -> Option<SoakWindows> {
        if duration < 10.0 {
            return None;
        }
        let n = (duration / 10.0).floor() as u32;
        let first_start = start.ceil() as u32;
        let last_end = (start + duration).floor() as u32;
        Some(SoakWindows {
            first: first_start..first_start + n,
            last: last_end.saturating_sub(n)..last_end,
            first_acc: Acc::default(),
            last_acc: Acc::default(),
        })
    }
}

#[derive(Debug)]
pub struct Merger {
    tracks: Vec<Track>,
    open: BTreeMap<u32, Open>,
    next_emit: u32,
    stage_of: Vec<usize>,
    /// Per stage (by interval start), per worker.
    pub stages: Vec<Acc>,
    pub workers: Vec<Acc>,
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
        self.workers[worker].add_interval_but_service(&w)?;
        let cpu_pct = self.resources[worker].sample(w.index, w.rss_bytes, w.cpu_nanos);
        if w.index < self.next_emit {
            let s = self.stage(w.index);
            self.stages[s].add_interval(&w)?;
            self.late += 1;
            return Ok(Added::Late);
        }
        let open = self.open.entry(w.index).or_default();
        open.acc.add_interval(&w)?;
        open.workers += 1;
        open.rss_max_bytes = open.rss_max_bytes.max(w.rss_bytes);
        if let Some(p) = cpu_pct {
            open.cpu_pct_max = Some(open.cpu_pct_max.map_or(p, |m: f64| m.max(p)));
        }
        open.worker_latency
            .push((worker, w.latency_encoded, w.latency.max()));
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

    /// Adds a worker joining mid-run; it is not waited for until
    /// [`Merger::activate`]. Returns its slot.
    pub fn add_worker(&mut self) -> usize {
        self.tracks.push(Track {
            next: 0,
            finished: true,
        });
        self.workers.push(Acc::per_worker());
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
        let open = self.open.remove(&i).unwrap_or_default();
        let s = self.stage(i);
        self.stages[s].add(&open.acc)?;
        for w in self.soak.iter_mut().flatten() {
            if w.first.contains(&i) {
                w.first_acc.add(&open.acc)?;
            }
            if w.last.contains(&i) {
                w.last_acc.add(&open.acc)?;
            }
        }
        self.next_emit = i + 1;
        Ok(MergedInterval {
            index: i,
            acc: open.acc,
            workers: open.workers,
            worker_latency: open.worker_latency,
            rss_max_bytes: open.rss_max_bytes,
            cpu_pct_max: open.cpu_pct_max,
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

#[cfg(test)]
mod tests {
    use super::*;
    use volley_plan::ErrorKind;

    fn wi(index: u32, ok: u64, latency_us: u64) -> WorkerInterval {
        let mut latency = histogram::new_hist();
        let mut service = histogram::new_hist();
        for _ in 0..ok {
            latency.record(latency_us).unwrap();
            service.record(latency_us / 2).unwrap();
        }
        WorkerInterval {
            index,
            counts: Counts {
                intended: ok + 1,
                sent: ok,
                ok,
                dropped: 1,
                ..Counts::default()
            },
            status_codes: vec![],
            grpc_status_codes: vec![],
            requests: vec![],
            checks: vec![],
            latency_encoded: histogram::encode(&latency),
            latency: latency.into(),
            service: service.into(),
            in_flight: 0,
            rss_bytes: 0,
            cpu_nanos: 0,
        }
    }

    #[test]
    fn per_worker_percentiles_are_within_one_percent() {
        let mut m = Merger::new(1, vec![0; 3], &[(0.0, 3.0)]);
        let mut exact = histogram::new_hist();
        for (second, us) in [(0u32, 1234u64), (1, 56_789), (2, 987_654)] {
            let mut w = wi(second, 0, 0);
            let mut h = histogram::new_hist();
            for k in 0..100 {
                h.record(us + k * 7).unwrap();
                exact.record(us + k * 7).unwrap();
            }
            w.counts.ok = 100;
            w.counts.sent = 100;
            w.counts.intended = 101;
            w.latency = histogram::Decoded::Full(h.clone());
            w.service = histogram::Decoded::Full(h);
            m.add(0, w).unwrap();
        }
        for q in [0.5, 0.9, 0.99, 0.999] {
            let want = exact.value_at_quantile(q) as f64;
            let worker = m.workers[0].latency.value_at_quantile(q) as f64;
            assert!(
                (worker - want).abs() / want <= 0.01,
                "worker p{q}: {worker} vs {want}"
            );
        }
        assert_eq!(m.workers[0].latency.len(), 300);
    }

    #[test]
    fn waits_for_every_worker_then_emits_in_order() {
        let mut m = Merger::new(2, vec![0, 0, 1], &[(0.0, 2.0), (2.0, 1.0)]);
        assert_eq!(m.add(0, wi(0, 10, 1000)).unwrap(), Added::Merged);
        assert_eq!(m.add(0, wi(1, 10, 1000)).unwrap(), Added::Merged);
        assert!(
            m.ready().unwrap().is_empty(),
            "worker 1 has not reported second 0"
        );
        m.add(1, wi(0, 5, 3000)).unwrap();
        let out = m.ready().unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].index, 0);
        assert_eq!(out[0].acc.counts.ok, 15);
        assert_eq!(out[0].workers, 2);
        m.add(1, wi(1, 5, 3000)).unwrap();
        m.add(1, wi(2, 5, 3000)).unwrap();
        let out = m.ready().unwrap();
        assert_eq!(out.iter().map(|i| i.index).collect::<Vec<_>>(), vec![1]);
        m.finish_worker(0);
        let out = m.ready().unwrap();
        assert_eq!(out.iter().map(|i| i.index).collect::<Vec<_>>(), vec![2]);
        m.finish_worker(1);
        assert!(m.ready().unwrap().is_empty());
        let total = m.total().unwrap();
        assert_eq!(total.counts.ok, 35);
        assert_eq!(total.counts.intended, 35 + 5);
        assert_eq!(m.stages[1].counts.ok, 5);
        assert_eq!(m.workers[0].counts.ok + m.workers[1].counts.ok, 35);
    }

    #[test]
    fn duplicates_are_ignored_and_late_reports_still_count() {
        let mut m = Merger::new(2, vec![0; 10], &[(0.0, 10.0)]);
        m.add(0, wi(0, 10, 1000)).unwrap();
        assert_eq!(m.add(0, wi(0, 10, 1000)).unwrap(), Added::Duplicate);
        m.finish_worker(1); // say it was declared lost
        assert_eq!(m.ready().unwrap().len(), 1);
        assert_eq!(m.add(1, wi(0, 7, 1000)).unwrap(), Added::Late);
        assert_eq!(m.total().unwrap().counts.ok, 17);
        assert_eq!(m.late, 1);
    }

    #[test]
    fn merged_percentiles_equal_one_big_histogram() {
        let mut m = Merger::new(3, vec![0; 4], &[(0.0, 4.0)]);
        let mut all = histogram::new_hist();
        for w in 0..3usize {
            for i in 0..4u32 {
                let x = wi(
                    i,
                    100 * (w as u64 + 1),
                    1000 * (w as u64 + 1) + u64::from(i) * 7919,
                );
                x.latency.add_to(&mut all).unwrap();
                m.add(w, x).unwrap();
            }
            m.finish_worker(w);
        }
        assert_eq!(m.ready().unwrap().len(), 4);
        let total = m.total().unwrap();
        for q in [0.5, 0.9, 0.99, 0.999] {
            assert_eq!(total.latency.value_at_quantile(q), all.value_at_quantile(q));
        }
        assert_eq!(total.latency.len(), all.len());
    }

    #[test]
    fn worker_resources_track_memory_and_cpu() {
        let mut m = Merger::new(1, vec![0; 10], &[(0.0, 10.0)]);
        for (i, (rss, cpu)) in [
            (10u64, 1_000_000_000u64),
            (12, 1_500_000_000),
            (11, 2_500_000_000),
        ]
        .into_iter()
        .enumerate()
        {
            let mut x = wi(i as u32, 1, 10);
            x.rss_bytes = rss << 20;
            x.cpu_nanos = cpu;
            m.add(0, x).unwrap();
        }
        m.finish_worker(0);
        let out = m.ready().unwrap();
        assert_eq!(
            out[0].cpu_pct_max, None,
            "no CPU rate before a second sample"
        );
        assert_eq!(out[1].cpu_pct_max, Some(50.0));
        assert_eq!(out[2].cpu_pct_max, Some(100.0));
        assert_eq!(out[1].rss_max_bytes, 12 << 20);
        let r = m.resources[0];
        assert_eq!(
            (r.rss_first, r.rss_last, r.rss_peak),
            (10 << 20, 11 << 20, 12 << 20)
        );
        assert_eq!(r.cpu_pct_mean(), Some(75.0));
    }

    #[test]
    fn soak_windows_take_the_first_and_last_tenth() {
        let w = SoakWindows::for_stage(5.0, 100.0).unwrap();
        assert_eq!((w.first.clone(), w.last.clone()), (5..15, 95..105));
        assert!(SoakWindows::for_stage(0.0, 9.0).is_none());
        let mut m = Merger::new(1, vec![0; 20], &[(0.0, 20.0)]);
        for i in 0..20u32 {
            m.add(
                0,
                wi(
                    i,
                    10,
                    if i < 2 {
                        1000
                    } else if i >= 18 {
                        3000
                    } else {
                        2000
                    },
                ),
            )
            .unwrap();
        }
        m.finish_worker(0);
        m.ready().unwrap();
        let w = m.soak[0].as_ref().unwrap();
        assert_eq!(w.first_acc.counts.ok, 20);
        assert_eq!(w.last_acc.counts.ok, 20);
        assert!(w
            .last_acc
            .latency
            .equivalent(w.last_acc.latency.value_at_quantile(0.99), 3000));
    }

    #[test]
    fn a_joiner_is_waited_for_only_once_active() {
        let mut m = Merger::new(1, vec![0; 10], &[(0.0, 10.0)]);
        let j = m.add_worker();
        m.add(0, wi(0, 5, 10)).unwrap();
        assert_eq!(
            m.ready().unwrap().len(),
            1,
            "an inactive joiner holds nothing up"
        );
        m.activate(j);
        m.add(0, wi(1, 5, 10)).unwrap();
        assert!(
            m.ready().unwrap().is_empty(),
            "now second 1 waits for the joiner"
        );
        assert_eq!(m.add(j, wi(0, 0, 10)).unwrap(), Added::Duplicate);
        m.add(j, wi(1, 3, 10)).unwrap();
        assert_eq!(m.ready().unwrap()[0].acc.counts.ok, 8);
    }

    #[test]
    fn flush_emits_gaps_and_stragglers() {
        let mut m = Merger::new(2, vec![0; 10], &[(0.0, 10.0)]);
        m.add(0, wi(0, 1, 10)).unwrap();
        m.add(0, wi(3, 1, 10)).unwrap();
        let out = m.flush().unwrap();
        assert_eq!(
            out.iter().map(|i| i.index).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(out[1].workers, 0);
    }

    /// A worker's second over two request definitions: `ok` successes split
    /// `ok0` / rest, `errors` failures of kind `kind` on definition 1, one
    /// drop on definition 0, and `in_flight` still out (on definition 1).
    fn wi2(index: u32, ok: u64, ok0: u64, errors: u64, in_flight: u64, us: u64) -> WorkerInterval {
        let mut w = wi(index, ok, us);
        let hist = |n: u64| {
            let mut h = histogram::new_hist();
            for _ in 0..n {
                h.record(us).unwrap();
            }
            h
        };
        w.counts.by_kind[ErrorKind::Reset] = errors;
        w.counts.intended += errors + in_flight;
        w.counts.sent += errors + in_flight;
        w.requests = vec![
            RequestInterval {
                index: 0,
                counts: RequestCounts {
                    intended: ok0 + 1,
                    sent: ok0,
                    ok: ok0,
                    errors: 0,
                    dropped: 1,
                },
                latency: hist(ok0).into(),
            },
            RequestInterval {
                index: 1,
                counts: RequestCounts {
                    intended: ok - ok0 + errors + in_flight,
                    sent: ok - ok0 + errors + in_flight,
                    ok: ok - ok0,
                    errors,
                    dropped: 0,
                },
                latency: hist(ok - ok0).into(),
            },
        ];
        w
    }

    fn sum_requests(m: &Merger) -> RequestCounts {
        let mut t = RequestCounts::default();
        for r in &m.requests {
            t.add(&r.counts);
        }
        t
    }

    fn assert_requests_add_up(m: &Merger, total: &Acc) {
        let s = sum_requests(m);
        let c = &total.counts;
        assert_eq!(
            (s.intended, s.sent, s.ok, s.errors, s.dropped),
            (c.intended, c.sent, c.ok, c.errors(), c.dropped)
        );
        let latencies: u64 = m.requests.iter().map(|r| r.latency.len()).sum();
        assert_eq!(latencies, total.latency.len());
    }

    #[test]
    fn per_request_totals_add_up_over_workers_late_and_duplicates() {
        let mut m =
            Merger::new(3, vec![0, 0, 1, 1], &[(0.0, 2.0), (2.0, 2.0)]).with_requests(&[3, 1]);
        for w in 0..2usize {
            for i in 0..4u32 {
                let x = wi2(i, 20 + w as u64, 15, u64::from(i), 0, 1000 * (w as u64 + 1));
                m.add(w, x.clone()).unwrap();
                assert_eq!(m.add(w, x).unwrap(), Added::Duplicate);
            }
            m.finish_worker(w);
        }
        m.finish_worker(2);
        assert_eq!(m.ready().unwrap().len(), 4);
        // Worker 2 turns out not to be lost after all: its reports come late.
        m.add(2, wi2(0, 7, 3, 2, 0, 5000)).unwrap();
        assert_eq!(m.late, 1);
        let total = m.total().unwrap();
        assert_requests_add_up(&m, &total);
        assert_eq!(m.requests[0].counts.ok, 8 * 15 + 3);
        assert_eq!(m.requests[1].counts.errors, 2 * 6 + 2);
        assert_eq!(
            total.counts.by_kind[ErrorKind::Reset],
            2 * 6 + 2,
            "resets counted by kind"
        );
        // One definition's latency is that of its own requests only.
        assert_eq!(m.requests[0].latency.max(), total.latency.max());
        assert!(m.requests[1].latency.len() < total.latency.len());
    }

    #[test]
    fn a_lost_worker_keeps_per_request_sums_exact() {
        let mut m = Merger::new(2, vec![0; 10], &[(0.0, 10.0)]).with_requests(&[3, 1]);
        for i in 0..3u32 {
            m.add(0, wi2(i, 10, 6, 1, 0, 1000)).unwrap();
            // Worker 1 has 4 requests of definition 1 in flight when lost.
            m.add(1, wi2(i, 10, 6, 1, u64::from(i == 2) * 4, 1000))
                .unwrap();
        }
        m.finish_worker(0);
        m.finish_worker(1);
        m.ready().unwrap();
        let delta = m.settle_lost(1, 9);
        assert_eq!((delta.lost, delta.unsent), (4, 9));
        m.stages[0].counts.add(&delta);
        let total = m.total().unwrap();
        assert_eq!(total.counts.outstanding(), 0);
        assert_requests_add_up(&m, &total);
        // In flight: exactly where it was; never sent: split 3 : 1.
        assert_eq!(m.requests[1].counts.errors, 6 + 4);
        assert_eq!(m.requests[0].counts.dropped, 6 + 7);
        assert_eq!(m.requests[1].counts.dropped, 2);
        assert!(m.requests.iter().all(|r| r.counts.outstanding() == 0));
    }

    #[test]
    fn one_request_definition_keeps_no_breakdown() {
        let mut m = Merger::new(1, vec![0; 2], &[(0.0, 2.0)]).with_requests(&[5]);
        m.add(0, wi2(0, 10, 6, 1, 0, 1000)).unwrap();
        assert!(m.requests.is_empty());
        assert_eq!(m.settle_lost(0, 3).unsent, 3);
    }

    #[test]
    fn a_joiner_gets_per_request_books() {
        let mut m = Merger::new(1, vec![0; 10], &[(0.0, 10.0)]).with_requests(&[1, 1]);
        let j = m.add_worker();
        m.activate(j);
        m.add(j, wi2(0, 4, 2, 0, 3, 10)).unwrap();
        let d = m.settle_lost(j, 0);
        assert_eq!(d.lost, 3);
        assert_eq!(m.requests[1].counts.errors, 3);
    }

    #[test]
    fn grpc_status_codes_merge_like_http_ones() {
        let mut m = Merger::new(2, vec![0; 2], &[(0.0, 2.0)]);
        for w in 0..2usize {
            let mut x = wi(0, 5, 10);
            x.counts.by_kind[ErrorKind::Status] = 3;
            x.status_codes = vec![(503, 1)];
            x.grpc_status_codes = vec![(14, 2)];
            m.add(w, x).unwrap();
        }
        let out = m.ready().unwrap();
        assert_eq!(out[0].acc.grpc_status_codes.get(&14), Some(&4));
        assert_eq!(out[0].acc.status_codes.get(&503), Some(&2));
        assert_eq!(m.total().unwrap().grpc_status_codes.get(&14), Some(&4));
        assert_eq!(m.workers[1].grpc_status_codes.get(&14), Some(&2));
    }

    #[test]
    fn apportion_always_adds_up() {
        assert_eq!(apportion(9, &[3, 1]), vec![7, 2]);
        assert_eq!(apportion(4, &[0, 4, 0]), vec![0, 4, 0]);
        assert_eq!(apportion(5, &[0, 0]), vec![3, 2]);
        assert_eq!(apportion(0, &[1, 2]), vec![0, 0]);
        assert!(apportion(3, &[]).is_empty());
        assert_eq!(
            apportion(u64::MAX, &[1000, 1000])
                .iter()
                .map(|&p| u128::from(p))
                .sum::<u128>(),
            u128::from(u64::MAX)
        );
    }

    proptest::proptest! {
        #[test]
        fn apportion_is_proportional_and_exact(
            total in 0u64..1_000_000,
            weights in proptest::collection::vec(0u64..1000, 1..20),
        ) {
            let parts = apportion(total, &weights);
            proptest::prop_assert_eq!(parts.iter().sum::<u64>(), total);
            let sum: u64 = weights.iter().sum();
            if sum > 0 {
                for (p, w) in parts.iter().zip(&weights) {
                    let ideal = total as f64 * *w as f64 / sum as f64;
                    proptest::prop_assert!((*p as f64 - ideal).abs() < 1.0 + 1e-9);
                }
            }
        }
    }
}
