//! Decoding histograms from the network: bounded inflate, the header
//! checks, and the sparse form the coordinator merges from.

use super::{merge, new_hist, Hist, HistError, HIGHEST_US, LOWEST_US, MAX_ENCODED, SIGFIG};
use hdrhistogram::serialization::Deserializer;

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

/// A report's histogram decoded for merging. From the network it is always
/// its non-zero buckets ([`Sparse`]): the coordinator adds them by bucket
/// index into [`super::Dense`] accumulators, never walking the empty ones
/// and never building the full counts array per report. `Full` is for
/// histograms built in memory (tests, the report's own sums).
#[derive(Debug, Clone)]
pub enum Decoded {
    Sparse(Sparse),
    Full(Hist),
}

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

    /// Adds into a [`super::Dense`] accumulator exactly.
    pub fn add_to_dense(&self, into: &mut super::Dense) -> Result<(), HistError> {
        match self {
            Decoded::Sparse(s) => {
                into.add_indexed(&s.buckets);
                Ok(())
            }
            Decoded::Full(h) => into.add_hist(h),
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
    with_inflated(bytes, sparse_inner).map(Decoded::Sparse)
}

pub(super) const V2_COOKIE: u32 = 0x1c84_9313;
pub(super) const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;
/// Largest inflated V2 payload: the standard shape needs ~24k counts of at
/// most 9 bytes each.
const MAX_INFLATED: usize = 512 * 1024;

/// Whether `bytes` are uncompressed V2 (by their cookie).
pub(super) fn is_raw_v2(bytes: &[u8]) -> bool {
    be32(bytes, 0) == Some(V2_COOKIE)
}

/// Hands the uncompressed V2 bytes of a histogram from the network to `f`,
/// after checking their header (shape and declared payload length) before
/// anything is allocated from it. Uncompressed V2 is checked in place;
/// V2 + DEFLATE is inflated ourselves, bounded.
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
    if is_raw_v2(bytes) {
        return f(checked_v2(bytes)?);
    }
    INFLATER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => f(checked_v2(
            slot.get_or_insert_with(Inflater::new).inflate(bytes)?,
        )?),
        // Only if `f` itself decodes (it does not): a private one.
        Err(_) => f(checked_v2(Inflater::new().inflate(bytes)?)?),
    })
}

/// A big-endian u32 at `at`, if the bytes reach that far.
fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// A big-endian u64 at `at`, if the bytes reach that far.
fn be64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8).map(|s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_be_bytes(a)
    })
}

fn bad(m: &str) -> HistError {
    HistError::Decode(m.to_string())
}

/// The header of uncompressed V2 bytes (40 bytes).
struct V2Header {
    payload_len: usize,
    normalizing_offset: u32,
    digits: u32,
    lowest: u64,
    highest: u64,
    ratio: f64,
}

impl V2Header {
    fn read(inner: &[u8]) -> Result<V2Header, HistError> {
        let truncated = || bad("truncated header");
        Ok(V2Header {
            payload_len: be32(inner, 4).ok_or_else(truncated)? as usize,
            normalizing_offset: be32(inner, 8).ok_or_else(truncated)?,
            digits: be32(inner, 12).ok_or_else(truncated)?,
            lowest: be64(inner, 16).ok_or_else(truncated)?,
            highest: be64(inner, 24).ok_or_else(truncated)?,
            ratio: f64::from_bits(be64(inner, 32).ok_or_else(truncated)?),
        })
    }
}

/// Uncompressed V2 bytes, checked: the cookie, a whole header, a payload as
/// long as declared, a size within bounds and at most the standard shape.
fn checked_v2(inner: &[u8]) -> Result<&[u8], HistError> {
    if inner.len() > MAX_INFLATED {
        return Err(bad("inflated histogram is too large"));
    }
    if be32(inner, 0) != Some(V2_COOKIE) {
        return Err(bad("inner payload is not a V2 histogram"));
    }
    let h = V2Header::read(inner)?;
    if h.payload_len > inner.len() - 40 {
        return Err(bad("declared payload is longer than the data"));
    }
    if h.lowest < LOWEST_US || h.highest > HIGHEST_US * 2 || h.digits > u32::from(SIGFIG) {
        return Err(HistError::Shape {
            lowest: h.lowest,
            highest: h.highest,
            sigfig: h.digits.min(255) as u8,
        });
    }
    Ok(inner)
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

    /// The inflated bytes of V2 + DEFLATE, at most one byte past
    /// [`MAX_INFLATED`] (which [`checked_v2`] refuses).
    fn inflate(&mut self, bytes: &[u8]) -> Result<&[u8], HistError> {
        if be32(bytes, 0) != Some(V2_DEFLATE_COOKIE) {
            return Err(bad("not a V2 or V2+DEFLATE histogram (wrong cookie)"));
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
        Ok(&self.out[..])
    }
}

/// A decoded histogram as its non-zero buckets only: what a merge needs,
/// without allocating and zeroing the full counts array (~24k buckets,
/// 190 KB) that [`decode`] builds for every report. The coordinator decodes
/// each worker's second once into this form and adds it into as many
/// accumulators as it keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sparse {
    /// (bucket index in the standard shape, count), in bucket order; every
    /// index is below [`standard_bucket_count`].
    pub(super) buckets: Vec<(u32, u64)>,
}

/// Sub-bucket half count of the standard shape (3 digits: 2048 sub-buckets).
const HALF_COUNT_MAGNITUDE: u32 = 10;

/// The bucket index of `value` in the standard shape (the inverse of
/// [`value_at_index`] on each bucket's values).
#[inline]
pub(super) fn index_of(value: u64) -> u64 {
    index_in_shape(value, HALF_COUNT_MAGNITUDE)
}

/// The lowest value of bucket `index` in the standard shape (lowest 1 µs,
/// 3 significant digits), as HdrHistogram lays buckets out.
#[inline]
pub(super) fn value_at_index(index: u64) -> u64 {
    value_in_shape(index, HALF_COUNT_MAGNITUDE)
}

/// The bucket index of `value` in a shape of lowest 1 and sub-bucket half
/// count 2^`half`, as HdrHistogram computes it: the bucket from the leading
/// zeros (64 − 0 unit magnitude − `half + 1` bits of sub-buckets), then the
/// sub-bucket.
#[inline]
pub(super) fn index_in_shape(value: u64, half: u32) -> u64 {
    let count = 2u64 << half;
    let bucket = u64::from(63 - half) - u64::from((value | (count - 1)).leading_zeros());
    let sub = value >> bucket;
    ((bucket + 1) << half) + sub - (1 << half)
}

/// The lowest value of bucket `index` in that shape.
#[inline]
pub(super) fn value_in_shape(index: u64, half: u32) -> u64 {
    let half_count = 1u64 << half;
    let bucket = (index >> half) as i64 - 1;
    let sub = (index & (half_count - 1)) + half_count;
    if bucket < 0 {
        sub - half_count
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
        self.buckets.last().map_or(0, |&(i, _)| {
            STANDARD
                .get_or_init(new_hist)
                .highest_equivalent(value_at_index(u64::from(i)))
        })
    }

    /// Adds every bucket into `into` (a histogram of any shape: the standard
    /// one, or the workers' 2-digit books), exactly as [`merge`] of the fully
    /// decoded histogram would.
    pub fn add_to(&self, into: &mut Hist) -> Result<(), HistError> {
        let record = |into: &mut Hist, value: u64, count: u64| {
            into.record_n(value, count)
                .map_err(|e| HistError::Merge(format!("{e:?}")))
        };
        if into.sigfig() >= SIGFIG {
            for &(index, count) in &self.buckets {
                record(into, value_at_index(u64::from(index)), count)?;
            }
            return Ok(());
        }
        // A coarser histogram (a worker's 2-digit books): the buckets that
        // fall in one of its buckets are added as one, recorded at the
        // lowest of their values (so its min and max are those of adding
        // each, up to the equivalence its buckets keep anyway).
        let mut group: Option<(u64, u64, u64)> = None; // (lowest, top, count)
        for &(index, count) in &self.buckets {
            let value = value_at_index(u64::from(index));
            match group.as_mut() {
                Some((_, top, n)) if value <= *top => *n = n.saturating_add(count),
                _ => {
                    if let Some((lowest, _, n)) = group {
                        record(into, lowest, n)?;
                    }
                    group = Some((value, into.highest_equivalent(value), count));
                }
            }
        }
        if let Some((lowest, _, n)) = group {
            record(into, lowest, n)?;
        }
        Ok(())
    }

    /// The buckets of a histogram of any shape within the standard range,
    /// each at the standard bucket of its lowest value (as recording that
    /// value would).
    pub fn of_hist(h: &Hist) -> Result<Sparse, HistError> {
        let max_index = standard_bucket_count();
        let mut buckets: Vec<(u32, u64)> = Vec::new();
        for v in h.iter_recorded() {
            let index = index_of(h.lowest_equivalent(v.value_iterated_to()));
            if index >= max_index {
                return Err(bad("count beyond the histogram's range"));
            }
            // A coarser shape's buckets map to distinct, ascending indexes;
            // a finer one's may share one.
            match buckets.last_mut() {
                Some((last, n)) if u64::from(*last) == index => {
                    *n = n.saturating_add(v.count_at_value())
                }
                _ => buckets.push((index as u32, v.count_at_value())),
            }
        }
        Ok(Sparse { buckets })
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
    let V2Header {
        payload_len,
        normalizing_offset,
        digits,
        lowest,
        highest,
        ratio,
    } = V2Header::read(inner)?;
    if normalizing_offset != 0 || ratio != 1.0 {
        return Err(bad("unsupported V2 features (normalizing offset or ratio)"));
    }
    if lowest != LOWEST_US || digits != u32::from(SIGFIG) || highest > HIGHEST_US {
        // Another layout of buckets: let the full decoder handle it.
        return Sparse::of_hist(&deserialize_inner(inner)?);
    }
    let payload = inner
        .get(40..40 + payload_len)
        .ok_or_else(|| bad("declared payload is longer than the data"))?;
    // Highest bucket index of the standard shape, from a histogram's own
    // layout so it can never disagree with `record_n`.
    let max_index = standard_bucket_count();
    // Every non-zero count takes a byte at least: no growing.
    let mut buckets = Vec::with_capacity(payload_len);
    let mut index: u64 = 0;
    let mut at = 0;
    while at < payload.len() {
        let (zz, used) = varint(&payload[at..]).ok_or_else(|| bad("truncated count"))?;
        at += used;
        let n = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
        if n < 0 {
            index = index
                .checked_add(n.unsigned_abs())
                .filter(|&i| i <= max_index)
                .ok_or_else(|| bad("zero run beyond the histogram's range"))?;
            continue;
        }
        if n > 0 {
            if index >= max_index {
                return Err(bad("count beyond the histogram's range"));
            }
            buckets.push((index as u32, n as u64));
        }
        index += 1;
    }
    Ok(Sparse { buckets })
}

/// Buckets of the standard shape.
pub(super) fn standard_bucket_count() -> u64 {
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

#[cfg(test)]
mod tests {
    use super::super::{
        buckets, deflated, encode, merge, synthetic_second, Encoder, PLAIN_MAX, RAW_MAX,
    };
    use super::*;
    use hdrhistogram::serialization::{Serializer, V2DeflateSerializer, V2Serializer};
    use hdrhistogram::Histogram;

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

    /// Into a coarser histogram (the coordinator's 2-digit books of each
    /// worker) buckets are added a group at a time: the same buckets, count,
    /// min and max as merging the full histogram there.
    #[test]
    fn sparse_adds_into_a_coarser_histogram_as_merging_does() {
        let mut seed = 0x0bad_cafe_u64;
        for round in 0..20 {
            let mut h = new_hist();
            for _ in 0..[1, 50, 3000, 20_000][round % 4] {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let v = match seed % 3 {
                    0 => 1 + seed % 5000,
                    1 => 100 + (seed >> 4) % 400_000,
                    _ => 1 + (seed >> 8) % HIGHEST_US,
                };
                h.record_n(v, 1 + seed % 3).unwrap();
            }
            let coarse = || {
                let mut c = Histogram::<u64>::new_with_bounds(LOWEST_US, HIGHEST_US, 2).unwrap();
                c.record(777).unwrap();
                c
            };
            let mut via_sparse = coarse();
            decode_sparse(&encode(&h))
                .unwrap()
                .add_to(&mut via_sparse)
                .unwrap();
            let mut via_merge = coarse();
            via_merge.add(&h).unwrap();
            assert_eq!(buckets(&via_sparse), buckets(&via_merge), "round {round}");
            assert_eq!(
                (via_sparse.len(), via_sparse.min(), via_sparse.max()),
                (via_merge.len(), via_merge.min(), via_merge.max()),
                "round {round}"
            );
        }
    }

    #[test]
    fn the_standard_shape_always_decodes_sparse() {
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
        let decoded = decode_for_merge(&encode(&many)).unwrap();
        assert!(matches!(decoded, Decoded::Sparse(_)));
        assert_eq!(buckets(&decoded.to_hist().unwrap()), buckets(&many));
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
    fn small_histograms_travel_uncompressed_and_large_ones_deflated() {
        for values in [0u64, 1, 10, 50, 1000, 20_000] {
            let h = synthetic_second(values + 11, values).0;
            let bytes = encode(&h);
            let raw = is_raw_v2(&bytes);
            let mut v2 = Vec::new();
            V2Serializer::new().serialize(&h, &mut v2).unwrap();
            assert_eq!(raw, v2.len() <= RAW_MAX, "{values} values");
            if raw {
                assert_eq!(bytes, v2, "uncompressed is plain V2");
            } else {
                assert_eq!(be32(&bytes, 0), Some(V2_DEFLATE_COOKIE));
            }
            // Either form: every decoder gives back exactly the histogram,
            // and so does HdrHistogram's own deserializer (standard tools).
            assert_eq!(decode(&bytes).unwrap(), h, "{values} values");
            assert_eq!(decode_sparse(&bytes).unwrap().to_hist().unwrap(), h);
            assert_eq!(decode_for_merge(&bytes).unwrap().to_hist().unwrap(), h);
            let standard: Hist = Deserializer::new()
                .deserialize(&mut std::io::Cursor::new(&bytes))
                .unwrap();
            assert_eq!(standard, h);
        }
        // 10 values per worker-second (10,000 workers at 100k rps) are the
        // case this is for.
        assert!(is_raw_v2(&encode(&synthetic_second(1, 10).0)));
        assert!(!is_raw_v2(&encode(&synthetic_second(1, 20_000).0)));
    }

    #[test]
    fn histograms_only_merged_travel_plain_up_to_64_kib() {
        let mut enc = Encoder::new();
        let mut out = Vec::new();
        // A 20,000-value second: deflated for the logs, plain otherwise,
        // and the plain bytes are exactly its V2 form.
        let h = synthetic_second(5, 20_000).0;
        let mut v2 = Vec::new();
        V2Serializer::new().serialize(&h, &mut v2).unwrap();
        assert!(v2.len() > RAW_MAX && v2.len() <= PLAIN_MAX);
        enc.encode_into(&h, &mut out);
        assert!(!is_raw_v2(&out));
        enc.encode_plain_into(&h, &mut out);
        assert_eq!(out, v2);
        assert_eq!(decode(&out).unwrap(), h);
        assert_eq!(decode_for_merge(&out).unwrap().to_hist().unwrap(), h);
        // Every bucket full of large counts is past the limit: deflated,
        // and still exact.
        let mut wide = new_hist();
        for index in 0..wide.distinct_values() as u64 {
            let value = value_at_index(index).clamp(LOWEST_US, HIGHEST_US);
            wide.record_n(value, 1 << 40).unwrap();
        }
        enc.encode_plain_into(&wide, &mut out);
        assert!(!is_raw_v2(&out), "{} bytes", out.len());
        assert_eq!(be32(&out, 0), Some(V2_DEFLATE_COOKIE));
        assert_eq!(decode(&out).unwrap(), wide);
        // The same encoder goes back to plain for the next small one.
        let small = synthetic_second(6, 10).0;
        enc.encode_plain_into(&small, &mut out);
        assert!(is_raw_v2(&out));
        assert_eq!(decode(&out).unwrap(), small);
    }

    #[test]
    fn our_deflate_is_what_hdrhistogram_writes_and_reads() {
        let h = synthetic_second(21, 5000).0;
        let ours = encode(&h);
        let mut crate_form = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&h, &mut crate_form)
            .unwrap();
        // Same header and the same inflated content; both read everywhere.
        assert_eq!(ours[..4], crate_form[..4]);
        assert_eq!(be32(&ours, 4).unwrap() as usize, ours.len() - 8);
        for bytes in [&ours, &crate_form] {
            let back: Hist = Deserializer::new()
                .deserialize(&mut std::io::Cursor::new(bytes))
                .unwrap();
            assert_eq!(back, h);
            assert_eq!(decode(bytes).unwrap(), h);
        }
        // A small one made into the log's (deflated) form reads back too.
        let small = synthetic_second(22, 10).0;
        let raw = encode(&small);
        let logged = deflated(&raw);
        assert_eq!(be32(&logged, 0), Some(V2_DEFLATE_COOKIE));
        let back: Hist = Deserializer::new()
            .deserialize(&mut std::io::Cursor::new(&logged[..]))
            .unwrap();
        assert_eq!(back, small);
        // Already deflated bytes are passed through untouched.
        assert!(matches!(deflated(&ours), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn uncompressed_bytes_get_the_same_checks() {
        let h = synthetic_second(23, 10).0;
        let raw = encode(&h);
        assert!(is_raw_v2(&raw));
        // Cut anywhere: refused (or, cut after the counts it declares, the
        // same histogram), never a different one.
        for keep in 0..raw.len() {
            if let Ok(back) = decode(&raw[..keep]) {
                assert!(keep == 0 && back.is_empty(), "cut at {keep}");
            }
            assert!(keep == 0 || decode_sparse(&raw[..keep]).is_err());
        }
        // A declared payload longer than the bytes.
        let mut long = raw.clone();
        long[4..8].copy_from_slice(&(raw.len() as u32).to_be_bytes());
        assert!(decode(&long).is_err());
        assert!(decode_for_merge(&long).is_err());
        // A wider shape than the standard one.
        let wide: Hist = Histogram::new_with_bounds(1, u64::MAX / 4, 5).unwrap();
        let mut v2 = Vec::new();
        V2Serializer::new().serialize(&wide, &mut v2).unwrap();
        assert!(matches!(decode(&v2), Err(HistError::Shape { .. })));
        // Too large, even below the network bound.
        let mut huge = raw.clone();
        huge.resize(MAX_INFLATED + 1, 0);
        assert!(decode(&huge).is_err());
        // A zero run to the end of u64 then a zero count: refused, not
        // wrapped round to the first bucket (nor a panic in debug builds).
        let mut runs = raw[..40].to_vec();
        let payload = [
            0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // zigzag(-(2^63 - 1))
            0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // the same again
            0x01, // zigzag(-1): a run of one more, to u64::MAX
            0x00, // a zero count
        ];
        runs[4..8].copy_from_slice(&(payload.len() as u32).to_be_bytes());
        runs.extend_from_slice(&payload);
        assert!(decode_sparse(&runs).is_err());
        assert!(decode_for_merge(&runs).is_err());
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

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// A small histogram (uncompressed on the wire) or, with
        /// `deflate`, a larger one.
        fn valid(deflate: bool) -> Vec<u8> {
            let mut h = new_hist();
            for v in [1u64, 7, 300, 4_000, 90_000, 2_000_000] {
                h.record_n(v, v % 13 + 1).unwrap();
            }
            if deflate {
                for v in 1..400u64 {
                    h.record(v * 37).unwrap();
                }
            }
            let bytes = encode(&h);
            assert_eq!(is_raw_v2(&bytes), !deflate);
            bytes
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
                deflate in any::<bool>(),
            ) {
                let mut b = valid(deflate);
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
