//! What one second of the whole cluster costs the coordinator: every
//! worker's report validated and decoded (`wire::worker_interval`), added to
//! the open second, the worker's and the stage's totals (`Merger::add`), and
//! the second emitted once complete (`Merger::ready`). The `_4_requests`
//! variant splits each report over four request definitions, as a plan with
//! `[[requests]]` makes workers do (four more histograms per report).
//!
//! `cargo bench -p volley-coordinator --bench merge`
//! (add `-- --warm-up-time 1 --measurement-time 2` for a quick pass).

use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use std::cell::Cell;
use std::hint::black_box;
use volley_coordinator::merge::{Merger, WorkerInterval};
use volley_coordinator::wire;
use volley_proto::histogram::{self, Hist};
use volley_proto::pb;

/// Distinct worker-seconds to spread over the workers (their bytes are
/// reused, as a pre-encoded histogram would be).
const VARIANTS: u64 = 8;

/// A second of one worker at 20,000 rps (see [`histogram::synthetic_second`]).
fn realistic_second(seed: u64, values: usize) -> (Hist, Hist) {
    histogram::synthetic_second(seed, values as u64)
}

/// One report per variant of 20,000 values, as it arrives on the wire
/// (index set later): the latency deflated, as workers send it to a run of
/// up to 256 workers, service and send lag plain.
fn wire_reports() -> Vec<pb::IntervalReport> {
    (0..VARIANTS)
        .map(|v| {
            let mut r = histogram::synthetic_report(v + 1, 20_000, false);
            r.run_id = "bench".into();
            r.cpu_nanos = 1_000_000_000 + v * 1000;
            r
        })
        .collect()
}

/// The same reports split over `REQUESTS` request definitions: the ok
/// requests in four equal parts (each with its own latency histogram), the
/// drops and the timeout on the first.
const REQUESTS: usize = 4;

fn split_reports(reports: &[pb::IntervalReport]) -> Vec<pb::IntervalReport> {
    reports
        .iter()
        .enumerate()
        .map(|(v, r)| {
            let mut r = r.clone();
            let part = r.ok / REQUESTS as u64;
            r.requests = (0..REQUESTS)
                .map(|i| {
                    let ok = if i == 0 {
                        r.ok - part * (REQUESTS as u64 - 1)
                    } else {
                        part
                    };
                    let (latency, _) =
                        realistic_second(100 * (v as u64 + 1) + i as u64, ok as usize);
                    let extra = if i == 0 { r.intended - r.ok } else { 0 };
                    pb::RequestInterval {
                        index: i as u32,
                        intended: ok + extra,
                        sent: ok + if i == 0 { r.sent - r.ok } else { 0 },
                        ok,
                        errors: if i == 0 { 1 } else { 0 },
                        dropped: if i == 0 { r.dropped } else { 0 },
                        latency_hist: histogram::encode(&latency),
                    }
                })
                .collect();
            r
        })
        .collect()
}

fn decode(r: &pb::IntervalReport, index: u32) -> WorkerInterval {
    let mut r = r.clone();
    r.index = index;
    r.cpu_nanos += u64::from(index) * 250_000_000;
    let bounds = wire::Bounds {
        max_index: u32::MAX,
        requests: r.requests.len().max(1),
        checks: 0,
    };
    wire::worker_interval(r, bounds).expect("a valid report")
}

fn merger(workers: usize, requests: usize) -> Merger {
    // One short stage: no soak windows, every second goes to stage 0.
    Merger::new(workers, vec![0], &[(0.0, 1.0)]).with_requests(&vec![1; requests])
}

fn benches(c: &mut Criterion) {
    let reports = wire_reports();
    eprintln!(
        "worker report: {} + {} encoded histogram bytes",
        reports[0].latency_hist.len(),
        reports[0].service_hist.len()
    );
    let mut g = c.benchmark_group("merge_second");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    for n in [10usize, 100, 1000] {
        g.throughput(Throughput::Elements(n as u64));
        // The whole receive path: decode + add + emit.
        let mut m = merger(n, 1);
        let mut index = 0u32;
        g.bench_function(BenchmarkId::new("decode_add_ready", n), |b| {
            b.iter(|| {
                for w in 0..n {
                    let wi = decode(&reports[w % reports.len()], index);
                    m.add(w, wi).expect("merges");
                }
                index += 1;
                let out = m.ready().expect("merges");
                assert_eq!(out.len(), 1);
                out
            });
        });
        // The merge alone: reports decoded beforehand, untimed.
        let mut m = merger(n, 1);
        let next = Cell::new(0u32);
        g.bench_function(BenchmarkId::new("add_ready", n), |b| {
            b.iter_batched(
                || {
                    let i = next.get();
                    next.set(i + 1);
                    (0..n)
                        .map(|w| decode(&reports[w % reports.len()], i))
                        .collect::<Vec<_>>()
                },
                |second| {
                    for (w, wi) in second.into_iter().enumerate() {
                        m.add(w, black_box(wi)).expect("merges");
                    }
                    let out = m.ready().expect("merges");
                    assert_eq!(out.len(), 1);
                    out
                },
                BatchSize::PerIteration,
            );
        });
    }
    let split = split_reports(&reports);
    for n in [100usize, 1000] {
        g.throughput(Throughput::Elements(n as u64));
        let mut m = merger(n, REQUESTS);
        let mut index = 0u32;
        g.bench_function(BenchmarkId::new("decode_add_ready_4_requests", n), |b| {
            b.iter(|| {
                for w in 0..n {
                    let wi = decode(&split[w % split.len()], index);
                    m.add(w, wi).expect("merges");
                }
                index += 1;
                let out = m.ready().expect("merges");
                assert_eq!(out.len(), 1);
                out
            });
        });
    }
    g.finish();
}

criterion_group!(merge_benches, benches);
criterion_main!(merge_benches);
