//! Wire messages to domain types and back. Everything that arrives from the
//! network is validated here, through the same [`Plan::validate`] the
//! scenario parser uses.

use crate::pb;
use std::time::Duration;
use volley_plan::data::{Format, OnEnd, Order};
use volley_plan::{
    Arrival, Body, Check, DataSet, DropCause, DropCounts, Expect, Load, Plan, PlanError, Protocol,
    Request, Rule, Share, Stage, StatusMatch, Target, Tls,
};

impl From<&Request> for pb::Request {
    fn from(r: &Request) -> Self {
        let (body_size, body, body_template) = match &r.body {
            Body::Generated(n) => (*n, Vec::new(), String::new()),
            Body::Bytes(b) => (b.len() as u64, b.clone(), String::new()),
            Body::Template(t) => (t.len() as u64, Vec::new(), t.clone()),
        };
        pb::Request {
            name: r.name.clone(),
            weight: r.weight,
            method: r.method.clone(),
            path: r.path.clone(),
            headers: pairs(&r.headers),
            body_size,
            body,
            body_template,
            expect: r.expect.checks.iter().map(pb::ExpectCheck::from).collect(),
        }
    }
}

/// An optional duration on the wire: 0 is none.
fn nanos(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn duration(nanos: u64) -> Option<Duration> {
    Some(Duration::from_nanos(nanos)).filter(|d| !d.is_zero())
}

fn pairs(list: &[(String, String)]) -> Vec<pb::Header> {
    list.iter()
        .map(|(name, value)| pb::Header {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

fn unpairs(list: Vec<pb::Header>) -> Vec<(String, String)> {
    list.into_iter().map(|h| (h.name, h.value)).collect()
}

impl From<&Check> for pb::ExpectCheck {
    fn from(c: &Check) -> Self {
        use pb::expect_check::Rule as W;
        let rule = match &c.rule {
            Rule::Status(list) => W::Status(pb::StatusList {
                allowed: list.iter().map(|m| m.to_text()).collect(),
            }),
            Rule::GrpcStatus(list) => W::GrpcStatus(pb::GrpcStatusList {
                allowed: list.clone(),
            }),
            Rule::Header { name, value } => W::Header(pb::Header {
                name: name.clone(),
                value: value.clone(),
            }),
            Rule::MaxBodyBytes(n) => W::MaxBodyBytes(*n),
            Rule::BodyContains(s) => W::BodyContains(s.clone()),
            Rule::BodyRegex(s) => W::BodyRegex(s.clone()),
            Rule::Json { path, value } => W::Json(pb::JsonCheck {
                path: path.clone(),
                value_json: value.to_string(),
            }),
        };
        pb::ExpectCheck {
            name: c.name.clone(),
            rule: Some(rule),
        }
    }
}

fn check_from_wire(c: pb::ExpectCheck, field: &str) -> Result<Check, PlanError> {
    use pb::expect_check::Rule as W;
    let bad = |m: String| PlanError::new(field, m);
    let rule = match c.rule.ok_or_else(|| bad("a check without a rule".into()))? {
        W::Status(l) => Rule::Status(
            l.allowed
                .iter()
                .map(|s| StatusMatch::parse(s).ok_or_else(|| bad(format!("bad status {s:?}"))))
                .collect::<Result<_, _>>()?,
        ),
        W::GrpcStatus(l) => Rule::GrpcStatus(l.allowed),
        W::Header(h) => Rule::Header {
            name: h.name,
            value: h.value,
        },
        W::MaxBodyBytes(n) => Rule::MaxBodyBytes(n),
        W::BodyContains(s) => Rule::BodyContains(s),
        W::BodyRegex(s) => Rule::BodyRegex(s),
        W::Json(j) => Rule::Json {
            path: j.path,
            value: serde_json::from_str(&j.value_json)
                .map_err(|e| bad(format!("expected value is not JSON: {e}")))?,
        },
    };
    Ok(Check { name: c.name, rule })
}

/// A request from the wire; checked by [`Plan::validate`].
fn request_from_wire(r: pb::Request, i: usize) -> Result<Request, PlanError> {
    let expect = Expect {
        checks: r
            .expect
            .into_iter()
            .enumerate()
            .map(|(j, c)| check_from_wire(c, &format!("requests[{i}].expect[{j}]")))
            .collect::<Result<_, _>>()?,
    };
    Ok(Request {
        name: r.name,
        weight: r.weight,
        method: r.method,
        path: r.path,
        headers: unpairs(r.headers),
        body: if !r.body_template.is_empty() {
            Body::Template(r.body_template)
        } else if r.body.is_empty() {
            Body::Generated(r.body_size)
        } else {
            Body::Bytes(r.body)
        },
        expect,
    })
}

impl From<&Plan> for pb::Plan {
    fn from(p: &Plan) -> Self {
        pb::Plan {
            target: Some(pb::Target {
                url: p.target.url.clone(),
                protocol: p.target.protocol.as_str().to_string(),
                timeout_nanos: p.target.timeout.as_nanos() as u64,
                requests: p.target.requests.iter().map(pb::Request::from).collect(),
                tls_ca_pem: p.target.tls.ca_pem.clone().unwrap_or_default(),
                tls_insecure_skip_verify: p.target.tls.insecure_skip_verify,
            }),
            load: Some(pb::Load {
                connections: p.load.connections,
                per_connection: p.load.per_connection,
                max_in_flight: p.load.max_in_flight,
                arrival: p.load.arrival.as_str().to_string(),
                seed: p.load.seed,
                resolve_every_nanos: nanos(p.load.resolve_every),
                connection_lifetime_nanos: nanos(p.load.connection_lifetime),
                max_requests_per_connection: p.load.max_requests_per_connection.unwrap_or(0),
                wake_gap_nanos: nanos(p.load.wake_gap),
            }),
            stages: p
                .stages
                .iter()
                .map(|s| pb::Stage {
                    name: s.name.clone(),
                    duration_nanos: s.duration.as_nanos() as u64,
                    from_rps: s.from_rps,
                    to_rps: s.to_rps,
                    burst: s.burst,
                })
                .collect(),
            vars: pairs(&p.vars),
            env: pairs(&p.env),
            data: p
                .data
                .iter()
                .map(|d| pb::DataSpec {
                    name: d.name.clone(),
                    file: d.file.clone(),
                    format: d.format.as_str().into(),
                    order: d.order.as_str().into(),
                    on_end: d.on_end.as_str().into(),
                })
                .collect(),
        }
    }
}

impl TryFrom<pb::Plan> for Plan {
    type Error = PlanError;

    /// A plan without data sets (one with data needs [`plan_from_wire`]).
    fn try_from(p: pb::Plan) -> Result<Self, PlanError> {
        plan_from_wire(p, &|_| None)
    }
}

/// The bytes of a data file by its name (`DataSpec.file`), as they arrived.
pub type DataFiles<'a> = &'a dyn Fn(&str) -> Option<&'a [u8]>;

/// A plan from the wire, its data sets parsed from `files`; validated.
pub fn plan_from_wire(p: pb::Plan, files: DataFiles<'_>) -> Result<Plan, PlanError> {
    {
        let t = p
            .target
            .ok_or_else(|| PlanError::new("target", "missing"))?;
        let l = p.load.ok_or_else(|| PlanError::new("load", "missing"))?;
        let plan = Plan {
            target: Target {
                url: t.url,
                protocol: Protocol::parse(&t.protocol).ok_or_else(|| {
                    PlanError::new(
                        "target.protocol",
                        format!("unknown protocol {:?}", t.protocol),
                    )
                })?,
                timeout: Duration::from_nanos(t.timeout_nanos),
                requests: t
                    .requests
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| request_from_wire(r, i))
                    .collect::<Result<_, _>>()?,
                tls: Tls {
                    ca_pem: Some(t.tls_ca_pem).filter(|p| !p.is_empty()),
                    insecure_skip_verify: t.tls_insecure_skip_verify,
                },
            },
            load: Load {
                connections: l.connections,
                per_connection: l.per_connection,
                max_in_flight: l.max_in_flight,
                arrival: Arrival::parse(&l.arrival).ok_or_else(|| {
                    PlanError::new("load.arrival", format!("unknown arrival {:?}", l.arrival))
                })?,
                seed: l.seed,
                resolve_every: duration(l.resolve_every_nanos),
                connection_lifetime: duration(l.connection_lifetime_nanos),
                max_requests_per_connection: Some(l.max_requests_per_connection).filter(|&n| n > 0),
                wake_gap: duration(l.wake_gap_nanos),
            },
            stages: p
                .stages
                .into_iter()
                .map(|s| Stage {
                    name: s.name,
                    duration: Duration::from_nanos(s.duration_nanos),
                    from_rps: s.from_rps,
                    to_rps: s.to_rps,
                    burst: s.burst,
                })
                .collect(),
            vars: unpairs(p.vars),
            env: unpairs(p.env),
            data: p
                .data
                .into_iter()
                .enumerate()
                .map(|(i, d)| data_from_wire(d, i, files))
                .collect::<Result<_, _>>()?,
        };
        plan.validate()?;
        Ok(plan)
    }
}

fn data_from_wire(d: pb::DataSpec, i: usize, files: DataFiles<'_>) -> Result<DataSet, PlanError> {
    let field = |f: &str| format!("data[{i}].{f}");
    let format = Format::parse(&d.format)
        .ok_or_else(|| PlanError::new(field("format"), format!("unknown format {:?}", d.format)))?;
    let order = Order::parse(&d.order)
        .ok_or_else(|| PlanError::new(field("order"), format!("unknown order {:?}", d.order)))?;
    let on_end = OnEnd::parse(&d.on_end)
        .ok_or_else(|| PlanError::new(field("on_end"), format!("unknown on_end {:?}", d.on_end)))?;
    let bytes = files(&d.file).ok_or_else(|| {
        PlanError::new(
            field("file"),
            format!("the bytes of {:?} did not arrive with the plan", d.file),
        )
    })?;
    DataSet::parse(&d.name, format, order, on_end, bytes)
        .map(|s| s.with_file(d.file))
        .map_err(|e| PlanError::new(field("file"), e))
}

impl From<&Share> for pb::Share {
    fn from(s: &Share) -> Self {
        pb::Share {
            cycle: s.cycle,
            slots: s.slots.clone(),
            worker_index: 0,
            worker_count: 0,
        }
    }
}

impl TryFrom<pb::Share> for Share {
    type Error = volley_plan::PartitionError;

    fn try_from(s: pb::Share) -> Result<Self, Self::Error> {
        let share = Share {
            cycle: s.cycle,
            slots: s.slots,
        };
        share.validate()?;
        Ok(share)
    }
}

/// Longest run id accepted from the network or the command line.
pub const MAX_RUN_ID_LEN: usize = 64;

/// A run id from a client: the coordinator names directories after it
/// (`--data-dir`), so only letters, digits, `-` and `_` pass, at most
/// [`MAX_RUN_ID_LEN`] of them; the error says what was expected.
pub fn check_run_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("a run id is required (`volley runs` lists them)".into());
    }
    if id.len() > MAX_RUN_ID_LEN
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "run id {id:?} is not a run id: expected up to {MAX_RUN_ID_LEN} letters, digits, \
             '-' or '_', such as 20261127-101500-1a2b3c"
        ));
    }
    Ok(())
}

impl From<&DropCounts> for pb::DropCounts {
    fn from(d: &DropCounts) -> Self {
        let mut w = pb::DropCounts::default();
        for (cause, n) in d.iter() {
            match cause {
                DropCause::ConnectionsBusy => w.connections_busy = n,
                DropCause::MaxInFlight => w.max_in_flight = n,
                DropCause::BehindSchedule => w.behind_schedule = n,
            }
        }
        w
    }
}

/// The counts as sent; whether they add up to the interval's `dropped` is
/// the receiver's check (it alone knows the interval).
impl From<&pb::DropCounts> for DropCounts {
    fn from(w: &pb::DropCounts) -> Self {
        DropCounts::from_fn(|cause| match cause {
            DropCause::ConnectionsBusy => w.connections_busy,
            DropCause::MaxInFlight => w.max_in_flight,
            DropCause::BehindSchedule => w.behind_schedule,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_counts_keep_each_cause_in_its_own_field() {
        let d = DropCounts::from_fn(|c| 7 + c.index() as u64);
        let w = pb::DropCounts::from(&d);
        assert_eq!(
            (w.connections_busy, w.max_in_flight, w.behind_schedule),
            (7, 8, 9)
        );
        assert_eq!(DropCounts::from(&w), d);
    }

    fn plan() -> Plan {
        Plan {
            target: Target {
                url: "https://127.0.0.1:1/x".into(),
                protocol: Protocol::Http2,
                timeout: Duration::from_millis(1500),
                requests: vec![
                    Request {
                        name: "post".into(),
                        weight: 3,
                        method: "POST".into(),
                        path: "/x".into(),
                        headers: vec![("x-a".into(), "1".into())],
                        body: Body::Generated(512),
                        expect: Default::default(),
                    },
                    Request {
                        name: "file".into(),
                        weight: 1,
                        method: "PUT".into(),
                        path: "/y?z".into(),
                        headers: vec![],
                        body: Body::Bytes(vec![0, 1, 2, 255]),
                        expect: Default::default(),
                    },
                ],
                tls: Tls {
                    ca_pem: Some("-----BEGIN CERTIFICATE-----".into()),
                    insecure_skip_verify: false,
                },
            },
            load: Load {
                connections: 8,
                per_connection: 50,
                max_in_flight: 100,
                arrival: Arrival::Poisson,
                seed: 9,
                resolve_every: Some(Duration::from_secs(2)),
                connection_lifetime: Some(Duration::from_millis(1500)),
                max_requests_per_connection: Some(10),
                wake_gap: Some(Duration::from_micros(250)),
            },
            stages: vec![Stage {
                name: "ramp".into(),
                duration: Duration::from_secs(3),
                from_rps: 10.0,
                to_rps: 20.0,
                burst: true,
            }],
            vars: Vec::new(),
            env: Vec::new(),
            data: Vec::new(),
        }
    }

    #[test]
    fn plan_round_trips() {
        let p = plan();
        assert_eq!(Plan::try_from(pb::Plan::from(&p)).unwrap(), p);
        // A plan that says nothing of the wake gap gets the default, "auto".
        let mut wire = pb::Plan::from(&p);
        wire.load.as_mut().unwrap().wake_gap_nanos = 0;
        assert_eq!(Plan::try_from(wire).unwrap().load.wake_gap, None);
        let auto = Plan {
            load: Load {
                wake_gap: None,
                ..p.load.clone()
            },
            ..p.clone()
        };
        assert_eq!(Plan::try_from(pb::Plan::from(&auto)).unwrap(), auto);
    }

    /// A plan with templates, checks, vars, env and a data set: everything
    /// survives the wire, the data set's bytes arriving apart.
    fn templated() -> (Plan, Vec<u8>) {
        let csv = b"id,name\n1,ann\n2,bob\n".to_vec();
        let mut p = plan();
        p.vars = vec![("tenant".into(), "acme".into())];
        p.env = vec![("TOKEN".into(), "t".into())];
        p.data = vec![
            DataSet::parse("users", Format::Csv, Order::Sequential, OnEnd::Stop, &csv)
                .unwrap()
                .with_file("users.csv"),
        ];
        let r = &mut p.target.requests[0];
        r.path = "/o/{{seq}}/{{vars.tenant}}".into();
        r.headers.push(("x-id".into(), "{{uuid}}".into()));
        r.body = Body::Template("{\"u\":\"{{data.users.name}}\",\"t\":\"{{env.TOKEN}}\"}".into());
        r.expect = Expect {
            checks: vec![
                Check {
                    name: "status".into(),
                    rule: Rule::Status(vec![StatusMatch::Code(200), StatusMatch::Class(3)]),
                },
                Check {
                    name: "order ok".into(),
                    rule: Rule::Json {
                        path: "$.status".into(),
                        value: serde_json::json!({"a": [1, "x"]}),
                    },
                },
                Check {
                    name: "header content-type".into(),
                    rule: Rule::Header {
                        name: "content-type".into(),
                        value: "application/json".into(),
                    },
                },
                Check {
                    name: "body_regex".into(),
                    rule: Rule::BodyRegex("^\\{".into()),
                },
                Check {
                    name: "body_contains".into(),
                    rule: Rule::BodyContains("ok".into()),
                },
                Check {
                    name: "max_body_bytes".into(),
                    rule: Rule::MaxBodyBytes(4096),
                },
            ],
        };
        (p, csv)
    }

    #[test]
    fn templates_checks_and_data_round_trip() {
        let (p, csv) = templated();
        p.validate().unwrap();
        let files = |name: &str| (name == "users.csv").then_some(csv.as_slice());
        let back = plan_from_wire(pb::Plan::from(&p), &files).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.arrival_limit(), Some(2));
    }

    #[test]
    fn a_data_set_whose_bytes_did_not_arrive_is_refused() {
        let (p, _) = templated();
        let e = Plan::try_from(pb::Plan::from(&p)).unwrap_err();
        assert_eq!(e.field, "data[0].file");
        assert!(e.message.contains("did not arrive"), "{e}");
        let ragged = |_: &str| Some(&b"id,name\n1\n"[..]);
        let e = plan_from_wire(pb::Plan::from(&p), &ragged).unwrap_err();
        assert!(e.message.contains("line 2"), "{e}");
    }

    #[test]
    fn grpc_status_checks_round_trip() {
        let mut p = plan();
        p.target.protocol = Protocol::Grpc;
        for r in &mut p.target.requests {
            r.path = "/svc.S/M".into();
            r.method = "POST".into();
        }
        p.target.requests[0].expect.checks.push(Check {
            name: "grpc_status".into(),
            rule: Rule::GrpcStatus(vec![0, 5]),
        });
        assert_eq!(Plan::try_from(pb::Plan::from(&p)).unwrap(), p);
        let mut w = pb::Plan::from(&p);
        w.target.as_mut().unwrap().requests[0].expect[0].rule = None;
        assert!(Plan::try_from(w).unwrap_err().field.contains("expect[0]"));
    }

    #[test]
    fn bad_wire_plans_are_refused_with_the_field() {
        let mut w = pb::Plan::from(&plan());
        w.target.as_mut().unwrap().protocol = "smtp".into();
        assert_eq!(Plan::try_from(w).unwrap_err().field, "target.protocol");
        let mut w = pb::Plan::from(&plan());
        w.stages[0].from_rps = f64::INFINITY;
        assert_eq!(Plan::try_from(w).unwrap_err().field, "stages[0].from");
        let mut w = pb::Plan::from(&plan());
        w.load = None;
        assert_eq!(Plan::try_from(w).unwrap_err().field, "load");
    }

    #[test]
    fn share_round_trips_and_validates() {
        let s = Share {
            cycle: 4,
            slots: vec![1, 3],
        };
        assert_eq!(Share::try_from(pb::Share::from(&s)).unwrap(), s);
        let bad = pb::Share {
            cycle: 4,
            slots: vec![3, 1],
            worker_index: 0,
            worker_count: 0,
        };
        assert!(Share::try_from(bad).is_err());
    }

    #[test]
    fn run_ids_are_checked_before_they_name_a_directory() {
        assert!(super::check_run_id("20261127-101500-1a2b3c").is_ok());
        for bad in ["", "../etc", "a/b", "x y", &"9".repeat(65)] {
            assert!(super::check_run_id(bad).is_err(), "{bad:?}");
        }
        let err = super::check_run_id("../x").unwrap_err();
        assert!(err.contains("\"../x\" is not a run id"), "{err}");
    }
}
