//! A typed walk over the parsed TOML document.
//!
//! The document is parsed with `toml::de::DeTable`, which keeps the byte span
//! of every key and value, so each error names the full field path *and* its
//! line. A [`Section`] is one table with the keys it allows; creating it
//! rejects unknown keys, and its getters turn wrong types into "expected X,
//! got Y" errors.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::Fail;
use super::units::{self, describe, float_value, int_value, quote};

pub(super) type Value<'i> = Spanned<DeValue<'i>>;

/// Keys that only exist at the top of the file; written after a table header
/// they silently belong to that table, hence the dedicated hint.
const TOP_LEVEL: &[&str] = &[
    "name",
    "thresholds",
    "recovery_window",
    "recovery_tolerance",
];

/// Where a misplaced key belongs, for the "belongs in" hint.
fn home_of(key: &str) -> Option<&'static str> {
    Some(match key {
        "url" | "builtin" | "protocol" | "timeout" | "tls_ca" | "insecure_skip_verify" => {
            "the [target] table"
        }
        "method" | "path" | "headers" | "body" | "body_size" | "body_file" | "expect" => {
            "the [target] table or a [[requests]] table"
        }
        "weight" => "a [[requests]] table",
        "status" | "header" | "body_contains" | "body_regex" | "json" | "grpc_status"
        | "max_body_bytes" => "a [target.expect] or [requests.expect] table",
        "file" | "format" | "order" | "on_end" => "a [[data]] table",
        "delay" | "error_rate" | "capacity" => "the [target.builtin] table",
        "connections"
        | "streams_per_connection"
        | "pipeline"
        | "max_in_flight"
        | "arrival"
        | "seed"
        | "wake_gap" => "the [load] table",
        "duration" | "rate" | "from" | "to" | "burst" => "a [[stages]] table",
        _ => return None,
    })
}

/// `path.key`, quoting the key when it is not a bare TOML key.
pub(super) fn join(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare { key.to_owned() } else { quote(key) };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// Item `i` of an array of tables (`[[name]]`) as a [`Section`] allowing
/// `keys`; anything but a table there is an error naming `name[i]`.
pub(super) fn array_table<'a, 'i>(
    name: &str,
    i: usize,
    item: &'a Value<'i>,
    keys: &[&str],
) -> Result<Section<'a, 'i>, Fail> {
    let path = format!("{name}[{i}]");
    let DeValue::Table(t) = item.get_ref() else {
        return Err(Fail::new(
            path,
            format!(
                "expected a table ([[{name}]]), got {}",
                describe(item.get_ref())
            ),
        )
        .at(Some(item.span())));
    };
    Section::new(path, t, Some(item.span()), keys)
}

/// One table of the document and the keys it allows.
pub(super) struct Section<'a, 'i> {
    /// Field path of the table itself ("" for the root, `stages[2]`, ...).
    pub path: String,
    /// Span of the table's header, when it has one (not for the root).
    pub span: Option<Range<usize>>,
    table: &'a DeTable<'i>,
}

impl<'a, 'i> Section<'a, 'i> {
    /// Wraps a table and rejects keys outside `allowed`, reporting the first
    /// one in file order.
    pub fn new(
        path: String,
        table: &'a DeTable<'i>,
        span: Option<Range<usize>>,
        allowed: &[&str],
    ) -> Result<Self, Fail> {
        let unknown = table
            .iter()
            .filter(|(k, _)| !allowed.contains(&k.get_ref().as_ref()))
            .min_by_key(|(k, _)| k.span().start);
        if let Some((key, _)) = unknown {
            let key_str: &str = key.get_ref();
            let message = format!(
                "unknown key; expected one of {}{}",
                allowed.join(", "),
                hint(&path, key_str, allowed)
            );
            return Err(Fail::new(join(&path, key_str), message).at(Some(key.span())));
        }
        Ok(Section { path, span, table })
    }

    pub fn field(&self, key: &str) -> String {
        join(&self.path, key)
    }

    pub fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)
    }

    /// The table's keys and values in file order, with each key's span.
    pub fn entries(&self) -> Vec<(&'a str, Range<usize>, &'a Value<'i>)> {
        entries(self.table)
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// An error about `key`, placed on its value's line (or the table's when
    /// the key is absent).
    pub fn fail(&self, key: &str, message: impl Into<String>) -> Fail {
        let span = self
            .get(key)
            .map(|v| v.span())
            .or_else(|| self.span.clone());
        Fail::new(self.field(key), message).at(span)
    }

    /// An error about a missing key.
    pub fn missing(&self, key: &str, expected: &str) -> Fail {
        Fail::new(self.field(key), format!("missing; expected {expected}")).at(self.span.clone())
    }

    fn wrong(&self, key: &str, v: &Value<'_>, expected: &str) -> Fail {
        let got = describe(v.get_ref());
        Fail::new(self.field(key), format!("expected {expected}, got {got}")).at(Some(v.span()))
    }

    pub fn str(&self, key: &str) -> Result<Option<&'a str>, Fail> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::String(s) => Ok(Some(s.as_ref())),
                _ => Err(self.wrong(key, v, "a string")),
            },
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, Fail> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::Boolean(b) => Ok(Some(*b)),
                _ => Err(self.wrong(key, v, "true or false")),
            },
        }
    }

    /// A non-negative integer (counts, seeds).
    pub fn uint(&self, key: &str) -> Result<Option<u64>, Fail> {
        const EXPECTED: &str = "a non-negative integer";
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::Integer(i) => match int_value(i) {
                    Some(n) if n >= 0 => Ok(Some(n as u64)),
                    _ => Err(self.wrong(key, v, EXPECTED)),
                },
                _ => Err(self.wrong(key, v, EXPECTED)),
            },
        }
    }

    /// Any TOML number, as written (range checks are the caller's).
    pub fn number(&self, key: &str, expected: &str) -> Result<Option<f64>, Fail> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::Integer(i) => match int_value(i) {
                    Some(n) => Ok(Some(n as f64)),
                    None => Err(self.wrong(key, v, expected)),
                },
                DeValue::Float(f) => Ok(Some(float_value(f.as_str()))),
                _ => Err(self.wrong(key, v, expected)),
            },
        }
    }

    /// A fraction: a number, or a percentage string such as "10%".
    pub fn fraction(&self, key: &str, expected: &str) -> Result<Option<f64>, Fail> {
        if let Some(v) = self.get(key) {
            if let DeValue::String(s) = v.get_ref() {
                return match units::parse_percent(s) {
                    Some(f) => Ok(Some(f)),
                    None => Err(self.wrong(key, v, expected)),
                };
            }
        }
        self.number(key, expected)
    }

    /// Requests per second: a number or a string such as "10k" or "1.5M".
    pub fn rate(&self, key: &str) -> Result<Option<f64>, Fail> {
        const EXPECTED: &str = "a rate in requests per second such as 1000, 2.5 or \"10k\"";
        if let Some(v) = self.get(key) {
            if let DeValue::String(s) = v.get_ref() {
                return match units::parse_rate(s) {
                    Some(r) => Ok(Some(r)),
                    None => Err(self.wrong(key, v, EXPECTED)),
                };
            }
        }
        self.number(key, EXPECTED)
    }

    /// A byte count: an integer, or a string such as "1KiB" or "1k".
    pub fn size(&self, key: &str) -> Result<Option<u64>, Fail> {
        const EXPECTED: &str = "a size in bytes such as 512, \"512B\", \"1k\" or \"1KiB\"";
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                let parsed = match v.get_ref() {
                    DeValue::Integer(i) => int_value(i).and_then(|n| u64::try_from(n).ok()),
                    DeValue::String(s) => units::parse_size(s),
                    _ => None,
                };
                parsed.map(Some).ok_or_else(|| self.wrong(key, v, EXPECTED))
            }
        }
    }

    /// A humantime duration string; bare numbers are refused because "10"
    /// could mean seconds or milliseconds.
    pub fn duration(&self, key: &str) -> Result<Option<Duration>, Fail> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::String(s) => units::parse_duration(s)
                    .map(Some)
                    .map_err(|m| Fail::new(self.field(key), m).at(Some(v.span()))),
                DeValue::Integer(i) => {
                    let mut f = self.wrong(key, v, "a duration string such as \"10s\"");
                    f.message +=
                        &format!(" (write \"{i}s\" for seconds or \"{i}ms\" for milliseconds)");
                    Err(f)
                }
                _ => Err(self.wrong(key, v, "a duration string such as \"10s\"")),
            },
        }
    }

    /// A sub-table (`[a.b]`, `b = { ... }` or dotted keys), with its allowed keys.
    pub fn table(&self, key: &str, allowed: &[&str]) -> Result<Option<Section<'a, 'i>>, Fail> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::Table(t) => {
                    Section::new(self.field(key), t, Some(v.span()), allowed).map(Some)
                }
                _ => Err(self.wrong(key, v, &format!("a table ([{}])", self.field(key)))),
            },
        }
    }

    /// An array of values (`thresholds`, `stages`).
    pub fn array(&self, key: &str, expected: &str) -> Result<Option<&'a [Value<'i>]>, Fail> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::Array(a) => Ok(Some(a)),
                _ => Err(self.wrong(key, v, expected)),
            },
        }
    }
}

/// A table's keys and values in file order (the parsed table is sorted by
/// key), with each key's span.
pub(super) fn entries<'a, 'i>(
    table: &'a DeTable<'i>,
) -> Vec<(&'a str, Range<usize>, &'a Value<'i>)> {
    let mut out: Vec<_> = table
        .iter()
        .map(|(k, v)| (k.get_ref().as_ref(), k.span(), v))
        .collect();
    out.sort_by_key(|(_, span, _)| span.start);
    out
}

/// Span of the value at a field path such as `stages[2].rate`, for errors
/// found after the walk (by `Plan::validate`).
pub(super) fn span_of(root: &DeTable<'_>, field: &str) -> Option<Range<usize>> {
    let mut table = root;
    let mut found = None;
    for part in field.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.strip_suffix(']')?.parse::<usize>().ok()),
            None => (part, None),
        };
        let (_, mut v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == key)?;
        if let (Some(i), DeValue::Array(a)) = (index, v.get_ref()) {
            v = a.get(i)?;
        }
        found = Some(v.span());
        match v.get_ref() {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    found
}

/// The hint appended to an unknown-key error.
fn hint(path: &str, key: &str, allowed: &[&str]) -> String {
    if !path.is_empty() && TOP_LEVEL.contains(&key) {
        return if let Some((array, _)) = path.split_once('[') {
            format!("; top-level keys such as `{key}` must come before the first [[{array}]] table")
        } else {
            format!(
                "; top-level keys such as `{key}` must come before the first table \
                 (in TOML a key written after [{path}] belongs to that table)"
            )
        };
    }
    let close = allowed
        .iter()
        .map(|a| (edit_distance(a, key), *a))
        .filter(|(d, _)| *d <= 2)
        .min();
    // One letter off a key of this very table (`headers` in an expect
    // table) is a typo, wherever else the key would belong.
    if let Some((1, a)) = close {
        return format!("; did you mean `{a}`?");
    }
    if let Some(home) = home_of(key) {
        return format!("; `{key}` belongs in {home}");
    }
    match close {
        Some((_, a)) => format!("; did you mean `{a}`?"),
        None => String::new(),
    }
}

/// Levenshtein distance, for "did you mean" (short keys only).
fn edit_distance(a: &str, b: &str) -> usize {
    if b.len() > 64 {
        return usize::MAX;
    }
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The names given in an array of tables (`[[stages]]`, `[[requests]]`),
/// each of which may be used once.
#[derive(Default)]
pub(super) struct UniqueNames(HashMap<String, usize>);

impl UniqueNames {
    /// Records `name`, the name of `table[i]` (given as `sec`), or fails
    /// naming the earlier table that has it.
    pub fn check(
        &mut self,
        sec: &Section<'_, '_>,
        table: &str,
        what: &str,
        i: usize,
        name: &str,
    ) -> Result<(), Fail> {
        let Some(first) = self.0.insert(name.to_string(), i) else {
            return Ok(());
        };
        let (how, fix) = if sec.has("name") {
            ("", "")
        } else {
            ("the default name ", " (set `name`)")
        };
        Err(sec.fail(
            "name",
            format!(
                "{how}{} is already used by {table}[{first}]; {what} names must be unique{fix}",
                quote(name)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with<R>(
        src: &str,
        allowed: &[&str],
        f: impl FnOnce(Result<Section<'_, '_>, Fail>) -> R,
    ) -> R {
        let doc = DeTable::parse(src).unwrap();
        f(Section::new("t".into(), doc.get_ref(), None, allowed))
    }

    #[test]
    fn unknown_keys_are_reported_first_in_file_order() {
        let f = with("zz = 1\naa = 2\nok = 3", &["ok"], |s| s.err().unwrap());
        assert_eq!(f.field, "t.zz");
        assert!(
            f.message.starts_with("unknown key; expected one of ok"),
            "{}",
            f.message
        );
        assert_eq!(f.span, Some(0..2));
    }

    #[test]
    fn hints() {
        assert_eq!(hint("", "rat", &["rate", "name"]), "; did you mean `rate`?");
        assert_eq!(hint("", "xyzzy", &["rate"]), "");
        assert!(hint("stages[1]", "thresholds", &[]).contains("before the first [[stages]] table"));
        assert!(
            hint("requests[0]", "thresholds", &[]).contains("before the first [[requests]] table")
        );
        assert_eq!(
            hint("load", "body_file", &[]),
            "; `body_file` belongs in the [target] table or a [[requests]] table"
        );
        assert_eq!(
            hint("target", "pipeline", &[]),
            "; `pipeline` belongs in the [load] table"
        );
        assert!(hint("target", "name", &[]).contains("after [target] belongs"));
        assert_eq!(
            hint("load", "url", &[]),
            "; `url` belongs in the [target] table"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn spans_of_field_paths() {
        let src = "[t]\nu = 1\n[[s]]\nr = 1\n[[s]]\nr = 2\n";
        let doc = DeTable::parse(src).unwrap();
        let at = |f: &str| span_of(doc.get_ref(), f).map(|s| &src[s]);
        assert_eq!(at("t.u"), Some("1"));
        assert_eq!(at("s[1].r"), Some("2"));
        assert_eq!(at("s[1]"), Some("[[s]]"));
        assert_eq!(at("s[9].r"), None);
        assert_eq!(at("nope"), None);
    }

    #[test]
    fn join_quotes_odd_keys() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("t.headers", "X-Id"), "t.headers.X-Id");
        assert_eq!(join("t.headers", "a b"), "t.headers.\"a b\"");
    }

    #[test]
    fn typed_getters() {
        let src = "s = \"x\"\nb = true\nu = 7\nn = -1\nf = 2.5\np = \"10%\"\nr = \"10k\"\nz = \"1KiB\"\nd = \"2s\"\ni = 10";
        let all = ["s", "b", "u", "n", "f", "p", "r", "z", "d", "i"];
        with(src, &all, |s| {
            let s = s.unwrap();
            assert_eq!(s.str("s").unwrap(), Some("x"));
            assert_eq!(s.bool("b").unwrap(), Some(true));
            assert_eq!(s.uint("u").unwrap(), Some(7));
            assert!(s.uint("n").unwrap_err().message.contains("got integer -1"));
            assert_eq!(s.number("f", "x").unwrap(), Some(2.5));
            assert_eq!(s.fraction("p", "x").unwrap(), Some(0.1));
            assert_eq!(s.rate("r").unwrap(), Some(10_000.0));
            assert_eq!(s.size("z").unwrap(), Some(1024));
            assert_eq!(s.duration("d").unwrap(), Some(Duration::from_secs(2)));
            let e = s.duration("i").unwrap_err();
            assert_eq!(e.field, "t.i");
            assert!(e
                .message
                .starts_with("expected a duration string such as \"10s\", got integer 10"));
            assert!(s
                .str("b")
                .unwrap_err()
                .message
                .contains("expected a string, got boolean true"));
            assert_eq!(s.str("missing").unwrap(), None);
        });
    }
}
