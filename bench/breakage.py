#!/usr/bin/env python3
"""Breakage proofs: each test that claims a behaviour must fail when that
behaviour is broken (issue 18 §1). For every entry below this script breaks
one behaviour in a source file (one exact replacement), builds, runs the
test that claims it, records whether and how it failed, and restores the
file, in a git worktree of its own so the checkout you work in is never
touched.

    git worktree add ../volley-break HEAD --detach
    bench/breakage.py ../volley-break                # every entry
    bench/breakage.py ../volley-break grpc-every-call-to-first-method

Each result is a line of JSON in target/breakage/results.jsonl of the
worktree's target dir (CARGO_TARGET_DIR, else WORKTREE/target), with the
test's first failed assertion; a test that passes with its behaviour broken
is printed as such and makes the exit status 1. Nothing here is committed:
the breakage lives only in the worktree, for the length of one test.

Give the worktree a target dir of its own (the default). A target dir
shared with your checkout can keep the broken build: cargo names a
workspace crate's artifacts the same in both trees, and then takes the
broken one as fresh (seen once; `touch` the sources to rebuild).
"""
import json, os, re, subprocess, sys, time

if len(sys.argv) < 2 or not os.path.isdir(os.path.join(sys.argv[1], ".git")) and not os.path.isfile(os.path.join(sys.argv[1], ".git")):
    sys.exit("usage: bench/breakage.py WORKTREE [ENTRY...] (WORKTREE: a git worktree of this repository)")
WT = os.path.abspath(sys.argv[1])
if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=WT, capture_output=True, text=True).stdout.strip():
    sys.exit(f"{WT} has uncommitted changes: breakage needs a clean worktree")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(WT, "target"))
ENV = dict(os.environ, CARGO_TARGET_DIR=TARGET, CARGO_TERM_COLOR="never")
OUT = os.path.join(TARGET, "breakage")
os.makedirs(OUT, exist_ok=True)
I = "-p volley-integration-tests"

B = [
 ("tcp-no-pipelining", "worker/src/engine/tcp.rs",
  "while flight.len() < sh.per_conn {", "while flight.len() < 1 {",
  "-p volley-worker --test engine", "tcp_messages_are_pipelined_and_all_answered", False),
 ("tcp-reply-matched-to-newest", "worker/src/engine/tcp.rs",
  "    if let Some(o) = flight.pop_front() {\n        let now = Instant::now();",
  "    if let Some(o) = flight.pop_back() {\n        let now = Instant::now();",
  "-p volley-worker --test engine", "tcp_messages_are_pipelined_and_all_answered", False),
 ("timer-wakes-200us-early", "worker/src/engine/timer.rs",
  "let d = (deadline - now).max(Duration::from_micros(1));",
  "let d = (deadline - now).saturating_sub(Duration::from_micros(200)).max(Duration::from_micros(1));",
  "-p volley-worker --lib", "never_wakes_before_the_deadline", False),
 ("grpc-every-call-to-first-method", "worker/src/engine/http2/mod.rs",
  "requests.request(job.tag.req, ||", "requests.request(0, ||",
  "-p volley-worker --test engine", "grpc_calls_judge_grpc_status_and_weighted_requests_split", False),
 ("http2-flight-twice-the-streams", "worker/src/engine/http2/mod.rs",
  "RefCell::new(Flight::new(sh.per_conn))", "RefCell::new(Flight::new(sh.per_conn * 2))",
  "-p volley-worker --test engine", "http2_replies_in_any_order_never_exceed_the_streams_per_connection", False),
 ("worker-keeps-idle-pace-in-run", "worker/src/heartbeat.rs",
  "        if in_run != self.in_run {", "        if in_run != self.in_run && false {",
  I, "an_idle_worker_is_judged_by_the_idle_timeout_and_a_worker_in_a_run_by_the_run_one", True),
 ("idle-worker-reaped-by-run-timeout", "coordinator/src/registry.rs",
  "            None => now.saturating_duration_since(w.last_seen) > idle,",
  "            None => now.saturating_duration_since(w.last_seen) > run.min(idle),",
  I, "an_idle_worker_is_judged_by_the_idle_timeout_and_a_worker_in_a_run_by_the_run_one", True),
 ("silent-worker-kept-in-the-run", "coordinator/src/run/setup.rs",
  "    if pongs.contains(&0) {", "    if false && pongs.contains(&0) {",
  I, "a_run_leaves_out_a_listed_worker_that_answers_no_clock_ping", True),
 ("sparse-decode-bucket-off-by-one", "proto/src/histogram/decode.rs",
  "        sub << bucket\n", "        (sub + 1) << bucket\n",
  "-p volley-coordinator --lib", "merged_percentiles_equal_one_big_histogram", False),
 ("coarse-books-one-bucket-down", "proto/src/histogram/coarse.rs",
  "let j = index_of(value_at_index(i));", "let j = index_of(value_at_index(i)).saturating_sub(1);",
  "-p volley-proto --lib", "books_hold_what_recording_every_value_at_2_digits_would", False),
 ("worker-lines-kept-past-the-limit", "coordinator/src/merge/mod.rs",
  "        self.tracks.len() <= MAX_WORKER_LINES\n", "        self.tracks.len() <= MAX_WORKER_LINES + 1\n",
  "-p volley-coordinator --lib", "seconds_keep_each_workers_latency_bytes_only_up_to_the_log_limit", False),
 ("http1-keeps-every-body", "worker/src/engine/http1.rs",
  "let keep = judged.is_some();",
  "let keep = true;\n            if judged.is_none() {\n                self.body.start(true);\n            }",
  I, "misbehaving_targets_give_classified_errors_within_the_timeout", True),
 ("regression-threshold-ignored", "coordinator/src/analysis/regression.rs",
  "let t = threshold_pct / 100.0;", "let t = 0.10 + 0.0 * threshold_pct;",
  I, "a_regression_against_the_baseline_exits_1", True),
 ("worker-retries-untrusted-certificate", "worker/src/session.rs",
  "    if untrusted {\n        SessionEnd::Untrusted(why)", "    if false && untrusted {\n        SessionEnd::Untrusted(why)",
  I, "workers_and_the_cli_talk_to_a_tls_coordinator", True),
 ("cli-retries-untrusted-certificate", "coordinator/src/client.rs",
  'if text.contains("certificate") || text.contains("handshake") {',
  'if false && (text.contains("certificate") || text.contains("handshake")) {',
  I, "workers_and_the_cli_talk_to_a_tls_coordinator", True),
 ("joiner-reported-a-second-late", "coordinator/src/run/collect/joiners.rs",
  "m.joined_at_s = Some(from);", "m.joined_at_s = Some(from + 1.0);",
  I, "a_worker_that_connects_mid_run_takes_a_share", True),
 ("lost-worker-unsent-hidden", "coordinator/src/run/collect/mod.rs",
  "let delta = self.merger.settle_lost(slot, unsent);", "let delta = self.merger.settle_lost(slot, unsent * 0);",
  I, "a_killed_worker_is_reported_and_its_share_goes_to_the_survivors", True),
 ("lost-worker-noticed-1.5s-late", "coordinator/src/run/collect/mod.rs",
  "        let t = self.now_s();\n        self.members[slot].lost_at_s = Some(t);",
  "        let t = self.now_s() + 1.5;\n        self.members[slot].lost_at_s = Some(t);",
  I, "a_killed_worker_is_reported_and_its_share_goes_to_the_survivors", True),
 ("metrics-count-errors-as-ok", "coordinator/src/metrics.rs",
  "d[0] += c.ok;", "d[0] += c.ok + c.errors;",
  I, "metrics_agree_with_what_the_target_counted_and_imposed", True),
 ("workers-hlog-misses-a-worker", "coordinator/src/output.rs",
  "for line in &s.worker_hlog_lines {", "for line in s.worker_hlog_lines.iter().skip(1) {",
  I, "an_independent_hdrhistogram_merges_the_workers_logs_and_agrees_with_the_report", True),
]
only = sys.argv[2:]
res_path = os.path.join(OUT, "results.jsonl")
missed = 0
for (bid, f, old, new, pkg, test, bins) in B:
    if only and bid not in only:
        continue
    p = os.path.join(WT, f)
    src = open(p).read()
    n = src.count(old)
    if n != 1:
        print(f"{bid}: the text to break is found {n} times in {f} (the code moved?); skipped", flush=True)
        missed += 1
        continue
    open(p, "w").write(src.replace(old, new))
    t0 = time.time()
    log = open(os.path.join(OUT, f"{bid}.log"), "w")
    try:
        ok = True
        if bins:
            # The cross-process tests run the binaries: rebuild them broken.
            r = subprocess.run("cargo build --bins", shell=True, cwd=WT, env=ENV, stdout=log, stderr=subprocess.STDOUT)
            ok = r.returncode == 0
        if ok:
            r = subprocess.run(f"cargo nextest run {pkg} --no-fail-fast -E 'test({test})' --no-tests=fail",
                               shell=True, cwd=WT, env=ENV, capture_output=True, text=True)
            out = r.stdout + r.stderr
            log.write(out)
            verdict = "FAILED (as it must)" if r.returncode != 0 else "PASSED (the test did not catch it!)"
            m = re.findall(r"panicked at [^\n]*\n(.{0,600})", out, re.S)
            why = m[0].split("stack backtrace")[0].strip()[:600] if m else ("build failed" if "error[" in out else out[-400:])
        else:
            verdict, why = "BUILD FAILED", ""
    finally:
        open(p, "w").write(src)
        log.close()
    if not verdict.startswith("FAILED"):
        missed += 1
    rec = dict(id=bid, file=f, old=old, new=new, test=test, verdict=verdict, why=why, secs=round(time.time() - t0))
    open(res_path, "a").write(json.dumps(rec) + "\n")
    print(f"{bid}: {verdict} ({rec['secs']} s)\n   {why[:300]}", flush=True)
sys.exit(1 if missed else 0)
