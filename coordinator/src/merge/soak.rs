//! The first and last tenth of a long stage, for the soak figures (does
//! the system degrade over hours?).

use super::Acc;

/// The first and last tenth of a long stage, accumulated for the soak
/// figures.
#[derive(Debug, Clone)]
pub struct SoakWindows {
    pub first: std::ops::Range<u32>,
    pub last: std::ops::Range<u32>,
    pub first_acc: Acc,
    pub last_acc: Acc,
}

impl SoakWindows {
    /// Windows for a stage `[start, start + duration)` in seconds; `None` for
    /// stages shorter than 10 s, whose tenths would be under a second.
    pub fn for_stage(start: f64, duration: f64) -> Option<SoakWindows> {
        if duration < 10.0 {
            return None;
        }
        let n = (duration / 10.0).floor() as u32;
        let first_start = start.ceil() as u32;
        let last_end = (start + duration).floor() as u32;
        Some(SoakWindows {
            first: first_start..first_start + n,
            last: last_end.saturating_sub(n)..last_end,
            first_acc: Acc::default(),
            last_acc: Acc::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_the_first_and_last_tenth() {
        let w = SoakWindows::for_stage(5.0, 100.0).unwrap();
        assert_eq!((w.first.clone(), w.last.clone()), (5..15, 95..105));
        assert!(SoakWindows::for_stage(0.0, 9.0).is_none());
    }

    #[test]
    fn a_stage_of_exactly_ten_seconds_has_windows_of_one() {
        let w = SoakWindows::for_stage(3.0, 10.0).unwrap();
        assert_eq!((w.first.clone(), w.last.clone()), (3..4, 12..13));
        assert!(SoakWindows::for_stage(3.0, 9.999).is_none());
    }
}
