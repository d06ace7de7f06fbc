//! Request templates: `{{ ... }}` in a path, a header value or a body.
//!
//! A template is compiled once per worker into a list of segments (literal
//! bytes, or a value to draw) and rendered per request into a buffer the
//! caller reuses, so sending a templated request allocates nothing once the
//! buffer has grown. A hand-written compiler rather than a general template
//! engine (minijinja, handlebars): those build values, escape and look names
//! up at render time, which is the per-request cost this avoids; the
//! language needed here is a dozen values and three functions.
//!
//! Every value except `now_ms`, `now_rfc3339` and `worker` is a pure function
//! of the scenario's seed and the global arrival index `seq`, so the same
//! scenario and seed send the same bytes for the same `seq` whichever worker
//! sends it, however many there are and however the share was re-split.
//!
//! | expression | value |
//! | --- | --- |
//! | `seq` | the global arrival index, unique within the run |
//! | `uuid` | an RFC 4122 v4 UUID drawn from (seed, seq); one per arrival |
//! | `rand_int(a, b)` | an integer in `a..=b` |
//! | `rand_hex(n)` | `n` lower-case hex digits |
//! | `pick("a", "b", …)` | one of the strings |
//! | `now_ms`, `now_rfc3339` | the actual send time |
//! | `worker`, `stage` | the sending worker's id, the stage's name |
//! | `vars.NAME`, `env.NAME` | a `[vars]` value (or `--set`), an environment variable |
//! | `data.SET.COLUMN` | a column of the data row of this arrival ([`crate::data`]) |
//! | `"text"` | the text itself (`{{"{{"}}` writes `{{`) |
//!
//! Each function call draws from its own stream (keyed by its place in the
//! plan), so `rand_int(1, 5)` written twice gives two independent values.

use crate::data::DataSet;
use std::fmt;
use std::io::Write;
use std::time::SystemTime;

/// Longest template source accepted.
pub const MAX_TEMPLATE: usize = 1024 * 1024;
/// Longest `rand_hex(n)`.
pub const MAX_HEX: u64 = 1024;
/// Most choices of one `pick`.
pub const MAX_PICK: usize = 10_000;

/// Whether `s` holds template syntax at all (else it is sent as it is).
pub fn is_template(s: &[u8]) -> bool {
    s.windows(2).any(|w| w == b"{{")
}

/// What a template may refer to, resolved when it is compiled.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// `[vars]` after `--set` overrides.
    pub vars: &'a [(String, String)],
    /// The environment variables the scenario names, as the submitting
    /// client read them.
    pub env: &'a [(String, String)],
    /// The plan's data sets, in order.
    pub data: &'a [DataSet],
}

/// Everything a render may draw from. A future multi-step session can add
/// values extracted from earlier responses here.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub seq: u64,
    pub seed: u64,
    /// The actual send time (only read when the template uses it).
    pub now: SystemTime,
    pub worker: &'a str,
    pub stage: &'a str,
    pub data: &'a [DataSet],
}

/// A compile error: the byte offset of the offending expression in the
/// source and a sentence saying what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

impl TemplateError {
    fn at(offset: usize, message: impl Into<String>) -> Self {
        TemplateError {
            offset,
            message: message.into(),
        }
    }
}

#[derive(Clone, PartialEq)]
enum Seg {
    Lit(Box<[u8]>),
    Seq,
    Uuid,
    RandInt {
        lo: i64,
        span: u64,
        salt: u64,
    },
    RandHex {
        n: u32,
        salt: u64,
    },
    Pick {
        choices: Box<[Box<[u8]>]>,
        salt: u64,
    },
    NowMs,
    NowRfc3339,
    Worker,
    Stage,
    Data {
        set: usize,
        col: usize,
    },
}

/// A compiled template.
#[derive(Clone, PartialEq)]
pub struct Template {
    segs: Vec<Seg>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({} segments)", self.segs.len())
    }
}

/// Salt of the `uuid` stream (one per arrival, shared by every place that
/// writes `uuid`).
const UUID_SALT: u64 = 0x5555_5555_5555_5555;

impl Template {
    /// Compiles `src`. Function calls take their random streams from
    /// `site`, which is advanced once per call: compile a plan's templates
    /// in a fixed order with one counter so every worker numbers them alike.
    pub fn compile(
        src: &str,
        scope: &Scope<'_>,
        site: &mut u64,
    ) -> Result<Template, TemplateError> {
        if src.len() > MAX_TEMPLATE {
            return Err(TemplateError::at(
                0,
                format!(
                    "a template of at most {MAX_TEMPLATE} bytes, got {}",
                    src.len()
                ),
            ));
        }
        let mut segs = Vec::new();
        let mut lit: Vec<u8> = Vec::new();
        let mut rest = src;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            lit.extend_from_slice(&rest.as_bytes()[..open]);
            let inner_start = open + 2;
            let close = find_close(&rest[inner_start..]).ok_or_else(|| {
                TemplateError::at(offset + open, "a closing }} for the {{ opened here")
            })?;
            let expr = &rest[inner_start..inner_start + close];
            let at = offset + inner_start;
            match compile_expr(expr, at, scope, site)? {
                Seg::Lit(b) => lit.extend_from_slice(&b),
                seg => {
                    if !lit.is_empty() {
                        segs.push(Seg::Lit(std::mem::take(&mut lit).into_boxed_slice()));
                    }
                    segs.push(seg);
                }
            }
            let consumed = inner_start + close + 2;
            rest = &rest[consumed..];
            offset += consumed;
        }
        lit.extend_from_slice(rest.as_bytes());
        if !lit.is_empty() {
            segs.push(Seg::Lit(lit.into_boxed_slice()));
        }
        Ok(Template { segs })
    }

    /// The bytes, when they do not depend on the arrival (no expression, or
    /// only constant ones such as `vars.NAME`).
    pub fn as_static(&self) -> Option<&[u8]> {
        match self.segs.as_slice() {
            [] => Some(&[]),
            [Seg::Lit(b)] => Some(b),
            _ => None,
        }
    }

    /// Whether rendering reads the clock.
    pub fn uses_time(&self) -> bool {
        self.segs
            .iter()
            .any(|s| matches!(s, Seg::NowMs | Seg::NowRfc3339))
    }

    /// Whether rendering needs the stage name.
    pub fn uses_stage(&self) -> bool {
        self.segs.iter().any(|s| matches!(s, Seg::Stage))
    }

    /// Appends the rendering for `ctx` to `out`.
    pub fn render(&self, ctx: &Context<'_>, out: &mut Vec<u8>) {
        for seg in &self.segs {
            match seg {
                Seg::Lit(b) => out.extend_from_slice(b),
                Seg::Seq => write_u64(out, ctx.seq),
                Seg::Uuid => {
                    let u = uuid_of(ctx.seed, ctx.seq);
                    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
                    out.extend_from_slice(u.hyphenated().encode_lower(&mut buf).as_bytes());
                }
                Seg::RandInt { lo, span, salt } => {
                    let h = draw(ctx.seed, ctx.seq, *salt);
                    // Lemire's multiply-shift: unbiased enough for load data
                    // and no division.
                    let off = if *span == 0 {
                        h
                    } else {
                        ((u128::from(h) * u128::from(*span)) >> 64) as u64
                    };
                    let v = (*lo as i128 + i128::from(off)) as i64;
                    write_i64(out, v);
                }
                Seg::RandHex { n, salt } => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    let mut left = *n;
                    let mut block = 0u64;
                    while left > 0 {
                        let mut h = draw(ctx.seed, ctx.seq, salt.wrapping_add(block));
                        for _ in 0..left.min(16) {
                            out.push(HEX[(h & 15) as usize]);
                            h >>= 4;
                        }
                        left = left.saturating_sub(16);
                        block += 1;
                    }
                }
                Seg::Pick { choices, salt } => {
                    let h = draw(ctx.seed, ctx.seq, *salt);
                    let i = ((u128::from(h) * choices.len() as u128) >> 64) as usize;
                    out.extend_from_slice(&choices[i]);
                }
                Seg::NowMs => {
                    let ms = ctx
                        .now
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0);
                    write_u64(out, ms);
                }
                Seg::NowRfc3339 => {
                    let _ = write!(out, "{}", humantime::format_rfc3339_millis(ctx.now));
                }
                Seg::Worker => out.extend_from_slice(ctx.worker.as_bytes()),
                Seg::Stage => out.extend_from_slice(ctx.stage.as_bytes()),
                Seg::Data { set, col } => {
                    let d = &ctx.data[*set];
                    out.extend_from_slice(d.cell(d.row_of(ctx.seq, ctx.seed), *col));
                }
            }
        }
    }

    /// The rendering for `ctx` as a new vector (tests, start-up checks).
    pub fn render_to_vec(&self, ctx: &Context<'_>) -> Vec<u8> {
        let mut v = Vec::new();
        self.render(ctx, &mut v);
        v
    }
}

/// The RFC 4122 v4 UUID of arrival `seq` under `seed`.
pub fn uuid_of(seed: u64, seq: u64) -> uuid::Uuid {
    let hi = draw(seed, seq, UUID_SALT);
    let lo = draw(seed, seq, UUID_SALT ^ 0xa5a5_a5a5_a5a5_a5a5);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A well-mixed 64-bit value keyed by (seed, seq, salt): counter-based, so
/// any worker computes the value of any arrival without shared state.
#[inline]
pub fn draw(seed: u64, seq: u64, salt: u64) -> u64 {
    splitmix64(seed ^ splitmix64(seq ^ splitmix64(salt)))
}

/// SplitMix64's finaliser: a cheap, well-mixed hash of a counter (the
/// plan's one source of seeded randomness: request mix, Poisson gaps,
/// template values, random data rows).
#[inline]
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
}

/// The offset of the `}}` closing an expression (`s` starts right after
/// its `{{`), skipping string literals, where `}}` is text.
pub fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        match b[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'}' if !in_str && b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

const KNOWN: &str = "seq, uuid, rand_int(a, b), rand_hex(n), pick(\"a\", …), now_ms, \
                     now_rfc3339, worker, stage, vars.NAME, env.NAME, data.SET.COLUMN or a \"string\"";

fn compile_expr(
    expr: &str,
    at: usize,
    scope: &Scope<'_>,
    site: &mut u64,
) -> Result<Seg, TemplateError> {
    let lead = expr.len() - expr.trim_start().len();
    let at = at + lead;
    let e = expr.trim();
    if e.is_empty() {
        return Err(TemplateError::at(
            at,
            format!("an expression inside {{{{ }}}}: {KNOWN}"),
        ));
    }
    if e.starts_with('"') {
        let mut p = Parser { s: e, i: 0, at };
        let s = p.string()?;
        p.end()?;
        return Ok(Seg::Lit(s.into_bytes().into_boxed_slice()));
    }
    if let Some(paren) = e.find('(') {
        let name = e[..paren].trim();
        let mut p = Parser {
            s: e,
            i: paren + 1,
            at,
        };
        *site += 1;
        let salt = splitmix64(*site);
        let seg = match name {
            "rand_int" => {
                let a = p.int()?;
                p.comma()?;
                let b = p.int()?;
                p.close()?;
                if a > b {
                    return Err(TemplateError::at(
                        at,
                        format!("rand_int(a, b) with a <= b, got rand_int({a}, {b})"),
                    ));
                }
                Seg::RandInt {
                    lo: a,
                    span: (b as i128 - a as i128 + 1) as u64,
                    salt,
                }
            }
            "rand_hex" => {
                let n = p.int()?;
                p.close()?;
                if !(1..=MAX_HEX as i64).contains(&n) {
                    return Err(TemplateError::at(
                        at,
                        format!("rand_hex(n) with n between 1 and {MAX_HEX}, got {n}"),
                    ));
                }
                Seg::RandHex { n: n as u32, salt }
            }
            "pick" => {
                let mut choices = vec![p.string()?.into_bytes().into_boxed_slice()];
                while p.comma_or_close()? {
                    choices.push(p.string()?.into_bytes().into_boxed_slice());
                }
                if choices.len() > MAX_PICK {
                    return Err(TemplateError::at(
                        at,
                        format!("pick(…) with at most {MAX_PICK} choices"),
                    ));
                }
                Seg::Pick {
                    choices: choices.into_boxed_slice(),
                    salt,
                }
            }
            _ => {
                return Err(TemplateError::at(
                    at,
                    format!("unknown function {name:?}; expected one of {KNOWN}"),
                ))
            }
        };
        p.end()?;
        return Ok(seg);
    }
    let parts: Vec<&str> = e.split('.').collect();
    Ok(match parts.as_slice() {
        ["seq"] => Seg::Seq,
        ["uuid"] => Seg::Uuid,
        ["now_ms"] => Seg::NowMs,
        ["now_rfc3339"] => Seg::NowRfc3339,
        ["worker"] => Seg::Worker,
        ["stage"] => Seg::Stage,
        ["vars", name] => match scope.vars.iter().find(|(n, _)| n == name) {
            Some((_, v)) => Seg::Lit(v.as_bytes().into()),
            None => {
                return Err(TemplateError::at(
                    at,
                    format!(
                        "unknown variable vars.{name}; define it in [vars] or pass --set {name}=VALUE{}",
                        listing("defined", scope.vars.iter().map(|(n, _)| n.as_str()))
                    ),
                ))
            }
        },
        ["env", name] => match scope.env.iter().find(|(n, _)| n == name) {
            Some((_, v)) => Seg::Lit(v.as_bytes().into()),
            None => {
                return Err(TemplateError::at(
                    at,
                    format!("environment variable {name} is not set (env.{name})"),
                ))
            }
        },
        ["data", set, column] => {
            let Some(si) = scope.data.iter().position(|d| d.name == *set) else {
                return Err(TemplateError::at(
                    at,
                    format!(
                        "unknown data set {set:?} (data.{set}.{column}); declare it in a [[data]] table{}",
                        listing("declared", scope.data.iter().map(|d| d.name.as_str()))
                    ),
                ));
            };
            let d = &scope.data[si];
            let Some(col) = d.column(column) else {
                return Err(TemplateError::at(
                    at,
                    format!(
                        "data set {set:?} has no column {column:?}{}",
                        listing("its columns are", d.columns().iter().map(String::as_str))
                    ),
                ));
            };
            Seg::Data { set: si, col }
        }
        _ => {
            return Err(TemplateError::at(
                at,
                format!("unknown value {e:?}; expected one of {KNOWN}"),
            ))
        }
    })
}

fn listing<'a>(what: &str, names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.take(20).map(|n| format!("{n:?}")).collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({what}: {})", names.join(", "))
    }
}

/// A cursor over a function call's arguments.
struct Parser<'s> {
    s: &'s str,
    i: usize,
    at: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.s[self.i..].starts_with(|c: char| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn fail(&self, what: &str) -> TemplateError {
        TemplateError::at(self.at + self.i, format!("{what} in {:?}", self.s))
    }

    fn int(&mut self) -> Result<i64, TemplateError> {
        self.skip_ws();
        let start = self.i;
        let b = self.s.as_bytes();
        if b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        while b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.s[start..self.i]
            .parse()
            .map_err(|_| self.fail("an integer argument"))
    }

    fn string(&mut self) -> Result<String, TemplateError> {
        self.skip_ws();
        let b = self.s.as_bytes();
        if b.get(self.i) != Some(&b'"') {
            return Err(self.fail("a \"quoted\" string"));
        }
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.s[self.i..].chars().next() else {
                return Err(self.fail("a closing quote"));
            };
            self.i += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let Some(n) = self.s[self.i..].chars().next() else {
                        return Err(self.fail("a character after \\"));
                    };
                    self.i += n.len_utf8();
                    out.push(n);
                }
                c => out.push(c),
            }
        }
    }

    fn comma(&mut self) -> Result<(), TemplateError> {
        self.skip_ws();
        if self.s[self.i..].starts_with(',') {
            self.i += 1;
            Ok(())
        } else {
            Err(self.fail("a comma between arguments"))
        }
    }

    fn close(&mut self) -> Result<(), TemplateError> {
        self.skip_ws();
        if self.s[self.i..].starts_with(')') {
            self.i += 1;
            Ok(())
        } else {
            Err(self.fail("a closing parenthesis"))
        }
    }

    /// `true` after a comma (another argument follows), `false` after `)`.
    fn comma_or_close(&mut self) -> Result<bool, TemplateError> {
        self.skip_ws();
        if self.s[self.i..].starts_with(',') {
            self.i += 1;
            Ok(true)
        } else if self.s[self.i..].starts_with(')') {
            self.i += 1;
            Ok(false)
        } else {
            Err(self.fail("a comma or a closing parenthesis"))
        }
    }

    fn end(&mut self) -> Result<(), TemplateError> {
        self.skip_ws();
        if self.i == self.s.len() {
            Ok(())
        } else {
            Err(self.fail("nothing after the expression"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DataSet, Format, OnEnd, Order};
    use std::collections::HashSet;

    fn users() -> DataSet {
        DataSet::parse(
            "users",
            Format::Csv,
            Order::Sequential,
            OnEnd::Wrap,
            b"id,name\n1,ann\n2,bob\n3,cy\n",
        )
        .unwrap()
    }

    fn compile(src: &str) -> Result<Template, TemplateError> {
        let vars = vec![("tenant".to_string(), "acme".to_string())];
        let env = vec![("TOKEN".to_string(), "s3cret".to_string())];
        let data = vec![users()];
        let scope = Scope {
            vars: &vars,
            env: &env,
            data: &data,
        };
        Template::compile(src, &scope, &mut 0)
    }

    fn render(t: &Template, seq: u64, seed: u64) -> String {
        let data = vec![users()];
        let ctx = Context {
            seq,
            seed,
            now: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123),
            worker: "w1",
            stage: "steady",
            data: &data,
        };
        String::from_utf8(t.render_to_vec(&ctx)).unwrap()
    }

    #[test]
    fn literals_and_constants_compile_to_static_bytes() {
        let t = compile("/orders/{{ vars.tenant }}/x?t={{env.TOKEN}}{{\"{{\"}}").unwrap();
        assert_eq!(t.as_static(), Some(&b"/orders/acme/x?t=s3cret{{"[..]));
        assert_eq!(compile("").unwrap().as_static(), Some(&b""[..]));
        assert!(compile("{{seq}}").unwrap().as_static().is_none());
    }

    #[test]
    fn values_render() {
        let t =
            compile("{{seq}}|{{worker}}|{{stage}}|{{now_ms}}|{{now_rfc3339}}|{{data.users.name}}")
                .unwrap();
        assert!(t.uses_time() && t.uses_stage());
        assert_eq!(
            render(&t, 4, 0),
            "4|w1|steady|1700000000123|2023-11-14T22:13:20.123Z|bob"
        );
    }

    #[test]
    fn uuid_is_v4_unique_and_the_same_within_an_arrival() {
        let t = compile("{{uuid}} {{uuid}}").unwrap();
        let mut seen = HashSet::new();
        for seq in 0..10_000 {
            let s = render(&t, seq, 7);
            let (a, b) = s.split_once(' ').unwrap();
            assert_eq!(a, b);
            let u = uuid::Uuid::parse_str(a).unwrap();
            assert_eq!(u.get_version(), Some(uuid::Version::Random));
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
            assert!(seen.insert(u));
        }
        assert_ne!(render(&t, 1, 7), render(&t, 1, 8), "the seed changes it");
    }

    #[test]
    fn rand_int_stays_in_range_and_covers_it() {
        let t = compile("{{rand_int(-2, 3)}}").unwrap();
        let mut seen = HashSet::new();
        for seq in 0..2000 {
            let v: i64 = render(&t, seq, 1).parse().unwrap();
            assert!((-2..=3).contains(&v), "{v}");
            seen.insert(v);
        }
        assert_eq!(seen.len(), 6);
        let full = compile("{{rand_int(-9223372036854775808, 9223372036854775807)}}").unwrap();
        render(&full, 3, 3).parse::<i64>().unwrap();
        let one = compile("{{rand_int(5, 5)}}").unwrap();
        assert_eq!(render(&one, 9, 9), "5");
    }

    #[test]
    fn rand_hex_and_pick() {
        let t = compile("{{rand_hex(40)}}").unwrap();
        let s = render(&t, 1, 1);
        assert_eq!(s.len(), 40);
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let p = compile(r#"{{ pick("a", "b\"q", "c") }}"#).unwrap();
        let seen: HashSet<String> = (0..300).map(|k| render(&p, k, 0)).collect();
        assert_eq!(seen, ["a", "b\"q", "c"].map(String::from).into());
    }

    #[test]
    fn each_call_site_draws_its_own_stream() {
        let t = compile("{{rand_hex(16)}} {{rand_hex(16)}}").unwrap();
        let s = render(&t, 5, 5);
        let (a, b) = s.split_once(' ').unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn rendering_is_a_pure_function_of_seed_and_seq() {
        let t = compile("{{seq}}-{{uuid}}-{{rand_int(1,100)}}-{{rand_hex(8)}}-{{pick(\"x\",\"y\")}}-{{data.users.id}}")
            .unwrap();
        let again = compile("{{seq}}-{{uuid}}-{{rand_int(1,100)}}-{{rand_hex(8)}}-{{pick(\"x\",\"y\")}}-{{data.users.id}}")
            .unwrap();
        for seq in [0, 1, 999, u64::MAX] {
            assert_eq!(render(&t, seq, 3), render(&again, seq, 3));
        }
    }

    #[test]
    fn errors_say_what_was_expected_and_where() {
        let e = compile("/a/{{ nope }}").unwrap_err();
        assert_eq!(e.offset, 6);
        assert!(e.message.contains("unknown value \"nope\""), "{e}");
        let e = compile("{{vars.missing}}").unwrap_err();
        assert!(e.message.contains("--set missing=VALUE"), "{e}");
        assert!(e.message.contains("\"tenant\""), "{e}");
        let e = compile("{{data.users.email}}").unwrap_err();
        assert!(e.message.contains("no column \"email\""), "{e}");
        assert!(e.message.contains("\"id\", \"name\""), "{e}");
        let e = compile("{{data.orders.id}}").unwrap_err();
        assert!(e.message.contains("unknown data set \"orders\""), "{e}");
        let e = compile("{{env.HOME_X}}").unwrap_err();
        assert!(e.message.contains("HOME_X is not set"), "{e}");
        assert!(compile("{{ frob(1) }}")
            .unwrap_err()
            .message
            .contains("unknown function"));
        assert!(compile("{{rand_int(5, 1)}}")
            .unwrap_err()
            .message
            .contains("a <= b"));
        assert!(compile("{{rand_int(1 2)}}")
            .unwrap_err()
            .message
            .contains("comma"));
        assert!(compile("{{rand_hex(0)}}").is_err());
        assert!(compile("{{pick(a)}}")
            .unwrap_err()
            .message
            .contains("quoted"));
        assert!(compile("{{seq").unwrap_err().message.contains("closing }}"));
        assert!(compile("{{}}").is_err());
        assert!(compile("{{ \"a\" x }}").is_err());
    }

    #[test]
    fn a_closing_brace_inside_a_string_does_not_end_the_expression() {
        let t = compile(r#"{{ pick("}}") }}!"#).unwrap();
        assert_eq!(render(&t, 0, 0), "}}!");
    }

    #[test]
    fn the_rendering_of_a_seed_is_pinned() {
        // A rerun against a saved baseline must send the same bytes: the
        // values of seed 42, arrival 7 are fixed, bit for bit.
        let t = compile(
            "{{uuid}} {{rand_int(-1000, 1000)}} {{rand_hex(40)}} {{pick(\"a\", \"b\", \"c\", \"d\")}}",
        )
        .unwrap();
        assert_eq!(render(&t, 7, 42), PINNED);
    }

    const PINNED: &str = "14aad922-4954-4941-9a99-9917b7036549 -551 \
                          119d7301276840f7616bc474e54a0ad25e43084b d";

    #[test]
    fn zero_has_no_sign() {
        assert_eq!(render(&compile("{{rand_int(0, 0)}}").unwrap(), 1, 1), "0");
        assert_eq!(
            render(&compile("{{rand_int(-1, -1)}}").unwrap(), 1, 1),
            "-1"
        );
    }

    #[test]
    fn only_clock_and_stage_values_say_they_need_them() {
        let t = compile("{{seq}}{{uuid}}{{worker}}{{rand_hex(4)}}").unwrap();
        assert!(!t.uses_time() && !t.uses_stage());
        assert!(compile("{{now_ms}}").unwrap().uses_time());
        assert!(!compile("{{now_ms}}").unwrap().uses_stage());
        assert!(compile("{{stage}}").unwrap().uses_stage());
        assert!(!compile("{{stage}}").unwrap().uses_time());
        assert_eq!(format!("{t:?}"), "Template(4 segments)");
        let lit = compile("a{{seq}}b").unwrap();
        assert_eq!(format!("{lit:?}"), "Template(3 segments)");
    }

    #[test]
    fn limits_are_inclusive() {
        let at_most = "a".repeat(MAX_TEMPLATE);
        assert_eq!(
            compile(&at_most).unwrap().as_static().map(<[u8]>::len),
            Some(MAX_TEMPLATE)
        );
        let e = compile(&format!("{at_most}a")).unwrap_err();
        assert!(e.message.contains("at most 1048576 bytes"), "{e}");
        let pick = |n: usize| format!("{{{{pick({})}}}}", vec!["\"x\""; n].join(","));
        assert!(compile(&pick(MAX_PICK)).is_ok());
        let e = compile(&pick(MAX_PICK + 1)).unwrap_err();
        assert!(e.message.contains("at most 10000 choices"), "{e}");
        assert!(compile("{{rand_hex(1024)}}").is_ok());
        assert!(compile("{{rand_hex(1025)}}").is_err());
    }

    #[test]
    fn error_offsets_count_from_the_start_of_the_source() {
        // The second `{{` (offset 8) is never closed.
        let e = compile("{{seq}}x{{seq").unwrap_err();
        assert_eq!(e.offset, 8, "{e}");
        // A single `}` does not close an expression.
        let e = compile("{{ seq } }}").unwrap_err();
        assert!(e.message.contains("unknown value \"seq }\""), "{e}");
        // The missing comma is at the `2`.
        let e = compile("x{{rand_int(1 2)}}").unwrap_err();
        assert_eq!(e.offset, 14, "{e}");
    }

    #[test]
    fn a_backslash_escapes_only_inside_a_string() {
        let e = compile(r"{{ \}}x").unwrap_err();
        assert!(e.message.contains(r#"unknown value "\\""#), "{e}");
        let t = compile(r#"{{ pick("\"}}") }}"#).unwrap();
        assert_eq!(render(&t, 0, 0), "\"}}");
    }

    #[test]
    fn detection() {
        assert!(is_template(b"a{{b"));
        assert!(!is_template(b"{ \"a\": {} }"));
    }
}
