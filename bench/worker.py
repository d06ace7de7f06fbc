#!/usr/bin/env python3
"""Benchmark one Volley worker on one core (Python 3 stdlib only).

Layout on a 2-core machine:
  core 0: volley-worker (the thing measured)
  core 1: volley target (--threads 1), volley serve (coordinator), volley run (client)

Part 1: worker CPU per request at a fixed rate (default 20,000 rps for 20 s),
        with the worker's idle (heartbeat) CPU measured first and subtracted.
Part 2: stepped search for the highest rate one worker sustains, then a
        bisection between the last passing and the first failing step.
Part 3: a summary table of every run.

Every run has a fixed duration and a hard wall-clock limit; every process this
script starts is stopped by PID on exit. All traffic is on 127.0.0.1.
Run `bench/worker.sh --help` for options.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HZ = os.sysconf("SC_CLK_TCK")
CHILDREN = []  # Popen objects we started, stopped in cleanup()


def env_num(name, default, cast=float):
    v = os.environ.get(name)
    return cast(v) if v not in (None, "") else default


def parse_args():
    p = argparse.ArgumentParser(
        prog="bench/worker.sh",
        description="CPU cost and highest sustained rate of one Volley worker on one core.",
        epilog="Environment: FIXED_RATE, FIXED_DURATION, IDLE_SECONDS, STEP_DURATION, "
        "STEP_START, STEP_SIZE, STEP_MAX, REFINE_TO, CONNECTIONS, MAX_IN_FLIGHT, "
        "WORKER_CORE, TARGET_CORE, QUIET_PCT, QUIET_WAIT, QUIET_BUDGET, BENCH_OUT (same meaning as the options; options win).",
    )
    p.add_argument("--quick", action="store_true",
                   help="shorter runs: fixed 10 s, steps 5 s, idle 3 s, refine to 10k")
    p.add_argument("--fixed-rate", type=float, help="rate of part 1 (default 20000)")
    p.add_argument("--fixed-duration", type=float, help="seconds of part 1 (default 20)")
    p.add_argument("--idle-seconds", type=float, help="idle CPU sample before part 1 (default 5)")
    p.add_argument("--step-duration", type=float, help="seconds per search step (default 10)")
    p.add_argument("--step-start", type=float, help="first search rate (default 20000)")
    p.add_argument("--step-size", type=float, help="increment between steps (default 20000)")
    p.add_argument("--step-max", type=float, help="highest rate tried (default 300000)")
    p.add_argument("--refine-to", type=float,
                   help="bisect the pass/fail gap down to this many rps (default 5000; 0 = no bisection)")
    p.add_argument("--protocol", choices=["http1", "http2", "grpc", "tcp"], default="http1",
                   help="protocol to drive the built-in target with (default http1); "
                   "http2/grpc use h2c, grpc calls a generic echo method, tcp sends framed messages")
    p.add_argument("--per-connection", type=int,
                   help="streams per connection (http2, grpc; default 100) or pipeline depth (tcp; default 16)")
    p.add_argument("--body-size", type=int, default=None,
                   help="request body bytes (default 0 for http1/http2, 64 for grpc and tcp)")
    p.add_argument("--connections", type=int, help="[load].connections (default 64; 8 for http2/grpc)")
    p.add_argument("--max-in-flight", type=int, help="[load].max_in_flight (default 10000)")
    p.add_argument("--worker-core", type=int, help="core for the worker (default 0)")
    p.add_argument("--coord-core", type=int,
                   help="core for the coordinator and the client (default: the target's core)")
    p.add_argument("--target-core", type=int,
                   help="core for target, coordinator and client (default 1)")
    p.add_argument("--quiet-pct", type=float,
                   help="before each run, wait while other processes use more than this %% CPU "
                   "summed over both cores (default 25)")
    p.add_argument("--quiet-wait", type=float, help="longest wait for quiet before one run (default 60 s; quick 30 s)")
    p.add_argument("--quiet-budget", type=float,
                   help="longest total wait for quiet over the whole bench (default 120 s; quick 60 s)")
    p.add_argument("--wake-gap", action="append", default=[], metavar="GAP",
                   help="[load].wake_gap for every run (\"auto\", or a duration such as 1ms); give it "
                   "more than once to measure each setting in the same session: part 1 runs once per "
                   "setting, and each step of part 2 runs every setting not yet failed, one after "
                   "the other (default: the scenario default)")
    p.add_argument("--skip-fixed", action="store_true", help="skip part 1")
    p.add_argument("--skip-search", action="store_true", help="skip part 2")
    p.add_argument("--no-build", action="store_true", help="do not run cargo build")
    p.add_argument("--bin", help="directory with the volley and volley-worker to measure "
                   "(default target/release; implies --no-build)")
    p.add_argument("--out", help="directory for run reports and logs (default: a temp dir)")
    p.add_argument("--json", help="also write all figures to this JSON file")
    a = p.parse_args()

    q = a.quick
    def pick(val, env, full, quick, cast=float):
        if val is not None:
            return val
        return env_num(env, quick if q else full, cast)
    a.fixed_rate = pick(a.fixed_rate, "FIXED_RATE", 20000, 20000)
    a.fixed_duration = pick(a.fixed_duration, "FIXED_DURATION", 20, 10)
    a.idle_seconds = pick(a.idle_seconds, "IDLE_SECONDS", 5, 3)
    a.step_duration = pick(a.step_duration, "STEP_DURATION", 10, 5)
    a.step_start = pick(a.step_start, "STEP_START", 20000, 20000)
    a.step_size = pick(a.step_size, "STEP_SIZE", 20000, 20000)
    a.step_max = pick(a.step_max, "STEP_MAX", 300000, 300000)
    a.refine_to = pick(a.refine_to, "REFINE_TO", 5000, 10000)
    few = 8 if a.protocol in ("http2", "grpc") else 64
    a.connections = pick(a.connections, "CONNECTIONS", few, few, int)
    a.max_in_flight = pick(a.max_in_flight, "MAX_IN_FLIGHT", 10000, 10000, int)
    a.worker_core = pick(a.worker_core, "WORKER_CORE", 0, 0, int)
    a.target_core = pick(a.target_core, "TARGET_CORE", 1, 1, int)
    a.coord_core = a.target_core if a.coord_core is None else a.coord_core
    a.quiet_pct = pick(a.quiet_pct, "QUIET_PCT", 25, 25)
    a.quiet_wait = pick(a.quiet_wait, "QUIET_WAIT", 60, 30)
    a.quiet_budget = pick(a.quiet_budget, "QUIET_BUDGET", 120, 60)
    a.out = a.out or os.environ.get("BENCH_OUT") or None
    a.wake_gaps = a.wake_gap or [None]
    a.wake_gap = None  # the setting of the run in progress (scenario() reads it)
    return a


# ---------------------------------------------------------------- /proc helpers

def proc_ticks(pid):
    """utime+stime of the whole process (all threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()  # fields from 3 (state) on
    return int(fields[11]) + int(fields[12])  # utime (14), stime (15)


def proc_sched_ns(pid):
    """Sum of on-CPU ns over all threads (/proc/PID/task/*/schedstat); finer than ticks."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                pass
    except FileNotFoundError:
        return None
    return total


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB
    return None


def reset_hwm(pid):
    """Reset VmHWM (peak RSS) so each run gets its own peak; False if not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def proc_stat_cores():
    """{core: (user, nice, system, idle, iowait, irq, softirq, steal)} ticks from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+)\s+(.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                out[int(m.group(1))] = tuple((v + [0] * 8)[:8])
    return out


def cpu_stat():
    """Per-core (busy, steal) ticks from /proc/stat."""
    return {c: (user + nice + system + irq + softirq, steal)
            for c, (user, nice, system, idle, iowait, irq, softirq, steal)
            in proc_stat_cores().items()}


class Snap:
    """A point-in-time sample of every counter we compare across a run."""

    def __init__(self, pids):
        self.t = time.monotonic()
        self.ticks = {k: proc_ticks(p) for k, p in pids.items()}
        self.ns = {k: proc_sched_ns(p) for k, p in pids.items()}
        self.cores = cpu_stat()


class Sampler(threading.Thread):
    """Samples CPU of our processes and cores every `period` s during one run."""

    def __init__(self, pids, period=0.5):
        super().__init__(daemon=True)
        self.pids, self.period = pids, period
        self.samples = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                self.samples.append(Snap(self.pids))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                pass
            self.halt.wait(self.period)

    def stop(self):
        self.halt.set()
        self.join()

    def series(self, core_ids):
        """Per-period CPU % of each process and core: list of dicts with 't' from the first sample."""
        out = []
        for s0, s1 in zip(self.samples, self.samples[1:]):
            dt = s1.t - s0.t
            if dt <= 0:
                continue
            d = {"t": round(s1.t - self.samples[0].t, 2)}
            for k in self.pids:
                d[k] = (s1.ticks[k] - s0.ticks[k]) / HZ / dt * 100
            for c in core_ids:
                d[f"core{c}"] = (s1.cores[c][0] - s0.cores[c][0]) / HZ / dt * 100
            # CPU of processes that are not ours (short-lived ones included), both cores together
            d["other"] = max(0.0, sum(d[f"core{c}"] for c in core_ids) - sum(d[k] for k in self.pids))
            out.append(d)
        return out


def peak(series, key, width=2):
    """Highest mean over `width` consecutive samples (0.5 s each: a 1-s peak)."""
    vals = [d[key] for d in series]
    if len(vals) < width:
        return max(vals) if vals else float("nan")
    return max(sum(vals[i:i + width]) / width for i in range(len(vals) - width + 1))


# ---------------------------------------------------------------- processes

def cleanup(*_):
    for p in reversed(CHILDREN):
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 5
    for p in reversed(CHILDREN):
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    CHILDREN.clear()


def on_signal(signum, _frame):
    cleanup()
    sys.exit(128 + signum)


def stop(procs):
    """SIGTERM each process we started, wait up to 10 s, then kill; forget it."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        if p in CHILDREN:
            CHILDREN.remove(p)


def median(rows, key):
    """Median of `key` over the rows that have it (None when none has)."""
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt_opt(v, spec=".3f"):
    return "-" if v is None else format(v, spec)


def start(cmd, core, log_path):
    log = open(log_path, "wb")
    p = subprocess.Popen(["taskset", "-c", str(core)] + cmd, stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, cwd=REPO)
    CHILDREN.append(p)
    return p


def wait_for_line(p, log_path, pattern, timeout=30):
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while time.monotonic() < deadline:
        with open(log_path, errors="replace") as f:
            m = rx.search(f.read())
        if m:
            return m
        if p.poll() is not None:
            break
        time.sleep(0.05)
    with open(log_path, errors="replace") as f:
        tail = f.read()[-2000:]
    sys.exit(f"bench: {os.path.basename(log_path)} did not print /{pattern}/ "
             f"(exit {p.poll()}):\n{tail}")


def build(args):
    if args.no_build or getattr(args, "bin", None):
        return "not built (--no-build)"
    # The floor client (worker/examples/floor.rs) is bench/peers.py's reference row.
    cmd = ["cargo", "build", "--release", "-p", "volley-coordinator", "-p", "volley-worker",
           "--bins", "--example", "floor"]
    for attempt in range(1, 4):
        print(f"bench: {' '.join(cmd)} (attempt {attempt})", flush=True)
        r = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode == 0:
            return "built"
        print(r.stdout.decode(errors="replace")[-3000:], file=sys.stderr)
        if attempt < 3:
            print("bench: build failed (maybe someone is mid-edit); retrying in 60 s", flush=True)
            time.sleep(60)
    if all(os.path.exists(os.path.join(REPO, "target/release", b)) for b in ("volley", "volley-worker")):
        print("bench: WARNING build keeps failing; using the existing binaries. A failed build can "
              "still relink one of them (e.g. volley-worker but not volley): check the times below",
              flush=True)
        return "build FAILED; existing binaries"
    else:
        sys.exit("bench: build failed and no binaries exist")


# ---------------------------------------------------------------- runs

def scenario(name, url, rate, duration, args):
    # bench/peers.py shares this with its own arguments (HTTP/1.1 only).
    proto = getattr(args, "protocol", "http1")
    per_connection = getattr(args, "per_connection", None)
    body = getattr(args, "body_size", None)
    if body is None:
        body = 64 if proto in ("grpc", "tcp") else 0
    target = f'url = "{url}"\nprotocol = "{proto}"\n'
    if proto == "grpc":
        target += 'method = "/volley.bench.Echo/Say"\n'
    if body:
        target += f"body_size = {body}\n"
    load = ""
    wake_gap = getattr(args, "wake_gap", None)
    if wake_gap:
        load += f'wake_gap = "{wake_gap}"\n'
    if proto in ("http2", "grpc"):
        load += f"streams_per_connection = {per_connection or 100}\n"
    elif proto == "tcp":
        load += f"pipeline = {per_connection or 16}\n"
    return f"""name = "{name}"
[target]
{target}timeout = "5s"
[load]
connections = {args.connections}
max_in_flight = {args.max_in_flight}
{load}[[stages]]
name = "main"
rate = {int(rate)}
duration = "{duration:g}s"
"""


class Bench:
    def __init__(self, args, bin_dir=None):
        self.args = args
        self.dir = args.out or tempfile.mkdtemp(prefix="volley-bench-")
        os.makedirs(self.dir, exist_ok=True)
        # Private copies: a concurrent `cargo build` elsewhere must not swap binaries mid-bench.
        src = bin_dir or os.path.join(REPO, "target", "release")
        self.rel = os.path.join(self.dir, "bin")
        os.makedirs(self.rel, exist_ok=True)
        mtimes = {}
        for exe in ("volley", "volley-worker"):
            shutil.copy2(os.path.join(src, exe), os.path.join(self.rel, exe))
            mtimes[exe] = os.path.getmtime(os.path.join(src, exe))
        print("bench: binaries " + ", ".join(
            f"{k} built {time.strftime('%H:%M:%S', time.localtime(v))}" for k, v in mtimes.items())
            + f" (copied to {self.rel})", flush=True)
        self.idle_rate = {}  # ticks/s and ns/s per process while idle
        self.rows = []
        self.nrun = 0
        self.quiet_budget = args.quiet_budget

    def up(self):
        a = self.args
        vol = os.path.join(self.rel, "volley")
        tlog = os.path.join(self.dir, "target.log")
        cmd = [vol, "target", "--listen", "127.0.0.1:0", "--threads", "1"]
        if a.protocol == "tcp":
            cmd += ["--tcp-listen", "127.0.0.1:0"]
        self.target = start(cmd, a.target_core, tlog)
        m = wait_for_line(self.target, tlog, r"target listening on (http://127\.0\.0\.1:\d+/)")
        self.url = m.group(1)
        if a.protocol == "tcp":
            m = wait_for_line(self.target, tlog, r"target listening on (tcp://127\.0\.0\.1:\d+)")
            self.url = m.group(1)
        clog = os.path.join(self.dir, "coordinator.log")
        self.coord = start([vol, "serve", "--listen", "127.0.0.1:0"], a.coord_core, clog)
        m = wait_for_line(self.coord, clog, r"coordinator listening on (127\.0\.0\.1:\d+)")
        self.coord_url = "http://" + m.group(1)
        wlog = os.path.join(self.dir, "worker.log")
        self.worker = start([os.path.join(self.rel, "volley-worker"), "--coordinator", self.coord_url],
                            a.worker_core, wlog)
        wait_for_line(self.worker, wlog, r"connected to coordinator")
        self.pids = {"worker": self.worker.pid, "target": self.target.pid, "coord": self.coord.pid}
        print(f"bench: target {self.url} (core {a.target_core}, 1 thread), coordinator "
              f"{self.coord_url} (core {a.target_core}), worker pid {self.worker.pid} "
              f"(core {a.worker_core}); logs and reports in {self.dir}", flush=True)

    def alive(self):
        for name, p in (("worker", self.worker), ("target", self.target), ("coordinator", self.coord)):
            if p.poll() is not None:
                return f"{name} exited with status {p.returncode}"
        return None

    def measure_idle(self, seconds):
        time.sleep(1)  # let connection set-up settle
        s0 = Snap(self.pids)
        time.sleep(seconds)
        s1 = Snap(self.pids)
        dt = s1.t - s0.t
        self.idle_rate = {k: ((s1.ticks[k] - s0.ticks[k]) / dt, (s1.ns[k] - s0.ns[k]) / dt)
                          for k in self.pids}
        w_ticks, w_ns = self.idle_rate["worker"]
        print(f"\n== Idle worker (connected, heartbeating), {dt:.1f} s ==\n"
              f"  worker CPU {w_ticks / HZ * 1e3:.2f} ms/s by /proc/PID/stat ticks, "
              f"{w_ns / 1e6:.3f} ms/s by schedstat  "
              f"(= {w_ns / 1e9 * 100:.3f} % of a core; subtracted from every run below)",
              flush=True)

    def other_load(self, seconds=1.0):
        """Per-core busy % over `seconds` not explained by our three processes."""
        s0 = Snap(self.pids)
        time.sleep(seconds)
        s1 = Snap(self.pids)
        dt = s1.t - s0.t
        ours = (sum(s1.ticks.values()) - sum(s0.ticks.values())) / HZ
        busy = [(s1.cores[c][0] - s0.cores[c][0]) / HZ for c in s1.cores]
        return max(0.0, (sum(busy) - ours) / dt * 100), [b / dt * 100 for b in busy]

    def wait_quiet(self):
        """Wait (bounded) until other processes (e.g. a concurrent cargo build) leave the CPUs."""
        a = self.args
        other, _ = self.other_load()
        if other <= a.quiet_pct:
            return
        print(f"  (other processes use {other:.0f}% CPU; waiting up to {a.quiet_wait:g} s for quiet)",
              flush=True)
        t0 = time.monotonic()
        while other > a.quiet_pct and time.monotonic() - t0 < a.quiet_wait and self.quiet_budget > 0:
            other, _ = self.other_load(2.0)
            self.quiet_budget -= 2.0
        print(f"  (other CPU now {other:.0f}%, waited {time.monotonic() - t0:.0f} s)", flush=True)

    def run(self, rate, duration, label, gap=..., retry_noisy_pass=False):
        """One run; a failed run (or any run, with retry_noisy_pass) that shared the CPUs
        with other processes is repeated once. `gap`: the run's [load].wake_gap."""
        r = self.run_once(rate, duration, label, gap)
        if (not r["sustained"] or retry_noisy_pass) and noisy(r, self.args) and not self.alive():
            print(f"  (other processes used {noise_pct(r, self.args):.0f}% CPU on average, "
                  f"{r['cpu_peak1s']['other']:.0f}% in the busiest second, during that run; "
                  f"repeating it once)", flush=True)
            r["superseded"] = True
            r = self.run_once(rate, duration, label + "*", gap)
        return r

    def run_once(self, rate, duration, label, gap=...):
        """`gap`: the run's [load].wake_gap; left out, `args.wake_gap` as it is (bench/precision.py
        sets it itself)."""
        a = self.args
        if gap is not ...:
            a.wake_gap = gap
        gap = getattr(a, "wake_gap", None)
        self.wait_quiet()
        self.nrun += 1
        name = f"bench-{label.replace('*', '-retry')}-{int(rate)}"
        if gap:
            name += "-gap-" + re.sub(r"[^0-9A-Za-z]", "", gap)
        out = os.path.join(self.dir, f"{self.nrun:02d}-{name}")
        os.makedirs(out, exist_ok=True)
        scen = os.path.join(out, "scenario.toml")
        with open(scen, "w") as f:
            f.write(scenario(name, self.url, rate, duration, a))
        dead = self.alive()
        if dead:
            return {"rate": rate, "label": label, "gap": gap_name(gap),
                    "fail": f"before run: {dead}"}
        hwm_reset = reset_hwm(self.worker.pid)
        s0 = Snap(self.pids)
        sampler = Sampler(self.pids)
        sampler.start()
        log = open(os.path.join(out, "run.log"), "wb")
        cmd = ["taskset", "-c", str(a.coord_core), os.path.join(self.rel, "volley"), "run", scen,
               "--coordinator", self.coord_url, "--min-workers", "1", "--out", out, "--quiet"]
        client = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        CHILDREN.append(client)
        limit = duration + 60
        hung = False
        deadline = time.monotonic() + limit
        client_cpu = 0.0
        while True:
            pid, status, ru = os.wait4(client.pid, os.WNOHANG)
            if pid == client.pid:
                client.returncode = os.waitstatus_to_exitcode(status)
                client_cpu = ru.ru_utime + ru.ru_stime
                break
            if time.monotonic() > deadline:
                hung = True
                client.kill()
                _, status, ru = os.wait4(client.pid, 0)
                client.returncode = os.waitstatus_to_exitcode(status)
                client_cpu = ru.ru_utime + ru.ru_stime
                break
            time.sleep(0.05)
        CHILDREN.remove(client)
        sampler.stop()
        s1 = Snap(self.pids)
        rss_peak = proc_status(self.worker.pid, "VmHWM") if self.worker.poll() is None else None
        rss_now = proc_status(self.worker.pid, "VmRSS") if self.worker.poll() is None else None
        window = s1.t - s0.t
        row = {"rate": rate, "label": label, "gap": gap_name(gap), "duration": duration,
               "window_s": window,
               "exit": client.returncode, "dir": out, "rss_peak_kb": rss_peak,
               "rss_now_kb": rss_now, "rss_peak_is_lifetime": not hwm_reset}
        if hung:
            row["fail"] = f"`volley run` still running {limit:.0f} s after start; killed"
        dead = self.alive()
        if dead:
            row["fail"] = (row.get("fail", "") + "; " if "fail" in row else "") + dead
        rp = os.path.join(out, "report.json")
        if os.path.exists(rp):
            with open(rp) as f:
                rep = json.load(f)
            row.update({
                "intended": rep["requests"]["intended"], "sent": rep["requests"]["sent"],
                "ok": rep["requests"]["ok"], "errors": rep["requests"]["errors"],
                "dropped": rep["requests"]["dropped"], "achieved": rep["achieved_rps"],
                "target_rps": rep["target_rps"], "p50": rep["latency_ms"]["p50"],
                "p99": rep["latency_ms"]["p99"], "max": rep["latency_ms"]["max"],
                "svc_p50": rep.get("service_time_ms", {}).get("p50"),
                "svc_p99": rep.get("service_time_ms", {}).get("p99"),
                # Volley's own lateness (actual send - scheduled send); absent before protocol v5.
                "lag_p50": (rep.get("send_lag_ms") or {}).get("p50"),
                "lag_p99": (rep.get("send_lag_ms") or {}).get("p99"),
                "lag_max": (rep.get("send_lag_ms") or {}).get("max"),
                "success": rep["success_rate"], "report_duration": rep.get("duration_s", duration),
                "errors_by_kind": rep.get("errors_by_kind", {}),
                "n_workers": len(rep.get("workers", [])),
            })
        elif "fail" not in row:
            row["fail"] = f"no report.json (volley run exit {client.returncode})"
        # CPU: delta over the window minus idle rate over the window, spread over the load duration.
        load_s = row.get("report_duration") or duration
        cpu = {}
        for k in self.pids:
            ticks = s1.ticks[k] - s0.ticks[k] - self.idle_rate.get(k, (0, 0))[0] * window
            cpu[k] = (max(ticks, 0) / HZ,)
        cpu["client"] = (client_cpu,)
        row["cpu_s"] = {k: v[0] for k, v in cpu.items()}
        row["cpu_pct"] = {k: v[0] / load_s * 100 for k, v in cpu.items()}
        cores = {}
        ours = {a.worker_core: ["worker"], a.target_core: ["target", "coord", "client"]}
        for c in (a.worker_core, a.target_core):
            busy = (s1.cores[c][0] - s0.cores[c][0]) / HZ
            steal = (s1.cores[c][1] - s0.cores[c][1]) / HZ
            mine = sum(cpu[k][0] for k in ours.get(c, []))
            cores[c] = {"busy_pct": busy / window * 100, "steal_pct": steal / window * 100,
                        "unattributed_pct": (busy - mine) / window * 100}
        row["cores"] = cores
        row["cpu_series"] = sampler.series((a.worker_core, a.target_core))
        row["cpu_peak1s"] = {k: peak(row["cpu_series"], k) for k in
                             ("worker", "target", f"core{a.worker_core}", f"core{a.target_core}",
                              "other")}
        if row.get("sent"):
            row["us_per_req"] = cpu["worker"][0] * 1e6 / row["sent"]
        row["sustained"], row["why"] = verdict(row)
        self.rows.append(row)
        print_row(row, a)
        return row


def gap_name(gap):
    """How a run's [load].wake_gap is shown: the setting, or "default" when the scenario sets none."""
    return gap or "default"


def noise_pct(r, a):
    """CPU used during the run by processes other than ours, summed over both cores."""
    if "cores" not in r:
        return 0.0
    return sum(max(0.0, r["cores"][c]["unattributed_pct"]) for c in (a.worker_core, a.target_core))


def verdict(r):
    if "fail" in r:
        return False, r["fail"]
    why = []
    if r["achieved"] < 0.99 * r["rate"]:
        why.append(f"achieved {r['achieved']:.0f} < 99% of {r['rate']:.0f}")
    if r["dropped"] > 0.001 * r["intended"]:
        why.append(f"dropped {r['dropped']} > 0.1% of {r['intended']}")
    if r["success"] < 0.999:
        why.append(f"success {r['success']:.4f} < 0.999")
    if r["p99"] >= 100:
        why.append(f"p99 {r['p99']:.1f} ms >= 100 ms")
    if r.get("n_workers", 1) != 1:
        why.append(f"{r['n_workers']} workers in report (expected 1)")
    if r["sent"] + r["dropped"] != r["intended"] or r["ok"] + r["errors"] + r["dropped"] != r["intended"]:
        why.append("counts do not add up: intended != sent+dropped or ok+errors+dropped")
    return (not why), "; ".join(why) if why else "sustained"


def noisy(r, a):
    """Other processes used more than --quiet-pct on average, or half a core in some second."""
    peak_other = r.get("cpu_peak1s", {}).get("other", 0.0)
    return noise_pct(r, a) > a.quiet_pct or peak_other > max(50.0, 2 * a.quiet_pct)


def inconclusive(r, a):
    """A failed run that shared the CPUs with other processes says little about Volley."""
    return not r["sustained"] and noisy(r, a)


def fmt_kb(kb):
    return "-" if kb is None else f"{kb / 1024:.1f} MiB"


def print_row(r, a):
    if "achieved" not in r:
        print(f"  {r['rate']:>8.0f} rps  FAILED: {r.get('fail')}", flush=True)
        return
    wc, tc = a.worker_core, a.target_core
    gap = f" [wake_gap {r['gap']}]" if len(getattr(a, "wake_gaps", ())) > 1 else ""
    print(f"  {r['rate']:>8.0f} rps{gap}  achieved {r['achieved']:>9.1f}  sent {r['sent']:>8}  "
          f"ok {r['ok']:>8}  err {r['errors']:>5}  drop {r['dropped']:>6}  "
          f"p50 {r['p50']:>7.2f} ms  p99 {r['p99']:>7.2f} ms  max {r['max']:>7.1f} ms", flush=True)
    errk = f"  errors {r['errors_by_kind']}" if r["errors"] else ""
    pk = r.get("cpu_peak1s", {})
    print(f"            busiest second: worker {pk.get('worker', float('nan')):.0f}%, target "
          f"{pk.get('target', float('nan')):.0f}%, core{wc} {pk.get(f'core{wc}', float('nan')):.0f}%, "
          f"core{tc} {pk.get(f'core{tc}', float('nan')):.0f}%, other processes "
          f"{pk.get('other', float('nan')):.0f}%", flush=True)
    if r.get("svc_p50") is not None:
        print(f"            service time (from actual send) p50 {r['svc_p50']:.2f} ms  p99 {r['svc_p99']:.2f} ms; "
              f"send lag p50 {fmt_opt(r.get('lag_p50'))} ms  p99 {fmt_opt(r.get('lag_p99'))} ms",
              flush=True)
    print(f"            worker {r.get('us_per_req', float('nan')):.2f} us/req "
          f"CPU {r['cpu_pct']['worker']:.0f}%, "
          f"peak RSS {fmt_kb(r['rss_peak_kb'])}{' (lifetime)' if r['rss_peak_is_lifetime'] else ''} | "
          f"target CPU {r['cpu_pct']['target']:.0f}%, coordinator {r['cpu_pct']['coord']:.0f}%, client {r['cpu_pct']['client']:.0f}% | "
          f"core{wc} busy {r['cores'][wc]['busy_pct']:.0f}% (other {r['cores'][wc]['unattributed_pct']:.0f}%, "
          f"steal {r['cores'][wc]['steal_pct']:.0f}%), core{tc} busy {r['cores'][tc]['busy_pct']:.0f}% "
          f"(other {r['cores'][tc]['unattributed_pct']:.0f}%, steal {r['cores'][tc]['steal_pct']:.0f}%)"
          f"{errk}", flush=True)
    print(f"            -> {'SUSTAINED' if r['sustained'] else 'NOT sustained: ' + r['why']}", flush=True)
    if inconclusive(r, a):
        print(f"            (other processes used {noise_pct(r, a):.0f}% CPU on average, "
              f"{r['cpu_peak1s']['other']:.0f}% in the busiest second, during this run: "
              f"the failure may be theirs, not Volley's)", flush=True)


def table(rows, a):
    hdr = ["run", "wake_gap", "rate", "achieved", "p50 ms", "p99 ms", "svc p50", "lag p99", "dropped",
           "errors", "wrk us/req",
           "wrk CPU%", "tgt CPU%", "wrk max1s%", "tgt max1s%", f"core{a.target_core}%", "other% avg/max1s", "wrk RSS", "ok?"]
    lines = []
    for r in rows:
        if "achieved" not in r:
            lines.append([r["label"], r.get("gap", ""), f"{r['rate']:.0f}", "FAILED"]
                         + [""] * (len(hdr) - 5) + ["no"])
            continue
        lines.append([
            r["label"], r.get("gap", ""), f"{r['rate']:.0f}", f"{r['achieved']:.0f}", f"{r['p50']:.2f}",
            f"{r['p99']:.2f}", fmt_opt(r.get("svc_p50"), ".2f"), fmt_opt(r.get("lag_p99"), ".2f"),
            f"{r['dropped']}", f"{r['errors']}", f"{r.get('us_per_req', float('nan')):.2f}",
            f"{r['cpu_pct']['worker']:.0f}", f"{r['cpu_pct']['target']:.0f}",
            f"{r['cpu_peak1s']['worker']:.0f}", f"{r['cpu_peak1s']['target']:.0f}",
            f"{r['cores'][a.target_core]['busy_pct']:.0f}",
            f"{noise_pct(r, a):.0f}/{r['cpu_peak1s']['other']:.0f}",
            fmt_kb(r["rss_peak_kb"]),
            ("noisy, repeated" if r.get("superseded") else "yes" if r["sustained"]
             else "no (noisy)" if inconclusive(r, a) else "no"),
        ])
    w = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(hdr)]
    out = ["  ".join(h.rjust(w[i]) for i, h in enumerate(hdr)), "  ".join("-" * x for x in w)]
    out += ["  ".join(c.rjust(w[i]) for i, c in enumerate(l)) for l in lines]
    return "\n".join(out)


def header(a):
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        rev, dirty = "?", ""
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    print(f"bench: volley @ {rev}{' (+uncommitted changes)' if dirty else ''}; "
          f"{os.cpu_count()} cores ({model}); load average {os.getloadavg()[0]:.2f} at start; "
          f"CLK_TCK {HZ}", flush=True)
    per = ""
    if a.protocol in ("http2", "grpc"):
        per = f", {a.per_connection or 100} streams per connection"
    elif a.protocol == "tcp":
        per = f", pipeline {a.per_connection or 16}"
    print(f"bench: protocol {a.protocol}{per}, connections {a.connections}, "
          f"max_in_flight {a.max_in_flight}, timeout 5s, uniform arrivals, 64-byte responses",
          flush=True)


def search(b, a):
    """Part 2 for each wake_gap setting: steps up until a step fails, then bisects. Every
    setting still searching runs each step, one after the other, so that the settings share
    the machine's state. Returns {setting: highest sustained rate or None}."""
    print(f"\n== Part 2: highest sustained rate, {a.step_duration:g} s per step "
          f"(sustained = achieved >= 99%, dropped <= 0.1%, success >= 0.999, p99 < 100 ms) ==",
          flush=True)
    lo = {g: None for g in a.wake_gaps}
    hi = {g: None for g in a.wake_gaps}
    rate = a.step_start
    while rate <= a.step_max and not b.alive():
        climbing = [g for g in a.wake_gaps if hi[g] is None]
        if not climbing:
            break
        for g in climbing:
            r = b.run(rate, a.step_duration, "step", g)
            if r["sustained"]:
                lo[g] = rate
            else:
                hi[g] = rate
        rate += a.step_size
    if a.refine_to > 0:
        bisecting = [g for g in a.wake_gaps if lo[g] is not None and hi[g] is not None]
        while bisecting and not b.alive():
            for g in list(bisecting):
                mid = round((lo[g] + hi[g]) / 2 / 1000) * 1000
                if hi[g] - lo[g] <= a.refine_to or mid <= lo[g] or mid >= hi[g]:
                    bisecting.remove(g)
                    continue
                r = b.run(mid, a.step_duration, "refine", g)
                if inconclusive(r, a):
                    print(f"  (still noisy after a repeat: stopping wake_gap {gap_name(g)}'s "
                          f"bisection here)", flush=True)
                    bisecting.remove(g)
                elif r["sustained"]:
                    lo[g] = mid
                else:
                    hi[g] = mid
    for g in a.wake_gaps:
        which = f"wake_gap {gap_name(g)}: " if len(a.wake_gaps) > 1 else ""
        if lo[g] is None:
            print(f"  => {which}not even {a.step_start:.0f} rps was sustained", flush=True)
        elif hi[g] is None:
            print(f"  => {which}every step up to {lo[g]:.0f} rps was sustained (raise --step-max)",
                  flush=True)
        else:
            print(f"  => {which}highest sustained rate: {lo[g]:.0f} rps (first failure at "
                  f"{hi[g]:.0f} rps)", flush=True)
            saturation(b, a, g, hi[g])
    return lo


def saturation(b, a, gap, hi):
    """Which core saturated first in the failed run at `hi`."""
    fails = [r for r in b.rows if r["rate"] == hi and r["label"] != "fixed"
             and r["gap"] == gap_name(gap) and not r.get("superseded")]
    if not fails or "cpu_peak1s" not in fails[-1]:
        return
    f = fails[-1]
    pk = f["cpu_peak1s"]
    w_sat = pk["worker"] >= 90 or pk[f"core{a.worker_core}"] >= 95
    t_sat = pk["target"] >= 90 or pk[f"core{a.target_core}"] >= 95
    side = ("both cores (worker and target side)" if w_sat and t_sat else
            "the worker's core" if w_sat else
            "the target's core (target + coordinator)" if t_sat else
            "neither core reached 90% in any second: not CPU-bound; suspect "
            "the connection count (CONNECTIONS) or the worker's scheduling")
    if inconclusive(f, a):
        side = (f"INCONCLUSIVE: other processes used {noise_pct(f, a):.0f}% CPU "
                f"({f['cpu_peak1s']['other']:.0f}% in the busiest second) during "
                f"this step (the search ran out of --quiet-budget); re-run on a quiet machine")
    print(f"     at {hi:.0f} rps: mean CPU worker {f['cpu_pct']['worker']:.0f}%, target "
          f"{f['cpu_pct']['target']:.0f}%; busiest second worker {pk['worker']:.0f}%, "
          f"target {pk['target']:.0f}%, core{a.worker_core} {pk[f'core{a.worker_core}']:.0f}%, "
          f"core{a.target_core} {pk[f'core{a.target_core}']:.0f}%\n"
          f"     -> saturated first: {side}", flush=True)


def main():
    a = parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    t_start = time.monotonic()
    build_status = build(a)
    header(a)
    print(f"bench: build: {build_status}", flush=True)
    b = Bench(a, a.bin)
    try:
        b.up()
        b.measure_idle(a.idle_seconds)

        if not a.skip_fixed:
            print(f"\n== Part 1: worker CPU per request at {a.fixed_rate:.0f} rps for "
                  f"{a.fixed_duration:g} s ==", flush=True)
            for gap in a.wake_gaps:
                r = b.run(a.fixed_rate, a.fixed_duration, "fixed", gap, retry_noisy_pass=True)
                if "us_per_req" in r:
                    print(f"  => wake_gap {gap_name(gap)}: worker CPU {r['cpu_s']['worker']:.2f} s for "
                          f"{r['sent']} requests = {r['us_per_req']:.2f} us/request (idle heartbeat CPU "
                          f"subtracted: {b.idle_rate['worker'][0] / HZ * r['window_s']:.3f} s over the "
                          f"{r['window_s']:.1f} s window)", flush=True)

        best = {}
        if not a.skip_search:
            best = search(b, a)

        print("\n== Summary (CPU% = CPU seconds / load seconds, idle subtracted; "
              f"core{a.target_core}% = whole core incl. coordinator and others) ==", flush=True)
        print(table(b.rows, a), flush=True)
        for gap, rate in best.items():
            if rate is None:
                continue
            print(f"\nhighest sustained rate for one worker on one core, wake_gap {gap_name(gap)}: "
                  f"{rate:.0f} rps", flush=True)
            ok = [r for r in b.rows if r["rate"] == rate and r["gap"] == gap_name(gap)
                  and r["sustained"] and r.get("us_per_req")]
            if ok:
                r = ok[-1]
                print(f"  at that rate the worker used {r['cpu_pct']['worker']:.0f}% of its core "
                      f"({r['us_per_req']:.2f} us/req) and the target {r['cpu_pct']['target']:.0f}% of "
                      f"its; extrapolated, the worker alone would fill its core near "
                      f"{1e6 / r['us_per_req']:,.0f} rps (an estimate, not a measurement)", flush=True)
        lifetime = any(r.get("rss_peak_is_lifetime") for r in b.rows)
        if lifetime:
            print("note: could not reset VmHWM; RSS column is the worker's lifetime peak", flush=True)
        print(f"bench: finished in {time.monotonic() - t_start:.0f} s; reports in {b.dir}", flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"idle_rate": b.idle_rate, "runs": b.rows,
                           "best": {gap_name(g): r for g, r in best.items()}}, f, indent=2)
    finally:
        cleanup()


if __name__ == "__main__":
    main()
