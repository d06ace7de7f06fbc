//! Scenario files: TOML in, a validated [`Scenario`] out.
//!
//! A scenario says what to hit (`[target]`), what to send (the single
//! request of `[target]`, or weighted `[[requests]]`, whose paths, headers
//! and bodies may be templates fed by `[vars]` and `[[data]]` files), what a
//! good reply looks like (`expect`), how (`[load]`), the load shape
//! (`[[stages]]`) and what counts as a pass (`thresholds`).
//! Parsing is strict on purpose: a typo in a load test silently changes what
//! is measured, so unknown keys, bare numbers where a unit is needed, keys
//! that do not apply to the protocol and absurd values are errors, and every
//! error names the file, the field path and the line.
//!
//! Files a scenario references (`body_file`, `tls_ca`, `[[data]]` files)
//! are read through a resolver ([`ReadFile`]): [`load`] reads them from
//! disk, relative to the scenario file's directory, and hands back their
//! bytes so the CLI can send them to a coordinator that may run elsewhere;
//! the coordinator resolves them from what was sent.
//!
//! What comes from outside the file, `--set NAME=VALUE` overrides of
//! `[vars]` and the environment variables templates read (`env.NAME`), is
//! given through [`Inputs`] ([`parse_with`], [`load_with`]). Only the
//! variables a template names are read; the plan records them
//! (`Plan.env`), so a coordinator re-parsing the scenario must be handed
//! the same values, not its own environment.
//!
//! Besides errors a parse yields [`Scenario::warnings`] (a `--set` no
//! template reads) and [`Scenario::notices`] (a data set with
//! `on_end = "stop"` that ends the run early), for the CLI to print.
//!
//! - `error`: [`ScenarioError`] and span → line conversion.
//! - `raw`: a typed walk over `toml::de::DeTable` (which keeps spans) that
//!   rejects unknown keys and wrong types.
//! - `units`: durations, rates ("10k"), sizes ("1KiB"), percentages.
//! - `files`: referenced files, with their size limits.
//! - `target`: the `[target]` table: URL or built-in, protocol, TLS.
//! - `requests`: what is sent, from `[target]` or `[[requests]]`.
//! - `path`: request paths, and how `[target]`'s joins the URL's base path.
//! - `template`: templates compiled during the walk, `env.NAME` resolution.
//! - `vars`: `[vars]` and `--set`.
//! - `data`: `[[data]]` files.
//! - `expect`: `[target.expect]` and `[requests.expect]` response checks.
//! - `stages`: `[load]` and `[[stages]]`.
//! - [`fit`]: whether the plan fits its per-worker limits, checked at the
//!   start of a run once the workers' shares are known.
//!
//! The result always ends in [`Plan::validate`], the same check a plan
//! arriving over the wire goes through.

mod data;
mod error;
mod expect;
mod files;
pub mod fit;
mod path;
mod raw;
mod requests;
mod stages;
mod target;
mod template;
mod units;
mod vars;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use volley_plan::data::MAX_DATA_BYTES;
use volley_plan::{Plan, Protocol};

pub use error::ScenarioError;
use error::{column_of, line_of, Fail};
pub use files::MAX_FILES_TOTAL;
use raw::Section;
use template::Templates;
use units::{quote, show};
pub use vars::parse_set;

/// URL a built-in HTTP (http1, http2, grpc) target's plan carries until the
/// runner has started the target and knows its port. Port 0 does not
/// validate, so a plan that escapes without the real address is refused
/// rather than sent. See [`builtin_placeholder_url`].
pub const BUILTIN_PLACEHOLDER_URL: &str = "http://127.0.0.1:0/";
/// The same for a built-in framed-TCP target.
pub const BUILTIN_TCP_PLACEHOLDER_URL: &str = "tcp://127.0.0.1:0";

/// The placeholder URL of a built-in target speaking `protocol`.
pub fn builtin_placeholder_url(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => BUILTIN_TCP_PLACEHOLDER_URL,
        Protocol::Http1 | Protocol::Http2 | Protocol::Grpc => BUILTIN_PLACEHOLDER_URL,
    }
}

/// The URL a plan carries for a built-in target listening on `addr`:
/// `tcp://ADDR` for framed TCP (the target's `--tcp-listen` echo),
/// `http://ADDR/` for every other protocol (HTTP/1.1, h2c and gRPC share the
/// target's one HTTP port).
pub fn builtin_url(protocol: Protocol, addr: SocketAddr) -> String {
    match protocol {
        Protocol::Tcp => format!("tcp://{addr}"),
        Protocol::Http1 | Protocol::Http2 | Protocol::Grpc => format!("http://{addr}/"),
    }
}

/// Reads a file the scenario references, by the name the scenario gives it
/// (`body_file = "payload.bin"`); the error is a sentence naming the cause.
pub type ReadFile<'r> = &'r dyn Fn(&str) -> Result<Vec<u8>, String>;

/// Reads an environment variable a template names (`{{env.NAME}}`);
/// `None` when unset.
pub type Env<'r> = &'r dyn Fn(&str) -> Option<String>;

/// What a scenario is parsed with besides its text.
#[derive(Clone, Copy)]
pub struct Inputs<'r> {
    /// Reads the files the scenario references.
    pub files: ReadFile<'r>,
    /// `--set NAME=VALUE` overrides of `[vars]`, in order (a later one wins).
    pub vars: &'r [(String, String)],
    /// The environment templates read: the process's on the client
    /// ([`load`]), the values the client sent on a coordinator.
    pub env: Env<'r>,
}

/// An environment with no variables set.
pub fn no_env(_: &str) -> Option<String> {
    None
}

/// The process's environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A rate as scenarios and command-line flags both read it: "5000", "2.5",
/// "10k", "1.5M" (capital M: "5m" is refused, not read as 5 million,
/// since a duration would use it for minutes). One reading for both, so a
/// value means the same wherever it is written.
pub fn parse_rate(s: &str) -> Option<f64> {
    units::parse_rate(s)
}

/// A duration as scenarios and command-line flags both read it ("500ms",
/// "10s", "1h30m"; a bare number is refused with the unit to add).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    units::parse_duration(s)
}

/// Largest scenario file read (a 1000-stage scenario is well under this).
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

const ROOT_KEYS: &[&str] = &[
    "name",
    "thresholds",
    "recovery_window",
    "recovery_tolerance",
    "target",
    "requests",
    "load",
    "stages",
    "vars",
    "data",
];
const MAX_THRESHOLDS: usize = 100;
const MAX_TEXT: usize = 256;

/// A parsed, validated scenario file.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// `name`, or the file stem when absent.
    pub name: String,
    /// Threshold expressions as written (`"p99 < 100ms"`); parsed elsewhere.
    pub thresholds: Vec<String>,
    pub target: ScenarioTarget,
    /// Fully validated. For a built-in target `plan.target.url` is
    /// [`builtin_placeholder_url`], which the runner replaces with
    /// [`builtin_url`].
    pub plan: Plan,
    pub recovery: RecoveryOptions,
    /// `load.expected_latency`: what the target is expected to answer in,
    /// for the start-up check that the connections can carry the rate
    /// ([`fit`]).
    pub expected_latency: Option<Duration>,
    /// Things that are probably mistakes but not errors, one sentence each
    /// (a `--set` no template reads).
    pub warnings: Vec<String>,
    /// What the user should know about how the file was read, one
    /// sentence each (a data set with `on_end = "stop"` ending the run
    /// early: the plan's stages are already cut).
    pub notices: Vec<String>,
}

/// Which target the plan's requests go to.
#[derive(Debug, Clone, PartialEq)]
pub enum ScenarioTarget {
    /// An external server at `plan.target.url`.
    Url,
    /// The built-in target, started by the runner with these settings.
    Builtin(BuiltinTarget),
}

/// Settings of the built-in target (`volley target`).
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltinTarget {
    /// Added to every response.
    pub delay: Duration,
    /// Fraction of requests answered with an error status (0..=1).
    pub error_rate: f64,
    /// Size of the *response* body in bytes.
    pub body_size: usize,
    /// Most requests per second served (FIFO queue beyond); `None`: unlimited.
    pub capacity: Option<f64>,
}

impl Default for BuiltinTarget {
    fn default() -> Self {
        BuiltinTarget {
            delay: Duration::ZERO,
            error_rate: 0.0,
            body_size: 64,
            capacity: None,
        }
    }
}

/// How burst recovery is judged (see DESIGN.md, "Recovery, defined").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecoveryOptions {
    /// Length of the calm window that ends recovery (`recovery_window`).
    pub window: Duration,
    /// Allowed p99 excess over the baseline, as a fraction (`recovery_tolerance`).
    pub tolerance: f64,
}

impl Default for RecoveryOptions {
    fn default() -> Self {
        RecoveryOptions {
            window: Duration::from_secs(5),
            tolerance: 0.10,
        }
    }
}

/// A scenario file read from disk: the parsed scenario, its text, and the
/// files it references, as a client sends them to a coordinator.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub scenario: Scenario,
    pub text: String,
    /// Every file the scenario references, by the name it is written under.
    /// (A coordinator re-parsing the text also needs the `--set` overrides
    /// and the environment the client read, `scenario.plan.env`, through
    /// [`parse_with`].)
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Reads and parses a scenario file, and the files it references (relative
/// to its directory), with no `--set` and the process's environment. Read
/// errors (missing file, not UTF-8, too large) are [`ScenarioError`]s too:
/// with an empty field for the scenario file itself, naming the field
/// (`target.body_file`) for a referenced one.
pub fn load(path: &Path) -> Result<Loaded, ScenarioError> {
    load_with(path, &[], &process_env)
}

/// [`load`] with `--set` overrides (`vars`) and an environment.
pub fn load_with(
    path: &Path,
    vars: &[(String, String)],
    env: Env<'_>,
) -> Result<Loaded, ScenarioError> {
    let file = path.display().to_string();
    let whole = |message: String, line: Option<usize>| ScenarioError {
        file: file.clone(),
        field: String::new(),
        message,
        line,
    };
    let bytes = read_capped(path, MAX_FILE_BYTES)
        .map_err(|e| whole(format!("cannot read the scenario file: {e}"), None))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(whole(too_large(), None));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = line_of(e.as_bytes(), at);
        whole(
            format!("is not UTF-8 text (invalid byte at offset {at}); a scenario must be a TOML text file"),
            Some(line),
        )
    })?;

    let dir = path.parent().unwrap_or(Path::new(""));
    let read: RefCell<BTreeMap<String, Vec<u8>>> = RefCell::default();
    let resolve = |name: &str| -> Result<Vec<u8>, String> {
        if let Some(data) = read.borrow().get(name) {
            return Ok(data.clone());
        }
        let full = dir.join(name);
        // One byte past the largest file the parser takes (a data file) is
        // enough for it to refuse a larger one; smaller limits (1 MiB for a
        // body file) are the parser's, so its error names the field.
        let data = read_capped(&full, MAX_DATA_BYTES as usize).map_err(|e| {
            let at = if full.as_os_str() == name {
                String::new()
            } else {
                format!("{}: ", full.display())
            };
            format!("{at}{e} (paths are relative to the scenario file's directory)")
        })?;
        read.borrow_mut().insert(name.to_owned(), data.clone());
        Ok(data)
    };
    let inputs = Inputs {
        files: &resolve,
        vars,
        env,
    };
    let scenario = parse_with(&text, &file, &inputs)?;
    Ok(Loaded {
        scenario,
        text,
        files: read.into_inner(),
    })
}

/// Reads at most `max + 1` bytes of a file, so a caller can tell "too
/// large" without reading a huge (or endless) file.
fn read_capped(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Parses scenario text; `file` names it in errors and gives the default
/// name, `files` reads the files it references. No `--set`, and no
/// environment variables (a template reading one is an error): see
/// [`parse_with`].
pub fn parse(text: &str, file: &str, files: ReadFile<'_>) -> Result<Scenario, ScenarioError> {
    parse_with(
        text,
        file,
        &Inputs {
            files,
            vars: &[],
            env: &no_env,
        },
    )
}

/// Parses scenario text with `--set` overrides and an environment.
pub fn parse_with(text: &str, file: &str, inputs: &Inputs<'_>) -> Result<Scenario, ScenarioError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    build(text, file, inputs).map_err(|f| f.into_error(file, text))
}

fn too_large() -> String {
    format!("expected a scenario file of at most {MAX_FILE_BYTES} bytes (1 MiB)")
}

fn build(text: &str, file: &str, inputs: &Inputs<'_>) -> Result<Scenario, Fail> {
    if text.len() > MAX_FILE_BYTES {
        return Err(Fail::new("", too_large()));
    }
    if let Some(at) = text.find('\0') {
        return Err(Fail::new(
            "",
            "contains a NUL byte; a scenario must be a TOML text file, not binary data",
        )
        .at(Some(at..at)));
    }
    let doc = toml::de::DeTable::parse(text).map_err(|e| {
        let col = e
            .span()
            .map(|s| format!(" (column {})", column_of(text, s.start)));
        Fail::new(
            "",
            format!("invalid TOML: {}{}", e.message(), col.unwrap_or_default()),
        )
        .at(e.span())
    })?;
    let root = Section::new(String::new(), doc.get_ref(), None, ROOT_KEYS)?;
    if doc.get_ref().is_empty() {
        return Err(Fail::new(
            "stages",
            "the scenario is empty; expected a [target] table and at least one [[stages]] table",
        ));
    }

    let name = match root.str("name")? {
        Some(n) if valid_name(n) => n.to_owned(),
        Some(n) => {
            return Err(root.fail(
                "name",
                format!(
                    "expected 1 to {MAX_TEXT} characters with no control characters, got {}",
                    quote(n)
                ),
            ))
        }
        None => default_name(file),
    };
    let thresholds = thresholds(&root)?;
    let recovery = recovery(&root)?;
    let mut files = files::Files::new(inputs.files);
    // What templates read comes first, so they compile where they are read.
    let vars = vars::vars(&root, inputs.vars)?;
    let data = data::data(&root, &mut files)?;
    let mut templates = Templates::new(text, vars, data, inputs.env);
    let (target_settings, target) = target::target(&root, &mut files, &mut templates)?;
    let protocol = target_settings.protocol;
    let expected_latency = stages::expected_latency(&root)?;
    let mut plan = Plan {
        target: target_settings,
        load: stages::load(&root, protocol)?,
        stages: stages::stages(&root)?,
        vars: templates.vars,
        env: templates.env,
        data: templates.data,
    };

    // The placeholder's port 0 is deliberately invalid; check the rest of a
    // built-in plan with a stand-in address.
    let mut check = plan.clone();
    if matches!(target, ScenarioTarget::Builtin(_)) {
        check.target.url = builtin_url(protocol, SocketAddr::from(([127, 0, 0, 1], 1)));
    }
    check.validate().map_err(|e| {
        let has_path = raw::span_of(doc.get_ref(), "target.path").is_some();
        let field = scenario_field(&e.field, root.has("requests"), has_path, protocol);
        let span = raw::span_of(doc.get_ref(), &field);
        Fail::new(field, e.message).at(span)
    })?;
    // Thresholds are parsed now, so a malformed one stops the run before any
    // traffic (exit 2), and stage-scoped ones must name a real stage.
    let stage_names: Vec<&str> = plan.stages.iter().map(|s| s.name.as_str()).collect();
    for (i, expr) in thresholds.iter().enumerate() {
        if let Err(e) = crate::analysis::thresholds::parse(expr, &stage_names) {
            let field = format!("thresholds[{i}]");
            let span = raw::span_of(doc.get_ref(), &field);
            return Err(Fail::new(field, e.to_string()).at(span));
        }
    }

    let notices = plan_notices(&mut plan);
    let warnings = inputs
        .vars
        .iter()
        .filter(|(name, _)| !templates.used_vars.contains(name))
        .map(|(name, _)| {
            format!(
                "--set {name}=…: no template reads vars.{name}, so it changes nothing \
                 (templates write {{{{vars.{name}}}}})"
            )
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();

    Ok(Scenario {
        name,
        thresholds,
        target,
        plan,
        recovery,
        expected_latency,
        warnings,
        notices,
    })
}

/// Cuts the run where a data set with `on_end = "stop"` runs out of rows
/// ([`Plan::end_at_arrival_limit`]), saying so.
fn plan_notices(plan: &mut Plan) -> Vec<String> {
    let Some(limit) = plan.arrival_limit() else {
        return Vec::new();
    };
    let Some((before, after)) = plan.end_at_arrival_limit() else {
        return Vec::new();
    };
    let set = plan
        .data
        .iter()
        .filter(|d| d.on_end == volley_plan::data::OnEnd::Stop)
        .min_by_key(|d| d.rows())
        .map_or_else(String::new, |d| format!("data set {:?} ", d.name));
    vec![format!(
        "{set}has {limit} rows and on_end = \"stop\": the run ends after {limit} arrivals, \
         at {after:.1} s instead of {before:.1} s"
    )]
}

/// The scenario key a [`Plan::validate`] field path stands for: the single
/// request of `[target]` is `requests[0]` in the plan, and
/// `load.per_connection` is spelled per protocol.
fn scenario_field(field: &str, has_requests: bool, has_path: bool, protocol: Protocol) -> String {
    if let Some(rest) = field.strip_prefix("requests[0].").filter(|_| !has_requests) {
        let key = rest.split(['.', '[']).next().unwrap_or(rest);
        let key = match key {
            // Without `path`, the single request's path is the URL's.
            "path" if !has_path => "url",
            "path" | "method" | "body" | "body_size" | "body_file" | "headers" | "expect" => rest,
            _ => return "target".into(),
        };
        return format!("target.{key}");
    }
    if field == "load.per_connection" {
        let key = match protocol {
            Protocol::Tcp => "pipeline",
            _ => "streams_per_connection",
        };
        return format!("load.{key}");
    }
    field.to_owned()
}

fn valid_name(n: &str) -> bool {
    !n.trim().is_empty() && n.chars().count() <= MAX_TEXT && !n.chars().any(char::is_control)
}

fn default_name(file: &str) -> String {
    Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| valid_name(s))
        .unwrap_or("scenario")
        .to_owned()
}

fn thresholds(root: &Section<'_, '_>) -> Result<Vec<String>, Fail> {
    const EXPECTED: &str = "an array of strings such as [\"p99 < 100ms\", \"success_rate > 0.99\"]";
    let Some(items) = root.array("thresholds", EXPECTED)? else {
        return Ok(Vec::new());
    };
    if items.len() > MAX_THRESHOLDS {
        return Err(root.fail(
            "thresholds",
            format!(
                "expected at most {MAX_THRESHOLDS} thresholds, got {}",
                items.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let fail = |m: String| Fail::new(format!("thresholds[{i}]"), m).at(Some(item.span()));
        match item.get_ref() {
            toml::de::DeValue::String(s) if valid_name(s) => out.push(s.to_string()),
            toml::de::DeValue::String(s) => {
                return Err(fail(format!(
                    "expected an expression such as \"p99 < 100ms\" (1 to {MAX_TEXT} characters, one line), got {}",
                    quote(s)
                )))
            }
            other => {
                return Err(fail(format!(
                    "expected a string such as \"p99 < 100ms\", got {}",
                    units::describe(other)
                )))
            }
        }
    }
    Ok(out)
}

fn recovery(root: &Section<'_, '_>) -> Result<RecoveryOptions, Fail> {
    let mut r = RecoveryOptions::default();
    if let Some(w) = root.duration("recovery_window")? {
        if w < Duration::from_secs(1) || w > Duration::from_secs(3600) {
            return Err(root.fail(
                "recovery_window",
                format!(
                    "expected a duration between 1s and 1h (latency is judged per second), got {:?}",
                    show(w)
                ),
            ));
        }
        r.window = w;
    }
    const EXPECTED: &str =
        "a fraction between 0 and 1 (exclusive) such as 0.1, or a percentage such as \"10%\"";
    if let Some(t) = root.fraction("recovery_tolerance", EXPECTED)? {
        if !(t > 0.0 && t < 1.0) {
            let hint = if (1.0..100.0).contains(&t) {
                format!(" (for {t} percent write \"{t}%\")")
            } else {
                String::new()
            };
            return Err(root.fail(
                "recovery_tolerance",
                format!("expected {EXPECTED}, got {t}{hint}"),
            ));
        }
        r.tolerance = t;
    }
    Ok(r)
}
