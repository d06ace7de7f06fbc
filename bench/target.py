#!/usr/bin/env python3
"""The built-in target against nginx, one core each (issue 5, target 3).

wrk (1 thread, 64 keep-alive connections, closed loop) runs on core 0 and
drives, in turn, nginx (one worker process, `return 200`,
access_log off, a 1,024-byte body) and `volley target --threads 1` (same body) on core 1.
Each server gets the same number of runs, alternated, so drift in machine
noise hits both alike. Printed per run and as medians: requests/s, the
server's CPU per request (µs, from /proc schedstat) and the built-in
target's rate as a share of nginx's. Python 3 stdlib only; reuses peers.py.

    bench/target.sh [--duration 10] [--runs 3] [--connections 64]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peers as P  # noqa: E402
import worker as W  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(prog="bench/target.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10, help="seconds per wrk run (default 10)")
    p.add_argument("--runs", type=int, default=3, help="runs per server, alternated (default 3)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--client-core", type=int, default=0)
    p.add_argument("--server-core", type=int, default=1)
    p.add_argument("--no-build", action="store_true", help="do not run cargo build --release")
    p.add_argument("--no-install", action="store_true", help="do not apt-get install nginx/wrk")
    p.add_argument("--out", help="directory for configs and logs (default: a temp dir)")
    return p.parse_args()


def server_ns(pids):
    return sum(W.proc_sched_ns(p) or 0 for p in pids)


def wrk_run(wrk, url, a, pids, label):
    cmd = ["taskset", "-c", str(a.client_core), wrk, "-t1", f"-c{a.connections}",
           f"-d{a.duration:g}s", "--latency", url]
    before = server_ns(pids)
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=a.duration + 30, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    used_ns = server_ns(pids) - before
    text = r.stdout.decode(errors="replace")
    m = re.search(r"(\d+) requests in", text)
    if r.returncode != 0 or not m:
        sys.exit(f"target bench: wrk failed against {label}:\n{text[-2000:]}")
    n = int(m.group(1))
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    row = {"server": label, "rps": rps, "requests": n,
           "cpu_us": used_ns / 1e3 / max(n, 1), "cpu_pct": used_ns / 1e9 / wall * 100,
           "non2xx": int(errs.group(1)) if errs else 0}
    print(f"  {label:<16} {rps:>10,.0f} rps  server {row['cpu_us']:5.2f} µs/request  "
          f"server CPU {row['cpu_pct']:5.1f} %  non-2xx {row['non2xx']}", flush=True)
    return row


def main():
    a = parse_args()
    out = a.out or __import__("tempfile").mkdtemp(prefix="volley-target-bench-")
    os.makedirs(out, exist_ok=True)
    if not a.no_build:
        print("target bench: cargo build --release -p volley-coordinator", flush=True)
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "volley-coordinator"],
                       cwd=W.REPO, check=True)

    class Opt:
        no_install = a.no_install
        oha_install_timeout = 0
    tools = P.ensure_peers(Opt)
    wrk = tools.get("wrk") or sys.exit("target bench: wrk is missing")
    nginx = P.Nginx(tools["nginx"], out, a.server_core)
    vol = os.path.join(W.REPO, "target", "release", "volley")
    tlog = os.path.join(out, "target.log")
    target = W.start([vol, "target", "--listen", "127.0.0.1:0", "--threads", "1",
                      "--body-size", str(P.BODY_BYTES)], a.server_core, tlog)
    m = W.wait_for_line(target, tlog, r"target listening on (http://127\.0\.0\.1:\d+/)")
    turl = m.group(1)
    print(f"target bench: wrk 1 thread, {a.connections} connections, {a.duration:g} s runs on core "
          f"{a.client_core}; servers on core {a.server_core}; {P.BODY_BYTES}-byte bodies; "
          f"nginx {nginx.url} (worker pid {nginx.worker_pid}), volley target {turl}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    try:
        for i in range(a.runs):
            print(f"round {i + 1}/{a.runs}", flush=True)
            rows.append(wrk_run(wrk, nginx.url, a, [nginx.worker_pid], "nginx"))
            rows.append(wrk_run(wrk, turl, a, [target.pid], "volley target"))
    finally:
        W.cleanup()
    med = {}
    for s in ("nginx", "volley target"):
        rs = [r for r in rows if r["server"] == s]
        med[s] = {k: statistics.median(r[k] for r in rs) for k in ("rps", "cpu_us", "cpu_pct")}
    print("\n| server | requests/s (median) | server CPU µs/request | server CPU % |")
    print("| --- | --- | --- | --- |")
    for s, v in med.items():
        print(f"| {s} | {v['rps']:,.0f} | {v['cpu_us']:.2f} | {v['cpu_pct']:.0f} |")
    ratio = med["volley target"]["rps"] / med["nginx"]["rps"]
    per_core = (med["volley target"]["rps"] / max(med["volley target"]["cpu_pct"], 1e-9)) / \
        (med["nginx"]["rps"] / max(med["nginx"]["cpu_pct"], 1e-9))
    print(f"\nbuilt-in target / nginx: {ratio:.2f}× the rate, {per_core:.2f}× the rate per core "
          f"used (target ≥ 0.80)")


if __name__ == "__main__":
    main()
