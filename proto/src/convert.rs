//! Wire messages to domain types and back. Everything that arrives from the
//! network is validated here, through the same [`Plan::validate`] the
//! scenario parser uses.

use crate::pb;
use std::time::Duration;
use volley_plan::{
    Arrival, Body, Load, Plan, PlanError, Protocol, Request, Share, Stage, Target, Tls,
};

impl From<&Request> for pb::Request {
    fn from(r: &Request) -> Self {
        let (body_size, body) = match &r.body {
            Body::Generated(n) => (*n, Vec::new()),
            Body::Bytes(b) => (b.len() as u64, b.clone()),
            Body::Template(t) => (t.len() as u64, t.clone().into_bytes()),
        };
        pb::Request {
            name: r.name.clone(),
            weight: r.weight,
            method: r.method.clone(),
            path: r.path.clone(),
            headers: r
                .headers
                .iter()
                .map(|(name, value)| pb::Header {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            body_size,
            body,
        }
    }
}

impl From<pb::Request> for Request {
    /// Unchecked here: [`Plan::validate`] checks every request.
    fn from(r: pb::Request) -> Self {
        Request {
            name: r.name,
            weight: r.weight,
            method: r.method,
            path: r.path,
            headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
            body: if r.body.is_empty() {
                Body::Generated(r.body_size)
            } else {
                Body::Bytes(r.body)
            },
            expect: volley_plan::Expect::default(),
        }
    }
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
        }
    }
}

impl TryFrom<pb::Plan> for Plan {
    type Error = PlanError;

    fn try_from(p: pb::Plan) -> Result<Self, PlanError> {
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
                requests: t.requests.into_iter().map(Request::from).collect(),
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
            vars: Vec::new(),
            env: Vec::new(),
            data: Vec::new(),
        };
        plan.validate()?;
        Ok(plan)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
