//! The histogram every latency goes into, and its wire encoding.
//!
//! Values are microseconds from 1 µs to one hour at 3 significant digits, the
//! shape wrk2 and Hyperfoil use. On the wire a histogram is HdrHistogram's V2
//! format compressed with DEFLATE, so standard tools read it; decoding is
//! bounded so hostile bytes cannot exhaust memory.

use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use std::time::Duration;

pub type Hist = Histogram<u64>;

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

/// Records a latency, clamping to the histogram's range so that nothing is
/// ever silently lost (a latency above an hour counts as an hour).
#[inline]
pub fn record(h: &mut Hist, d: Duration) {
    let us = (d.as_micros() as u64).clamp(LOWEST_US, HIGHEST_US);
    h.record(us).expect("value clamped into range");
}

/// Encodes into `out` (cleared first).
pub fn encode_into(h: &Hist, ser: &mut V2DeflateSerializer, out: &mut Vec<u8>) {
    out.clear();
    ser.serialize(h, out)
        .expect("serializing into a Vec cannot fail");
}

pub fn encode(h: &Hist) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(h, &mut V2DeflateSerializer::new(), &mut out);
    out
}

/// Decodes bytes from the network, refusing anything that is not a histogram
/// of (at most) the standard shape.
pub fn decode(bytes: &[u8]) -> Result<Hist, HistError> {
    if bytes.len() > MAX_ENCODED {
        return Err(HistError::TooLarge(bytes.len()));
    }
    if bytes.is_empty() {
        return Ok(new_hist());
    }
    with_inflated(bytes, deserialize_inner)
}

/// The full HdrHistogram deserializer over inflated (checked) V2 bytes.
fn deserialize_inner(inner: &[u8]) -> Result<Hist, HistError> {
    let h: Hist = Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(inner))
        .map_err(|e| HistError::Decode(format!("{e:?}")))?;
    if h.low() < LOWEST_US || h.high() > HIGHEST_US * 2 || h.sigfig() > SIGFIG {
        return Err(HistError::Shape {
            lowest: h.low(),
            highest: h.high(),
            sigfig: h.sigfig(),
        });
    }
    Ok(h)
}

/// A report's histogram decoded in whichever form adds into accumulators
/// fastest: the non-zero buckets when there are few (a worker's second at
/// a low rate: ~3.5× faster than decode + merge, `cargo bench -p
/// volley-proto --bench histogram`), the full histogram when there are many
/// (walking the whole counts array beats adding thousands of buckets one by
/// one).
#[derive(Debug, Clone)]
pub enum Decoded {
    Sparse(Sparse),
    Full(Hist),
}

/// Inflated V2 payloads above this many bytes (roughly 2,000 non-zero
/// buckets) are decoded in full: the crossover measured by the bench.
const SPARSE_MAX_PAYLOAD: usize = 4096;

impl Decoded {
    /// Total count.
    pub fn len(&self) -> u64 {
        match self {
            Decoded::Sparse(s) => s.len(),
            Decoded::Full(h) => h.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The largest value recorded, as [`Hist::max`] reports it (the
    /// highest value equivalent to it).
    pub fn max(&self) -> u64 {
        match self {
            Decoded::Sparse(s) => s.max(),
            Decoded::Full(h) => h.max(),
        }
    }

    /// Adds into `into` (of the standard shape) exactly.
    pub fn add_to(&self, into: &mut Hist) -> Result<(), HistError> {
        match self {
            Decoded::Sparse(s) => s.add_to(into),
            Decoded::Full(h) => merge(into, h),
        }
    }

    /// As a full histogram.
    pub fn to_hist(&self) -> Result<Hist, HistError> {
        match self {
            Decoded::Sparse(s) => s.to_hist(),
            Decoded::Full(h) => Ok(h.clone()),
        }
    }
}

impl From<Hist> for Decoded {
    fn from(h: Hist) -> Self {
        Decoded::Full(h)
    }
}

/// Decodes bytes from the network for merging (see [`Decoded`]), with the
/// same checks as [`decode`].
pub fn decode_for_merge(bytes: &[u8]) -> Result<Decoded, HistError> {
    if bytes.len() > MAX_ENCODED {
        return Err(HistError::TooLarge(bytes.len()));
    }
    if bytes.is_empty() {
        return Ok(Decoded::Sparse(Sparse::default()));
    }
    with_inflated(bytes, |inner| {
        let payload_len = inner
            .get(4..8)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
        if payload_len > SPARSE_MAX_PAYLOAD {
            return deserialize_inner(inner).map(Decoded::Full);
        }
        sparse_inner(inner).map(Decoded::Sparse)
    })
}

const V2_COOKIE: u32 = 0x1c84_9313;
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;
/// Largest inflated V2 payload: the standard shape needs ~24k counts of at
/// most 9 bytes each.
const MAX_INFLATED: usize = 512 * 1024;

/// Inflates a V2+DEFLATE histogram ourselves, bounded, checks the inner
/// header (shape and declared payload length) before anything is allocated
/// from it, and hands the uncompressed V2 bytes to `f`.
///
/// The inflate state and its output buffer are kept per thread and reused:
/// a fresh zlib decoder allocates and zeroes its state (about 11 KB plus
/// a 32 KB window) for every histogram, which was a third of the
/// coordinator's CPU at 10,000 workers (`decode_for_merge/10` in
/// `cargo bench -p volley-proto --bench histogram`).
fn with_inflated<R>(
    bytes: &[u8],
    f: impl FnOnce(&[u8]) -> Result<R, HistError>,
) -> Result<R, HistError> {
    thread_local! {
        static INFLATER: std::cell::RefCell<Option<Inflater>> =
            const { std::cell::RefCell::new(None) };
    }
    INFLATER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => f(slot.get_or_insert_with(Inflater::new).inflate(bytes)?),
        // Only if `f` itself decodes (it does not): a private one.
        Err(_) => f(Inflater::new().inflate(bytes)?),
    })
}

/// A zlib inflate state and the buffer it inflates into, reused.
struct Inflater {
    z: flate2::Decompress,
    out: Vec<u8>,
}

impl Inflater {
    fn new() -> Inflater {
        Inflater {
            z: flate2::Decompress::new(true),
            out: Vec::with_capacity(4096),
        }
    }

    fn inflate(&mut self, bytes: &[u8]) -> Result<&[u8], HistError> {
        let be32 = |b: &[u8], at: usize| -> Option<u32> {
            b.get(at..at + 4)
                .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        };
        let be64 = |b: &[u8], at: usize| -> Option<u64> {
            b.get(at..at + 8).map(|s| {
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                u64::from_be_bytes(a)
            })
        };
        let bad = |m: &str| HistError::Decode(m.to_string());
        if be32(bytes, 0) != Some(V2_DEFLATE_COOKIE) {
            return Err(bad("not a V2+DEFLATE histogram (wrong cookie)"));
        }
        let input = bytes.get(8..).unwrap_or_default();
        self.z.reset(true);
        self.out.clear();
        loop {
            let (read, written) = (self.z.total_in(), self.z.total_out());
            let status = self
                .z
                .decompress_vec(
                    &input[read as usize..],
                    &mut self.out,
                    // Not `Finish`: miniz_oxide fails a `Finish` for good once
                    // the output buffer is too small for the whole stream.
                    flate2::FlushDecompress::None,
                )
                .map_err(|e| HistError::Decode(format!("DEFLATE: {e}")))?;
            if status == flate2::Status::StreamEnd {
                break;
            }
            if self.out.len() > MAX_INFLATED {
                return Err(bad("inflated histogram is too large"));
            }
            if self.out.len() == self.out.capacity() {
                // Double, up to one byte past the bound (to detect it).
                let want = (self.out.capacity() * 2).clamp(4096, MAX_INFLATED + 1);
                self.out.reserve_exact(want - self.out.len());
            } else if (read, written) == (self.z.total_in(), self.z.total_out()) {
                return Err(bad("DEFLATE: the stream ends early"));
            }
        }
        let inner = &self.out[..];
        if inner.len() > MAX_INFLATED {
            return Err(bad("inflated histogram is too large"));
        }
        if be32(inner, 0) != Some(V2_COOKIE) {
            return Err(bad("inner payload is not a V2 histogram"));
        }
        let payload_len = be32(inner, 4).ok_or_else(|| bad("truncated header"))? as usize;
        let digits = be32(inner, 12).ok_or_else(|| bad("truncated header"))?;
        let lowest = be64(inner, 16).ok_or_else(|| bad("truncated header"))?;
        let highest = be64(inner, 24).ok_or_else(|| bad("truncated header"))?;
        if payload_len > inner.len().saturating_sub(40) {
            return Err(bad("declared payload is longer than the data"));
        }
        if lowest < LOWEST_US || highest > HIGHEST_US * 2 || digits > u32::from(SIGFIG) {
            return Err(HistError::Shape {
                lowest,
                highest,
                sigfig: digits.min(255) as u8,
            });
        }
        Ok(inner)
    }
}

/// A decoded histogram as its non-zero buckets only: what a merge needs,
/// without allocating and zeroing the full counts array (~24k buckets,
/// 190 KB) that [`decode`] builds for every report. The coordinator decodes
/// each worker's second once into this form and adds it into as many
/// accumulators as it keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sparse {
    /// (value at the bucket's low end in µs, count), in bucket order.
    buckets: Vec<(u64, u64)>,
}

/// Sub-bucket half count of the standard shape (3 digits: 2048 sub-buckets).
const HALF_COUNT_MAGNITUDE: u32 = 10;
const HALF_COUNT: u64 = 1 << HALF_COUNT_MAGNITUDE;

/// The lowest value of bucket `index` in the standard shape (lowest 1 µs,
/// 3 significant digits), as HdrHistogram lays buckets out.
#[inline]
fn value_at_index(index: u64) -> u64 {
    let bucket = (index >> HALF_COUNT_MAGNITUDE) as i64 - 1;
    let sub = (index & (HALF_COUNT - 1)) + HALF_COUNT;
    if bucket < 0 {
        sub - HALF_COUNT
    } else {
        sub << bucket
    }
}

impl Sparse {
    /// Total count.
    pub fn len(&self) -> u64 {
        self.buckets.iter().map(|b| b.1).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The largest value recorded, as [`Hist::max`] reports it.
    pub fn max(&self) -> u64 {
        static STANDARD: std::sync::OnceLock<Hist> = std::sync::OnceLock::new();
        self.buckets.last().map_or(0, |&(v, _)| {
            STANDARD.get_or_init(new_hist).highest_equivalent(v)
        })
    }

    /// Adds every bucket into `into` (a histogram of the standard shape),
    /// exactly as [`merge`] of the fully decoded histogram would.
    pub fn add_to(&self, into: &mut Hist) -> Result<(), HistError> {
        for &(value, count) in &self.buckets {
            into.record_n(value, count)
                .map_err(|e| HistError::Merge(format!("{e:?}")))?;
        }
        Ok(())
    }

    /// As a full histogram (for percentiles of one report).
    pub fn to_hist(&self) -> Result<Hist, HistError> {
        let mut h = new_hist();
        self.add_to(&mut h)?;
        Ok(h)
    }
}

/// Decodes bytes from the network into their non-zero buckets, with the same
/// checks as [`decode`]. Histograms of another shape than the standard one
/// (which standard tools may write) go through the full decoder instead.
pub fn decode_sparse(bytes: &[u8]) -> Result<Sparse, HistError> {
    if bytes.len() > MAX_ENCODED {
        return Err(HistError::TooLarge(bytes.len()));
    }
    if bytes.is_empty() {
        return Ok(Sparse::default());
    }
    with_inflated(bytes, sparse_inner)
}

/// The non-zero buckets of inflated V2 bytes.
fn sparse_inner(inner: &[u8]) -> Result<Sparse, HistError> {
    let bad = |m: &str| HistError::Decode(m.to_string());
    let field = |at: usize, n: usize| inner.get(at..at + n).ok_or_else(|| bad("truncated header"));
    let be32 = |at| field(at, 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
    let be64 = |at| {
        field(at, 8).map(|s| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            u64::from_be_bytes(a)
        })
    };
    let payload_len = be32(4)? as usize;
    let normalizing_offset = be32(8)?;
    let digits = be32(12)?;
    let lowest = be64(16)?;
    let highest = be64(24)?;
    let ratio = f64::from_bits(be64(32)?);
    if normalizing_offset != 0 || ratio != 1.0 {
        return Err(bad("unsupported V2 features (normalizing offset or ratio)"));
    }
    if lowest != LOWEST_US || digits != u32::from(SIGFIG) || highest > HIGHEST_US {
        // Another layout of buckets: let the full decoder handle it.
        let h = deserialize_inner(inner)?;
        let mut buckets = Vec::new();
        for v in h.iter_recorded() {
            buckets.push((
                h.lowest_equivalent(v.value_iterated_to()),
                v.count_at_value(),
            ));
        }
        return Ok(Sparse { buckets });
    }
    let payload = inner
        .get(40..40 + payload_len)
        .ok_or_else(|| bad("declared payload is longer than the data"))?;
    // Highest bucket index of the standard shape, from a histogram's own
    // layout so it can never disagree with `record_n`.
    let max_index = standard_bucket_count();
    let mut buckets = Vec::new();
    let mut index: u64 = 0;
    let mut at = 0;
    while at < payload.len() {
        let (zz, used) = varint(&payload[at..]).ok_or_else(|| bad("truncated count"))?;
        at += used;
        let n = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
        if n < 0 {
            index = index
                .checked_add(n.unsigned_abs())
                .ok_or_else(|| bad("zero run overflows"))?;
            continue;
        }
        if n > 0 {
            if index >= max_index {
                return Err(bad("count beyond the histogram's range"));
            }
            buckets.push((value_at_index(index), n as u64));
        }
        index += 1;
    }
    Ok(Sparse { buckets })
}

/// Buckets of the standard shape.
fn standard_bucket_count() -> u64 {
    static COUNT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| new_hist().distinct_values() as u64)
}

/// One LEB128 varint of at most 9 bytes (HdrHistogram's variant: the 9th
/// byte carries 8 bits). Returns the value and the bytes used.
#[inline]
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for i in 0..9 {
        let byte = *b.get(i)?;
        if i == 8 {
            v |= u64::from(byte) << 56;
            return Some((v, 9));
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

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
pub fn merge(into: &mut Hist, other: &Hist) -> Result<(), HistError> {
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

/// An interval-log line from histogram bytes already in V2+DEFLATE form (as
/// workers send them), without decoding and re-encoding: `max_ms` is the
/// histogram's max in milliseconds, `tag` an optional `Tag=` value.
pub fn interval_log_line_encoded(
    encoded: &[u8],
    start: Duration,
    duration: Duration,
    max_ms: f64,
    tag: Option<&str>,
) -> String {
    use base64::Engine;
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
    base64::engine::general_purpose::STANDARD.encode_string(encoded, &mut line);
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

    /// Every bucket's count, for exact comparisons.
    fn buckets(h: &Hist) -> Vec<(u64, u64)> {
        h.iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    #[test]
    fn sparse_decoding_adds_exactly_what_the_full_decoder_does() {
        // A deterministic spread over the whole range, bucket edges and the
        // first (half-width) bucket included.
        let mut seed = 0x1234_5678_9abc_def0u64;
        for round in 0..50 {
            let mut h = new_hist();
            let n = [0usize, 1, 7, 300, 5000][round % 5];
            for _ in 0..n {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let v = match seed % 4 {
                    0 => 1 + seed % 2048,
                    1 => 1 + seed % 200_000,
                    2 => 1 + (seed >> 8) % HIGHEST_US,
                    _ => [1, 1023, 1024, 2047, 2048, 4095, 4096, HIGHEST_US]
                        [(seed >> 3) as usize % 8],
                };
                h.record_n(v, 1 + seed % 5).unwrap();
            }
            let bytes = encode(&h);
            let sparse = decode_sparse(&bytes).unwrap();
            let mut via_sparse = new_hist();
            via_sparse.record(42).unwrap();
            sparse.add_to(&mut via_sparse).unwrap();
            let mut via_full = new_hist();
            via_full.record(42).unwrap();
            merge(&mut via_full, &decode(&bytes).unwrap()).unwrap();
            assert_eq!(buckets(&via_sparse), buckets(&via_full), "round {round}");
            assert_eq!(via_sparse.len(), via_full.len());
            assert_eq!(via_sparse.max(), via_full.max());
            assert_eq!(sparse.len(), h.len());
            assert_eq!(sparse.max(), h.max());
            assert_eq!(buckets(&sparse.to_hist().unwrap()), buckets(&h));
            // The form chosen for merging adds the same, whichever it is.
            let chosen = decode_for_merge(&bytes).unwrap();
            assert_eq!((chosen.len(), chosen.max()), (h.len(), h.max()));
            let mut via_chosen = new_hist();
            via_chosen.record(42).unwrap();
            chosen.add_to(&mut via_chosen).unwrap();
            assert_eq!(buckets(&via_chosen), buckets(&via_full), "round {round}");
        }
    }

    #[test]
    fn few_buckets_decode_sparse_and_many_in_full() {
        let mut few = new_hist();
        few.record_n(1500, 10).unwrap();
        assert!(matches!(
            decode_for_merge(&encode(&few)).unwrap(),
            Decoded::Sparse(_)
        ));
        let mut many = new_hist();
        for v in 1..20_000 {
            many.record(v).unwrap();
        }
        assert!(matches!(
            decode_for_merge(&encode(&many)).unwrap(),
            Decoded::Full(_)
        ));
    }

    #[test]
    fn sparse_decoding_refuses_what_decode_refuses() {
        assert!(decode_sparse(b"\x1c\x84\x93\x14junkjunkjunk").is_err());
        assert!(decode_sparse(&[0xff; 64]).is_err());
        assert!(matches!(
            decode_sparse(&vec![0; MAX_ENCODED + 1]),
            Err(HistError::TooLarge(_))
        ));
        assert!(decode_sparse(&[]).unwrap().is_empty());
        // A histogram of a narrower shape (another tool's) still adds up.
        let mut narrow = Histogram::<u64>::new_with_bounds(1, 60_000_000, 2).unwrap();
        narrow.record_n(1500, 3).unwrap();
        let s = decode_sparse(&encode(&narrow)).unwrap();
        assert_eq!(s.len(), 3);
        let h = s.to_hist().unwrap();
        assert_eq!(h.len(), 3);
        assert!(h.max() >= 1490 && h.max() <= 1510, "{}", h.max());
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        assert!(decode(b"\x1c\x84\x93\x14junkjunkjunk").is_err());
        assert!(decode(&[0xff; 64]).is_err());
        assert!(matches!(
            decode(&vec![0; MAX_ENCODED + 1]),
            Err(HistError::TooLarge(_))
        ));
        // A valid histogram of a wider shape is refused.
        let wide: Hist = Histogram::new_with_bounds(1, u64::MAX / 4, 5).unwrap();
        assert!(matches!(
            decode(&encode(&wide)),
            Err(HistError::Shape { .. })
        ));
    }

    #[test]
    fn the_reused_inflater_decodes_each_histogram_alone() {
        // One thread's inflater, reused across sizes and after failures:
        // every histogram still decodes to exactly what it holds.
        let big = synthetic_second(7, 20_000).0;
        let small = synthetic_second(8, 10).0;
        let (big_bytes, small_bytes) = (encode(&big), encode(&small));
        let truncated = &big_bytes[..big_bytes.len() / 2];
        for _ in 0..3 {
            assert_eq!(decode(&big_bytes).unwrap(), big);
            assert!(decode(truncated).is_err(), "a cut stream is refused");
            assert!(decode(b"\x1c\x84\x93\x14junkjunkjunk").is_err());
            assert_eq!(decode(&small_bytes).unwrap(), small);
            assert_eq!(
                decode_for_merge(&big_bytes).unwrap().to_hist().unwrap(),
                big
            );
            assert_eq!(
                decode_for_merge(&small_bytes).unwrap().to_hist().unwrap(),
                small
            );
        }
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

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn valid() -> Vec<u8> {
            let mut h = new_hist();
            for v in [1u64, 7, 300, 4_000, 90_000, 2_000_000] {
                h.record_n(v, v % 13 + 1).unwrap();
            }
            encode(&h)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Bytes from the network never panic the decoder.
            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
                let _ = decode(&bytes);
                let _ = decode_sparse(&bytes);
                let _ = decode_for_merge(&bytes);
            }

            /// Nor do valid encodings with bytes flipped, cut or extended.
            #[test]
            fn mutated_encodings_never_panic(
                flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
                cut in any::<prop::sample::Index>(),
                extra in prop::collection::vec(any::<u8>(), 0..32),
            ) {
                let mut b = valid();
                for (i, x) in flips {
                    let i = i.index(b.len());
                    b[i] ^= x;
                }
                let keep = cut.index(b.len() + 1);
                b.truncate(keep);
                b.extend(extra);
                if let Ok(h) = decode(&b) {
                    // Whatever decodes is a histogram we can merge.
                    let mut into = new_hist();
                    let _ = merge(&mut into, &h);
                }
            }
        }
    }
}
