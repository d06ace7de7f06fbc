#!/usr/bin/env python3
"""Volley's own lateness against nginx, two builds side by side (issue 16 §1).

Python 3 stdlib only; reuses bench/worker.py (processes, CPU accounting, one
`volley run` per measurement) and bench/peers.py (a private nginx).

Layout on a 2-core machine:
  core 0 (--worker-core): one volley-worker, the thing measured
  core 1 (--target-core): nginx (1 worker process, keep-alive, access_log off),
                          the coordinator and the client

For each round, for each build (the order alternates between rounds so that a
drift of the machine does not favour one), the build's coordinator and worker
are started, their idle CPU measured, then one fixed-rate run per rate. Each
run's report.json gives:
  latency p50        from the scheduled send time (what the report headlines)
  service p50        from the actual send time
  gap                latency p50 - service p50: what the generator added
  send lag p50/p99/max   actual send - scheduled send, per request
and the worker's CPU per request (utime+stime over the run, idle subtracted).
The summary prints the median over the rounds of each figure, per build and
rate, and the candidate's CPU relative to the baseline measured in the same
session. Goals (issue 16 §1): gap <= 0.1 ms, send lag p99 <= 0.5 ms, CPU per
request no worse.

Every run has a fixed duration and a hard limit; every process this script
starts is stopped by PID on exit. All traffic is on 127.0.0.1.

  bench/precision.sh --baseline DIR [--candidate DIR] [--build LABEL=DIR ...]
                     [--wake-gap LABEL=DURATION ...]
                     [--rates 20000,5000] [--duration 10] [--rounds 3]
DIR holds release builds of `volley` and `volley-worker`
(cargo build --release -p volley-coordinator -p volley-worker --bins).
"""

import argparse
import os
import signal
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import worker as W  # noqa: E402
import peers as P  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(
        prog="bench/precision.sh",
        description="Volley's own lateness (send lag) and CPU per request against nginx, "
                    "two builds alternated in one session.")
    p.add_argument("--baseline", help="directory with the baseline build's volley and volley-worker "
                                      "(default: none, the candidate alone)")
    p.add_argument("--candidate", default=os.path.join(W.REPO, "target", "release"),
                   help="directory with the candidate's volley and volley-worker (default target/release)")
    p.add_argument("--rates", default="20000,5000", help="comma-separated fixed rates (default 20000,5000)")
    p.add_argument("--duration", type=float, default=10, help="seconds per run (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; each runs every build at every rate (default 3)")
    p.add_argument("--connections", type=int, default=64, help="[load].connections (default 64)")
    p.add_argument("--max-in-flight", type=int, default=10000, help="[load].max_in_flight (default 10000)")
    p.add_argument("--worker-core", type=int, default=0, help="core for the worker (default 0)")
    p.add_argument("--target-core", type=int, default=1, help="core for nginx, coordinator, client (default 1)")
    p.add_argument("--quiet-pct", type=float, default=25,
                   help="before each run, wait while other processes use more than this %% CPU (default 25)")
    p.add_argument("--quiet-wait", type=float, default=30, help="longest wait for quiet before one run (s)")
    p.add_argument("--quiet-budget", type=float, default=120, help="longest total wait for quiet (s)")
    p.add_argument("--build", action="append", default=[], metavar="LABEL=DIR",
                   help="a further build to alternate with the two above (repeatable)")
    p.add_argument("--wake-gap", action="append", default=[], metavar="LABEL=DURATION",
                   help="the candidate build again with [load].wake_gap = DURATION (or auto), e.g. gap1ms=1ms "
                        "(repeatable; alternated with the builds)")
    p.add_argument("--out", help="directory for logs and reports (default: a temp dir)")
    a = p.parse_args()
    a.rates = [float(r) for r in a.rates.split(",") if r.strip()]
    a.coord_core = a.target_core
    a.protocol = "http1"
    a.per_connection = None
    a.body_size = 0
    a.extra = []
    for b in a.build:
        label, sep, d = b.partition("=")
        if not sep or not label or label in ("candidate", "baseline"):
            p.error(f"--build {b!r}: expected LABEL=DIR with a label other than candidate/baseline")
        a.extra.append((label, d, None))
    for g in a.wake_gap:
        label, sep, gap = g.partition("=")
        if not sep or not label or not gap or label in ("candidate", "baseline"):
            p.error(f"--wake-gap {g!r}: expected LABEL=DURATION (such as gap200=200us)")
        a.extra.append((label, a.candidate, gap))
    a.wake_gap = None
    for d in filter(None, [a.baseline, a.candidate] + [d for _, d, _ in a.extra]):
        for exe in ("volley", "volley-worker"):
            if not os.path.isfile(os.path.join(d, exe)):
                p.error(f"{d}: no {exe} (build it with cargo build --release -p volley-coordinator "
                        f"-p volley-worker --bins)")
    return a


class Build(P.PeerBench):
    """One build's coordinator and worker against the shared nginx."""

    def __init__(self, args, nginx, label, bin_dir):
        self.label = label
        super().__init__(args, nginx, bin_dir)

    def down(self):
        W.stop([self.worker, self.coord])


med = W.median
fmt = W.fmt_opt


def main():
    a = parse_args()
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, W.on_signal)
    tools = {"nginx": P.find_exe("nginx", ("/usr/sbin", "/usr/local/sbin"))}
    if not tools["nginx"]:
        sys.exit("precision: nginx is missing (apt-get install nginx-light)")
    base = a.out or tempfile.mkdtemp(prefix="volley-precision-")
    os.makedirs(base, exist_ok=True)
    builds = ([("candidate", a.candidate, None)] + a.extra
              + ([("baseline", a.baseline, None)] if a.baseline else []))
    results = {label: {rate: [] for rate in a.rates} for label, _, _ in builds}
    try:
        nginx = P.Nginx(tools["nginx"], base, a.target_core)
        print(f"precision: nginx {nginx.url} on core {a.target_core}; worker on core {a.worker_core}; "
              f"{a.connections} connections, {a.duration:g} s per run, {a.rounds} rounds; "
              f"logs in {base}", flush=True)
        for rnd in range(a.rounds):
            # Rotated each round, so no build always runs first (or right after another).
            k = rnd % len(builds)
            order = builds[k:] + builds[:k] if rnd % 2 == 0 else list(reversed(builds[k:] + builds[:k]))
            for label, bin_dir, gap in order:
                a.wake_gap = gap  # the scenario's [load].wake_gap (None: the default)
                a.out = os.path.join(base, f"r{rnd + 1}-{label}")
                os.makedirs(a.out, exist_ok=True)
                b = Build(a, nginx, label, bin_dir)
                b.up()
                b.measure_idle(2)
                for rate in a.rates:
                    print(f"\n-- round {rnd + 1}, {label}, {rate:.0f} rps --", flush=True)
                    r = b.run_once(rate, a.duration, f"{label}-r{rnd + 1}")
                    if r.get("p50") is not None and r.get("svc_p50") is not None:
                        r["gap"] = r["p50"] - r["svc_p50"]
                    r["other_pct"] = W.noise_pct(r, a)
                    results[label][rate].append(r)
                    print(f"  {label}: latency p50 {fmt(r.get('p50'))} ms, service p50 "
                          f"{fmt(r.get('svc_p50'))} ms, gap {fmt(r.get('gap'))} ms; send lag p50 "
                          f"{fmt(r.get('lag_p50'))} p99 {fmt(r.get('lag_p99'))} max {fmt(r.get('lag_max'))} ms; "
                          f"{fmt(r.get('us_per_req'), '.2f')} us/req; other processes "
                          f"{r['other_pct']:.0f}%", flush=True)
                b.down()
    finally:
        W.cleanup()

    print(f"\n== Medians over {a.rounds} rounds (ms; CPU in us of worker CPU per sent request) ==",
          flush=True)
    head = ("build", "rate", "ok/sent", "lat p50", "svc p50", "gap", "lag p50", "lag p99", "lag max",
            "us/req", "other%")
    lines = [head]
    for rate in a.rates:
        for label, _, _ in builds:
            rows = results[label][rate]
            ok = sum(r.get("ok") or 0 for r in rows)
            sent = sum(r.get("sent") or 0 for r in rows)
            lines.append((label, f"{rate:.0f}", f"{ok}/{sent}", fmt(med(rows, "p50")),
                          fmt(med(rows, "svc_p50")), fmt(med(rows, "gap")), fmt(med(rows, "lag_p50")),
                          fmt(med(rows, "lag_p99")), fmt(med(rows, "lag_max")),
                          fmt(med(rows, "us_per_req"), ".2f"), fmt(med(rows, "other_pct"), ".0f")))
    widths = [max(len(str(l[i])) for l in lines) for i in range(len(head))]
    for l in lines:
        print("  " + "  ".join(str(c).rjust(w) for c, w in zip(l, widths)), flush=True)
    for rate in a.rates:
        # The goals, for the candidate and for each of its wake gaps.
        for label, _, wake_gap in builds:
            if label != "candidate" and wake_gap is None:
                continue
            rows = results[label][rate]
            gap, lag99 = med(rows, "gap"), med(rows, "lag_p99")
            print(f"{rate:.0f} rps, {label} (wake_gap {wake_gap or 'default'}): gap {fmt(gap)} ms "
                  f"(goal <= 0.1: {'met' if gap is not None and gap <= 0.1 else 'NOT met'}), "
                  f"send lag p99 {fmt(lag99)} ms "
                  f"(goal <= 0.5: {'met' if lag99 is not None and lag99 <= 0.5 else 'NOT met'})",
                  flush=True)
        # CPU per request against the baseline build, and each wake gap's
        # against the candidate's default (the same binaries).
        refs = ([("baseline", lambda lb, g: lb != "baseline")] if a.baseline else []) + [
            ("candidate", lambda lb, g: g is not None)]
        for ref, compared in refs:
            ref_rows = results[ref][rate]
            ru = med(ref_rows, "us_per_req")
            for label, _, wake_gap in builds:
                if not compared(label, wake_gap):
                    continue
                rows = results[label][rate]
                cu = med(rows, "us_per_req")
                pairs = [c["us_per_req"] / b["us_per_req"] for c, b in zip(rows, ref_rows)
                         if c.get("us_per_req") and b.get("us_per_req")]
                if cu and ru:
                    print(f"  CPU {label}/{ref} at {rate:.0f} rps: {cu / ru:.2f} (per round: "
                          + ", ".join(f"{x:.2f}" for x in pairs) + ")", flush=True)

if __name__ == "__main__":
    main()
