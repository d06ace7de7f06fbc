#!/usr/bin/env python3
"""One worker of N threads against N one-thread workers (issue 16 §3).

Python 3 stdlib only; reuses bench/worker.py (processes, CPU accounting, the
scenario) and bench/peers.py (a private nginx).

Both layouts get the same CPUs: every volley-worker process is pinned to the
same set of cores (--cores, default every core), and so are nginx (one worker
process), the coordinator and the client. Layout `threads` is one
`volley-worker --threads N`; layout `workers` is N `volley-worker --threads 1`
(each weighted 1, so the coordinator splits the rate evenly, as the N threads
split it). The layouts alternate in every round (ABBA...), each with its own
coordinator and workers, and each run is one fixed-rate `volley run`.

Per run, from report.json: achieved rate, latency p50/p99, service p50, send
lag p99, ok/sent, and how many workers the report lists; from /proc: the CPU
of all worker processes together per sent request (utime+stime over the
run). The summary prints the medians per layout and the ratio
threads/workers of CPU per request and of latency, goal within 10 %.

Every run has a fixed duration and a hard limit; every process this script
starts is stopped by PID on exit. All traffic is on 127.0.0.1.

  bench/threads.sh [--bin DIR] [--threads 2] [--rate 20000] [--duration 10] [--rounds 3]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import worker as W  # noqa: E402
import peers as P  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(prog="bench/threads.sh",
                                description="One worker of N threads against N one-thread workers, "
                                            "same rate, same CPUs, alternated in one session.")
    p.add_argument("--bin", default=os.path.join(W.REPO, "target", "release"),
                   help="directory with release builds of volley and volley-worker (default target/release)")
    p.add_argument("--threads", type=int, default=2, help="N (default 2)")
    p.add_argument("--rate", type=float, default=20000, help="fixed total rate (default 20000)")
    p.add_argument("--duration", type=float, default=10, help="seconds per run (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; each runs both layouts (default 3)")
    p.add_argument("--connections", type=int, default=64,
                   help="[load].connections per worker process; the N-thread worker gets N times "
                        "as many, so each engine has the same (default 64)")
    p.add_argument("--max-in-flight", type=int, default=10000, help="[load].max_in_flight (default 10000)")
    p.add_argument("--cores", default=None, help="taskset CPU list for every process (default: all)")
    p.add_argument("--out", help="directory for logs and reports (default: a temp dir)")
    a = p.parse_args()
    if a.cores is None:
        a.cores = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    for exe in ("volley", "volley-worker"):
        if not os.path.isfile(os.path.join(a.bin, exe)):
            p.error(f"{a.bin}: no {exe} (cargo build --release -p volley-coordinator -p volley-worker --bins)")
    return a


class Layout:
    def __init__(self, a, nginx, name, base):
        self.a, self.name = a, name
        self.dir = os.path.join(base, name)
        os.makedirs(self.dir, exist_ok=True)
        vol = os.path.join(a.bin, "volley")
        clog = os.path.join(self.dir, "coordinator.log")
        self.coord = W.start([vol, "serve", "--listen", "127.0.0.1:0"], a.cores, clog)
        m = W.wait_for_line(self.coord, clog, r"coordinator listening on (127\.0\.0\.1:\d+)")
        self.coord_url = "http://" + m.group(1)
        self.url = nginx.url
        if name == "threads":
            specs = [["--threads", str(a.threads)]]
        else:
            specs = [["--threads", "1"]] * a.threads
        self.workers = []
        for i, extra in enumerate(specs):
            wlog = os.path.join(self.dir, f"worker{i}.log")
            w = W.start([os.path.join(a.bin, "volley-worker"), "--coordinator", self.coord_url] + extra,
                        a.cores, wlog)
            W.wait_for_line(w, wlog, r"connected to coordinator")
            self.workers.append(w)
        self.n = 0

    def run(self, rnd):
        a = self.a
        self.n += 1
        out = os.path.join(self.dir, f"run{rnd}")
        os.makedirs(out, exist_ok=True)
        scen = os.path.join(out, "scenario.toml")
        # Per-process connections: the N-thread worker gets the N workers' total.
        conns = a.connections * (a.threads if self.name == "threads" else 1)
        args = argparse.Namespace(connections=conns, max_in_flight=a.max_in_flight * (
            a.threads if self.name == "threads" else 1))
        with open(scen, "w") as f:
            f.write(W.scenario(f"threads-{self.name}", self.url, a.rate, a.duration, args))
        t0 = sum(W.proc_ticks(w.pid) for w in self.workers)
        cmd = ["taskset", "-c", a.cores, os.path.join(a.bin, "volley"), "run", scen, "--coordinator",
               self.coord_url, "--min-workers", str(len(self.workers)), "--out", out, "--quiet"]
        with open(os.path.join(out, "run.log"), "wb") as log:
            try:
                rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    timeout=a.duration + 60).returncode
            except subprocess.TimeoutExpired:
                rc = "hung (killed)"
        t1 = sum(W.proc_ticks(w.pid) for w in self.workers)
        row = {"layout": self.name, "round": rnd, "exit": rc}
        try:
            with open(os.path.join(out, "report.json")) as f:
                rep = json.load(f)
        except OSError:
            row["fail"] = f"no report.json (exit {rc})"
            return row
        sent = rep["requests"]["sent"]
        row.update({
            "achieved": rep["achieved_rps"], "ok": rep["requests"]["ok"], "sent": sent,
            "dropped": rep["requests"]["dropped"], "p50": rep["latency_ms"]["p50"],
            "p99": rep["latency_ms"]["p99"], "svc_p50": rep["service_time_ms"]["p50"],
            "lag_p99": (rep.get("send_lag_ms") or {}).get("p99"),
            "workers": len(rep.get("workers", [])),
            "us_per_req": (t1 - t0) / W.HZ * 1e6 / sent if sent else None,
            "cpu_pct": (t1 - t0) / W.HZ / a.duration * 100,
        })
        return row

    def down(self):
        W.stop(self.workers + [self.coord])


med = W.median
fmt = W.fmt_opt


def main():
    a = parse_args()
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, W.on_signal)
    exe = P.find_exe("nginx", ("/usr/sbin", "/usr/local/sbin"))
    if not exe:
        sys.exit("threads: nginx is missing (apt-get install nginx-light)")
    base = a.out or tempfile.mkdtemp(prefix="volley-threads-")
    os.makedirs(base, exist_ok=True)
    rows = {"threads": [], "workers": []}
    try:
        nginx = P.Nginx(exe, base, a.cores)
        print(f"threads: nginx {nginx.url}; every process on cores {a.cores}; {a.rate:.0f} rps for "
              f"{a.duration:g} s per run, {a.rounds} rounds; 1 worker x {a.threads} threads against "
              f"{a.threads} workers x 1 thread; logs in {base}", flush=True)
        for rnd in range(1, a.rounds + 1):
            order = ["threads", "workers"] if rnd % 2 else ["workers", "threads"]
            for name in order:
                lay = Layout(a, nginx, name, os.path.join(base, f"r{rnd}"))
                time.sleep(1)
                r = lay.run(rnd)
                lay.down()
                rows[name].append(r)
                print(f"  round {rnd} {name:>7}: " + (r["fail"] if "fail" in r else
                      f"{r['ok']}/{r['sent']} ok, dropped {r['dropped']}, {r['workers']} worker(s) in the "
                      f"report, achieved {r['achieved']:.0f} rps, p50 {fmt(r['p50'])} p99 {fmt(r['p99'])} "
                      f"svc p50 {fmt(r['svc_p50'])} lag p99 {fmt(r['lag_p99'])} ms, worker CPU "
                      f"{r['cpu_pct']:.0f}% = {fmt(r['us_per_req'], '.2f')} us/req"), flush=True)
    finally:
        W.cleanup()
    print(f"\n== Medians over {a.rounds} rounds ==")
    head = ("layout", "achieved", "p50 ms", "p99 ms", "svc p50", "lag p99", "CPU %", "us/req")
    lines = [head]
    for name in ("threads", "workers"):
        rs = rows[name]
        lines.append((name, fmt(med(rs, "achieved"), ".0f"), fmt(med(rs, "p50")), fmt(med(rs, "p99")),
                      fmt(med(rs, "svc_p50")), fmt(med(rs, "lag_p99")), fmt(med(rs, "cpu_pct"), ".0f"),
                      fmt(med(rs, "us_per_req"), ".2f")))
    widths = [max(len(str(l[i])) for l in lines) for i in range(len(head))]
    for l in lines:
        print("  " + "  ".join(str(c).rjust(w) for c, w in zip(l, widths)))
    for key, what in (("us_per_req", "CPU per request"), ("p50", "latency p50"), ("p99", "latency p99")):
        t, w = med(rows["threads"], key), med(rows["workers"], key)
        if t and w:
            ratio = t / w
            print(f"{what}: threads/workers = {ratio:.2f} "
                  f"({'within' if abs(ratio - 1) <= 0.10 else 'NOT within'} 10 %)")


if __name__ == "__main__":
    main()
