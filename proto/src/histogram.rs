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
    let inner = inflate_bounded(bytes)?;
    let h: Hist = Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(&inner))
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

const V2_COOKIE: u32 = 0x1c84_9313;
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;
/// Largest inflated V2 payload: the standard shape needs ~24k counts of at
/// most 9 bytes each.
const MAX_INFLATED: usize = 512 * 1024;

/// Inflates a V2+DEFLATE histogram ourselves, bounded, and checks the inner
/// header (shape and declared payload length) before the deserializer
/// allocates anything from it. Returns the uncompressed V2 bytes.
fn inflate_bounded(bytes: &[u8]) -> Result<Vec<u8>, HistError> {
    use std::io::Read;
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
    let mut inner = Vec::new();
    flate2::read::ZlibDecoder::new(&bytes[8.min(bytes.len())..])
        .take(MAX_INFLATED as u64 + 1)
        .read_to_end(&mut inner)
        .map_err(|e| HistError::Decode(format!("DEFLATE: {e}")))?;
    if inner.len() > MAX_INFLATED {
        return Err(bad("inflated histogram is too large"));
    }
    if be32(&inner, 0) != Some(V2_COOKIE) {
        return Err(bad("inner payload is not a V2 histogram"));
    }
    let payload_len = be32(&inner, 4).ok_or_else(|| bad("truncated header"))? as usize;
    let digits = be32(&inner, 12).ok_or_else(|| bad("truncated header"))?;
    let lowest = be64(&inner, 16).ok_or_else(|| bad("truncated header"))?;
    let highest = be64(&inner, 24).ok_or_else(|| bad("truncated header"))?;
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
