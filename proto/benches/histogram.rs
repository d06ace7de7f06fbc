//! What one worker-second's latency histogram costs on the wire: the worker
//! encodes it (V2, deflated unless small) once a second, the coordinator decodes it,
//! merges it, and writes it into the per-worker interval log.
//!
//! `cargo bench -p volley-proto --bench histogram`
//! (add `-- --warm-up-time 1 --measurement-time 2` for a quick pass).

use criterion::{criterion_group, criterion_main, Criterion};
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use std::hint::black_box;
use std::time::Duration;
use volley_proto::histogram::{self, Hist};

/// A realistic second of one worker (see [`histogram::synthetic_second`]).
fn realistic_second(seed: u64, values: usize) -> Hist {
    histogram::synthetic_second(seed, values as u64).0
}

fn benches(c: &mut Criterion) {
    let a = realistic_second(1, 20_000);
    let b = realistic_second(2, 20_000);
    let encoded = histogram::encode(&a);
    eprintln!(
        "realistic second: {} values, p50 {} µs, p99 {} µs, max {} µs, {} encoded bytes",
        a.len(),
        a.value_at_quantile(0.5),
        a.value_at_quantile(0.99),
        a.max(),
        encoded.len()
    );

    let mut g = c.benchmark_group("histogram");
    // The worker's path: one encoder and one buffer, reused every second;
    // beside it HdrHistogram's own V2 + DEFLATE serializer (what workers
    // used before), which builds a fresh zlib compressor per histogram.
    let mut enc = histogram::Encoder::new();
    let mut ser = V2DeflateSerializer::new();
    let mut out = Vec::new();
    for values in [10usize, 20_000] {
        let h = realistic_second(5, values);
        g.bench_function(format!("encode/{values}"), |bch| {
            bch.iter(|| {
                enc.encode_into(black_box(&h), &mut out);
                black_box(out.len())
            });
        });
        g.bench_function(format!("encode_crate_deflate/{values}"), |bch| {
            bch.iter(|| {
                out.clear();
                ser.serialize(black_box(&h), &mut out).expect("into a Vec");
                black_box(out.len())
            });
        });
    }
    // The coordinator's path: bounded inflate, header checks, deserialize.
    g.bench_function("decode", |bch| {
        bch.iter(|| histogram::decode(black_box(&encoded)).expect("decodes"));
    });
    // The coordinator's two ways to take in a report: decode fully and merge
    // (walks all ~24k buckets), or decode the non-zero buckets only and add
    // them. Which wins depends on how many buckets a worker's second fills:
    // 100 values (a 1,000-worker run at 100k rps) or 20,000.
    for values in [100usize, 20_000] {
        let h = realistic_second(3, values);
        let bytes = histogram::encode(&h);
        let mut acc = a.clone();
        g.bench_function(format!("decode_and_merge_full/{values}"), |bch| {
            bch.iter(|| {
                let h = histogram::decode(black_box(&bytes)).expect("decodes");
                histogram::merge(&mut acc, &h).expect("same shape")
            });
        });
        let mut acc = a.clone();
        g.bench_function(format!("decode_and_merge_sparse/{values}"), |bch| {
            bch.iter(|| {
                let s = histogram::decode_sparse(black_box(&bytes)).expect("decodes");
                s.add_to(&mut acc).expect("same shape")
            });
        });
        // What the coordinator does now for an open second: the non-zero
        // buckets added by index into a `Dense` accumulator.
        let mut dense = histogram::Dense::default();
        g.bench_function(format!("decode_and_add_dense/{values}"), |bch| {
            bch.iter(|| {
                let d = histogram::decode_for_merge(black_box(&bytes)).expect("decodes");
                d.add_to_dense(&mut dense).expect("standard shape")
            });
        });
        // A worker's own books keep 2 digits: the decoded second added there
        // as a histogram (HdrHistogram walks it value by value) or as its
        // non-zero buckets, a group per 2-digit bucket.
        let books = || {
            hdrhistogram::Histogram::<u64>::new_with_bounds(
                histogram::LOWEST_US,
                histogram::HIGHEST_US,
                2,
            )
            .expect("valid bounds")
        };
        let full = histogram::decode(&bytes).expect("decodes");
        let mut two = books();
        g.bench_function(format!("worker_books_merge_full/{values}"), |bch| {
            bch.iter(|| histogram::merge(&mut two, black_box(&full)).expect("in range"));
        });
        let sparse = histogram::decode_sparse(&bytes).expect("decodes");
        let mut two = books();
        g.bench_function(format!("worker_books_add_sparse/{values}"), |bch| {
            bch.iter(|| black_box(&sparse).add_to(&mut two).expect("in range"));
        });
    }
    // What the coordinator does with each of a report's three histograms:
    // 10 values (10,000 workers at 100k rps) to 20,000.
    // Small ones arrive uncompressed (see `histogram::RAW_MAX`);
    // `decode_for_merge_deflated` is the same histogram deflated, as every
    // one was before.
    for values in [10usize, 100, 20_000] {
        let h = realistic_second(4, values);
        let bytes = histogram::encode(&h);
        g.bench_function(format!("decode_for_merge/{values}"), |bch| {
            bch.iter(|| histogram::decode_for_merge(black_box(&bytes)).expect("decodes"));
        });
        let mut deflated = Vec::new();
        ser.serialize(&h, &mut deflated).expect("into a Vec");
        g.bench_function(format!("decode_for_merge_deflated/{values}"), |bch| {
            bch.iter(|| histogram::decode_for_merge(black_box(&deflated)).expect("decodes"));
        });
    }
    // Adding one worker's second into the merged second (the sum only grows,
    // which costs the same every time).
    let mut acc = a.clone();
    g.bench_function("merge", |bch| {
        bch.iter(|| histogram::merge(&mut acc, black_box(&b)).expect("same shape"));
    });
    // The per-worker interval-log line the coordinator publishes for every
    // worker every second (base64 of the bytes as received).
    g.bench_function("interval_log_line_encoded", |bch| {
        bch.iter(|| {
            histogram::interval_log_line_encoded(
                black_box(&encoded),
                Duration::from_secs(7),
                Duration::from_secs(1),
                a.max() as f64 / 1000.0,
                Some("0b5f3c52-6a8e-4b55-9d55-7b1f8f3e0a11"),
            )
        });
    });
    g.finish();
}

criterion_group!(histogram_benches, benches);
criterion_main!(histogram_benches);
