//! The load shape: the optional `[load]` table and the `[[stages]]` list.

use std::time::Duration;

use volley_plan::model::{
    MAX_CONNECTIONS, MAX_CONNECTION_LIFETIME, MAX_IN_FLIGHT, MAX_PER_CONNECTION, MAX_RESOLVE_EVERY,
    MAX_RPS, MAX_STAGE, MAX_STAGES, MAX_WAKE_GAP, MIN_CONNECTION_LIFETIME, MIN_RESOLVE_EVERY,
    MIN_WAKE_GAP,
};
use volley_plan::{Arrival, Load, Protocol, Stage};

use super::error::Fail;
use super::raw::{array_table, Section, UniqueNames};
use super::units::{quote, show};

const LOAD_KEYS: &[&str] = &[
    "connections",
    "streams_per_connection",
    "pipeline",
    "max_in_flight",
    "arrival",
    "seed",
    "expected_latency",
    "resolve_every",
    "connection_lifetime",
    "max_requests_per_connection",
    "wake_gap",
];
const STAGE_KEYS: &[&str] = &["name", "duration", "rate", "from", "to", "burst"];
const MAX_NAME: usize = 64;

/// Reads `[load]`; every key is optional. How many requests share a
/// connection is `streams_per_connection` for HTTP/2 and gRPC, `pipeline`
/// for framed TCP, and always 1 for HTTP/1.1.
pub(super) fn load(root: &Section<'_, '_>, protocol: Protocol) -> Result<Load, Fail> {
    let mut load = Load {
        per_connection: protocol.default_per_connection(),
        ..Load::default()
    };
    let Some(sec) = root.table("load", LOAD_KEYS)? else {
        return Ok(load);
    };
    if let Some(n) = sec.uint("connections")? {
        load.connections = in_range(&sec, "connections", n, MAX_CONNECTIONS)?;
    }
    let (key, other) = match protocol {
        Protocol::Tcp => ("pipeline", "streams_per_connection"),
        _ => ("streams_per_connection", "pipeline"),
    };
    if sec.has(other) || (protocol == Protocol::Http1 && sec.has(key)) {
        let wrong = if sec.has(other) { other } else { key };
        let applies = match wrong {
            "pipeline" => "protocol \"tcp\"",
            _ => "protocols \"http2\" and \"grpc\"",
        };
        let instead = match protocol {
            Protocol::Http1 => " (HTTP/1.1 sends one request at a time per connection)".to_owned(),
            _ => format!(" (for {:?} use `{key}`)", protocol.as_str()),
        };
        return Err(sec.fail(
            wrong,
            format!(
                "applies only to {applies}, and this target's protocol is {:?}{instead}; remove it",
                protocol.as_str()
            ),
        ));
    }
    if let Some(n) = sec.uint(key)? {
        load.per_connection = in_range(&sec, key, n, MAX_PER_CONNECTION)?;
    }
    if let Some(n) = sec.uint("max_in_flight")? {
        load.max_in_flight = in_range(&sec, "max_in_flight", n, MAX_IN_FLIGHT)?;
    }
    if let Some(a) = sec.str("arrival")? {
        load.arrival = Arrival::parse(a).ok_or_else(|| {
            sec.fail(
                "arrival",
                format!("expected \"uniform\" or \"poisson\", got {}", quote(a)),
            )
        })?;
    }
    if let Some(seed) = sec.uint("seed")? {
        load.seed = seed;
    }
    if sec.str("resolve_every").ok().flatten() == Some("never") {
        load.resolve_every = None;
    } else if let Some(d) = sec.duration("resolve_every")? {
        if !(MIN_RESOLVE_EVERY..=MAX_RESOLVE_EVERY).contains(&d) {
            return Err(sec.fail(
                "resolve_every",
                format!(
                    "expected a duration between 100ms and 24h, or \"never\", got {}",
                    show(d)
                ),
            ));
        }
        load.resolve_every = Some(d);
    }
    if let Some(d) = sec.duration("connection_lifetime")? {
        if !(MIN_CONNECTION_LIFETIME..=MAX_CONNECTION_LIFETIME).contains(&d) {
            return Err(sec.fail(
                "connection_lifetime",
                format!("expected a duration between 10ms and 24h, got {}", show(d)),
            ));
        }
        load.connection_lifetime = Some(d);
    }
    if let Some(n) = sec.uint("max_requests_per_connection")? {
        load.max_requests_per_connection =
            Some(in_range(&sec, "max_requests_per_connection", n, u32::MAX)?);
    }
    // "auto" (the default) or a duration.
    let gap = sec.get("wake_gap").and_then(|v| v.get_ref().as_str());
    if gap != Some("auto") {
        let parsed = sec.duration("wake_gap").map_err(|mut f| {
            if let Some(text) = gap {
                f.message = format!(
                    "expected \"auto\" or a duration such as \"200us\", got {}",
                    quote(text)
                );
            }
            f
        });
        if let Some(d) = parsed? {
            if !(MIN_WAKE_GAP..=MAX_WAKE_GAP).contains(&d) {
                return Err(sec.fail(
                    "wake_gap",
                    format!(
                        "expected \"auto\" or a duration between 10us and 10ms, got {}",
                        show(d)
                    ),
                ));
            }
            load.wake_gap = Some(d);
        }
    }
    Ok(load)
}

/// `load.expected_latency`: the mean latency the target is expected to
/// answer in. Only the start-up check of the connections uses it
/// (`fit::warnings`); workers never see it.
pub(super) fn expected_latency(root: &Section<'_, '_>) -> Result<Option<Duration>, Fail> {
    let Some(sec) = root.table("load", LOAD_KEYS)? else {
        return Ok(None);
    };
    match sec.duration("expected_latency")? {
        Some(d) if d.is_zero() || d > Duration::from_secs(3600) => Err(sec.fail(
            "expected_latency",
            format!("expected a duration between 1µs and 1h, got {}", show(d)),
        )),
        d => Ok(d),
    }
}

fn in_range(sec: &Section<'_, '_>, key: &str, n: u64, max: u32) -> Result<u32, Fail> {
    match u32::try_from(n) {
        Ok(v) if (1..=max).contains(&v) => Ok(v),
        _ => Err(sec.fail(
            key,
            format!("expected an integer between 1 and {max}, got {n}"),
        )),
    }
}

/// Reads `[[stages]]` and checks what concerns several stages: unique names
/// and a baseline before every burst.
pub(super) fn stages(root: &Section<'_, '_>) -> Result<Vec<Stage>, Fail> {
    const EXPECTED: &str = "an array of tables written as [[stages]]";
    let items = root.array("stages", EXPECTED)?.unwrap_or(&[]);
    if items.is_empty() {
        return Err(root.fail("stages", "expected at least one [[stages]] table"));
    }
    if items.len() > MAX_STAGES {
        return Err(root.fail(
            "stages",
            format!("expected at most {MAX_STAGES} stages, got {}", items.len()),
        ));
    }

    let mut out: Vec<Stage> = Vec::with_capacity(items.len());
    let mut names = UniqueNames::default();
    for (i, item) in items.iter().enumerate() {
        let sec = array_table("stages", i, item, STAGE_KEYS)?;
        let stage = stage(&sec, i)?;
        names.check(&sec, "stages", "stage", i, &stage.name)?;
        if stage.burst {
            check_baseline(&sec, i, out.last())?;
        }
        out.push(stage);
    }
    if out.iter().all(|s| s.from_rps == 0.0 && s.to_rps == 0.0) {
        return Err(root.fail(
            "stages",
            "every stage has rate 0, so the run would send nothing",
        ));
    }
    Ok(out)
}

/// Recovery after a burst is measured against the stage before it, so that
/// stage must exist, carry traffic and not be a burst itself.
fn check_baseline(sec: &Section<'_, '_>, i: usize, before: Option<&Stage>) -> Result<(), Fail> {
    let Some(before) = before else {
        return Err(sec.fail(
            "burst",
            "the first stage cannot be a burst: recovery is measured against the stage before \
             the burst, so add a baseline stage first",
        ));
    };
    let j = i - 1;
    if before.burst {
        return Err(sec.fail(
            "burst",
            format!(
                "the stage before a burst is its baseline and cannot itself be a burst \
                 (stages[{j}] is); add a baseline stage between them"
            ),
        ));
    }
    if before.from_rps == 0.0 && before.to_rps == 0.0 {
        return Err(sec.fail(
            "burst",
            format!(
                "the stage before a burst is its baseline and must send traffic, but \
                 stages[{j}] has rate 0"
            ),
        ));
    }
    Ok(())
}

const RAMP: &str =
    "missing; a ramp needs both `from` and `to` (or use `rate` for a constant stage)";

fn stage(sec: &Section<'_, '_>, i: usize) -> Result<Stage, Fail> {
    let name = match sec.str("name")? {
        Some(n) => {
            if !valid_stage_name(n) {
                return Err(sec.fail(
                    "name",
                    format!(
                        "expected 1 to {MAX_NAME} letters, digits, '_' or '-' (thresholds refer \
                         to stages as `name.p99`), got {}",
                        quote(n)
                    ),
                ));
            }
            n.to_owned()
        }
        None => format!("stage-{}", i + 1),
    };

    let duration = sec
        .duration("duration")?
        .ok_or_else(|| sec.missing("duration", "a duration string such as \"60s\""))?;
    if duration < Duration::from_millis(1) || duration > MAX_STAGE {
        return Err(sec.fail(
            "duration",
            format!(
                "expected a duration between 1ms and 30 days, got {:?}",
                show(duration)
            ),
        ));
    }

    let rate = sec.rate("rate")?;
    let from = sec.rate("from")?;
    let to = sec.rate("to")?;
    let (from_rps, to_rps) = match (rate, from, to) {
        (Some(r), None, None) => {
            let r = check_rate(sec, "rate", r)?;
            (r, r)
        }
        (None, Some(f), Some(t)) => (check_rate(sec, "from", f)?, check_rate(sec, "to", t)?),
        (Some(_), _, _) => {
            let extra = if from.is_some() { "from" } else { "to" };
            return Err(sec.fail(
                extra,
                "cannot be combined with `rate`; use `rate` for a constant stage or `from` \
                 and `to` for a ramp",
            ));
        }
        (None, Some(_), None) => return Err(sec.fail("to", RAMP)),
        (None, None, Some(_)) => return Err(sec.fail("from", RAMP)),
        (None, None, None) => {
            return Err(sec.missing(
                "rate",
                "`rate` (requests per second) or `from` and `to` for a ramp",
            ))
        }
    };

    Ok(Stage {
        name,
        duration,
        from_rps,
        to_rps,
        burst: sec.bool("burst")?.unwrap_or(false),
    })
}

fn check_rate(sec: &Section<'_, '_>, key: &str, r: f64) -> Result<f64, Fail> {
    if r.is_finite() && (0.0..=MAX_RPS).contains(&r) {
        Ok(r)
    } else {
        Err(sec.fail(
            key,
            format!("expected a rate between 0 and {MAX_RPS} requests per second, got {r}"),
        ))
    }
}

pub(super) fn valid_stage_name(n: &str) -> bool {
    (1..=MAX_NAME).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
