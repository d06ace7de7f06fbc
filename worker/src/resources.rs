//! The worker process's own resident memory and CPU time, read from /proc
//! once per interval (off the request path) so the report can show a leak or
//! a saturated generator. Zero where /proc is unavailable.

/// Resident set size in bytes (`VmRSS`).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// User + system CPU time of the whole process (all threads), nanoseconds.
/// `/proc/self/stat` counts in USER_HZ, which Linux fixes at 100 for
/// userspace.
pub fn cpu_nanos() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // The command name may contain spaces; fields resume after the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')' the fields start at 3 (state); utime is 14 and stime 15.
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(14) + ticks(15)) * 10_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worker runs on Linux (the image, the chart's pods), where /proc
    /// is always there: a test that passed without reading it would prove
    /// nothing, so a missing /proc fails here rather than skipping.
    #[test]
    #[cfg(target_os = "linux")]
    fn reads_this_process() {
        assert!(
            std::path::Path::new("/proc/self/stat").exists(),
            "/proc is not mounted: the worker's RSS and CPU figures would all be 0"
        );
        assert!(
            rss_bytes() > 100 * 1024,
            "a Rust test binary has more than 100 KiB resident"
        );
        let before = cpu_nanos();
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(60) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(
            cpu_nanos() > before,
            "60 ms of spinning shows up in the CPU time"
        );
    }

    /// Elsewhere there is no /proc: the figures are 0 (the report leaves
    /// them out), never an error.
    #[test]
    #[cfg(not(target_os = "linux"))]
    fn without_proc_the_figures_are_zero() {
        assert_eq!((rss_bytes(), cpu_nanos()), (0, 0));
    }
}
