//! The histogram every latency goes into, and its wire encoding.
//!
//! Values are microseconds from 1 µs to one hour at 3 significant digits, the
//! shape wrk2 and Hyperfoil use. On the wire a histogram is HdrHistogram's V2
//! format, compressed with DEFLATE unless it is small, so standard tools read
//! it; decoding is bounded so hostile bytes cannot exhaust memory.

use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer, V2Serializer};
use hdrhistogram::{Counter, Histogram};
use std::time::Duration;

pub type Hist = Histogram<u64>;

/// The histogram a worker records one second into: the standard shape with
/// 32-bit counters, half the memory of [`Hist`] (94 KB against 188 KB, and
/// a worker holds three for every second still open). A bucket holds at
/// most 4.29 billion in one second, far beyond any one worker's rate; the
/// counters saturate rather than wrap. On the wire it is the same V2 bytes.
pub type SecondHist = Histogram<u32>;

pub const LOWEST_US: u64 = 1;
pub const HIGHEST_US: u64 = 3_600_000_000;
pub const SIGFIG: u8 = 3;
/// Largest encoded histogram accepted from the network.
pub const MAX_ENCODED: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HistError {
    #[error("histogram is {0} bytes; at most {MAX_ENCODED} are accepted")]
    TooLarge(usize),
    #[error("histogram bytes do not decode: {0}")]
    Decode(String),
    #[error("histogram covers {lowest}..{highest} µs at {sigfig} digits; expected at most {LOWEST_US}..{HIGHEST_US} µs at {SIGFIG}")]
    Shape {
        lowest: u64,
        highest: u64,
        sigfig: u8,
    },
    #[error("histogram does not merge: {0}")]
    Merge(String),
}

/// A fresh, empty histogram of the standard shape.
pub fn new_hist() -> Hist {
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG).expect("constant bounds are valid")
}

/// A fresh, empty worker-second histogram (see [`SecondHist`]).
pub fn new_second_hist() -> SecondHist {
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG).expect("constant bounds are valid")
}

/// Records a latency, clamping to the histogram's range so that nothing is
/// ever silently lost (a latency above an hour counts as an hour).
#[inline]
pub fn record<T: Counter>(h: &mut Histogram<T>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(LOWEST_US, HIGHEST_US);
    h.record(us).expect("value clamped into range");
}

/// Histograms whose uncompressed V2 form is at most this many bytes go on
/// the wire uncompressed. DEFLATE does not pay below a few hundred bytes (a
/// worker-second of 10 values: 68 bytes raw, 87 deflated), and inflating is
/// most of what decoding a small histogram costs the coordinator (zlib
/// state and Huffman tables per stream). Larger ones are deflated: 20,000
/// values are 5,365 bytes raw and 2,672 deflated. This is the limit for a
/// histogram the coordinator may have to write into an interval log, which
/// carries them deflated (see [`deflated`]).
pub const RAW_MAX: usize = 512;

/// The limit for a histogram the coordinator only merges (see
/// [`Encoder::encode_plain_into`]): inflating a 20,000-value second costs
/// it more than the 2.7 KB the wire saves, and a worker sending 20,000
/// requests a second moves megabytes of its own traffic beside it. Above
/// this (a second spread over most of the 23,552 buckets) it is deflated,
/// which keeps a report well inside the message limit.
pub const PLAIN_MAX: usize = 64 * 1024;

/// Encodes histograms for the wire, reusing its buffers and its deflate
/// state from one histogram to the next (a fresh zlib compressor allocates
/// and zeroes a few hundred KB).
pub struct Encoder {
    v2: V2Serializer,
    raw: Vec<u8>,
    deflater: Deflater,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder {
            v2: V2Serializer::new(),
            raw: Vec::new(),
            deflater: Deflater::new(),
        }
    }

    /// Encodes `h` into `out` (cleared first): HdrHistogram V2 when that is
    /// at most [`RAW_MAX`] bytes, else V2 + DEFLATE. Both are standard
    /// encodings (cookies `0x1c849313` and `0x1c849314`), and [`decode`]
    /// reads either.
    pub fn encode_into<T: Counter>(&mut self, h: &Histogram<T>, out: &mut Vec<u8>) {
        self.encode_up_to(h, out, RAW_MAX);
    }

    /// As [`Encoder::encode_into`], uncompressed up to [`PLAIN_MAX`] bytes:
    /// for a histogram that the coordinator merges and never logs as it is.
    pub fn encode_plain_into<T: Counter>(&mut self, h: &Histogram<T>, out: &mut Vec<u8>) {
        self.encode_up_to(h, out, PLAIN_MAX);
    }

    fn encode_up_to<T: Counter>(&mut self, h: &Histogram<T>, out: &mut Vec<u8>, plain_max: usize) {
        self.raw.clear();
        self.v2
            .serialize(h, &mut self.raw)
            .expect("serializing into a Vec cannot fail");
        out.clear();
        if self.raw.len() <= plain_max {
            out.extend_from_slice(&self.raw);
        } else {
            self.deflater.deflate_v2(&self.raw, out);
        }
    }
}

/// A histogram in the wire's form (see [`Encoder::encode_into`]).
pub fn encode<T: Counter>(h: &Histogram<T>) -> Vec<u8> {
    let mut out = Vec::new();
    Encoder::new().encode_into(h, &mut out);
    out
}

/// A zlib compressor, reset and reused for each histogram.
struct Deflater {
    z: flate2::Compress,
}

impl Deflater {
    fn new() -> Deflater {
        Deflater {
            z: flate2::Compress::new(flate2::Compression::default(), true),
        }
    }

    /// Appends uncompressed V2 bytes `raw` to `out` as V2 + DEFLATE: the
    /// compressed cookie, the compressed length, then the zlib stream (what
    /// HdrHistogram's `V2DeflateSerializer` writes).
    fn deflate_v2(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        let at = out.len();
        out.extend_from_slice(&decode::V2_DEFLATE_COOKIE.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.reserve(raw.len() / 2 + 64);
        self.z.reset();
        loop {
            let read = self.z.total_in() as usize;
            let status = self
                .z
                .compress_vec(&raw[read..], out, flate2::FlushCompress::Finish)
                .expect("compressing into a Vec cannot fail");
            if status == flate2::Status::StreamEnd {
                break;
            }
            out.reserve(out.capacity().max(256));
        }
        let len = (out.len() - at - 8) as u32;
        out[at + 4..at + 8].copy_from_slice(&len.to_be_bytes());
    }
}

/// Histogram bytes in the wire's form as V2 + DEFLATE, the form interval
/// logs carry (HdrHistogram's log readers expect the compressed cookie):
/// uncompressed V2 is deflated, anything else is returned as it is.
pub fn deflated(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !decode::is_raw_v2(bytes) {
        return std::borrow::Cow::Borrowed(bytes);
    }
    thread_local! {
        static DEFLATER: std::cell::RefCell<Deflater> = std::cell::RefCell::new(Deflater::new());
    }
    let mut out = Vec::with_capacity(bytes.len() + 16);
    DEFLATER.with(|d| d.borrow_mut().deflate_v2(bytes, &mut out));
    std::borrow::Cow::Owned(out)
}

mod coarse;
mod decode;
mod dense;

/// Every bucket of a histogram and its count, for exact comparisons in
/// tests.
#[cfg(test)]
fn buckets(h: &Hist) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

pub use coarse::{new_coarse_hist, Coarse, COARSE_SIGFIG};
pub use decode::{decode, decode_for_merge, decode_sparse, Decoded, Sparse};
pub use dense::Dense;

/// A reproducible second of one worker, for the benchmarks and the
/// coordinator's scale harness: `values` latencies lognormal around 2 ms
/// (σ = 1), clamped to 100 µs..50 ms, drawn from `seed` (SplitMix64 +
/// Box–Muller); the service time is 70 % of each latency. Returns
/// (latency, service).
pub fn synthetic_second(seed: u64, values: u64) -> (Hist, Hist) {
    let mut normal = standard_normal(seed);
    let mut latency = new_hist();
    let mut service = new_hist();
    for _ in 0..values {
        let us = (2000.0 * normal().exp()).clamp(100.0, 50_000.0);
        latency.record(us as u64).expect("in range");
        service.record((us * 0.7) as u64).expect("in range");
    }
    (latency, service)
}

/// A reproducible second of a worker's send lag, for the same harnesses:
/// `values` lags lognormal around 50 µs (σ = 1), clamped to 1 µs..5 ms.
pub fn synthetic_send_lag(seed: u64, values: u64) -> Hist {
    let mut normal = standard_normal(seed ^ 0x5EED);
    let mut lag = new_hist();
    for _ in 0..values {
        let us = (50.0 * normal().exp()).clamp(1.0, 5000.0);
        lag.record(us as u64).expect("in range");
    }
    lag
}

/// A reproducible report of one worker's second, as a worker sends it
/// ([`synthetic_second`] and [`synthetic_send_lag`], encoded as
/// `volley_worker::encode` does: service and send lag plain, the latency
/// plain when `plain_latency`, else deflated above [`RAW_MAX`]), for the
/// benchmarks and the scale harness. `values` ok requests of `values + 3`
/// intended, one timeout, two dropped; `run_id` empty and `index` 0 for
/// the caller to set.
pub fn synthetic_report(seed: u64, values: u64, plain_latency: bool) -> crate::pb::IntervalReport {
    use crate::pb;
    let (latency, service) = synthetic_second(seed, values);
    let send_lag = synthetic_send_lag(seed, values + 1);
    let mut enc = Encoder::new();
    let mut encoded = |h: &Hist, plain: bool| {
        let mut out = Vec::new();
        if plain {
            enc.encode_plain_into(h, &mut out);
        } else {
            enc.encode_into(h, &mut out);
        }
        out
    };
    pb::IntervalReport {
        run_id: String::new(),
        index: 0,
        intended: values + 3,
        sent: values + 1,
        ok: values,
        dropped: 2,
        errors: Some(pb::ErrorCounts {
            timeout: 1,
            ..pb::ErrorCounts::default()
        }),
        status_codes: vec![],
        grpc_status_codes: vec![],
        // One request definition: no breakdown.
        requests: vec![],
        check_failures: vec![],
        drops: Some(pb::DropCounts {
            max_in_flight: 2,
            ..pb::DropCounts::default()
        }),
        latency_hist: encoded(&latency, plain_latency),
        service_hist: encoded(&service, true),
        send_lag_hist: encoded(&send_lag, true),
        in_flight: 40,
        rss_bytes: 12 << 20,
        cpu_nanos: 0,
    }
}

/// Standard normal draws from `seed` (SplitMix64 + Box–Muller).
fn standard_normal(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) + 1) as f64 / (1u64 << 53) as f64
    };
    move || (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos()
}

/// Adds `other` into `into` exactly (bucket by bucket, never by averaging).
pub fn merge<T: Counter>(into: &mut Histogram<T>, other: &Histogram<T>) -> Result<(), HistError> {
    into.add(other)
        .map_err(|e| HistError::Merge(format!("{e:?}")))
}

/// One line of an HdrHistogram interval log (no trailing newline):
/// `start,duration,max,base64`. Start is seconds since the log's base time;
/// the max column is in milliseconds (the log declares `MaxValueDivisor`
/// 1000), the histogram itself in microseconds.
pub fn interval_log_line(h: &Hist, start: Duration, duration: Duration) -> String {
    let mut buf = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    {
        let mut w = IntervalLogWriterBuilder::new()
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut buf, &mut ser)
            .expect("writing to a Vec cannot fail");
        w.write_histogram(h, start, duration, None)
            .expect("writing to a Vec cannot fail");
    }
    let text = String::from_utf8(buf).expect("interval logs are ASCII");
    // The builder wrote its MaxValueDivisor header first; keep the last line.
    text.lines().last().unwrap_or_default().to_string()
}

/// An interval-log line from histogram bytes in the wire's form (as workers
/// send them), without decoding and re-encoding (small uncompressed ones are
/// deflated, see [`deflated`]): `max_ms` is the histogram's max in
/// milliseconds, `tag` an optional `Tag=` value.
pub fn interval_log_line_encoded(
    encoded: &[u8],
    start: Duration,
    duration: Duration,
    max_ms: f64,
    tag: Option<&str>,
) -> String {
    use base64::Engine;
    let encoded = deflated(encoded);
    let mut line = String::with_capacity(encoded.len() * 4 / 3 + 64);
    if let Some(tag) = tag {
        line.push_str("Tag=");
        line.push_str(tag);
        line.push(',');
    }
    line.push_str(&format!(
        "{:.3},{:.3},{:.3},",
        start.as_secs_f64(),
        duration.as_secs_f64(),
        max_ms
    ));
    base64::engine::general_purpose::STANDARD.encode_string(&encoded, &mut line);
    line
}

/// The header of Volley's interval logs.
pub fn interval_log_header(base_unix_secs: f64) -> String {
    format!(
        "#[Histogram log written by Volley {}: latency from the scheduled send time, in microseconds]\n\
         #[StartTime: {base_unix_secs:.3} (seconds since epoch)]\n\
         #[BaseTime: {base_unix_secs:.3} (seconds since epoch)]\n\
         #[MaxValueDivisor: 1000.000]\n\
         \"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    #[test]
    fn encode_decode_round_trip() {
        let mut h = new_hist();
        for v in [1u64, 10, 250, 20_000, 20_000, 3_000_000] {
            h.record(v).unwrap();
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back.len(), 6);
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
        assert_eq!(back.max(), h.max());
    }

    #[test]
    fn a_worker_second_is_the_same_histogram_on_the_wire() {
        // 32-bit counters record and encode exactly what 64-bit ones do.
        for values in [10u64, 20_000] {
            let (h, _) = synthetic_second(values + 3, values);
            let mut second = new_second_hist();
            for v in h.iter_recorded() {
                second
                    .record_n(v.value_iterated_to(), v.count_at_value() as u32)
                    .unwrap();
            }
            let bytes = encode(&second);
            assert_eq!(bytes, encode(&h), "{values} values");
            assert_eq!(decode(&bytes).unwrap(), h);
        }
        // Both kinds take the same clamped durations.
        let (mut a, mut b) = (new_second_hist(), new_hist());
        for d in [
            Duration::ZERO,
            Duration::from_micros(1500),
            Duration::from_secs(7200),
        ] {
            record(&mut a, d);
            record(&mut b, d);
        }
        assert_eq!(decode(&encode(&a)).unwrap(), b);
    }

    #[test]
    fn record_clamps_instead_of_losing() {
        let mut h = new_hist();
        record(&mut h, Duration::from_secs(7200));
        record(&mut h, Duration::ZERO);
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 1);
        assert!(h.equivalent(h.max(), HIGHEST_US));
    }

    #[test]
    fn merge_is_exact() {
        let (mut a, mut b, mut all) = (new_hist(), new_hist(), new_hist());
        for v in 1..=1000u64 {
            a.record(v * 10).unwrap();
            all.record(v * 10).unwrap();
        }
        for v in 1..=10u64 {
            b.record(v * 100_000).unwrap();
            all.record(v * 100_000).unwrap();
        }
        merge(&mut a, &b).unwrap();
        assert_eq!(a, all);
    }

    #[test]
    fn interval_log_line_reads_back() {
        let mut h = new_hist();
        h.record(1500).unwrap();
        let mut log = interval_log_header(1_700_000_000.0);
        log.push_str(&interval_log_line(
            &h,
            Duration::from_secs(3),
            Duration::from_secs(1),
        ));
        log.push('\n');
        let entries: Vec<_> = IntervalLogIterator::new(log.as_bytes())
            .filter_map(|e| match e.unwrap() {
                LogEntry::Interval(i) => Some((
                    i.start_timestamp(),
                    i.max(),
                    i.encoded_histogram().to_string(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, Duration::from_secs(3));
        assert!((entries[0].1 - 1.5).abs() < 0.01);
    }

    #[test]
    fn worker_lines_are_deflated_whichever_form_arrived() {
        use base64::Engine;
        // A worker's small second arrives uncompressed, a big one deflated;
        // its log line carries V2 + DEFLATE either way (log readers expect
        // the compressed cookie) and reads back to the same histogram.
        for values in [10u64, 20_000] {
            let h = synthetic_second(values, values).0;
            let line = interval_log_line_encoded(
                &encode(&h),
                Duration::from_secs(4),
                Duration::from_secs(1),
                h.max() as f64 / 1000.0,
                Some("w1"),
            );
            let log = format!("{}{line}\n", interval_log_header(1_700_000_000.0));
            let mut seen = 0;
            for e in IntervalLogIterator::new(log.as_bytes()) {
                let LogEntry::Interval(i) = e.unwrap() else {
                    continue;
                };
                assert_eq!(i.tag().map(|t| t.as_str()), Some("w1"));
                assert_eq!(i.start_timestamp(), Duration::from_secs(4));
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(i.encoded_histogram())
                    .unwrap();
                assert_eq!(bytes[..4], [0x1c, 0x84, 0x93, 0x14], "compressed cookie");
                let back: Hist = hdrhistogram::serialization::Deserializer::new()
                    .deserialize(&mut std::io::Cursor::new(&bytes))
                    .unwrap();
                assert_eq!(back, h, "{values} values");
                seen += 1;
            }
            assert_eq!(seen, 1);
        }
    }
}
