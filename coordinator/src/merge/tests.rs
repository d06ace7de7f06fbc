//! The merger over whole runs: ordering, duplicates, late reports, lost
//! workers and per-request books.

use super::*;
use volley_plan::{DropCause, DropCounts, ErrorKind};
use volley_proto::histogram;

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
            drops: DropCounts::from_fn(|c| u64::from(c == DropCause::ConnectionsBusy)),
            ..Counts::default()
        },
        status_codes: vec![],
        grpc_status_codes: vec![],
        requests: vec![],
        checks: vec![],
        latency_encoded: histogram::encode(&latency),
        latency: latency.into(),
        service: service.into(),
        send_lag: {
            let mut lag = histogram::new_hist();
            lag.record_n(50, ok).unwrap();
            lag.into()
        },
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
        let worker = m.worker(0).latency.value_at_quantile(q) as f64;
        assert!(
            (worker - want).abs() / want <= 0.01,
            "worker p{q}: {worker} vs {want}"
        );
    }
    assert_eq!(m.worker(0).latency.len(), 300);
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

/// A worker's second holding exactly `values` (µs), as it comes off the
/// wire: encoded, then decoded for merging the way `wire.rs` does it
/// (always sparse: the bool says so).
fn wi_of_values(index: u32, values: &[u64]) -> (WorkerInterval, bool) {
    let mut latency = histogram::new_hist();
    for &v in values {
        latency.record(v).unwrap();
    }
    let mut x = wi(index, 0, 0);
    let n = values.len() as u64;
    x.counts.intended = n;
    x.counts.sent = n;
    x.counts.ok = n;
    x.counts.dropped = 0;
    x.counts.drops = DropCounts::default();
    x.latency_encoded = histogram::encode(&latency);
    let decoded = histogram::decode_for_merge(&x.latency_encoded).unwrap();
    let sparse = matches!(decoded, histogram::Decoded::Sparse(_));
    x.latency = decoded;
    (x, sparse)
}

/// Latencies from 50 µs to ~5 s, spread by a fixed LCG (no `rand` here).
fn raw_latencies(seed: u64, n: usize, spread_us: u64) -> Vec<u64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            50 + (s >> 33) % spread_us
        })
        .collect()
}

#[test]
fn merged_percentiles_equal_one_big_histogram() {
    // The oracle records every raw value into one histogram; the merger sees
    // only what crosses the wire. Worker 0 sends few distinct values per
    // second, worker 1 thousands, worker 2 a mix; worker 2's big seconds go
    // in as full histograms (as built in memory), so both forms feed the
    // open seconds' accumulators.
    let mut m = Merger::new(3, vec![0; 4], &[(0.0, 4.0)]);
    let mut oracle = histogram::new_hist();
    let mut paths = (0, 0);
    for w in 0..3usize {
        for i in 0..4u32 {
            let seed = (w as u64) << 8 | u64::from(i);
            let values = match w {
                0 => raw_latencies(seed, 40, 20_000),
                1 => raw_latencies(seed, 20_000, 5_000_000),
                _ if i % 2 == 0 => raw_latencies(seed, 15, 900),
                _ => raw_latencies(seed, 8_000, 300_000),
            };
            for &v in &values {
                oracle.record(v).unwrap();
            }
            let (mut x, sparse) = wi_of_values(i, &values);
            assert!(sparse, "off the wire, a second is always decoded sparse");
            if w == 2 && i % 2 == 1 {
                x.latency =
                    histogram::Decoded::Full(histogram::decode(&x.latency_encoded).unwrap());
            }
            if matches!(x.latency, histogram::Decoded::Sparse(_)) {
                paths.0 += 1;
            } else {
                paths.1 += 1;
            }
            m.add(w, x).unwrap();
        }
        m.finish_worker(w);
    }
    assert_eq!(paths, (10, 2), "both forms are covered (sparse, full)");
    assert_eq!(m.ready().unwrap().len(), 4);
    let total = m.total().unwrap();
    assert_eq!(total.latency.len(), oracle.len());
    assert_eq!(total.counts.ok, oracle.len());
    for q in [0.0, 0.25, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
        assert_eq!(
            total.latency.value_at_quantile(q),
            oracle.value_at_quantile(q),
            "quantile {q}"
        );
    }
    assert_eq!(
        (total.latency.min(), total.latency.max()),
        (oracle.min(), oracle.max())
    );
    let buckets = |h: &histogram::Hist| -> Vec<(u64, u64)> {
        h.iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    };
    let (got, want) = (buckets(&total.latency), buckets(&oracle));
    let first_difference = got.iter().zip(&want).find(|(g, w)| g != w);
    assert!(
        got.len() == want.len() && first_difference.is_none(),
        "every bucket holds what was recorded into it: {} buckets merged, {} recorded; \
         first difference (merged, recorded): {first_difference:?}",
        got.len(),
        want.len()
    );
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
fn soak_windows_accumulate_the_first_and_last_tenth() {
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
    // Every drop has one cause: a worker's, or a lost worker's unsent.
    assert_eq!(c.drops.total() + c.unsent, c.dropped);
}

#[test]
fn per_request_totals_add_up_over_workers_late_and_duplicates() {
    let mut m = Merger::new(3, vec![0, 0, 1, 1], &[(0.0, 2.0), (2.0, 2.0)]).with_requests(&[3, 1]);
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
fn each_second_carries_its_own_per_request_split() {
    let mut m = Merger::new(2, vec![0; 2], &[(0.0, 2.0)]).with_requests(&[3, 1]);
    for w in 0..2usize {
        for i in 0..2u32 {
            m.add(w, wi2(i, 20, 15, u64::from(i), 0, 1000)).unwrap();
        }
    }
    let out = m.ready().unwrap();
    assert_eq!(out.len(), 2);
    for s in &out {
        let sum = |f: fn(&RequestCounts) -> u64| s.requests.iter().map(f).sum::<u64>();
        assert_eq!(s.requests.len(), 2);
        assert_eq!(sum(|c| c.ok), s.acc.counts.ok);
        assert_eq!(sum(|c| c.errors), s.acc.counts.errors());
        assert_eq!(s.requests[0].ok, 2 * 15);
        assert_eq!(s.requests[1].errors, 2 * u64::from(s.index));
    }
    // Without a mix nothing is split.
    let mut m = Merger::new(1, vec![0], &[(0.0, 1.0)]);
    m.add(0, wi(0, 5, 1000)).unwrap();
    assert!(m.ready().unwrap()[0].requests.is_empty());
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
fn seconds_past_the_last_stage_count_in_the_last_stage() {
    // Two stages of one second; seconds 2 and 3 are requests draining
    // after the run, beyond the stage table.
    let mut m = Merger::new(1, vec![0, 1], &[(0.0, 1.0), (1.0, 1.0)]);
    for (second, ok) in [(0, 1), (1, 10), (2, 100), (3, 1000)] {
        m.add(0, wi(second, ok, 1000)).unwrap();
    }
    m.finish_worker(0);
    let out = m.ready().unwrap();
    assert_eq!(
        out.iter().map(|i| i.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert_eq!((m.stages[0].counts.ok, m.stages[1].counts.ok), (1, 1110));
    // A late report of a draining second goes to the last stage too.
    let mut m = Merger::new(2, vec![0, 1], &[(0.0, 1.0), (1.0, 1.0)]);
    m.finish_worker(1);
    for second in 0..4 {
        m.add(0, wi(second, 1, 1000)).unwrap();
    }
    assert_eq!(m.ready().unwrap().len(), 4);
    assert_eq!(m.add(1, wi(3, 7, 1000)).unwrap(), Added::Late);
    assert_eq!((m.stages[0].counts.ok, m.stages[1].counts.ok), (1, 10));
}

#[test]
fn a_lost_workers_in_flight_ends_where_it_was_not_by_weight() {
    // Weights 3 : 1, but in flight 1 of definition 0 and 5 of definition 1.
    let mut m = Merger::new(1, vec![0; 10], &[(0.0, 10.0)]).with_requests(&[3, 1]);
    let mut w = wi2(0, 10, 6, 0, 5, 1000);
    w.counts.intended += 1;
    w.counts.sent += 1;
    w.requests[0].counts.intended += 1;
    w.requests[0].counts.sent += 1;
    m.add(0, w).unwrap();
    let delta = m.settle_lost(0, 0);
    assert_eq!(delta.lost, 6);
    assert_eq!(
        (m.requests[0].counts.errors, m.requests[1].counts.errors),
        (1, 5)
    );
    assert!(m.requests.iter().all(|r| r.counts.outstanding() == 0));
}

#[test]
fn the_run_is_over_once_every_worker_has_finished() {
    let mut m = Merger::new(2, vec![0; 2], &[(0.0, 2.0)]);
    assert!(!m.all_finished());
    m.finish_worker(0);
    assert!(!m.all_finished(), "worker 1 still runs");
    m.finish_worker(1);
    assert!(m.all_finished());
    // A joiner counts only once it has started.
    let j = m.add_worker();
    assert!(m.all_finished());
    m.activate(j);
    assert!(!m.all_finished());
    m.finish_worker(j);
    assert!(m.all_finished());
}

#[test]
fn a_workers_books_are_small() {
    // Kept for every worker for the whole run: 2-digit latency books
    // (under 60 KB of counts; the run's 3-digit histogram has 188 KB) and no
    // histogram to speak of in its accumulator.
    let mut m = Merger::new(1, vec![0], &[(0.0, 1.0)]);
    m.add(0, wi(0, 5, 1234)).unwrap();
    let w = m.worker(0);
    let run = Acc::default();
    assert_eq!((w.latency.sigfig(), run.latency.sigfig()), (2, 3));
    assert_eq!(
        (w.latency.low(), w.latency.high()),
        (run.latency.low(), run.latency.high()),
        "the same range of latencies"
    );
    assert_eq!(w.latency.len(), 5);
    let bytes = |h: &histogram::Hist| h.distinct_values() * 8;
    assert!(bytes(&w.latency) < 60_000, "{}", bytes(&w.latency));
    assert!(bytes(&run.latency) > 150_000, "{}", bytes(&run.latency));
    let kept = &m.workers[0];
    for h in [&kept.latency, &kept.service, &kept.send_lag] {
        assert!(bytes(h) < 1_000, "{}", bytes(h));
    }
}

#[test]
fn codes_and_checks_add_up_in_every_span() {
    let mut m = Merger::new(2, vec![0, 1], &[(0.0, 1.0), (1.0, 1.0)]);
    for second in 0..2 {
        for w in 0..2usize {
            let mut x = wi(second, 5, 10);
            x.counts.by_kind[ErrorKind::Status] = 3;
            x.counts.by_kind[ErrorKind::Check] = 3;
            x.status_codes = vec![(503, 1), (500, 2)];
            x.grpc_status_codes = vec![(14, 3)];
            x.checks = vec![((0, 1), 1), ((1, 0), 2)];
            m.add(w, x).unwrap();
        }
    }
    let out = m.ready().unwrap();
    assert_eq!(out.len(), 2);
    let total = m.total().unwrap();
    // Per second (two workers), per stage (one second each), whole run.
    for (acc, n) in [
        (&out[0].acc, 2),
        (&out[1].acc, 2),
        (&m.stages[0], 2),
        (&m.stages[1], 2),
        (&total, 4),
    ] {
        assert_eq!(acc.status_codes, BTreeMap::from([(500, 2 * n), (503, n)]));
        assert_eq!(acc.grpc_status_codes, BTreeMap::from([(14, 3 * n)]));
        assert_eq!(acc.checks, BTreeMap::from([((0, 1), n), ((1, 0), 2 * n)]));
    }
    // Per worker, over both seconds.
    assert_eq!(
        m.workers[0].checks,
        BTreeMap::from([((0, 1), 2), ((1, 0), 4)])
    );
    assert_eq!(
        m.workers[1].status_codes,
        BTreeMap::from([(500, 4), (503, 2)])
    );
}

#[test]
fn seconds_keep_each_workers_latency_bytes_only_up_to_the_log_limit() {
    // Up to the limit: every worker's line, the bytes as they arrived.
    let mut m = Merger::new(MAX_WORKER_LINES, vec![0; 1], &[(0.0, 1.0)]);
    assert!(m.keeps_worker_lines() && !plain_histograms(MAX_WORKER_LINES));
    for w in 0..MAX_WORKER_LINES {
        m.add(w, wi(0, 3, 1000 + w as u64)).unwrap();
    }
    let second = m.ready().unwrap().remove(0);
    assert_eq!(second.worker_latency.len(), MAX_WORKER_LINES);
    let (slot, bytes, max) = &second.worker_latency[7];
    assert_eq!((*slot, bytes), (7, &wi(0, 3, 1007).latency_encoded));
    assert_eq!(*max, wi(0, 3, 1007).latency.max());

    // One more (a joiner) and the run asks for plain histograms: the
    // seconds keep no bytes, yet merge every worker's figures.
    let mut m = Merger::new(MAX_WORKER_LINES, vec![0; 1], &[(0.0, 1.0)]);
    let joiner = m.add_worker();
    m.activate(joiner);
    assert!(!m.keeps_worker_lines() && plain_histograms(MAX_WORKER_LINES + 1));
    for w in 0..=MAX_WORKER_LINES {
        m.add(w, wi(0, 3, 1000)).unwrap();
    }
    let second = m.ready().unwrap().remove(0);
    assert!(second.worker_latency.is_empty());
    assert_eq!(second.workers as usize, MAX_WORKER_LINES + 1);
    assert_eq!(second.acc.latency.len(), 3 * (MAX_WORKER_LINES as u64 + 1));
}

#[test]
fn workers_report_each_second_up_to_the_message_budget_then_in_batches() {
    assert_eq!(report_every(0, REPORTS_PER_SECOND), 1);
    assert_eq!(report_every(1, REPORTS_PER_SECOND), 1);
    assert_eq!(report_every(REPORTS_PER_SECOND, REPORTS_PER_SECOND), 1);
    assert_eq!(report_every(REPORTS_PER_SECOND + 1, REPORTS_PER_SECOND), 2);
    assert_eq!(report_every(2 * REPORTS_PER_SECOND, REPORTS_PER_SECOND), 2);
    assert_eq!(report_every(10_000, REPORTS_PER_SECOND), 4);
    assert_eq!(
        report_every(5 * REPORTS_PER_SECOND, REPORTS_PER_SECOND),
        MAX_REPORT_EVERY
    );
    assert_eq!(
        report_every(usize::MAX, REPORTS_PER_SECOND),
        MAX_REPORT_EVERY
    );
    // Another budget (`--max-reports-per-second`); 0 is taken as 1.
    assert_eq!(report_every(3, 1), 3);
    assert_eq!(report_every(3, 0), 3);
    assert_eq!(report_every(10_000, 10_000), 1);
    // Below the cap, the messages a second never exceed the budget.
    for workers in (0..=5 * REPORTS_PER_SECOND).step_by(97) {
        let every = report_every(workers, REPORTS_PER_SECOND) as usize;
        assert!(workers <= every * REPORTS_PER_SECOND, "{workers} workers");
        assert!(every == 1 || workers > (every - 1) * REPORTS_PER_SECOND);
    }
}

/// Reports that arrive in batches (each worker its seconds 0–2 at once, the
/// workers in turn) merge into the same seconds as reports a second at a
/// time: nothing is emitted before every worker's batch is in, then all of
/// them, in order.
#[test]
fn seconds_reported_in_batches_merge_as_seconds_reported_one_by_one() {
    let (workers, seconds) = (3usize, 3u32);
    let report = |w: usize, i: u32| wi(i, 2 + w as u64, 1000 * (1 + i as u64) + w as u64);

    let mut by_second = Merger::new(workers, vec![0; seconds as usize], &[(0.0, 3.0)]);
    let mut one_by_one = Vec::new();
    for i in 0..seconds {
        for w in 0..workers {
            by_second.add(w, report(w, i)).unwrap();
        }
        one_by_one.extend(by_second.ready().unwrap());
    }

    let mut batched = Merger::new(workers, vec![0; seconds as usize], &[(0.0, 3.0)]);
    let mut out = Vec::new();
    for w in 0..workers {
        for i in 0..seconds {
            assert_eq!(batched.add(w, report(w, i)).unwrap(), Added::Merged);
        }
        let ready = batched.ready().unwrap();
        if w + 1 < workers {
            assert!(ready.is_empty(), "emitted before worker {} sent", w + 1);
        }
        out.extend(ready);
    }
    assert_eq!(batched.late, 0);
    assert_eq!(out.len(), one_by_one.len());
    for (a, b) in out.iter().zip(&one_by_one) {
        assert_eq!((a.index, a.workers), (b.index, b.workers));
        assert_eq!(a.acc.counts, b.acc.counts);
        assert_eq!(a.acc.latency, b.acc.latency);
        assert_eq!(a.acc.service, b.acc.service);
    }
    assert_eq!(
        batched.total().unwrap().latency,
        by_second.total().unwrap().latency
    );
}
