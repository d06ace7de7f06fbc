#!/usr/bin/env python3
"""Volley against its peers (wrk, oha) on one core, against nginx on the other (issue 5).

Python 3 stdlib only; reuses the /proc helpers, the noise detector and the Volley
set-up of bench/worker.py (imported, not changed).

Layout on a 2-core machine:
  core 0 (--worker-core): the load generator being measured: wrk, oha or volley-worker
  core 1 (--target-core): nginx (worker_processes 1, keep-alive, access_log off,
                          1,024-byte body), and for Volley runs the coordinator
                          (`volley serve`) and the client (`volley run`)

Runs, each bounded in time (duration + 60 s hard limit):
  1. wrk -t1 -c64, closed loop
  2. oha --worker-threads 1 -c64, closed loop; then oha -q FIXED_RATE (fixed rate)
  3. one volley-worker at FIXED_RATE (open model)
  4. one volley-worker at the highest rate it sustains (stepped search + bisection)
and prints one table: rate, CPU us/request (process utime+stime / requests), peak
RSS, p50/p99, the CPU other processes used during each run, and the ratio
Volley us/req / oha -q us/req (issue 5, target 1: <= 0.5).

Every process it starts is stopped by PID on exit. All traffic is on 127.0.0.1.
Run `bench/peers.sh --help` for options.
"""

import argparse
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import worker as W  # noqa: E402  (bench/worker.py: helpers only; its main() is not run)

REPO = W.REPO
HZ = W.HZ
_T0 = time.monotonic()


def cpu_stat_precise():
    """Per-core (busy, steal) in clock ticks, like worker.py's cpu_stat(), but with busy taken as
    wall time minus idle, iowait and steal. With NO_HZ (the default) the kernel reports idle and
    iowait from its precise idle-entry/exit clock, while user/system/irq are tick samples. On this
    VM the tick samples miss most of a volley-worker's CPU (probably because it wakes on a 1 ms
    timer grid and is asleep again when the tick samples), so worker.py's per-core busy, and with
    it the 'other processes' figure, comes out low or negative during Volley runs. Only differences of these values are meaningful."""
    now = time.monotonic()
    return {c: ((now - _T0) * HZ - idle - iowait - steal, steal)
            for c, (_u, _n, _s, idle, iowait, _i, _si, steal) in W.proc_stat_cores().items()}


# Every per-core figure of worker.py's helpers (Snap, Sampler, other_load, the 'other%' noise
# detector) reads W.cpu_stat; in this process they get the precise version. worker.py's own
# behaviour (bench/worker.sh) is unchanged.
W.cpu_stat = cpu_stat_precise
BODY_BYTES = 1024
CARGO_BIN = os.path.expanduser("~/.cargo/bin")


def parse_args():
    p = argparse.ArgumentParser(
        prog="bench/peers.sh",
        description="Volley vs wrk and oha against nginx, one core each (issue 5's comparison table).",
        epilog="Environment: DURATION, FIXED_RATE, CONNECTIONS, MAX_IN_FLIGHT, STEP_START, STEP_SIZE, "
        "STEP_MAX, REFINE_TO, WORKER_CORE, TARGET_CORE, QUIET_PCT, QUIET_WAIT, QUIET_BUDGET, BENCH_OUT "
        "(same meaning as the options; options win).",
    )
    p.add_argument("--quick", action="store_true",
                   help="8 s runs instead of 15 s; bisection down to 10k instead of 5k")
    p.add_argument("--duration", type=float, help="seconds per run, every tool (default 15; quick 8)")
    p.add_argument("--fixed-rate", type=float, help="rate of the fixed-rate runs, oha -q and Volley (default 20000)")
    p.add_argument("--connections", type=int, help="connections for every tool (default 64)")
    p.add_argument("--max-in-flight", type=int, help="Volley [load].max_in_flight (default 10000)")
    p.add_argument("--step-start", type=float, help="first rate of Volley's search (default 40000)")
    p.add_argument("--step-size", type=float, help="increment between search steps (default 20000)")
    p.add_argument("--step-max", type=float, help="highest rate tried (default 200000)")
    p.add_argument("--refine-to", type=float,
                   help="bisect the pass/fail gap down to this many rps (default 5000; quick 10000; 0 = none)")
    p.add_argument("--worker-core", type=int, help="core for the generator (default 0)")
    p.add_argument("--target-core", type=int, help="core for nginx, coordinator and client (default 1)")
    p.add_argument("--coord-core", type=int,
                   help="core for Volley's coordinator and client instead (default: the target core)")
    p.add_argument("--quiet-pct", type=float,
                   help="before each run, wait while other processes use more than this %% CPU "
                   "summed over both cores; a run above it is repeated once (default 25)")
    p.add_argument("--quiet-wait", type=float, help="longest wait for quiet before one run (default 60 s; quick 30 s)")
    p.add_argument("--quiet-budget", type=float,
                   help="longest total wait for quiet over the whole bench (default 180 s; quick 90 s)")
    p.add_argument("--skip-search", action="store_true", help="skip Volley's highest-rate search")
    p.add_argument("--no-build", action="store_true", help="do not run cargo build")
    p.add_argument("--no-install", action="store_true",
                   help="never install missing peers (apt-get nginx wrk, cargo install oha); skip missing ones")
    p.add_argument("--oha-install-timeout", type=float, default=1800,
                   help="give up on `cargo install oha` after this many seconds (default 1800)")
    p.add_argument("--out", help="directory for configs, logs and reports (default: a temp dir)")
    p.add_argument("--json", help="also write all figures to this JSON file")
    a = p.parse_args()

    q = a.quick

    def pick(val, env, full, quick, cast=float):
        if val is not None:
            return val
        return W.env_num(env, quick if q else full, cast)
    a.duration = pick(a.duration, "DURATION", 15, 8)
    a.fixed_rate = pick(a.fixed_rate, "FIXED_RATE", 20000, 20000)
    a.connections = pick(a.connections, "CONNECTIONS", 64, 64, int)
    a.max_in_flight = pick(a.max_in_flight, "MAX_IN_FLIGHT", 10000, 10000, int)
    a.step_start = pick(a.step_start, "STEP_START", 40000, 40000)
    a.step_size = pick(a.step_size, "STEP_SIZE", 20000, 20000)
    a.step_max = pick(a.step_max, "STEP_MAX", 200000, 200000)
    a.refine_to = pick(a.refine_to, "REFINE_TO", 5000, 10000)
    a.worker_core = pick(a.worker_core, "WORKER_CORE", 0, 0, int)
    a.target_core = pick(a.target_core, "TARGET_CORE", 1, 1, int)
    a.coord_core = a.target_core if a.coord_core is None else a.coord_core
    a.quiet_pct = pick(a.quiet_pct, "QUIET_PCT", 25, 25)
    a.quiet_wait = pick(a.quiet_wait, "QUIET_WAIT", 60, 30)
    a.quiet_budget = pick(a.quiet_budget, "QUIET_BUDGET", 180, 90)
    a.out = a.out or os.environ.get("BENCH_OUT") or None
    return a


# ---------------------------------------------------------------- installing the peers

def find_exe(name, extra=()):
    path = shutil.which(name)
    if path:
        return path
    for d in extra:
        c = os.path.join(d, name)
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def ensure_peers(a):
    """nginx and wrk from Debian, oha from crates.io, when missing. Returns {name: path or None}."""
    sbin = ("/usr/sbin", "/sbin", "/usr/local/sbin")
    tools = {"nginx": find_exe("nginx", sbin), "wrk": find_exe("wrk"), "oha": find_exe("oha", (CARGO_BIN,))}
    missing = [t for t in ("nginx", "wrk") if not tools[t]]
    if missing and not a.no_install:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y"] + missing):
            print(f"peers: {' '.join(cmd)}", flush=True)
            try:
                r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, timeout=900)
                if r.returncode != 0:
                    print(r.stdout.decode(errors="replace")[-2000:], file=sys.stderr)
                    print(f"peers: `{' '.join(cmd)}` failed (exit {r.returncode})", flush=True)
                    break
            except (OSError, subprocess.TimeoutExpired) as e:
                print(f"peers: `{' '.join(cmd)}` failed: {e}", flush=True)
                break
        tools["nginx"] = find_exe("nginx", sbin)
        tools["wrk"] = find_exe("wrk")
    if not tools["oha"] and not a.no_install:
        cargo = find_exe("cargo", (CARGO_BIN,))
        if cargo:
            log = os.path.join(tempfile.gettempdir(), "peers-cargo-install-oha.log")
            cmd = [cargo, "install", "oha", "--locked"]
            print(f"peers: {' '.join(cmd)} (compiles for several minutes on 2 cores; once, then cached "
                  f"in {CARGO_BIN}; log {log})", flush=True)
            t0 = time.monotonic()
            try:
                with open(log, "wb") as f:
                    r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       timeout=a.oha_install_timeout)
                if r.returncode != 0:
                    with open(log, errors="replace") as f:
                        print(f.read()[-2000:], file=sys.stderr)
                    print(f"peers: cargo install oha failed (exit {r.returncode}); going on without oha",
                          flush=True)
                else:
                    print(f"peers: oha installed in {time.monotonic() - t0:.0f} s", flush=True)
            except (OSError, subprocess.TimeoutExpired) as e:
                print(f"peers: cargo install oha failed ({e}); going on without oha", flush=True)
        else:
            print("peers: no cargo to install oha with; going on without oha", flush=True)
        tools["oha"] = find_exe("oha", (CARGO_BIN,))
    if not tools["nginx"]:
        sys.exit("peers: nginx is missing and could not be installed (the target of every run)")
    for t in ("wrk", "oha"):
        if not tools[t]:
            print(f"peers: {t} missing{' (--no-install)' if a.no_install else ''}; its rows are skipped",
                  flush=True)
    return tools


def version(cmd):
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        return r.stdout.decode(errors="replace").strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "?"


# ---------------------------------------------------------------- nginx

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        s = f.read()
                    if int(s[s.rindex(")") + 2:].split()[1]) == pid:
                        out.append(int(d))
                except (OSError, ValueError, IndexError):
                    pass
        return out


NGINX_CONF = """# private nginx for bench/peers.py; started with `nginx -p DIR -c THIS -e DIR/error.log`
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    keepalive_timeout 65s;
    keepalive_requests 100000000;   # keep-alive for the whole run (the default closes every 1000)
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        server_tokens off;
        location / {{
            default_type text/plain;
            return 200 "{body}";
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, exe, base, core):
        self.dir = os.path.join(base, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        body = ("0123456789abcdef" * (BODY_BYTES // 16 + 1))[:BODY_BYTES]
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF.format(dir=self.dir, port=self.port, body=body))
        log = os.path.join(self.dir, "stdout.log")
        self.proc = W.start([exe, "-p", self.dir + "/", "-c", self.conf, "-e",
                             os.path.join(self.dir, "error.log")], core, log)
        deadline = time.monotonic() + 15
        self.worker_pid = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            kids = children(self.proc.pid)
            if kids and self.get_ok():
                self.worker_pid = kids[0]
                break
            time.sleep(0.1)
        if self.worker_pid is None:
            tail = ""
            for fn in ("stdout.log", "error.log"):
                try:
                    with open(os.path.join(self.dir, fn), errors="replace") as f:
                        tail += f.read()[-1500:]
                except OSError:
                    pass
            sys.exit(f"peers: nginx did not come up on {self.url} (exit {self.proc.poll()}):\n{tail}")
        n = self.get_ok(check_len=True)
        if n != BODY_BYTES:
            sys.exit(f"peers: nginx answered a {n}-byte body, expected {BODY_BYTES}")

    def get_ok(self, check_len=False):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            c.request("GET", "/")
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status != 200:
                return False
            return len(body) if check_len else True
        except OSError:
            return False


# ---------------------------------------------------------------- output parsing

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def wrk_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", s)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def parse_wrk(text):
    out = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    if m:
        out["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rate"] = float(m.group(1))
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        if m:
            out[key] = wrk_ms(m.group(1))
    notes = []
    m = re.search(r"Socket errors: (.*)", text)
    if m:
        notes.append("socket errors " + m.group(1).strip())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        notes.append(f"non-2xx {m.group(1)}")
    out["notes"] = notes
    return out


def parse_oha(text):
    i = text.find("{")
    if i < 0:
        return {"notes": ["no JSON from oha"]}
    try:
        j = json.loads(text[i:])
    except ValueError as e:
        return {"notes": [f"bad JSON from oha: {e}"]}
    codes = j.get("statusCodeDistribution", {})
    errs = j.get("errorDistribution", {})
    ok = sum(v for k, v in codes.items())
    out = {"requests": ok, "rate": j["summary"]["requestsPerSec"],
           "p50": j["metrics"]["latency_ms"]["p50"], "p99": j["metrics"]["latency_ms"]["p99"],
           "success": j["summary"]["successRate"], "notes": []}
    non200 = sum(v for k, v in codes.items() if k != "200")
    if non200:
        out["notes"].append(f"non-200 {non200}")
    # requests cut off at the -z deadline are reported as errors; name them apart
    for k, v in errs.items():
        out["notes"].append(f"{v} '{k}'")
    return out


# ---------------------------------------------------------------- the bench

class PeerBench(W.Bench):
    """worker.py's Bench with nginx as the target, plus runs of the peer tools."""

    def __init__(self, args, nginx, bin_dir=None):
        super().__init__(args, bin_dir)
        self.nginx = nginx
        self.pids = {"target": nginx.worker_pid}  # for wait_quiet() before Volley is up
        self.peer_rows = []

    def up(self):
        """Coordinator on the target core, one worker on the worker core, nginx as the target."""
        a = self.args
        vol = os.path.join(self.rel, "volley")
        self.target = self.nginx.proc  # alive() watches the nginx master
        self.url = self.nginx.url
        clog = os.path.join(self.dir, "coordinator.log")
        self.coord = W.start([vol, "serve", "--listen", "127.0.0.1:0"], a.coord_core, clog)
        m = W.wait_for_line(self.coord, clog, r"coordinator listening on (127\.0\.0\.1:\d+)")
        self.coord_url = "http://" + m.group(1)
        wlog = os.path.join(self.dir, "worker.log")
        self.worker = W.start([os.path.join(self.rel, "volley-worker"), "--coordinator", self.coord_url],
                              a.worker_core, wlog)
        W.wait_for_line(self.worker, wlog, r"connected to coordinator")
        self.pids = {"worker": self.worker.pid, "target": self.nginx.worker_pid, "coord": self.coord.pid}
        print(f"peers: coordinator {self.coord_url} (core {a.coord_core}), volley-worker pid "
              f"{self.worker.pid} (core {a.worker_core}), target nginx {self.url}", flush=True)

    def peer(self, tool, mode, cmd, parse):
        r = self.peer_once(tool, mode, cmd, parse)
        if W.noisy(r, self.args):
            print(f"  (other processes used {W.noise_pct(r, self.args):.0f}% CPU on average, "
                  f"{r['cpu_peak1s']['other']:.0f}% in the busiest second; repeating once)", flush=True)
            r["superseded"] = True
            r = self.quieter(r, self.peer_once(tool, mode + "*", cmd, parse))
        return r

    def quieter(self, first, repeat):
        """Of a noisy run and its repeat, the one other processes disturbed less."""
        a = self.args
        if "fail" not in first and W.noise_pct(repeat, a) > W.noise_pct(first, a):
            print(f"  (the repeat was noisier: {W.noise_pct(repeat, a):.0f}% vs "
                  f"{W.noise_pct(first, a):.0f}% on average; keeping the first)", flush=True)
            first.pop("superseded", None)
            first["kept_over_repeat"] = True
            repeat["superseded"] = True
            return first
        return repeat

    def run(self, rate, duration, label, retry_noisy_pass=False):
        """worker.py's Bench.run, except that a fixed-rate measurement (retry_noisy_pass) that
        passed keeps the quieter of the run and its repeat."""
        r = self.run_once(rate, duration, label)
        if (not r["sustained"] or retry_noisy_pass) and W.noisy(r, self.args) and not self.alive():
            print(f"  (other processes used {W.noise_pct(r, self.args):.0f}% CPU on average, "
                  f"{r['cpu_peak1s']['other']:.0f}% in the busiest second, during that run; "
                  f"repeating it once)", flush=True)
            r["superseded"] = True
            r2 = self.run_once(rate, duration, label + "*")
            if retry_noisy_pass and r["sustained"]:
                return self.quieter(r, r2)
            return r2
        return r

    def peer_once(self, tool, mode, cmd, parse):
        a = self.args
        self.wait_quiet()
        self.nrun += 1
        name = f"{self.nrun:02d}-{tool}-{re.sub(r'[^A-Za-z0-9]+', '-', mode).strip('-')}"
        log_path = os.path.join(self.dir, name + ".log")
        tpid = self.nginx.worker_pid
        print(f"  $ taskset -c {a.worker_core} {' '.join(cmd)}", flush=True)
        c0, t0, tm0 = W.cpu_stat(), W.proc_ticks(tpid), time.monotonic()
        with open(log_path, "wb") as log:
            p = subprocess.Popen(["taskset", "-c", str(a.worker_core)] + cmd, stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir)
        W.CHILDREN.append(p)
        sampler = W.Sampler({"gen": p.pid, "target": tpid})
        sampler.start()
        deadline = tm0 + a.duration + 60
        hung = False
        hwm, next_hwm = None, 0.0
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                break
            if time.monotonic() >= next_hwm:  # VmHWM while it runs: a cross-check of ru_maxrss
                try:
                    hwm = W.proc_status(p.pid, "VmHWM") or hwm
                except (OSError, ValueError, IndexError):
                    pass
                next_hwm = time.monotonic() + 0.5
            if time.monotonic() > deadline:
                hung = True
                p.kill()
                _, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.05)
        p.returncode = os.waitstatus_to_exitcode(status)
        W.CHILDREN.remove(p)
        tm1 = time.monotonic()
        sampler.stop()
        c1, t1 = W.cpu_stat(), W.proc_ticks(tpid)
        window = tm1 - tm0
        # utime+stime of the whole process at exit: the same figures /proc/PID/stat shows,
        # read by wait4() so that none of the run escapes the count.
        gen_cpu = ru.ru_utime + ru.ru_stime
        tgt_cpu = (t1 - t0) / HZ
        with open(log_path, errors="replace") as f:
            text = f.read()
        row = {"tool": tool, "mode": mode, "cmd": cmd, "log": log_path, "exit": p.returncode,
               "window_s": window, "gen_cpu_s": gen_cpu, "tgt_cpu_s": tgt_cpu,
               "rss_peak_kb": ru.ru_maxrss, "vmhwm_sampled_kb": hwm}
        row.update(parse(text))
        if hung:
            row["fail"] = f"still running {a.duration + 60:.0f} s after start; killed"
        elif p.returncode != 0 or not row.get("requests"):
            row["fail"] = f"exit {p.returncode}: {text.strip()[-300:]}"
        if row.get("requests"):
            row["us_per_req"] = gen_cpu * 1e6 / row["requests"]
        row["gen_cpu_pct"] = gen_cpu / a.duration * 100
        row["tgt_cpu_pct"] = tgt_cpu / a.duration * 100
        mine = {a.worker_core: gen_cpu, a.target_core: tgt_cpu}
        row["cores"] = {}
        for c in (a.worker_core, a.target_core):
            busy = (c1[c][0] - c0[c][0]) / HZ
            row["cores"][c] = {"busy_pct": busy / window * 100,
                               "steal_pct": (c1[c][1] - c0[c][1]) / HZ / window * 100,
                               "unattributed_pct": (busy - mine[c]) / window * 100}
        # drop periods where a pid's counters went backwards (the generator exiting mid-sample)
        series = [d for d in sampler.series((a.worker_core, a.target_core))
                  if d["gen"] >= 0 and d["target"] >= 0]
        row["cpu_series"] = series
        row["cpu_peak1s"] = {k: W.peak(series, k) if series else float("nan")
                             for k in ("gen", "target", f"core{a.worker_core}", f"core{a.target_core}", "other")}
        self.peer_rows.append(row)
        print_peer(row, a)
        return row


def parse_floor(text):
    m = re.search(r"floor: (\d+) rps over [\d.]+ s, (\d+) sent, (\d+) ok", text)
    if not m:
        return {"notes": ["no summary line from floor"]}
    return {"rate": float(m.group(1)), "requests": int(m.group(2)), "ok": int(m.group(3))}


def print_peer(r, a):
    pk = r["cpu_peak1s"]
    if "fail" in r:
        print(f"  {r['tool']} {r['mode']}: FAILED: {r['fail']}", flush=True)
    lat = (f"  p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms" if r.get("p50") is not None else "")
    print(f"  {r['tool']} {r['mode']}: {r.get('rate', float('nan')):,.0f} rps, {r.get('requests', 0)} "
          f"requests{lat}; {r.get('us_per_req', float('nan')):.2f} us/req, CPU {r['gen_cpu_pct']:.0f}%, "
          f"peak RSS {W.fmt_kb(r['rss_peak_kb'])} (VmHWM sampled {W.fmt_kb(r.get('vmhwm_sampled_kb'))}) | nginx CPU {r['tgt_cpu_pct']:.0f}% "
          f"(busiest second {pk['target']:.0f}%) | other processes {W.noise_pct(r, a):.0f}% avg, "
          f"{pk['other']:.0f}% busiest second"
          + (f" | {'; '.join(r['notes'])}" if r.get("notes") else ""), flush=True)


def search(b, a, fixed):
    """Highest rate one worker sustains against nginx: steps, then bisection (as worker.py)."""
    lo, hi = None, None
    if fixed is not None and fixed.get("sustained") and fixed["rate"] < a.step_start:
        lo = fixed["rate"]
    rate = a.step_start
    while rate <= a.step_max:
        r = b.run(rate, a.duration, "step")
        if r["sustained"]:
            lo = rate
            rate += a.step_size
        else:
            hi = rate
            break
        if b.alive():
            break
    if lo is not None and hi is not None and a.refine_to > 0 and not b.alive():
        while hi - lo > a.refine_to:
            mid = round((lo + hi) / 2 / 1000) * 1000
            if mid <= lo or mid >= hi:
                break
            r = b.run(mid, a.duration, "refine")
            if W.inconclusive(r, a):
                print("  (still noisy after a repeat: stopping the bisection here)", flush=True)
                break
            if r["sustained"]:
                lo = mid
            else:
                hi = mid
            if b.alive():
                break
    return lo, hi


def fmt(v, spec, none="-"):
    return none if v is None or v != v else format(v, spec)


def rss_note(r):
    """ru_maxrss covers the tool's exit (wrk and oha compute their statistics there); say so
    when the VmHWM sampled while it ran (last sample within 0.5 s of the end) was much lower."""
    s, m = r.get("vmhwm_sampled_kb"), r.get("rss_peak_kb")
    if s and m and m > 1.2 * s:
        return [f"RSS {W.fmt_kb(s)} until its last 0.5 s; the peak came at exit"]
    return []


def summary(b, a, fixed, best, hi):
    a_rows = []
    for r in b.peer_rows:
        if r.get("superseded"):
            continue
        a_rows.append({
            "tool": r["tool"], "mode": r["mode"], "rate": r.get("rate"), "us": r.get("us_per_req"),
            "rss": r["rss_peak_kb"], "p50": r.get("p50"), "p99": r.get("p99"),
            "gen": r["gen_cpu_pct"], "tgt": r["tgt_cpu_pct"], "tgt1s": r["cpu_peak1s"]["target"],
            "noise": f"{W.noise_pct(r, a):.0f}/{r['cpu_peak1s']['other']:.0f}",
            "notes": "; ".join(([f"FAILED: {r['fail'][:80]}"] if "fail" in r else [])
                               + [r["note"]] + r.get("notes", []) + rss_note(r)),
        })

    def vrow(r, mode, note):
        if r is None or "achieved" not in r:
            return {"tool": "volley-worker", "mode": mode, "rate": None, "us": None, "rss": None,
                    "p50": None, "p99": None, "gen": None, "tgt": None, "tgt1s": None, "noise": "-",
                    "notes": "FAILED: " + (r.get("fail", "?") if r else "not run")}
        return {"tool": "volley-worker", "mode": mode, "rate": r["achieved"], "us": r.get("us_per_req"),
                "rss": r["rss_peak_kb"], "p50": r["p50"], "p99": r["p99"], "gen": r["cpu_pct"]["worker"],
                "tgt": r["cpu_pct"]["target"], "tgt1s": r["cpu_peak1s"]["target"],
                "noise": f"{W.noise_pct(r, a):.0f}/{r['cpu_peak1s']['other']:.0f}",
                "notes": f"{note}; dropped {r['dropped']}, errors {r['errors']}; service p50/p99 "
                         f"{fmt(r.get('svc_p50'), '.2f')}/{fmt(r.get('svc_p99'), '.2f')} ms"
                         + ("" if r["sustained"] else f"; NOT sustained: {r['why']}")}
    a_rows.append(vrow(fixed, f"open model, {a.fixed_rate:.0f} rps", "latency from the scheduled send"))
    if best is not None:
        br = [r for r in b.rows if r["rate"] == best and r.get("sustained") and not r.get("superseded")]
        note = ("highest sustained" + (f", first failure at {hi:.0f}" if hi is not None
                                       else ", none failed up to --step-max"))
        a_rows.append(vrow(br[-1] if br else None, f"open model, max {best:.0f} rps", note))
    elif not a.skip_search:
        a_rows.append(vrow({"fail": f"no rate from {a.step_start:.0f} sustained"}, "open model, max", ""))

    hdr = ["tool", "mode", "rate rps", "CPU us/req", "peak RSS", "p50 ms", "p99 ms", "gen CPU%",
           "nginx CPU% (max1s)", "other% avg/max1s", "notes"]
    lines = [[r["tool"], r["mode"], fmt(r["rate"], ",.0f"), fmt(r["us"], ".2f"), W.fmt_kb(r["rss"]),
              fmt(r["p50"], ".2f"), fmt(r["p99"], ".2f"), fmt(r["gen"], ".0f"),
              f"{fmt(r['tgt'], '.0f')} ({fmt(r['tgt1s'], '.0f')})", r["noise"], r["notes"]]
             for r in a_rows]
    w = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(hdr)]
    out = ["| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + " |",
           "|" + "|".join("-" * (x + 2) for x in w) + "|"]
    out += ["| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(l)) + " |" for l in lines]
    return "\n".join(out), a_rows


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
    print(f"peers: volley @ {rev}{' (+uncommitted changes)' if dirty else ''}; "
          f"{os.cpu_count()} cores ({model}); load average {os.getloadavg()[0]:.2f} at start; "
          f"CLK_TCK {HZ}", flush=True)
    print(f"peers: {a.connections} connections for every tool; Volley: max_in_flight {a.max_in_flight}, "
          f"timeout 5s, uniform arrivals, GET; nginx: {BODY_BYTES}-byte body", flush=True)


def main():
    a = parse_args()
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, W.on_signal)
    t_start = time.monotonic()
    tools = ensure_peers(a)
    build_status = W.build(a)
    header(a)
    vers = {"nginx": version([tools["nginx"], "-v"]),
            "wrk": version([tools["wrk"], "-v"]) if tools["wrk"] else None,
            "oha": version([tools["oha"], "--version"]) if tools["oha"] else None}
    print(f"peers: build: {build_status}; " + "; ".join(f"{k}: {v}" for k, v in vers.items() if v),
          flush=True)
    b = None
    try:
        base = a.out or tempfile.mkdtemp(prefix="volley-peers-")
        a.out = base
        os.makedirs(base, exist_ok=True)
        nginx = Nginx(tools["nginx"], base, a.target_core)
        print(f"peers: nginx {nginx.url} (master pid {nginx.proc.pid}, worker pid {nginx.worker_pid}, "
              f"core {a.target_core}, {BODY_BYTES}-byte body, keep-alive, access_log off); "
              f"config {nginx.conf}", flush=True)
        b = PeerBench(a, nginx)
        d = f"{a.duration:g}s"
        dur_int = f"{int(round(a.duration))}s"
        c = str(a.connections)

        print(f"\n== Peers: {a.duration:g} s each, generator on core {a.worker_core}, nginx on core "
              f"{a.target_core} ==", flush=True)
        if tools["wrk"]:
            r = b.peer("wrk", f"closed loop, 1 thread, {c} conns",
                       [tools["wrk"], "-t1", f"-c{c}", f"-d{dur_int}", "--latency", nginx.url], parse_wrk)
        oha_q = None
        if tools["oha"]:
            help_text = subprocess.run([tools["oha"], "--help"], stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT).stdout.decode(errors="replace")
            base_cmd = [tools["oha"], "-c", c, "-z", d, "--no-tui"]
            if "--worker-threads" in help_text:
                base_cmd += ["--worker-threads", "1"]
            if "--output-format" in help_text:
                base_cmd += ["--output-format", "json"]
            elif "--json" in help_text:
                base_cmd += ["--json"]
            b.peer("oha", f"closed loop, 1 thread, {c} conns", base_cmd + [nginx.url], parse_oha)
            oha_q = b.peer("oha", f"-q {a.fixed_rate:.0f} (fixed rate)",
                           base_cmd + ["-q", f"{a.fixed_rate:.0f}", nginx.url], parse_oha)
        floor_exe = os.path.join(W.REPO, "target", "release", "examples", "floor")
        floor = None
        if os.path.exists(floor_exe):
            # One request per connection per millisecond at most: enough connections for the rate.
            fc = max(a.connections, math.ceil(a.fixed_rate / 1000 * 1.25))
            floor = b.peer("floor", f"minimal client, {a.fixed_rate:.0f} rps, {fc} conns",
                           [floor_exe, nginx.url, f"{a.fixed_rate:.0f}", f"{a.duration:g}", str(fc)],
                           parse_floor)
        else:
            print(f"peers: no {floor_exe} (cargo build --release -p volley-worker --example floor); "
                  "no floor row", flush=True)
        for r in b.peer_rows:
            if r["tool"] == "floor":
                r["note"] = ("send all due, sleep to the next ms, recv each: the fewest syscalls "
                             "and wake-ups per request; measures nothing")
                continue
            r["note"] = ("closed loop; latency from the actual send" if "closed" in r["mode"] else
                         "latency from the actual send (no --latency-correction)")

        print(f"\n== Volley: one volley-worker on core {a.worker_core} against nginx ==", flush=True)
        b.up()
        b.measure_idle(3)
        print(f"\n-- fixed rate {a.fixed_rate:.0f} rps for {a.duration:g} s --", flush=True)
        fixed = b.run(a.fixed_rate, a.duration, "fixed", retry_noisy_pass=True)
        best = hi = None
        if not a.skip_search:
            print(f"\n-- highest sustained rate: {a.duration:g} s per step from {a.step_start:.0f}, "
                  f"+{a.step_size:.0f}, bisection to {a.refine_to:.0f} --", flush=True)
            best, hi = search(b, a, fixed)

        print(f"\n== Volley runs (worker.py's columns; wrk = volley-worker, tgt = nginx) ==", flush=True)
        print(W.table(b.rows, a), flush=True)

        tab, rows = summary(b, a, fixed, best, hi)
        print(f"\n== Comparison (issue 5): generator on core {a.worker_core}, nginx on core "
              f"{a.target_core}, {a.connections} connections, {a.duration:g} s per run ==", flush=True)
        print("CPU us/req = generator utime+stime / requests (completed for wrk and oha, sent for Volley); "
              "peak RSS = VmHWM / ru_maxrss; other% = CPU of processes not ours, both cores summed "
              f"(distrust a row above {a.quiet_pct:.0f}% avg or 50% max1s); Volley's max = highest rate "
              "with achieved >= 99%, dropped <= 0.1%, success >= 0.999, p99 < 100 ms; * = a repeat "
              "of a noisy run", flush=True)
        print(tab, flush=True)
        ratio = None
        if oha_q and oha_q.get("us_per_req") and fixed.get("us_per_req"):
            ratio = fixed["us_per_req"] / oha_q["us_per_req"]
            print(f"\nVolley / oha CPU per request at {a.fixed_rate:.0f} rps (same run): "
                  f"{fixed['us_per_req']:.2f} / {oha_q['us_per_req']:.2f} = {ratio:.2f} "
                  f"(issue 5 target 1: <= 0.5 -> {'met' if ratio <= 0.5 else 'NOT met'}; "
                  f"Volley peak RSS {W.fmt_kb(fixed.get('rss_peak_kb'))}, target < 20 MB; other processes "
                  f"{W.noise_pct(fixed, a):.0f}% avg during the Volley run, {W.noise_pct(oha_q, a):.0f}% "
                  f"during oha's)", flush=True)
        else:
            print("\nVolley / oha CPU per request: not available (oha or the Volley fixed run missing)",
                  flush=True)
        if floor and floor.get("us_per_req") and fixed.get("us_per_req"):
            print(f"Floor (a client that does nothing but send and recv, worker/examples/floor.rs) at "
                  f"{a.fixed_rate:.0f} rps: {floor['us_per_req']:.2f} us/req; Volley = "
                  f"{fixed['us_per_req'] / floor['us_per_req']:.2f}x the floor"
                  + (f", oha = {oha_q['us_per_req'] / floor['us_per_req']:.2f}x; half of oha is "
                     f"{oha_q['us_per_req'] / 2:.2f} us/req, "
                     f"{'below' if oha_q['us_per_req'] / 2 < floor['us_per_req'] else 'above'} the floor"
                     if oha_q and oha_q.get("us_per_req") else ""), flush=True)
        noisy_rows = [r for r in b.peer_rows if W.noisy(r, a)] + [r for r in b.rows if W.noisy(r, a)]
        print(f"noise: {len(noisy_rows)} of {len(b.peer_rows) + len(b.rows)} runs had other processes "
              f"above {a.quiet_pct:.0f}% avg or 50% in one second (such a run is repeated once, except "
              f"a search step that passed; the comparison keeps the quieter of a run and its repeat, the "
              f"search decides on the repeat); waited {a.quiet_budget - max(b.quiet_budget, 0):.0f} s "
              f"for quiet in all; load average now {os.getloadavg()[0]:.2f}", flush=True)
        print(f"peers: finished in {time.monotonic() - t_start:.0f} s; logs and reports in {base}", flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"versions": vers, "nginx_url": nginx.url, "table": rows, "ratio": ratio,
                           "peer_runs": b.peer_rows, "volley_runs": b.rows, "volley_idle": b.idle_rate,
                           "best": best, "first_fail": hi}, f, indent=2, default=str)
    finally:
        W.cleanup()


if __name__ == "__main__":
    main()
