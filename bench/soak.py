#!/usr/bin/env python3
"""Memory over a long run, time-compressed (Python 3 stdlib only).

Runs one fixed-rate scenario against the built-in target twice:
  cluster: `volley serve` + one `volley-worker` + `volley run --coordinator`
  local:   `volley run` alone (coordinator and worker in one process)
and samples each process's resident memory (VmRSS) every --sample seconds. After the
warm-up (--warmup, default a fifth of the run) it fits a least-squares line and prints the
slope in KB per hour, with the first and last RSS. A flat process shows a slope within
noise of 0; a leak of 3 KB/s shows ~10,800 KB/h.

Every run has a fixed duration and a hard limit; every process is stopped by PID on exit.
All traffic is on 127.0.0.1. Usage: bench/soak.sh [--rate N] [--duration S] [--only cluster|local]
[--worker-cores 0-1]
"""

import argparse
import os
import signal
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import worker as W  # noqa: E402  (helpers only)


def rss_kb(pid):
    """(VmRSS, RssAnon) in KB: anonymous memory is the heap, stacks and
    allocator; the rest is file pages (the binary's code, touched lazily)."""
    got = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":")[0]
                if key in ("VmRSS", "RssAnon"):
                    got[key] = int(line.split()[1])
    except OSError:
        return None
    if "VmRSS" not in got:
        return None
    return got["VmRSS"], got.get("RssAnon", got["VmRSS"])


class Sampler(threading.Thread):
    def __init__(self, pids, period):
        super().__init__(daemon=True)
        self.pids, self.period, self.stop_ev = pids, period, threading.Event()
        self.series = {k: [] for k in pids}
        self.t0 = time.monotonic()

    def run(self):
        while not self.stop_ev.is_set():
            t = time.monotonic() - self.t0
            for k, pid in self.pids.items():
                v = rss_kb(pid)
                if v is not None:
                    self.series[k].append((t, v))
            self.stop_ev.wait(self.period)

    def stop(self):
        self.stop_ev.set()
        self.join()


def slope_kb_per_hour(points):
    """Least-squares slope of (seconds, KB) points, in KB per hour."""
    n = len(points)
    if n < 3:
        return float("nan")
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    sxx = sum((t - mx) ** 2 for t, _ in points)
    sxy = sum((t - mx) * (v - my) for t, v in points)
    return (sxy / sxx) * 3600.0 if sxx > 0 else float("nan")


def write_samples(path, label, series):
    """Appends the raw samples of one mode to `path` as CSV."""
    if not path:
        return
    new = not os.path.exists(path)
    with open(path, "a") as f:
        if new:
            f.write("mode,process,seconds,rss_kb,anon_kb\n")
        for k, points in series.items():
            for t, (rss, anon) in points:
                f.write(f"{label},{k},{t:.1f},{rss},{anon}\n")


def report(label, series, warmup):
    for k, pts in series.items():
        after = [(t, v) for t, v in pts if t >= warmup]
        if len(after) < 3:
            print(f"soak: {label:8} {k:12} too few samples after warm-up")
            continue
        rss = [(t, v[0]) for t, v in after]
        anon = [(t, v[1]) for t, v in after]
        s, sa = slope_kb_per_hour(rss), slope_kb_per_hour(anon)
        print(f"soak: {label:8} {k:12} RSS {rss[0][1] / 1024:6.1f} MB at {rss[0][0]:5.0f} s -> "
              f"{rss[-1][1] / 1024:6.1f} MB at {rss[-1][0]:5.0f} s; peak {max(v[0] for _, v in pts) / 1024:6.1f} MB; "
              f"slope {s:+8.0f} KB/h ({s * 24 / 1024:+7.1f} MB/day), of it anonymous {sa:+8.0f} KB/h "
              f"(anon {anon[0][1] / 1024:.1f} -> {anon[-1][1] / 1024:.1f} MB)", flush=True)
        # A step during warm-up and a steady climb can fit the same slope:
        # the anonymous RSS at each fifth of the fitted span tells them apart.
        marks = [anon[min(len(anon) - 1, i * (len(anon) - 1) // 5)] for i in range(6)]
        print(f"soak: {label:8} {k:12} anonymous MB at " +
              ", ".join(f"{t:.0f} s {v / 1024:.2f}" for t, v in marks), flush=True)


def scenario(url, rate, duration):
    return f"""name = "soak"
[target]
url = "{url}"
timeout = "5s"
[load]
connections = 64
max_in_flight = 10000
[[stages]]
name = "main"
rate = {int(rate)}
duration = "{duration:g}s"
"""


def start_target(vol, log):
    """The built-in target on a free port, on core 1; returns its URL."""
    target = W.start([vol, "target", "--listen", "127.0.0.1:0", "--threads", "1"], 1, log)
    return W.wait_for_line(target, log, r"target listening on (http://127\.0\.0\.1:\d+/)").group(1)


def main():
    p = argparse.ArgumentParser(prog="bench/soak.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=10000, help="requests per second (default 10000)")
    p.add_argument("--duration", type=float, default=600, help="seconds per run (default 600)")
    p.add_argument("--warmup", type=float, help="seconds ignored by the fit (default duration / 5)")
    p.add_argument("--sample", type=float, default=5, help="seconds between RSS samples (default 5)")
    p.add_argument("--only", choices=["cluster", "local"], help="run one mode only")
    p.add_argument("--samples", metavar="FILE",
                   help="also write every sample as CSV (mode,process,seconds,rss_kb,anon_kb): "
                        "steps the fitted slope hides show there")
    p.add_argument("--worker-cores", default="0",
                   help="CPUs the worker (and local mode) may use, as taskset takes them; the worker "
                        "runs one engine thread per CPU (default 0: one thread)")
    p.add_argument("--bin", default=os.path.join(W.REPO, "target", "release"),
                   help="directory with volley and volley-worker (default target/release)")
    a = p.parse_args()
    warmup = a.warmup if a.warmup is not None else a.duration / 5
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, W.on_signal)
    vol, wrk = os.path.join(a.bin, "volley"), os.path.join(a.bin, "volley-worker")
    for exe in (vol, wrk):
        if not os.path.exists(exe):
            sys.exit(f"soak: {exe} missing: cargo build --release -p volley-coordinator -p volley-worker")
    d = tempfile.mkdtemp(prefix="volley-soak-")
    print(f"soak: {a.rate:.0f} req/s for {a.duration:.0f} s per mode, RSS every {a.sample:g} s, "
          f"fit after {warmup:.0f} s; logs in {d}", flush=True)
    try:
        tlog = os.path.join(d, "target.log")
        url = start_target(vol, tlog)
        scen = os.path.join(d, "soak.toml")
        with open(scen, "w") as f:
            f.write(scenario(url, a.rate, a.duration))
        limit = a.duration + 120
        if a.only in (None, "cluster"):
            clog, wlog, rlog = (os.path.join(d, n) for n in ("coordinator.log", "worker.log", "run.log"))
            coord = W.start([vol, "serve", "--listen", "127.0.0.1:0"], 1, clog)
            addr = W.wait_for_line(coord, clog, r"coordinator listening on (127\.0\.0\.1:\d+)").group(1)
            worker = W.start([wrk, "--coordinator", "http://" + addr], a.worker_cores, wlog)
            W.wait_for_line(worker, wlog, r"connected to coordinator")
            s = Sampler({"coordinator": coord.pid, "worker": worker.pid}, a.sample)
            s.start()
            run = W.start([vol, "run", scen, "--coordinator", "http://" + addr,
                           "--out", os.path.join(d, "cluster-run")], 1, rlog)
            try:
                rc = run.wait(timeout=limit)
            except Exception:
                run.kill()
                rc = "hung (killed)"
            s.stop()
            print(f"soak: cluster run exited {rc}", flush=True)
            report("cluster", s.series, warmup)
            write_samples(a.samples, "cluster", s.series)
            W.cleanup()
            url = start_target(vol, tlog)
            with open(scen, "w") as f:
                f.write(scenario(url, a.rate, a.duration))
        if a.only in (None, "local"):
            llog = os.path.join(d, "local.log")
            run = W.start([vol, "run", scen, "--local-workers", "1",
                           "--out", os.path.join(d, "local-run")], a.worker_cores, llog)
            s = Sampler({"local": run.pid}, a.sample)
            s.start()
            try:
                rc = run.wait(timeout=limit)
            except Exception:
                run.kill()
                rc = "hung (killed)"
            s.stop()
            print(f"soak: local run exited {rc}", flush=True)
            report("local", s.series, warmup)
            write_samples(a.samples, "local", s.series)
    finally:
        W.cleanup()


if __name__ == "__main__":
    main()
