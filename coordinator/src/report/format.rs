//! How figures are written in every rendering of the report (Markdown, the
//! HTML page, the closing summary): one place, so `1,234 req/s` or
//! `12.4 ms` reads the same wherever it appears.

/// Milliseconds to three significant figures or so; "–" when there is none
/// (nothing succeeded).
pub fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0} ms"),
        Some(v) if v >= 10.0 => format!("{v:.1} ms"),
        Some(v) => format!("{v:.2} ms"),
        None => "–".to_string(),
    }
}

/// A rate in requests per second: whole and grouped from 100 up, else one
/// decimal.
pub fn rate(v: f64) -> String {
    if v >= 100.0 {
        group(v.round() as u64)
    } else {
        format!("{v:.1}")
    }
}

/// A fraction as a percentage: 0.9995 → "99.95 %".
pub fn pct(v: f64) -> String {
    format!("{:.2} %", v * 100.0)
}

/// 1234567 → "1,234,567".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }

    #[test]
    fn figures() {
        assert_eq!(ms(Some(140.4)), "140 ms");
        assert_eq!(ms(Some(12.44)), "12.4 ms");
        assert_eq!(ms(Some(1.5)), "1.50 ms");
        assert_eq!(ms(None), "–");
        assert_eq!((rate(1234.5), rate(99.94)), ("1,235".into(), "99.9".into()));
        assert_eq!(pct(0.9995), "99.95 %");
    }
}
