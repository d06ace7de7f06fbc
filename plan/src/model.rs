//! Domain types of a load plan and their validation.
//!
//! The scenario parser (coordinator) and the wire conversion (proto) both end
//! in [`Plan::validate`], so a plan that reaches a worker is sane whichever
//! way it came.

use std::fmt;
use std::time::Duration;

/// Highest whole-cluster rate a stage may ask for (requests per second).
pub const MAX_RPS: f64 = 10_000_000.0;
/// Longest stage (30 days: soak tests run for 24 h and more).
pub const MAX_STAGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest whole run.
pub const MAX_RUN: Duration = Duration::from_secs(31 * 24 * 3600);
/// Most stages in one plan.
pub const MAX_STAGES: usize = 1000;
/// Largest generated request body.
pub const MAX_BODY: u64 = 64 * 1024 * 1024;
/// Most connections / in-flight requests per worker.
pub const MAX_CONNECTIONS: u32 = 65_536;
pub const MAX_IN_FLIGHT: u32 = 1_000_000;

/// A complete, validated description of what to send and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub target: Target,
    pub load: Load,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `http://host:port/path`.
    pub url: String,
    pub protocol: Protocol,
    pub method: String,
    /// Size of the generated request body (0: none).
    pub body_size: u64,
    /// Per-request timeout, counted from the actual send.
    pub timeout: Duration,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
        }
    }

    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "http1" => Some(Protocol::Http1),
            _ => None,
        }
    }
}

/// Per-worker load settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// Most connections one worker opens (the pool grows on demand up to it).
    pub connections: u32,
    /// Most requests one worker has outstanding (queued for a connection or
    /// on the wire); a request due beyond it is counted as dropped.
    pub max_in_flight: u32,
    pub arrival: Arrival,
    pub seed: u64,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            connections: 256,
            max_in_flight: 10_000,
            arrival: Arrival::Uniform,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Evenly spaced arrivals (constant inter-arrival time at a given rate).
    Uniform,
    /// A Poisson process with the stage's rate, reproducible from `seed`.
    Poisson,
}

impl Arrival {
    pub fn as_str(self) -> &'static str {
        match self {
            Arrival::Uniform => "uniform",
            Arrival::Poisson => "poisson",
        }
    }

    pub fn parse(s: &str) -> Option<Arrival> {
        match s {
            "uniform" => Some(Arrival::Uniform),
            "poisson" => Some(Arrival::Poisson),
            _ => None,
        }
    }
}

/// One stage of the load shape. A constant stage has `from_rps == to_rps`; a
/// ramp changes linearly from one to the other over the stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    pub duration: Duration,
    pub from_rps: f64,
    pub to_rps: f64,
    pub burst: bool,
}

/// What is wrong with a plan, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PlanError {
    /// Dotted path of the offending field, e.g. `stages[1].rate`.
    pub field: String,
    pub message: String,
}

impl PlanError {
    pub fn new(field: impl Into<String>, message: impl fmt::Display) -> Self {
        PlanError {
            field: field.into(),
            message: message.to_string(),
        }
    }
}

impl Plan {
    /// Total length of the run.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// Checks every limit; the error names the field.
    pub fn validate(&self) -> Result<(), PlanError> {
        let t = &self.target;
        validate_http_url(&t.url).map_err(|m| PlanError::new("target.url", m))?;
        if t.method.is_empty() || !t.method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(PlanError::new(
                "target.method",
                format!(
                    "expected an HTTP method such as GET or POST, got {:?}",
                    t.method
                ),
            ));
        }
        if t.body_size > MAX_BODY {
            return Err(PlanError::new(
                "target.body_size",
                format!("expected at most {MAX_BODY} bytes, got {}", t.body_size),
            ));
        }
        if t.timeout.is_zero() || t.timeout > Duration::from_secs(3600) {
            return Err(PlanError::new(
                "target.timeout",
                format!(
                    "expected a duration between 1ms and 1h, got {:?}",
                    t.timeout
                ),
            ));
        }
        for (i, (name, value)) in t.headers.iter().enumerate() {
            let ok_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !ok_name {
                return Err(PlanError::new(
                    format!("target.headers[{i}]"),
                    format!("{name:?} is not a valid header name"),
                ));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(PlanError::new(
                    format!("target.headers.{name}"),
                    "header values may not contain CR, LF or NUL",
                ));
            }
        }
        let l = &self.load;
        if l.connections == 0 || l.connections > MAX_CONNECTIONS {
            return Err(PlanError::new(
                "load.connections",
                format!("expected 1..={MAX_CONNECTIONS}, got {}", l.connections),
            ));
        }
        if l.max_in_flight == 0 || l.max_in_flight > MAX_IN_FLIGHT {
            return Err(PlanError::new(
                "load.max_in_flight",
                format!("expected 1..={MAX_IN_FLIGHT}, got {}", l.max_in_flight),
            ));
        }
        if self.stages.is_empty() {
            return Err(PlanError::new(
                "stages",
                "expected at least one [[stages]] table",
            ));
        }
        if self.stages.len() > MAX_STAGES {
            return Err(PlanError::new(
                "stages",
                format!(
                    "expected at most {MAX_STAGES} stages, got {}",
                    self.stages.len()
                ),
            ));
        }
        for (i, s) in self.stages.iter().enumerate() {
            let f = |name: &str| format!("stages[{i}].{name}");
            if s.duration.is_zero() || s.duration > MAX_STAGE {
                return Err(PlanError::new(
                    f("duration"),
                    format!(
                        "expected a duration between 1ms and 30 days, got {:?}",
                        s.duration
                    ),
                ));
            }
            for (name, r) in [("from", s.from_rps), ("to", s.to_rps)] {
                if !r.is_finite() || !(0.0..=MAX_RPS).contains(&r) {
                    return Err(PlanError::new(
                        f(if s.from_rps == s.to_rps { "rate" } else { name }),
                        format!(
                            "expected a rate between 0 and {MAX_RPS} requests per second, got {r}"
                        ),
                    ));
                }
            }
        }
        if self.duration() > MAX_RUN {
            return Err(PlanError::new(
                "stages",
                "the whole run may last at most 31 days",
            ));
        }
        Ok(())
    }
}

/// Accepts `http://host[:port][/path]`, the only scheme the HTTP/1.1 client
/// speaks today. Returns a human sentence on error.
pub fn validate_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("expected an http:// URL, got {url:?}"))?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("expected a host after http:// in {url:?}"));
    }
    if authority.contains('@') || url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!(
            "{url:?} contains characters a request line cannot carry"
        ));
    }
    if let Some((_, port)) = authority.rsplit_once(':') {
        if !authority.ends_with(']') && port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("expected a port 1..=65535 in {url:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn plan() -> Plan {
        Plan {
            target: Target {
                url: "http://127.0.0.1:8080/".into(),
                protocol: Protocol::Http1,
                method: "GET".into(),
                body_size: 0,
                timeout: Duration::from_secs(5),
                headers: vec![],
            },
            load: Load::default(),
            stages: vec![Stage {
                name: "s".into(),
                duration: Duration::from_secs(10),
                from_rps: 100.0,
                to_rps: 100.0,
                burst: false,
            }],
        }
    }

    #[test]
    fn a_sane_plan_validates() {
        plan().validate().unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let mut p = plan();
        p.stages[0].from_rps = -1.0;
        p.stages[0].to_rps = -1.0;
        assert_eq!(p.validate().unwrap_err().field, "stages[0].rate");

        let mut p = plan();
        p.stages[0].to_rps = f64::NAN;
        assert_eq!(p.validate().unwrap_err().field, "stages[0].to");

        let mut p = plan();
        p.target.url = "ftp://x".into();
        assert_eq!(p.validate().unwrap_err().field, "target.url");

        let mut p = plan();
        p.load.connections = 0;
        assert_eq!(p.validate().unwrap_err().field, "load.connections");

        let mut p = plan();
        p.stages.clear();
        assert_eq!(p.validate().unwrap_err().field, "stages");

        let mut p = plan();
        p.stages[0].duration = Duration::ZERO;
        assert_eq!(p.validate().unwrap_err().field, "stages[0].duration");

        let mut p = plan();
        p.target.headers.push(("x-bad".into(), "a\r\nb".into()));
        assert_eq!(p.validate().unwrap_err().field, "target.headers.x-bad");
    }

    #[test]
    fn urls() {
        assert!(validate_http_url("http://127.0.0.1:8080/x?y=1").is_ok());
        assert!(validate_http_url("http://localhost").is_ok());
        assert!(validate_http_url("http://[::1]:80/").is_ok());
        assert!(validate_http_url("https://x").is_err());
        assert!(validate_http_url("http://").is_err());
        assert!(validate_http_url("http://h:0/").is_err());
        assert!(validate_http_url("http://h:99999/").is_err());
        assert!(validate_http_url("http://h/a b").is_err());
    }
}
