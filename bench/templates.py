#!/usr/bin/env python3
"""What templates and response checks cost a worker (issue 13, section 4).

One volley-worker on core 0 sends a fixed rate (default 20,000 rps) to nginx on
core 1, three times in one invocation, with the same worker, nginx, connections
and rate, differing only in the request:

  static     POST with a static 512-byte body and one static header
  templated  the same size of body with {{uuid}}, {{seq}} and one CSV column
             ({{data.users.id}}), and the header's value a template ({{uuid}})
  +json      templated, plus a `json` check ($.status == "ok") on nginx's
             1,024-byte JSON answer (which every row gets)

It prints the worker's CPU µs per request sent for each row (utime+stime over
the run, idle heartbeat CPU subtracted, as bench/worker.sh measures it) and the
ratio of each row to the static one (issue 13's targets: templated <= 1.2x,
+json <= 1.5x). With --rounds N the three rows run N times, interleaved, and
the medians are compared.

Python 3 stdlib only. Reuses bench/worker.py (processes, /proc CPU accounting,
noise detection, the run itself) and bench/peers.py (the private nginx and its
set-up, the coordinator + worker against nginx). All traffic is on 127.0.0.1;
every process it starts is stopped by PID on exit.
Run `bench/templates.sh --help` for options.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peers as P  # noqa: E402  (also switches worker.py's per-core CPU to the precise reading)
import worker as W  # noqa: E402

BODY_BYTES = 512
ROWS = ("static", "templated", "+json")
DATA_ROWS = 10_000
# nginx's answer for every row: a JSON document of exactly P.BODY_BYTES (1,024)
# bytes whose $.status is "ok" (the json row checks it; the others ignore it).
_PAD = P.BODY_BYTES - len('{"status":"ok","pad":""}')
JSON_ANSWER = '{"status":"ok","pad":"' + "x" * _PAD + '"}'
assert len(JSON_ANSWER) == P.BODY_BYTES


def parse_args():
    p = argparse.ArgumentParser(
        prog="bench/templates.sh",
        description="Worker CPU per request: static vs templated body vs templated + json check, "
        "at a fixed rate against nginx.",
        epilog="Environment: DURATION, FIXED_RATE, ROUNDS, CONNECTIONS, MAX_IN_FLIGHT, WORKER_CORE, "
        "TARGET_CORE, QUIET_PCT, QUIET_WAIT, QUIET_BUDGET, BENCH_OUT (options win).",
    )
    p.add_argument("--quick", action="store_true", help="8 s per run instead of 20 s")
    p.add_argument("--duration", type=float, help="seconds per run (default 20; quick 8)")
    p.add_argument("--fixed-rate", type=float, help="requests per second of every run (default 20000)")
    p.add_argument("--rounds", type=int, help="run the three rows this many times, interleaved (default 1)")
    p.add_argument("--connections", type=int, help="[load].connections (default 64)")
    p.add_argument("--max-in-flight", type=int, help="[load].max_in_flight (default 10000)")
    p.add_argument("--worker-core", type=int, help="core for the worker (default 0)")
    p.add_argument("--target-core", type=int, help="core for nginx, coordinator and client (default 1)")
    p.add_argument("--quiet-pct", type=float,
                   help="wait while other processes use more than this %% CPU; a noisy run is repeated "
                   "once (default 25)")
    p.add_argument("--quiet-wait", type=float, help="longest wait for quiet before one run (default 60 s)")
    p.add_argument("--quiet-budget", type=float, help="longest total wait for quiet (default 180 s)")
    p.add_argument("--no-build", action="store_true", help="do not run cargo build --release")
    p.add_argument("--no-install", action="store_true", help="do not apt-get install a missing nginx")
    p.add_argument("--out", help="directory for configs, scenarios, reports and logs (default: a temp dir)")
    p.add_argument("--json", help="also write every figure to this JSON file")
    a = p.parse_args()

    def pick(val, env, full, quick, cast=float):
        if val is not None:
            return val
        return W.env_num(env, quick if a.quick else full, cast)
    a.duration = pick(a.duration, "DURATION", 20, 8)
    a.fixed_rate = pick(a.fixed_rate, "FIXED_RATE", 20000, 20000)
    a.rounds = pick(a.rounds, "ROUNDS", 1, 1, int)
    a.connections = pick(a.connections, "CONNECTIONS", 64, 64, int)
    a.max_in_flight = pick(a.max_in_flight, "MAX_IN_FLIGHT", 10000, 10000, int)
    a.worker_core = pick(a.worker_core, "WORKER_CORE", 0, 0, int)
    a.target_core = pick(a.target_core, "TARGET_CORE", 1, 1, int)
    a.coord_core = a.target_core
    a.quiet_pct = pick(a.quiet_pct, "QUIET_PCT", 25, 25)
    a.quiet_wait = pick(a.quiet_wait, "QUIET_WAIT", 60, 30)
    a.quiet_budget = pick(a.quiet_budget, "QUIET_BUDGET", 180, 90)
    a.out = a.out or os.environ.get("BENCH_OUT") or None
    a.protocol = "http1"  # worker.py's print_row/table read these
    a.per_connection = None
    a.body_size = None
    if a.rounds < 1:
        p.error("--rounds must be at least 1")
    return a


# ---------------------------------------------------------------- the three requests

def padded(prefix, suffix, rendered_len):
    """prefix + filler + suffix, where the filler makes the rendering BODY_BYTES long
    (rendered_len: what prefix + suffix render to)."""
    return prefix + "p" * (BODY_BYTES - rendered_len) + suffix


# Templated body: uuid (36 bytes), seq (5 digits for seq 10,000..99,999, the bulk of a
# 20 s run at 20k rps; 4-6 digits elsewhere, so within a few bytes of 512), a CSV
# column (10 bytes: u000000001).
TEMPLATED_HEAD = '{"id":"{{uuid}}","seq":{{seq}},"user":"{{data.users.id}}","pad":"'
TEMPLATED_HEAD_LEN = len('{"id":"') + 36 + len('","seq":') + 5 + len(',"user":"') + 10 + len('","pad":"')
TAIL = '"}'
TEMPLATED_BODY = padded(TEMPLATED_HEAD, TAIL, TEMPLATED_HEAD_LEN + len(TAIL))
STATIC_HEAD = '{"id":"00000000-0000-4000-8000-000000000000","seq":12345,"user":"u000000001","pad":"'
STATIC_BODY = padded(STATIC_HEAD, TAIL, len(STATIC_HEAD) + len(TAIL))
assert len(STATIC_BODY) == BODY_BYTES


def target_keys(row, url):
    """The [target] keys of one row (with [target.expect] last) and the tables after the stage."""
    if row == "static":
        return (f'url = "{url}"\nmethod = "POST"\ntimeout = "5s"\n'
                f"headers = {{ \"content-type\" = \"application/json\", "
                f"\"idempotency-key\" = \"00000000-0000-4000-8000-000000000000\" }}\n"
                f"body = '{STATIC_BODY}'\n"), ""
    keys = (f'url = "{url}"\nmethod = "POST"\ntimeout = "5s"\n'
            f"headers = {{ \"content-type\" = \"application/json\", "
            f"\"idempotency-key\" = \"{{{{uuid}}}}\" }}\n"
            f"body = '{TEMPLATED_BODY}'\n")
    if row == "+json":
        keys += '[target.expect]\njson = { "$.status" = "ok" }\n'
    # users.csv sits beside each run's scenario (data files are relative to it).
    return keys, '[[data]]\nname = "users"\nfile = "users.csv"\norder = "sequential"\n'


def make_scenario(bench, users_csv):
    """A replacement for worker.py's scenario(): args.row picks the request. Bench.run_once has
    made the run's directory (DIR/NN-NAME) when it calls this; the data file is copied there."""
    def scenario(name, url, rate, duration, args):
        run_dir = os.path.join(bench.dir, f"{bench.nrun:02d}-{name}")
        keys, data = target_keys(args.row, url)
        if data:
            shutil.copyfile(users_csv, os.path.join(run_dir, "users.csv"))
        return (f'name = "{name}"\n[target]\n{keys}'
                f"[load]\nconnections = {args.connections}\nmax_in_flight = {args.max_in_flight}\n"
                f'[[stages]]\nname = "main"\nrate = {int(rate)}\nduration = "{duration:g}s"\n{data}')
    return scenario


def write_users(path):
    with open(path, "w") as f:
        f.write("id,name\n")
        for i in range(DATA_ROWS):
            f.write(f"u{i:09d},user {i}\n")


# ---------------------------------------------------------------- nginx with a JSON answer

def json_nginx_conf():
    """peers.py's nginx config, answering JSON_ANSWER as application/json instead of text."""
    old = 'default_type text/plain;\n            return 200 "{body}";'
    assert old in P.NGINX_CONF, "bench/peers.py's NGINX_CONF changed; update templates.py"
    answer = JSON_ANSWER.replace("{", "{{").replace("}", "}}")
    return P.NGINX_CONF.replace(old, f"default_type application/json;\n            return 200 '{answer}';")


def find_nginx(a):
    sbin = ("/usr/sbin", "/sbin", "/usr/local/sbin")
    exe = P.find_exe("nginx", sbin)
    if not exe and not a.no_install:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "nginx"]):
            print(f"templates: {' '.join(cmd)}", flush=True)
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=900)
        exe = P.find_exe("nginx", sbin)
    return exe or sys.exit("templates: nginx is missing (apt-get install nginx)")


# ---------------------------------------------------------------- main

def main():
    a = parse_args()
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, W.on_signal)
    t_start = time.monotonic()
    nginx_exe = find_nginx(a)
    build_status = W.build(a)
    base = a.out or tempfile.mkdtemp(prefix="volley-templates-bench-")
    a.out = base
    os.makedirs(base, exist_ok=True)
    users = os.path.join(base, "users.csv")
    write_users(users)
    P.NGINX_CONF = json_nginx_conf()
    print(f"templates: build: {build_status}; {os.cpu_count()} cores; load average "
          f"{os.getloadavg()[0]:.2f}; {a.fixed_rate:.0f} rps for {a.duration:g} s per run, "
          f"{a.rounds} round(s); {a.connections} connections; {BODY_BYTES}-byte request bodies; "
          f"nginx answers {P.BODY_BYTES} bytes of JSON", flush=True)
    rows = {r: [] for r in ROWS}
    try:
        nginx = P.Nginx(nginx_exe, base, a.target_core)
        b = P.PeerBench(a, nginx)
        W.scenario = make_scenario(b, users)  # Bench.run_once writes its scenario through this
        b.up()
        b.measure_idle(3)
        for rnd in range(a.rounds):
            for row in ROWS:
                a.row = row
                label = row.replace("+", "") + (f"-r{rnd + 1}" if a.rounds > 1 else "")
                print(f"\n-- {row}: {a.fixed_rate:.0f} rps for {a.duration:g} s --", flush=True)
                r = b.run(a.fixed_rate, a.duration, label, retry_noisy_pass=True)
                r["row"] = row
                rows[row].append(r)
                if r.get("errors"):
                    print(f"  !! {r['errors']} errors: {r.get('errors_by_kind')} (a failing json check "
                          f"means nginx's answer is not what this bench expects)", flush=True)
        print("\n== Runs (worker.py's columns; tgt = nginx) ==", flush=True)
        print(W.table(b.rows, a), flush=True)
    finally:
        W.cleanup()

    def med(row, key):
        vals = [r[key] for r in rows[row] if r.get(key) is not None and "fail" not in r]
        return statistics.median(vals) if vals else None
    base_us = med("static", "us_per_req")
    limits = {"templated": 1.2, "+json": 1.5}
    print(f"\n== Worker CPU per request at {a.fixed_rate:.0f} rps (median of {a.rounds}; "
          f"idle subtracted) ==", flush=True)
    print("| request | µs/request | × static | issue 13 target | sent | errors | other% avg |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    summary = {}
    for row in ROWS:
        us = med(row, "us_per_req")
        ratio = us / base_us if us and base_us else None
        noise = statistics.median([W.noise_pct(r, a) for r in rows[row]]) if rows[row] else None
        target = limits.get(row)
        verdict = ("-" if target is None else
                   f"≤ {target}× ({'met' if ratio is not None and ratio <= target else 'NOT met'})")
        sent = med(row, "sent")
        errors = med(row, "errors")
        print(f"| {row} | {us:.2f} | {ratio:.2f} | {verdict} | {sent:.0f} | {errors:.0f} | {noise:.0f} |"
              if us is not None else f"| {row} | - | - | {verdict} | - | - | - |")
        summary[row] = {"us_per_req": us, "ratio": ratio, "sent": sent, "errors": errors,
                        "other_pct": noise}
    print(f"\ntemplates: finished in {time.monotonic() - t_start:.0f} s; scenarios, reports and logs "
          f"in {base}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"summary": summary, "runs": {k: v for k, v in rows.items()}}, f, indent=2,
                      default=str)


if __name__ == "__main__":
    main()
