//! Realistic requests across real processes (issue 13, docs/scenarios.md):
//! templated paths, headers and bodies, data files and response checks,
//! judged by servers that are not Volley's: a small Python HTTP/1.1 server
//! that records every request (`tests/python/recording_server.py`) and the
//! grpcio echo server.
//!
//! What is asserted is what a user relies on: every arrival index is sent
//! exactly once whatever the number of workers, data rows are used evenly,
//! the same seed sends the same bytes, a reply that fails a check is counted
//! as a `check` error under the check's name, and bad input is refused with
//! exit 2 before any traffic.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Three in-process workers, each with its own share of the arrivals.
const THREE_WORKERS: &[&str] = &["--local-workers", "3"];

/// A scenario: `target` is the body of `[target]`, `more` is appended after
/// the stage (`[target.expect]` must come right after `[target]`, so it is
/// part of `target`; `[[data]]` and `[[requests]]` go in `more`).
fn scenario(target: &str, seed: u64, rate: u32, secs: u32, more: &str) -> String {
    format!(
        "name = \"templates\"\n\
         [vars]\ntenant = \"acme\"\n\
         [target]\n{target}\n\
         [load]\nseed = {seed}\nconnections = 8\n\
         [[stages]]\nname = \"main\"\nrate = {rate}\nduration = \"{secs}s\"\n{more}"
    )
}

/// A CSV data file of `rows` users: `id,name`, ids `u0000`, `u0001`, …
fn users_csv(rows: usize) -> String {
    let mut s = String::from("id,name\n");
    for i in 0..rows {
        s.push_str(&format!("u{i:04},\"User {i}, the {}\"\n", i % 7));
    }
    s
}

/// `[[data]]` for `users.csv`.
fn users_data(on_end: &str) -> String {
    format!(
        "[[data]]\nname = \"users\"\nfile = \"users.csv\"\norder = \"sequential\"\non_end = \"{on_end}\"\n"
    )
}

/// The `[target]` of the templated runs: seq in the path; uuid, a var, a
/// data column and a seeded random value in headers; every pure value in
/// the body (a JSON document), plus the `{{` escape.
fn templated_target(url: &str) -> String {
    format!(
        r#"url = "{url}"
method = "POST"
path = "/orders/{{{{seq}}}}"
headers = {{ "idempotency-key" = "{{{{uuid}}}}", "x-tenant" = "{{{{vars.tenant}}}}", "x-user" = "{{{{data.users.id}}}}", "x-rand" = "{{{{rand_hex(16)}}}}", "content-type" = "application/json" }}
body = '{{"seq":{{{{seq}}}},"id":"{{{{uuid}}}}","user":"{{{{data.users.id}}}}","name":"{{{{data.users.name}}}}","qty":{{{{rand_int(1, 5)}}}},"hex":"{{{{rand_hex(8)}}}}","color":"{{{{pick("red", "green", "blue")}}}}","tenant":"{{{{vars.tenant}}}}","region":"{{{{env.VOLLEY_TEST_REGION}}}}","lit":"{{{{"{{{{"}}}}x}}}}"}}'
timeout = "5s""#
    )
}

/// Runs `toml` in local mode with `users.csv` of `rows` rows beside it,
/// requires exit 0 and returns the report.
fn run_with_users(tag: &str, toml: &str, rows: usize, extra: &[&str]) -> (Value, TempDir) {
    let mut s = local_submission(tag, toml, extra);
    s.dir.write("users.csv", &users_csv(rows));
    s.cmd.env("VOLLEY_TEST_REGION", "eu-west");
    let (out, _) = run_bounded(s.cmd, Duration::from_secs(90));
    assert!(out.status.success(), "{tag}: {}", describe(&out));
    (read_report(&s.out), s.dir)
}

/// The arrival index a request carries in its path (`/orders/SEQ`).
fn seq_of(r: &Recorded) -> u64 {
    r.path
        .strip_prefix("/orders/")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("path is not /orders/SEQ: {r:?}"))
}

/// Every request by arrival index, asserting each index came once.
fn by_seq(reqs: &[Recorded]) -> BTreeMap<u64, Recorded> {
    let mut m = BTreeMap::new();
    for r in reqs {
        if let Some(dup) = m.insert(seq_of(r), r.clone()) {
            panic!("seq {} received twice:\n{dup:?}\n{r:?}", seq_of(r));
        }
    }
    m
}

/// What must be byte-identical between runs with the same seed: method,
/// path, body and every header except `host` (the server's port differs).
fn wire_bytes(r: &Recorded) -> (String, String, String, Vec<(String, String)>) {
    let headers = r
        .headers
        .iter()
        .filter(|(k, _)| k.as_str() != "host")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (r.method.clone(), r.path.clone(), r.body.clone(), headers)
}

/// Asserts `s` is a lower-case hyphenated RFC 4122 version-4 UUID.
fn assert_uuid_v4(s: &str) {
    let u = uuid::Uuid::parse_str(s).unwrap_or_else(|e| panic!("not a UUID {s:?}: {e}"));
    assert_eq!(u.get_version_num(), 4, "not version 4: {s}");
    assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "not RFC 4122: {s}");
    assert_eq!(
        u.hyphenated().to_string(),
        s,
        "not the lower-case hyphenated form"
    );
}

/// A count of one error kind (0 when the report leaves it out).
fn kind(r: &Value, k: &str) -> u64 {
    r["errors_by_kind"][k].as_u64().unwrap_or(0)
}

/// `errors_by_check` as a map (empty when absent or empty).
fn by_check(v: &Value) -> BTreeMap<String, u64> {
    v["errors_by_check"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or_else(|| panic!("{k}: {n}"))))
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .unwrap_or_default()
}

fn checks(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// Every intended request sent and accounted for, none dropped.
fn assert_all_sent(r: &Value, n: u64, what: &str) {
    assert_eq!(r["complete"], true, "{what}: complete");
    assert_accounted(&r["requests"], what);
    assert_eq!(u(r, "requests.intended"), n, "{what}: {}", r["requests"]);
    assert_eq!(u(r, "requests.sent"), n, "{what}: {}", r["requests"]);
    assert_eq!(u(r, "requests.dropped"), 0, "{what}: {}", r["requests"]);
}

// ---------------------------------------------------------------------------
// Templates and data across three workers
// ---------------------------------------------------------------------------

#[test]
fn three_workers_send_every_seq_once_use_every_row_six_times_and_unique_v4_uuids() {
    let _serial = serial();
    let server = start_recording_server(&[]);
    let mut target = templated_target(&server.url(""));
    // Values that are not a pure function of (seed, seq): who sent it, in
    // which stage, and when.
    target = target.replace(
        "\"content-type\" = \"application/json\" }",
        "\"content-type\" = \"application/json\", \"x-worker\" = \"{{worker}}\", \
         \"x-stage\" = \"{{stage}}\", \"x-sent-ms\" = \"{{now_ms}}\", \
         \"x-sent\" = \"{{now_rfc3339}}\" }",
    );
    let toml = scenario(&target, 7, 1500, 4, &users_data("wrap"));
    let started_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut extra = THREE_WORKERS.to_vec();
    extra.extend(["--set", "tenant=globex"]);
    let (r, _dir) = run_with_users("tpl-seq", &toml, 1000, &extra);
    let ended_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;

    const N: u64 = 6000;
    assert_all_sent(&r, N, "templated run");
    assert_eq!(u(&r, "requests.ok"), N, "{}", r["errors_by_kind"]);
    assert_eq!(r["workers"].as_array().map(Vec::len), Some(3), "3 workers");

    let reqs = server.requests();
    assert_eq!(
        reqs.len() as u64,
        N,
        "the server received what the report counts"
    );
    let seqs = by_seq(&reqs);
    assert_eq!(
        seqs.keys().copied().collect::<Vec<_>>(),
        (0..N).collect::<Vec<_>>(),
        "every seq from 0 to N-1 exactly once"
    );

    let mut row_uses: HashMap<String, u64> = HashMap::new();
    let mut uuids = BTreeSet::new();
    let mut workers = BTreeSet::new();
    for (seq, q) in &seqs {
        let what = format!("seq {seq}: {q:?}");
        assert_eq!(q.method, "POST", "{what}");
        // Sequential data: row = seq mod rows.
        let row = seq % 1000;
        assert_eq!(q.header("x-user"), format!("u{row:04}"), "{what}");
        *row_uses.entry(q.header("x-user").to_string()).or_default() += 1;
        // --set overrides [vars].
        assert_eq!(q.header("x-tenant"), "globex", "{what}");
        assert_eq!(q.header("x-stage"), "main", "{what}");
        let hex = q.header("x-rand");
        assert!(
            hex.len() == 16
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "rand_hex(16): {what}"
        );
        let sent: u64 = q
            .header("x-sent-ms")
            .parse()
            .unwrap_or_else(|_| panic!("now_ms: {what}"));
        assert!(
            (started_ms..=ended_ms).contains(&sent),
            "now_ms within the run ({started_ms}..={ended_ms}): {what}"
        );
        let rfc = q.header("x-sent");
        assert!(
            rfc.len() >= 20 && rfc.as_bytes()[10] == b'T' && rfc.ends_with('Z'),
            "now_rfc3339: {what}"
        );
        workers.insert(q.header("x-worker").to_string());

        let id = q.header("idempotency-key");
        assert_uuid_v4(id);
        assert!(
            uuids.insert(id.to_string()),
            "uuid {id} sent twice ({what})"
        );

        let b: Value = serde_json::from_str(&q.body).unwrap_or_else(|e| {
            panic!("the body is not the JSON the template writes ({e}): {what}")
        });
        assert_eq!(b["seq"].as_u64(), Some(*seq), "{what}");
        assert_eq!(
            b["id"], id,
            "one uuid per request, the same everywhere: {what}"
        );
        assert_eq!(b["user"], format!("u{row:04}"), "{what}");
        assert_eq!(
            b["name"],
            format!("User {row}, the {}", row % 7),
            "a quoted CSV cell, unquoted: {what}"
        );
        let qty = b["qty"].as_i64().unwrap_or_else(|| panic!("qty: {what}"));
        assert!((1..=5).contains(&qty), "rand_int(1, 5): {what}");
        let h = b["hex"].as_str().unwrap_or_default();
        assert!(
            h.len() == 8 && h.bytes().all(|c| c.is_ascii_hexdigit()),
            "rand_hex(8): {what}"
        );
        assert!(
            ["red", "green", "blue"].contains(&b["color"].as_str().unwrap_or_default()),
            "pick: {what}"
        );
        assert_eq!(b["tenant"], "globex", "{what}");
        assert_eq!(b["region"], "eu-west", "env.NAME: {what}");
        assert_eq!(b["lit"], "{{x}}", "{{{{\"{{{{\"}}}} writes {{{{: {what}");
        assert_eq!(
            q.header("content-length"),
            q.body.len().to_string(),
            "content-length of the rendered body: {what}"
        );
    }
    assert_eq!(row_uses.len(), 1000, "every row used");
    assert!(
        row_uses.values().all(|&n| n == 6),
        "each of 1,000 rows exactly 6 times over 6,000 arrivals: {:?}",
        row_uses
            .iter()
            .filter(|(_, &n)| n != 6)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert_eq!(workers.len(), 3, "three workers sent: {workers:?}");

    // Seeded values vary between arrivals (not a constant per run).
    let distinct =
        |f: &dyn Fn(&Recorded) -> String| seqs.values().map(f).collect::<BTreeSet<_>>().len();
    assert_eq!(
        distinct(&|q| q.header("x-rand").to_string()),
        N as usize,
        "rand_hex(16) collides"
    );
    assert_eq!(
        distinct(&|q| serde_json::from_str::<Value>(&q.body).unwrap()["qty"].to_string()),
        5,
        "rand_int(1, 5) takes every value"
    );
}

#[test]
fn the_same_seed_sends_identical_bytes_per_seq_whatever_the_worker_count() {
    let _serial = serial();
    const N: u64 = 2000;
    let run = |tag: &str, seed: u64, workers: &str| {
        let server = start_recording_server(&[]);
        let toml = scenario(
            &templated_target(&server.url("")),
            seed,
            1000,
            2,
            // Random order too: a pure function of (seed, seq) as well.
            &users_data("wrap").replace("sequential", "random"),
        );
        let (r, _dir) = run_with_users(tag, &toml, 1000, &["--local-workers", workers]);
        assert_all_sent(&r, N, tag);
        assert_eq!(u(&r, "requests.ok"), N, "{tag}: {}", r["errors_by_kind"]);
        let reqs = server.requests();
        assert_eq!(reqs.len() as u64, N, "{tag}: server count");
        by_seq(&reqs)
    };
    let a = run("tpl-det-3", 11, "3");
    let b = run("tpl-det-2", 11, "2");
    let c = run("tpl-det-other", 12, "3");
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (seq, qa) in &a {
        assert_eq!(
            wire_bytes(qa),
            wire_bytes(&b[seq]),
            "seq {seq}: same seed, 3 workers vs 2, different bytes"
        );
    }
    // Another seed: different uuids and random values for every arrival
    // (the path, the tenant and content-type stay as they are).
    let mut same_user = 0;
    for (seq, qa) in &a {
        let qc = &c[seq];
        assert_eq!(qa.path, qc.path);
        assert_ne!(
            qa.header("idempotency-key"),
            qc.header("idempotency-key"),
            "seq {seq}"
        );
        assert_ne!(qa.header("x-rand"), qc.header("x-rand"), "seq {seq}");
        assert_ne!(qa.body, qc.body, "seq {seq}");
        same_user += u64::from(qa.header("x-user") == qc.header("x-user"));
    }
    // Random rows under two seeds agree about once in 1,000 rows.
    assert!(
        same_user < N / 50,
        "random order ignores the seed: {same_user} of {N} rows agree"
    );
    // Random order still draws from the whole file.
    let users: BTreeSet<_> = a.values().map(|q| q.header("x-user").to_string()).collect();
    assert!(
        users.len() > 700,
        "random order over 1,000 rows used only {}",
        users.len()
    );
}

#[test]
fn on_end_stop_ends_the_run_after_the_last_row_with_a_complete_report() {
    let _serial = serial();
    let server = start_recording_server(&[]);
    let target = format!(
        "url = \"{}\"\npath = \"/orders/{{{{seq}}}}\"\nheaders = {{ \"x-user\" = \"{{{{data.users.id}}}}\" }}",
        server.url("")
    );
    let toml = scenario(&target, 1, 200, 10, &users_data("stop"));
    let t0 = Instant::now();
    let (r, _dir) = run_with_users("tpl-stop", &toml, 500, THREE_WORKERS);
    let took = t0.elapsed();

    // 500 rows at 200 rps: the run ends after 2.5 s of its 10 s stage.
    assert_all_sent(&r, 500, "on_end = stop");
    assert_eq!(u(&r, "requests.ok"), 500, "{}", r["errors_by_kind"]);
    assert!(
        r["requests"]["unsent"].as_u64().unwrap_or(0) == 0,
        "the seconds after the last row are not intended, not unsent: {}",
        r["requests"]
    );
    let d = f(&r, "duration_s");
    assert!(d < 4.0, "duration cut at the last row (2.5 s), got {d} s");
    assert!(
        took < Duration::from_secs(9),
        "the run went on for {took:?}"
    );
    let events = r["events"].as_array().cloned().unwrap_or_default();
    assert!(
        events.iter().any(|e| {
            let t = e["text"].as_str().unwrap_or_default().to_lowercase();
            t.contains("data") || t.contains("users")
        }),
        "an event says the data set ended the run: {events:?}"
    );

    let reqs = server.requests();
    assert_eq!(reqs.len(), 500, "the server received exactly the rows");
    let seqs = by_seq(&reqs);
    assert_eq!(
        seqs.keys().copied().collect::<Vec<_>>(),
        (0..500).collect::<Vec<_>>()
    );
    let users: BTreeSet<_> = reqs
        .iter()
        .map(|q| q.header("x-user").to_string())
        .collect();
    assert_eq!(users.len(), 500, "every row exactly once");
}

/// A re-split does not change what an arrival sends: a worker killed mid-run
/// hands its share to the survivors from the next second on, and every
/// arrival any worker sent carries the same bytes as in an undisturbed run
/// with the same seed (values are functions of (seed, seq), never of who
/// sends).
#[test]
fn a_worker_lost_mid_run_changes_no_bytes_of_any_arrival() {
    let _serial = serial();
    const RATE: u64 = 500;
    const SECS: u64 = 8;
    let target = |url: &str| {
        format!(
            r#"url = "{url}"
method = "POST"
path = "/orders/{{{{seq}}}}"
headers = {{ "x-id" = "{{{{uuid}}}}", "x-rand" = "{{{{rand_hex(12)}}}}" }}
body = '{{"n":{{{{rand_int(1, 1000000)}}}},"c":"{{{{pick("a", "b", "c")}}}}"}}'
timeout = "2s""#
        )
    };
    // The reference: one undisturbed run, two local workers.
    let reference = {
        let server = start_recording_server(&[]);
        let toml = scenario(&target(&server.url("")), 21, RATE as u32, SECS as u32, "");
        let (r, _dir) = run_local_to_report("tpl-resplit-ref", &toml, &["--local-workers", "2"]);
        assert_all_sent(&r, RATE * SECS, "reference");
        by_seq(&server.requests())
    };

    // The same scenario on three workers, one of them killed mid-run.
    let server = start_recording_server(&[]);
    let (_coord, coord_url) = start_coordinator(&["--heartbeat-timeout", "2s"]);
    let mut workers: Vec<Proc> = (0..3).map(|_| start_worker(&coord_url, &[])).collect();
    let toml = scenario(&target(&server.url("")), 21, RATE as u32, SECS as u32, "");
    let Submission {
        dir: _dir,
        out,
        cmd,
    } = submission(&coord_url, "tpl-resplit", &toml, &["--min-workers", "3"]);
    let run = std::thread::spawn(move || run_bounded(cmd, Duration::from_secs(90)));
    // Kill once the run is well under way (a condition, not a guess at the
    // setup time): about 3 s of traffic has arrived.
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.count() < (3 * RATE) as usize {
        assert!(Instant::now() < deadline, "the run never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    let victim = workers.remove(1);
    victim.signal("KILL");
    let (output, _) = run.join().unwrap();
    drop(victim);
    assert!(output.status.success(), "{}", describe(&output));
    let r = read_report(&out);
    let lost: Vec<f64> = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| !w["lost_at_s"].is_null())
        .map(|w| f(w, "lost_at_s"))
        .collect();
    assert_eq!(lost.len(), 1, "{}", r["workers"]);

    let sent = by_seq(&server.requests());
    assert!(
        sent.len() as u64 > RATE * SECS / 2,
        "{} arrivals sent",
        sent.len()
    );
    for (seq, q) in &sent {
        assert_eq!(
            wire_bytes(q),
            wire_bytes(&reference[seq]),
            "seq {seq}: another worker sent other bytes"
        );
    }
    // The survivors sent every arrival due after the re-split.
    let resplit = (lost[0] + 1.0).ceil();
    let missing: Vec<u64> = (0..RATE * SECS)
        .filter(|&k| k as f64 / RATE as f64 >= resplit && !sent.contains_key(&k))
        .collect();
    assert!(
        missing.is_empty(),
        "due after the re-split at {resplit} s and never sent: {missing:?}"
    );
}

/// A data file larger than a gRPC message (4 MiB) reaches every worker:
/// the CLI uploads it in chunks and the coordinator sends each worker its
/// chunks before the assignment. Each worker must then hold every row,
/// since any of them may draw any row: arrival k uses row k.
#[test]
fn a_data_file_larger_than_a_message_reaches_every_worker_in_chunks() {
    let _serial = serial();
    let server = start_recording_server(&[]);
    const ROWS: usize = 120_000;
    let mut csv = String::from("id,pad\n");
    let pad = "p".repeat(40);
    for i in 0..ROWS {
        csv.push_str(&format!("r{i:07},{pad}\n"));
    }
    assert!(
        csv.len() > 5 << 20,
        "{} bytes: more than one message",
        csv.len()
    );
    let target = format!(
        "url = \"{}\"\npath = \"/orders/{{{{seq}}}}\"\nheaders = {{ \"x-row\" = \"{{{{data.users.id}}}}\" }}",
        server.url("")
    );
    let toml = scenario(
        &target,
        3,
        400,
        2,
        "[[data]]\nname = \"users\"\nfile = \"users.csv\"\n",
    );
    let s = local_submission("tpl-big-data", &toml, THREE_WORKERS);
    s.dir.write("users.csv", &csv);
    let (out, _) = run_bounded(s.cmd, Duration::from_secs(90));
    assert!(out.status.success(), "{}", describe(&out));
    let r = read_report(&s.out);
    assert_all_sent(&r, 800, "a 5 MiB data file");
    assert_eq!(u(&r, "requests.ok"), 800, "{}", r["errors_by_kind"]);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 800);
    for q in &reqs {
        let k = seq_of(q);
        assert_eq!(q.header("x-row"), format!("r{k:07}"), "arrival {k}");
    }
}

// ---------------------------------------------------------------------------
// Response checks
// ---------------------------------------------------------------------------

#[test]
fn a_json_check_counts_exactly_the_error_answers_of_an_independent_server() {
    let _serial = serial();
    let server = start_recording_server(&["--error-every", "10"]);
    // Every check passes on the server's answers except json on 1 in 10;
    // passing checks judged before it must not count.
    let target = format!(
        r#"url = "{}"
path = "/orders/{{{{seq}}}}"
[target.expect]
status = ["2xx"]
header = {{ "content-type" = "application/json" }}
max_body_bytes = 64
body_contains = "status"
body_regex = '^\{{"status":'
json = {{ "$.status" = "ok" }}"#,
        server.url("")
    );
    let toml = scenario(&target, 1, 1000, 3, "");
    let (r, _dir) = run_local_to_report("check-json", &toml, THREE_WORKERS);

    const N: u64 = 3000;
    assert_all_sent(&r, N, "json check");
    assert_eq!(server.count() as u64, N, "server count");
    assert_eq!(u(&r, "requests.errors"), N / 10, "{}", r["errors_by_kind"]);
    assert_eq!(u(&r, "requests.ok"), N - N / 10);
    assert_eq!(kind(&r, "check"), N / 10, "{}", r["errors_by_kind"]);
    assert_eq!(by_check(&r), checks(&[("json $.status", N / 10)]));
    // Every check of the plan is listed, the ones that never failed at 0.
    let listed: BTreeSet<&str> = r["errors_by_check"]
        .as_object()
        .expect("errors_by_check")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        listed,
        BTreeSet::from([
            "status",
            "header content-type",
            "max_body_bytes",
            "body_contains",
            "body_regex",
            "json $.status"
        ])
    );
    // One request definition: the run's figures are its figures
    // (`per_request` is there for mixes, see the override test).
    assert!(r.get("per_request").is_none());

    // The named form counts under its name.
    let server = start_recording_server(&["--error-every", "10"]);
    let target = format!(
        "url = \"{}\"\n[target.expect]\njson = {{ \"$.status\" = {{ value = \"ok\", name = \"order ok\" }} }}",
        server.url("/")
    );
    let (r, _dir) = run_local_to_report("check-json-named", &scenario(&target, 1, 500, 2, ""), &[]);
    assert_all_sent(&r, 1000, "named json check");
    assert_eq!(kind(&r, "check"), 100, "{}", r["errors_by_kind"]);
    assert_eq!(by_check(&r), checks(&[("order ok", 100)]));
}

#[test]
fn a_status_list_replaces_the_default_rule_and_only_the_first_failing_check_counts() {
    let _serial = serial();
    // 201 against status = [200]: every request is a check error, counted
    // under "status" only (the body check after it fails too, unjudged).
    let server = start_recording_server(&["--status", "201"]);
    let target = format!(
        "url = \"{}\"\n[target.expect]\nstatus = [200]\nbody_contains = \"never in the body\"",
        server.url("/")
    );
    let (r, _dir) = run_local_to_report("check-201", &scenario(&target, 1, 500, 2, ""), &[]);
    assert_all_sent(&r, 1000, "201 vs [200]");
    assert_eq!(u(&r, "requests.ok"), 0);
    assert_eq!(kind(&r, "check"), 1000, "{}", r["errors_by_kind"]);
    assert_eq!(
        kind(&r, "status"),
        0,
        "a check failure is not a status error"
    );
    assert_eq!(by_check(&r), checks(&[("status", 1000)]));

    // A 404 in the list is ok; without a list it is a `status` error.
    let server = start_recording_server(&["--status", "404"]);
    let listed = format!(
        "url = \"{}\"\n[target.expect]\nstatus = [200, 404]",
        server.url("/")
    );
    let (r, _dir) = run_local_to_report("check-404-listed", &scenario(&listed, 1, 500, 1, ""), &[]);
    assert_all_sent(&r, 500, "404 in the list");
    assert_eq!(u(&r, "requests.ok"), 500, "{}", r["errors_by_kind"]);
    assert!(by_check(&r).is_empty(), "{}", r["errors_by_check"]);
    let plain = format!("url = \"{}\"", server.url("/"));
    let (r, _dir) = run_local_to_report("check-404-default", &scenario(&plain, 1, 500, 1, ""), &[]);
    assert_eq!(kind(&r, "status"), 500, "{}", r["errors_by_kind"]);
    assert_eq!(kind(&r, "check"), 0);
}

#[test]
fn a_request_expect_overrides_the_target_expect_and_counts_per_request() {
    let _serial = serial();
    let server = start_recording_server(&["--status", "201"]);
    let target = format!(
        "url = \"{}\"\n[target.expect]\nstatus = [201]",
        server.url("")
    );
    let requests = r#"
[[requests]]
name = "strict"
weight = 1
path = "/strict/{{seq}}"
[requests.expect]
status = [200]

[[requests]]
name = "lenient"
weight = 3
path = "/lenient/{{seq}}"
"#;
    let toml = scenario(&target, 1, 1000, 2, requests);
    let (r, _dir) = run_local_to_report("check-override", &toml, THREE_WORKERS);
    assert_all_sent(&r, 2000, "override");
    assert_eq!(kind(&r, "check"), 500, "{}", r["errors_by_kind"]);
    assert_eq!(u(&r, "requests.ok"), 1500);
    assert_eq!(by_check(&r), checks(&[("status", 500)]));
    let per = r["per_request"].as_array().expect("per_request").clone();
    let entry = |name: &str| {
        per.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no per_request entry {name}: {per:?}"))
            .clone()
    };
    assert_eq!(by_check(&entry("strict")), checks(&[("status", 500)]));
    assert_eq!(u(&entry("strict"), "errors"), 500);
    assert!(
        by_check(&entry("lenient")).is_empty(),
        "{}",
        entry("lenient")
    );
    assert_eq!(u(&entry("lenient"), "ok"), 1500);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2000);
    assert_eq!(
        reqs.iter()
            .filter(|q| q.path.starts_with("/strict/"))
            .count(),
        500
    );
}

#[test]
fn a_grpc_not_found_against_an_ok_only_list_is_a_check_error() {
    let _serial = serial();
    let echo = start_grpc_echo_failing(Some(10), "NOT_FOUND");
    let grpc = |expect: &str| {
        format!(
            "url = \"{}\"\nprotocol = \"grpc\"\nmethod = \"/echo.Echo/Say\"\nbody_size = 32\ntimeout = \"2s\"\n[target.expect]\ngrpc_status = {expect}",
            echo.url()
        )
    };
    let (r, _dir) = run_local_to_report(
        "check-grpc",
        &scenario(&grpc("[\"OK\"]"), 1, 500, 2, ""),
        &["--local-workers", "1"],
    );
    assert_all_sent(&r, 1000, "grpc NOT_FOUND vs OK");
    assert_eq!(echo.error_count(), 100, "the server failed 1 in 10");
    assert_eq!(kind(&r, "check"), 100, "{}", r["errors_by_kind"]);
    assert_eq!(kind(&r, "status"), 0, "{}", r["errors_by_kind"]);
    assert_eq!(by_check(&r), checks(&[("grpc_status", 100)]));
    assert_eq!(u(&r, "requests.ok"), 900);

    // NOT_FOUND allowed: all ok.
    let (r, _dir) = run_local_to_report(
        "check-grpc-allowed",
        &scenario(&grpc("[\"OK\", \"NOT_FOUND\"]"), 1, 500, 1, ""),
        &["--local-workers", "1"],
    );
    assert_all_sent(&r, 500, "grpc NOT_FOUND allowed");
    assert_eq!(u(&r, "requests.ok"), 500, "{}", r["errors_by_kind"]);
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

/// The 1-based line of the first line of `toml` containing `needle`.
fn line_of(toml: &str, needle: &str) -> usize {
    toml.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the scenario"))
        + 1
}

/// Runs `toml` (with `files` beside it) and asserts exit 2, quickly, with
/// stderr containing, for each group of `wanted`, one of its strings.
fn assert_refused(tag: &str, toml: &str, files: &[(&str, &[u8])], wanted: &[&[&str]]) -> String {
    let s = local_submission(tag, toml, &["--local-workers", "1"]);
    for (name, bytes) in files {
        std::fs::write(s.dir.path().join(name), bytes).unwrap();
    }
    let (out, took) = run_bounded(s.cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{tag}: {}", describe(&out));
    assert!(took < Duration::from_secs(10), "{tag}: took {took:?}");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    for group in wanted {
        assert!(
            group.iter().any(|w| err.contains(w)),
            "{tag}: stderr names none of {group:?}:\n{err}"
        );
    }
    assert!(err.lines().count() < 20, "{tag}: a short message:\n{err}");
    err
}

#[test]
fn bad_templates_data_and_checks_exit_2_naming_file_line_and_field_before_any_traffic() {
    let _serial = serial();
    let server = start_recording_server(&[]);
    let url = server.url("");
    let csv = users_csv(10);
    let users: &[(&str, &[u8])] = &[("users.csv", csv.as_bytes())];
    let with_data = |target: &str| scenario(target, 1, 100, 1, &users_data("wrap"));

    // An unknown variable, in the path.
    let t = format!("url = \"{url}\"\npath = \"/x/{{{{vars.nope}}}}\"");
    let toml = with_data(&t);
    let l = line_of(&toml, "vars.nope");
    assert_refused(
        "bad-var",
        &toml,
        users,
        &[&[&format!("s.toml:{l}")], &["path"], &["nope"]],
    );

    // An unknown function, in the body.
    let t = format!("url = \"{url}\"\nbody = '{{\"a\":{{{{frobnicate(1)}}}}}}'");
    let toml = with_data(&t);
    let l = line_of(&toml, "frobnicate");
    assert_refused(
        "bad-fn",
        &toml,
        users,
        &[&[&format!("s.toml:{l}")], &["body"], &["frobnicate"]],
    );

    // A column the data file lacks, in a header.
    let t = format!("url = \"{url}\"\nheaders = {{ \"x-mail\" = \"{{{{data.users.email}}}}\" }}");
    let toml = with_data(&t);
    let l = line_of(&toml, "data.users.email");
    assert_refused(
        "bad-column",
        &toml,
        users,
        &[
            &[&format!("s.toml:{l}")],
            &["x-mail", "headers"],
            &["email"],
        ],
    );

    // An unknown data set.
    let t = format!("url = \"{url}\"\npath = \"/{{{{data.people.id}}}}\"");
    assert_refused(
        "bad-set",
        &with_data(&t),
        users,
        &[&["s.toml"], &["people"]],
    );

    // A malformed regex and a malformed JSONPath.
    let t = format!("url = \"{url}\"\n[target.expect]\nbody_regex = \"([a-z\"");
    let toml = with_data(&t);
    let l = line_of(&toml, "body_regex");
    assert_refused(
        "bad-regex",
        &toml,
        users,
        &[&[&format!("s.toml:{l}")], &["body_regex"]],
    );
    let t = format!("url = \"{url}\"\n[target.expect]\njson = {{ \"$[\" = \"ok\" }}");
    let toml = with_data(&t);
    let l = line_of(&toml, "json =");
    assert_refused(
        "bad-jsonpath",
        &toml,
        users,
        &[&[&format!("s.toml:{l}")], &["json"], &["$["]],
    );
    // An unknown gRPC status name.
    let t = format!("url = \"{url}\"\n[target.expect]\ngrpc_status = [\"NOT_A_CODE\"]");
    assert_refused(
        "bad-grpc-code",
        &with_data(&t),
        users,
        &[&["s.toml"], &["grpc_status"]],
    );

    // Data files: ragged rows (with the line), empty, header only, too large.
    let t = format!("url = \"{url}\"\npath = \"/{{{{data.users.id}}}}\"");
    let toml = with_data(&t);
    assert_refused(
        "bad-ragged",
        &toml,
        &[("users.csv", b"id,name\nu1,a\nu2,b\nu3\nu4,d\n")],
        &[&["users.csv"], &["line 4", "users.csv:4"]],
    );
    assert_refused(
        "bad-empty",
        &toml,
        &[("users.csv", b"")],
        &[&["users.csv"], &["empty", "no rows", "at least one"]],
    );
    assert_refused(
        "bad-header-only",
        &toml,
        &[("users.csv", b"id,name\n")],
        &[&["users.csv"], &["empty", "no rows", "at least one"]],
    );
    {
        // A sparse file just over the 256 MiB limit: nothing to write.
        let s = local_submission("bad-huge", &toml, &["--local-workers", "1"]);
        let f = std::fs::File::create(s.dir.path().join("users.csv")).unwrap();
        f.set_len(256 * 1024 * 1024 + 1).unwrap();
        let (out, _) = run_bounded(s.cmd, Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(2), "bad-huge: {}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("users.csv") && err.contains("MiB"),
            "bad-huge: {err}"
        );
    }
    // A missing data file, and bad [[data]] options.
    let missing = scenario(
        &t,
        1,
        100,
        1,
        &users_data("wrap").replace("users.csv", "nowhere.csv"),
    );
    assert_refused("bad-missing-file", &missing, &[], &[&["nowhere.csv"]]);
    let bad_order = with_data(&t).replace("\"sequential\"", "\"shuffled\"");
    assert_refused(
        "bad-order",
        &bad_order,
        users,
        &[&["s.toml"], &["order"], &["shuffled"]],
    );
    let bad_end = with_data(&t).replace("\"wrap\"", "\"loop\"");
    assert_refused("bad-on-end", &bad_end, users, &[&["s.toml"], &["on_end"]]);

    assert_eq!(server.count(), 0, "no traffic before the input was judged");
}

#[test]
fn a_set_for_a_variable_no_template_uses_is_a_warning_not_an_error() {
    let _serial = serial();
    let server = start_recording_server(&[]);
    let t = format!(
        "url = \"{}\"\npath = \"/t/{{{{vars.tenant}}}}\"",
        server.url("")
    );
    let s = local_submission(
        "set-unused",
        &scenario(&t, 1, 50, 1, ""),
        &[
            "--local-workers",
            "1",
            "--set",
            "tenant=globex",
            "--set",
            "nope=1",
        ],
    );
    let (out, _) = run_bounded(s.cmd, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope"),
        "the warning names the variable: {}",
        describe(&out)
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 50);
    assert!(
        reqs.iter().all(|q| q.path == "/t/globex"),
        "{:?}",
        reqs.first()
    );
}

// ---------------------------------------------------------------------------
// The examples
// ---------------------------------------------------------------------------

/// Runs `examples/NAME` on the embedded default (built-in target) and
/// returns its exit code and report.
fn run_example(name: &str) -> (Option<i32>, Value, TempDir) {
    let dir = TempDir::new(name);
    let out = dir.path().join("out");
    let mut cmd = volley();
    cmd.args([
        "run",
        examples_dir().join(name).to_str().unwrap(),
        "--quiet",
    ])
    .args(["--local-workers", "2", "--out", out.to_str().unwrap()]);
    let (output, _) = run_bounded(cmd, Duration::from_secs(90));
    assert!(
        out.join("report.json").exists(),
        "{name}: {}",
        describe(&output)
    );
    (output.status.code(), read_report(&out), dir)
}

#[test]
fn the_templated_and_checks_examples_pass_against_the_builtin_target() {
    let _serial = serial();
    let (code, r, _dir) = run_example("templated.toml");
    assert_eq!(code, Some(0), "templated.toml: {}", r["thresholds"]);
    assert_all_sent(&r, 2500, "templated.toml");
    assert_eq!(u(&r, "requests.ok"), 2500, "{}", r["errors_by_kind"]);

    // 0.5 % injected 500s fail the status check, and nothing else does.
    let (code, r, _dir) = run_example("checks.toml");
    assert_eq!(code, Some(0), "checks.toml: {}", r["thresholds"]);
    assert_all_sent(&r, 5000, "checks.toml");
    assert_eq!(kind(&r, "check"), 25, "{}", r["errors_by_kind"]);
    assert_eq!(u(&r, "requests.errors"), 25, "{}", r["errors_by_kind"]);
    assert_eq!(by_check(&r), checks(&[("status", 25)]));
}
