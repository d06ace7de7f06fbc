//! Exact merge of the workers' per-second reports.
//!
//! Histograms are added bucket by bucket (never by averaging percentiles), so
//! the merged p99 is the p99 of one histogram holding every worker's data.
//! An interval is emitted once every worker still in the run has reported it
//! (workers report in order) or has finished; reports are deduplicated by
//! (worker, interval). Only open intervals hold full histograms; emitted ones
//! shrink to a summary, so memory is bounded for day-long runs.

use std::collections::BTreeMap;
use volley_proto::histogram::{self, Hist, HistError};

/// Request counters. Errors are split by kind in `by_kind`
/// (connect, timeout, status, protocol) plus `lost`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub intended: u64,
    pub sent: u64,
    pub ok: u64,
    pub dropped: u64,
    pub by_kind: [u64; 4],
    /// Errors of kind "lost": in flight on a worker that was lost, so their
    /// outcome is unknown.
    pub lost: u64,
    /// Part of `dropped`: requests a lost worker owned but never sent.
    pub unsent: u64,
}

impl Counts {
    pub fn errors(&self) -> u64 {
        self.by_kind.iter().sum::<u64>() + self.lost
    }

    /// Requests not yet ended (in flight).
    pub fn outstanding(&self) -> u64 {
        self.intended
            .saturating_sub(self.ok + self.errors() + self.dropped)
    }

    pub fn add(&mut self, o: &Counts) {
        self.intended += o.intended;
        self.sent += o.sent;
        self.ok += o.ok;
        self.dropped += o.dropped;
        for (a, b) in self.by_kind.iter_mut().zip(o.by_kind) {
            *a += b;
        }
        self.lost += o.lost;
        self.unsent += o.unsent;
    }

    /// Closes the books of a lost worker: what it had in flight ends as a
    /// "lost" error, what it owned and never sent as dropped.
    pub fn settle_lost(&mut self, unsent: u64) -> Counts {
        let delta = Counts {
            intended: unsent,
            dropped: unsent,
            unsent,
            lost: self.outstanding(),
            ..Counts::default()
        };
        self.add(&delta);
        delta
    }
}

/// One worker's second, decoded and validated (see `wire`).
#[derive(Debug, Clone)]
pub struct WorkerInterval {
    pub index: u32,
    pub counts: Counts,
    pub status_codes: Vec<(u32, u64)>,
    pub latency: Hist,
    pub service: Hist,
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
    pub latency: Hist,
    pub service: Hist,
}

impl Default for Acc {
    fn default() -> Self {
        Acc {
            counts: Counts::default(),
            status_codes: BTreeMap::new(),
            latency: histogram::new_hist(),
            service: histogram::new_hist(),
        }
    }
}

impl Acc {
    pub fn add_interval(&mut self, w: &WorkerInterval) -> Result<(), HistError> {
        histogram::merge(&mut self.latency, &w.latency)?;
        histogram::merge(&mut self.service, &w.service)?;
        self.counts.add(&w.counts);
        for &(code, n) in &w.status_codes {
            *self.status_codes.entry(code).or_default() += n;
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
            workers: (0..workers).map(|_| Acc::default()).collect(),
            resources: vec![Resources::default(); workers],
            soak,
            late: 0,
        }
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
        self.workers[worker].add_interval(&w)?;
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
        self.workers.push(Acc::default());
        self.resources.push(Resources::default());
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
            latency_encoded: histogram::encode(&latency),
            latency,
            service,
            in_flight: 0,
            rss_bytes: 0,
            cpu_nanos: 0,
        }
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
                all.add(&x.latency).unwrap();
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
    fn settling_a_lost_worker_accounts_for_everything() {
        let mut c = Counts {
            intended: 100,
            sent: 95,
            ok: 80,
            dropped: 5,
            by_kind: [0, 3, 0, 0],
            ..Counts::default()
        };
        let d = c.settle_lost(40);
        assert_eq!((d.lost, d.unsent), (12, 40));
        assert_eq!(c.intended, 140);
        assert_eq!(c.intended, c.ok + c.errors() + c.dropped);
        assert_eq!(c.outstanding(), 0);
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
}
