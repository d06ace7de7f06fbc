//! A worker's own memory and CPU over the run: a leak in the generator
//! shows as a growing RSS, a saturated worker as a CPU near 100 %.

/// One worker's own memory and CPU over the run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Resources {
    pub rss_first: u64,
    pub rss_last: u64,
    pub rss_peak: u64,
    /// (interval, cumulative CPU nanoseconds) of the first and last report.
    pub cpu_first: Option<(u32, u64)>,
    pub cpu_last: Option<(u32, u64)>,
}

impl Resources {
    /// Mean CPU use between the first and the last report, percent of a core.
    pub fn cpu_pct_mean(&self) -> Option<f64> {
        let ((i0, c0), (i1, c1)) = (self.cpu_first?, self.cpu_last?);
        (i1 > i0).then(|| c1.saturating_sub(c0) as f64 / (f64::from(i1 - i0) * 1e9) * 100.0)
    }

    /// Takes one report's figures; returns the CPU use (percent of a core)
    /// since the previous report, when there is one to compare with.
    pub(super) fn sample(&mut self, index: u32, rss: u64, cpu: u64) -> Option<f64> {
        if rss > 0 {
            if self.rss_first == 0 {
                self.rss_first = rss;
            }
            self.rss_last = rss;
            self.rss_peak = self.rss_peak.max(rss);
        }
        if cpu == 0 {
            return None;
        }
        let pct = self.cpu_last.and_then(|(i, c)| {
            (index > i).then(|| cpu.saturating_sub(c) as f64 / (f64::from(index - i) * 1e9) * 100.0)
        });
        self.cpu_first.get_or_insert((index, cpu));
        self.cpu_last = Some((index, cpu));
        pct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_the_rate_between_reports_and_zeros_are_no_sample() {
        let mut r = Resources::default();
        assert_eq!(
            r.sample(0, 10, 1_000_000_000),
            None,
            "nothing to compare yet"
        );
        assert_eq!(r.sample(2, 0, 0), None, "a report without figures");
        assert_eq!(r.sample(2, 30, 2_000_000_000), Some(50.0));
        assert_eq!(r.sample(4, 20, 2_500_000_000), Some(25.0));
        assert_eq!((r.rss_first, r.rss_last, r.rss_peak), (10, 20, 30));
        assert_eq!(r.cpu_pct_mean(), Some(37.5), "1.5 s of CPU over 4 s");
    }

    #[test]
    fn the_mean_needs_two_samples_and_starts_at_the_first() {
        let mut r = Resources::default();
        r.sample(2, 10, 1_000_000_000);
        assert_eq!(r.cpu_pct_mean(), None, "one sample is no rate");
        // A report without figures keeps the last memory figure.
        r.sample(4, 0, 0);
        assert_eq!((r.rss_first, r.rss_last, r.rss_peak), (10, 10, 10));
        r.sample(6, 30, 3_000_000_000);
        assert_eq!(
            r.cpu_pct_mean(),
            Some(50.0),
            "2 s of CPU from second 2 to 6"
        );
        // The same second again is no interval to divide by.
        assert_eq!(r.sample(6, 30, 3_500_000_000), None);
    }
}
