//! Units a scenario is written in: durations ("10s"), rates ("10k"), sizes
//! ("1KiB") and fractions ("10%"), plus how a value is described in errors.
//!
//! Everything here works on plain strings and numbers and returns a sentence
//! on error; the caller adds the field.

use std::time::Duration;

use toml::de::{DeInteger, DeValue};

/// The value of a TOML integer, `None` when it does not fit an `i64`.
pub(super) fn int_value(i: &DeInteger<'_>) -> Option<i64> {
    i64::from_str_radix(i.as_str(), i.radix()).ok()
}

/// The value of a TOML float (may be NaN or infinite; callers range-check).
pub(super) fn float_value(s: &str) -> f64 {
    s.parse().unwrap_or(f64::NAN)
}

/// Describes a value for "expected X, got Y" messages: `integer 10`,
/// `string "fast"`, `table`.
pub(super) fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("string {}", quote(s)),
        DeValue::Integer(i) => format!("integer {i}"),
        DeValue::Float(f) => format!("float {f}"),
        DeValue::Boolean(b) => format!("boolean {b}"),
        DeValue::Datetime(d) => format!("datetime {d}"),
        DeValue::Array(_) => "an array".to_owned(),
        DeValue::Table(_) => "a table".to_owned(),
    }
}

/// Quotes user text for a message, shortened so a huge value cannot flood it.
pub(super) fn quote(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

/// A humantime duration ("500ms", "10s", "1h30m").
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "expected a duration string such as \"10s\", got {} (add a unit: \"{t}s\" or \"{t}ms\")",
            quote(s)
        ));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!(
            "expected a duration string such as \"10s\", \"500ms\" or \"1h30m\", got {} ({e})",
            quote(s)
        )
    })
}

/// A plain decimal number: digits with at most one `.`, no sign, no exponent,
/// no `nan`/`inf` (which `f64::from_str` would otherwise accept).
fn plain_number(s: &str) -> Option<f64> {
    let mut parts = s.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let ok = !int.is_empty() && digits(int) && frac.is_none_or(|f| !f.is_empty() && digits(f));
    if ok {
        s.parse().ok()
    } else {
        None
    }
}

/// Requests per second written as a string: "50000", "2.5", "10k", "1.5M".
pub(super) fn parse_rate(s: &str) -> Option<f64> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix(['k', 'K']) {
        (n, 1e3)
    } else if let Some(n) = t.strip_suffix('M') {
        (n, 1e6)
    } else {
        (t, 1.0)
    };
    plain_number(num.trim_end()).map(|v| v * mult)
}

/// A byte count written as a string: "512", "512B", "1k" (1000), "1KiB"
/// (1024), "1.5MiB", "1GB". Fractions round to the nearest byte.
pub(super) fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let v = (plain_number(num)? * mult).round();
    // u64::MAX as f64 rounds up to 2^64, so compare strictly below it.
    (v < u64::MAX as f64).then_some(v as u64)
}

/// A fraction written as a percentage string: "10%" → 0.1.
pub(super) fn parse_percent(s: &str) -> Option<f64> {
    let n = s.trim().strip_suffix('%')?;
    plain_number(n.trim_end()).map(|v| v / 100.0)
}

/// Renders a duration for messages the way a user would write it.
pub(super) fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration(" 2m "), Ok(Duration::from_secs(120)));
        let e = parse_duration("10").unwrap_err();
        assert!(e.contains("\"10s\""), "{e}");
        assert!(parse_duration("").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("99999999999999999999999h").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("50000"), Some(50_000.0));
        assert_eq!(parse_rate("10k"), Some(10_000.0));
        assert_eq!(parse_rate("10K"), Some(10_000.0));
        assert_eq!(parse_rate("1.5M"), Some(1_500_000.0));
        assert_eq!(parse_rate("2.5"), Some(2.5));
        assert_eq!(parse_rate("0"), Some(0.0));
        for bad in [
            "", "k", "-5", "nan", "inf", "1e3", "1.", ".5", "10m", "1,000", "10 rps", "1.2.3",
        ] {
            assert_eq!(parse_rate(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("512B"), Some(512));
        assert_eq!(parse_size("1k"), Some(1000));
        assert_eq!(parse_size("1KiB"), Some(1024));
        assert_eq!(parse_size("1 KiB"), Some(1024));
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("1.5MiB"), Some(3 << 19));
        assert_eq!(parse_size("2GB"), Some(2_000_000_000));
        for bad in [
            "",
            "KiB",
            "-1",
            "1 parsec",
            "nan",
            "1e3",
            "99999999999999999999GiB",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn percents() {
        assert_eq!(parse_percent("10%"), Some(0.1));
        assert_eq!(parse_percent("12.5 %"), Some(0.125));
        assert_eq!(parse_percent("10"), None);
        assert_eq!(parse_percent("-10%"), None);
        assert_eq!(parse_percent("nan%"), None);
    }

    #[test]
    fn quoting_is_bounded() {
        assert_eq!(quote("ab"), "\"ab\"");
        let long = "x".repeat(1000);
        assert!(quote(&long).len() < 60);
    }
}
