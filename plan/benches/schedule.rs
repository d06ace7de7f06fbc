//! The per-request and per-assignment costs of the load plan: walking one
//! worker's share of the schedule, laying out a partition, and inverting the
//! rate curve.
//!
//! `cargo bench -p volley-plan --bench schedule`
//! (add `-- --warm-up-time 1 --measurement-time 2` for a quick pass).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use volley_plan::{Arrival, Partition, RateCurve, Share, ShareSchedule, Stage};

fn stage(secs: f64, from: f64, to: f64) -> Stage {
    Stage {
        name: "s".into(),
        duration: Duration::from_secs_f64(secs),
        from_rps: from,
        to_rps: to,
        burst: false,
    }
}

/// A long constant stage, so the schedule never runs out during a
/// measurement: 100,000 rps for a million seconds.
fn long_constant() -> RateCurve {
    RateCurve::new(&[stage(1e6, 100_000.0, 100_000.0)])
}

/// A warm-up ramp, a steady stage, a burst and a ramp down, repeated: the
/// shape `time_of` sees in a real scenario, with quadratic segments.
fn shaped() -> RateCurve {
    let mut stages = Vec::new();
    for _ in 0..3 {
        stages.push(stage(30.0, 0.0, 20_000.0));
        stages.push(stage(300.0, 20_000.0, 20_000.0));
        stages.push(stage(10.0, 80_000.0, 80_000.0));
        stages.push(stage(30.0, 20_000.0, 0.0));
    }
    RateCurve::new(&stages)
}

fn schedule(c: &mut Criterion) {
    let mut g = c.benchmark_group("schedule_next");
    g.throughput(Throughput::Elements(1));
    let one_of_64 = Partition::new(&[1; 64]).expect("valid weights").shares()[17].clone();
    let cases = [("whole", Share::whole()), ("share_1_of_64", one_of_64)];
    for arrival in [Arrival::Uniform, Arrival::Poisson] {
        for (name, share) in &cases {
            let id = BenchmarkId::new(arrival.as_str(), name);
            let mut s = ShareSchedule::new(long_constant(), share.clone(), arrival, 42);
            g.bench_function(id, |b| {
                b.iter(|| black_box(s.next()));
            });
        }
    }
    g.finish();
}

fn partition(c: &mut Criterion) {
    let mut g = c.benchmark_group("partition_new");
    g.sample_size(10);
    for n in [10usize, 1000, 10_000] {
        let equal = vec![1u32; n];
        g.bench_with_input(BenchmarkId::new("equal_weights", n), &equal, |b, w| {
            b.iter(|| Partition::new(black_box(w)).expect("valid weights"));
        });
    }
    // Mixed machines (weights 1..=4): a longer cycle for the same count.
    let mixed: Vec<u32> = (0..1000u32).map(|i| 1 + i % 4).collect();
    g.bench_with_input(BenchmarkId::new("weights_1_to_4", 1000), &mixed, |b, w| {
        b.iter(|| Partition::new(black_box(w)).expect("valid weights"));
    });
    let p = Partition::new(&vec![1u32; 10_000]).expect("valid weights");
    g.bench_function(BenchmarkId::new("shares", 10_000), |b| {
        b.iter(|| black_box(p.shares()));
    });
    g.finish();
}

fn time_of(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate_time_of");
    g.throughput(Throughput::Elements(1));
    let curve = shaped();
    let total = curve.total();
    // Monotone x with a kept hint: what a schedule does.
    let mut x = 0.0f64;
    let mut hint = 0usize;
    g.bench_function("monotone_hint", |b| {
        b.iter(|| {
            x += 1.0;
            if x >= total {
                x = 0.0;
                hint = 0;
            }
            black_box(curve.time_of(black_box(x), &mut hint))
        });
    });
    // Scattered x with a fresh hint each time: the binary-search path (a
    // reshare or a resumed run).
    let mut i = 0u64;
    g.bench_function("random_no_hint", |b| {
        b.iter(|| {
            i = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let x = (i >> 11) as f64 / (1u64 << 53) as f64 * total;
            let mut hint = 0usize;
            black_box(curve.time_of(black_box(x), &mut hint))
        });
    });
    g.finish();
}

criterion_group!(benches, schedule, partition, time_of);
criterion_main!(benches);
