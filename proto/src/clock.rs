//! Wall-clock time on the wire: nanoseconds since the Unix epoch as `u64`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Now, in nanoseconds since the Unix epoch.
pub fn unix_nanos() -> u64 {
    to_unix_nanos(SystemTime::now())
}

pub fn to_unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
        .unwrap_or(0)
}

pub fn from_unix_nanos(n: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(n)
}

/// The monotonic instant that corresponds to wall-clock `unix_nanos` on this
/// machine, by reading both clocks once. Past times are clamped to now.
pub fn instant_at(unix_nanos_at: u64) -> Instant {
    let now_i = Instant::now();
    let now_u = unix_nanos();
    now_i + Duration::from_nanos(unix_nanos_at.saturating_sub(now_u))
}

/// Clock offset of a peer from one NTP-style exchange, in nanoseconds (peer
/// clock minus local clock), and the round-trip time that bounds its error.
///
/// `t1` local send, `t2` peer receive, `t3` peer send, `t4` local receive.
pub fn offset_and_rtt(t1: u64, t2: u64, t3: u64, t4: u64) -> (i64, u64) {
    let (t1, t2, t3, t4) = (t1 as i128, t2 as i128, t3 as i128, t4 as i128);
    let offset = ((t2 - t1) + (t3 - t4)) / 2;
    let rtt = ((t4 - t1) - (t3 - t2)).max(0);
    (
        offset.clamp(i64::MIN as i128, i64::MAX as i128) as i64,
        rtt.min(u64::MAX as i128) as u64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_of_a_peer_ahead_by_5ms() {
        // Local sends at 1000, 2 ms one way, peer clock 5 ms ahead, 1 ms inside.
        let ms = 1_000_000;
        let (t1, t2, t3, t4) = (1000 * ms, 1007 * ms, 1008 * ms, 1005 * ms);
        let (off, rtt) = offset_and_rtt(t1, t2, t3, t4);
        assert_eq!(off, 5 * ms as i64);
        assert_eq!(rtt, 4 * ms);
    }

    #[test]
    fn round_trip_through_system_time() {
        let n = 1_700_000_000_123_456_789;
        assert_eq!(to_unix_nanos(from_unix_nanos(n)), n);
    }
}
