//! Splitting a count over weights in whole units, exactly.

/// Splits `total` over `weights` in proportion, to whole units, by largest
/// remainder (ties to the first): the parts always add up to `total`, and a
/// part is exact wherever `total * weight` divides evenly. All-zero weights
/// count as equal ones.
pub fn apportion(total: u64, weights: &[u64]) -> Vec<u64> {
    if weights.is_empty() {
        return Vec::new();
    }
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    let (weights, sum): (Vec<u128>, u128) = if sum == 0 {
        (vec![1; weights.len()], weights.len() as u128)
    } else {
        (weights.iter().map(|&w| u128::from(w)).collect(), sum)
    };
    let t = u128::from(total);
    // Each part's floor fits in u64: it is at most `total`.
    let mut parts: Vec<u64> = weights.iter().map(|&w| (t * w / sum) as u64).collect();
    let given: u64 = parts.iter().sum();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(t * weights[i] % sum));
    for &i in by_remainder.iter().take((total - given) as usize) {
        parts[i] += 1;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_always_adds_up() {
        assert_eq!(apportion(9, &[3, 1]), vec![7, 2]);
        assert_eq!(apportion(4, &[0, 4, 0]), vec![0, 4, 0]);
        assert_eq!(apportion(5, &[0, 0]), vec![3, 2]);
        assert_eq!(apportion(0, &[1, 2]), vec![0, 0]);
        assert!(apportion(3, &[]).is_empty());
        assert_eq!(
            apportion(u64::MAX, &[1000, 1000])
                .iter()
                .map(|&p| u128::from(p))
                .sum::<u128>(),
            u128::from(u64::MAX)
        );
    }

    #[test]
    fn the_leftover_units_go_to_the_largest_remainders() {
        // 2 over 1 : 2 is 0.67 : 1.33: the first has the larger remainder,
        // though the smaller weight and the smaller floor.
        assert_eq!(apportion(2, &[1, 2]), vec![1, 1]);
        // 5 over 2 : 3 : 5 is 1 : 1.5 : 2.5: a tie of remainders, to the first.
        assert_eq!(apportion(5, &[2, 3, 5]), vec![1, 2, 2]);
    }

    proptest::proptest! {
        #[test]
        fn apportion_is_proportional_and_exact(
            total in 0u64..1_000_000,
            weights in proptest::collection::vec(0u64..1000, 1..20),
        ) {
            let parts = apportion(total, &weights);
            proptest::prop_assert_eq!(parts.iter().sum::<u64>(), total);
            let sum: u64 = weights.iter().sum();
            if sum > 0 {
                for (p, w) in parts.iter().zip(&weights) {
                    let ideal = total as f64 * *w as f64 / sum as f64;
                    proptest::prop_assert!((*p as f64 - ideal).abs() < 1.0 + 1e-9);
                }
            }
        }
    }
}
