//! What a templated request is rendered from, per arrival.
//!
//! The templates themselves are compiled once per run by the plan
//! ([`volley_plan::template`]) and held by each protocol's prepared
//! requests; this module holds the rest of a render's [`Context`] (seed,
//! data sets, worker id, stage names) and builds it per job. The clock is
//! read only for a request whose templates use it, and the stage of a job
//! is computed by the scheduler only when some template names it.
//!
//! It also makes rendered text safe for the place it goes: a data cell
//! with a line break must not split a header (or smuggle one in), and a
//! space must not end the request line early.

use super::conn::Job;
use std::time::SystemTime;
use volley_plan::model::CompiledRequest;
use volley_plan::template::Context;
use volley_plan::{DataSet, Plan, Template};

/// The per-run half of every render context.
#[derive(Debug)]
pub struct Renderer {
    seed: u64,
    worker: String,
    data: Vec<DataSet>,
    stages: Vec<String>,
    /// Per request definition: whether its templates read the clock.
    uses_time: Vec<bool>,
    uses_stage: bool,
}

impl Renderer {
    /// `data` sets are shared (`Arc`) with the plan, not copied.
    pub fn new(plan: &Plan, worker: &str, requests: &[CompiledRequest]) -> Renderer {
        fn templates(r: &CompiledRequest) -> impl Iterator<Item = &Template> {
            std::iter::once(&r.path)
                .chain(r.headers.iter().map(|(_, t)| t))
                .chain(r.body.as_ref())
        }
        Renderer {
            seed: plan.load.seed,
            worker: worker.to_owned(),
            data: plan.data.clone(),
            stages: plan.stages.iter().map(|s| s.name.clone()).collect(),
            uses_time: requests
                .iter()
                .map(|r| templates(r).any(|t| t.uses_time()))
                .collect(),
            uses_stage: requests
                .iter()
                .any(|r| templates(r).any(|t| t.uses_stage())),
        }
    }

    /// Whether any template writes `{{stage}}` (only then does the
    /// scheduler look the stage of each arrival up).
    pub fn uses_stage(&self) -> bool {
        self.uses_stage
    }

    /// The context `job` renders in.
    #[inline]
    pub fn context(&self, job: &Job) -> Context<'_> {
        let uses_time = self
            .uses_time
            .get(usize::from(job.tag.req))
            .copied()
            .unwrap_or(false);
        Context {
            seq: job.seq,
            seed: self.seed,
            now: if uses_time {
                SystemTime::now()
            } else {
                SystemTime::UNIX_EPOCH
            },
            worker: &self.worker,
            stage: self
                .stages
                .get(usize::from(job.stage))
                .map_or("", String::as_str),
            data: &self.data,
        }
    }
}

/// Whether a byte cannot appear as it is in a request target: controls,
/// space, non-ASCII and the characters RFC 3986 leaves out of URIs (which
/// HTTP/2's `:path` refuses too).
#[inline]
fn needs_escape(b: u8) -> bool {
    b <= b' '
        || b >= 0x7f
        || matches!(
            b,
            b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
        )
}

/// Percent-encodes, in `buf[from..]`, the bytes a request target cannot
/// carry, so a data cell such as `"new york"` becomes `new%20york` rather
/// than a broken request line. Allocates only when there is such a byte.
pub fn escape_path(buf: &mut Vec<u8>, from: usize) {
    let Some(first) = buf[from..].iter().position(|&b| needs_escape(b)) else {
        return;
    };
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let tail = buf.split_off(from + first);
    for b in tail {
        if needs_escape(b) {
            buf.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else {
            buf.push(b);
        }
    }
}

/// Replaces, in a rendered header value, the bytes a header value cannot
/// carry (controls other than tab, DEL) with spaces: a line break from a
/// data file must not start a header of its own.
#[inline]
pub fn clean_header_value(value: &mut [u8]) {
    for b in value.iter_mut() {
        if (*b < b' ' && *b != b'\t') || *b == 0x7f {
            *b = b' ';
        }
    }
}

/// Plans and contexts for the protocol modules' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use volley_plan::data::{Format, OnEnd, Order};
    use volley_plan::model::CompiledRequest;
    use volley_plan::template::Context;
    use volley_plan::{DataSet, Load, Plan, Protocol, Request, Target, Tls};

    pub fn plan(protocol: Protocol, url: &str, requests: Vec<Request>) -> Plan {
        Plan {
            target: Target {
                url: url.into(),
                protocol,
                timeout: std::time::Duration::from_secs(1),
                requests,
                tls: Tls::default(),
            },
            load: Load::default(),
            stages: Vec::new(),
            vars: Vec::new(),
            env: Vec::new(),
            data: Vec::new(),
        }
    }

    /// A data set `cities` whose first row is plain and whose later rows
    /// hold what a path or header cannot carry as it is.
    pub fn cities() -> DataSet {
        let csv = b"city\nparis\nnew york\n\"x\r\nEvil: 1\"\n";
        DataSet::parse("cities", Format::Csv, Order::Sequential, OnEnd::Wrap, csv).unwrap()
    }

    pub fn compile(plan: &Plan) -> Vec<CompiledRequest> {
        plan.compile_requests().unwrap()
    }

    /// Arrival `seq` of a run with seed 0, no data, worker `w1`.
    pub fn ctx(seq: u64) -> Context<'static> {
        ctx_with(seq, &[])
    }

    /// Arrival `seq` of a run with seed 0 and `data`, worker `w1`.
    pub fn ctx_with(seq: u64, data: &[DataSet]) -> Context<'_> {
        Context {
            seq,
            seed: 0,
            now: std::time::SystemTime::UNIX_EPOCH,
            worker: "w1",
            stage: "s",
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::engine::recorder::Tag;
    use volley_plan::{Protocol, Request, Stage};

    #[test]
    fn the_clock_is_read_only_for_requests_that_use_it() {
        let mut plan = testing::plan(
            Protocol::Http1,
            "http://h/",
            vec![Request::get("/{{seq}}"), Request::get("/{{now_ms}}")],
        );
        plan.stages = vec![Stage {
            name: "warm".into(),
            duration: std::time::Duration::from_secs(1),
            from_rps: 1.0,
            to_rps: 1.0,
            burst: false,
        }];
        let r = Renderer::new(&plan, "w7", &testing::compile(&plan));
        assert!(!r.uses_stage());
        let job = |req| Job {
            sched: tokio::time::Instant::now(),
            tag: Tag::new(0, req),
            seq: 9,
            stage: 0,
        };
        let c = r.context(&job(0));
        assert_eq!((c.seq, c.worker, c.stage), (9, "w7", "warm"));
        assert_eq!(c.now, SystemTime::UNIX_EPOCH);
        assert!(r.context(&job(1)).now > SystemTime::UNIX_EPOCH);
    }

    #[test]
    fn paths_are_percent_encoded_only_where_needed() {
        let mut b = b"GET /a".to_vec();
        escape_path(&mut b, 4);
        assert_eq!(b, b"GET /a");
        let mut b = b"GET /city/new york\r\n\xc3\xa9?q={\"a\"}".to_vec();
        escape_path(&mut b, 4);
        assert_eq!(b, b"GET /city/new%20york%0D%0A%C3%A9?q=%7B%22a%22%7D");
    }

    #[test]
    fn header_values_lose_line_breaks() {
        let mut v = b"a\r\nX-Evil: 1\tb\x7f".to_vec();
        clean_header_value(&mut v);
        assert_eq!(v, b"a  X-Evil: 1\tb ");
    }
}
