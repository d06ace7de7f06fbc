#!/usr/bin/env python3
"""The guide's burst scenario against nginx: is recovery judged above the noise? (issue 16 §5)

Runs examples/burst.toml (1,000 -> 50,000 -> 1,000 rps) unchanged but for the
target's address, in local mode with one worker engine, against a private
nginx (bench/peers.py's: 1 worker process, keep-alive, `return 200`) that
never queues at these rates. Volley is pinned to --worker-core, nginx to
--target-core. Prints each stage's figures, the baseline's p99 band, the calm
bound the recovery rule derived from it, the recovery time, and every second
after the burst, so the verdict can be checked by eye.

Python 3 stdlib only; every process it starts is stopped by PID on exit.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers as P  # noqa: E402
import worker as W  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin-dir", default=os.path.join(W.REPO, "target", "release"),
                   help="where `volley` is (default target/release)")
    p.add_argument("--scenario", default=os.path.join(W.REPO, "examples", "burst.toml"))
    p.add_argument("--worker-core", type=int, default=0)
    p.add_argument("--target-core", type=int, default=1)
    p.add_argument("--out", help="keep the run directory here (default: a temporary one)")
    a = p.parse_args()
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, W.on_signal)
    nginx_exe = P.find_exe("nginx", ("/usr/sbin", "/usr/local/sbin"))
    if not nginx_exe:
        sys.exit("burst: nginx is missing (apt-get install nginx-light)")
    volley = os.path.join(a.bin_dir, "volley")
    if not os.access(volley, os.X_OK):
        sys.exit(f"burst: {volley} is missing: cargo build --release (or pass --bin-dir)")
    base = a.out or tempfile.mkdtemp(prefix="volley-burst-")
    os.makedirs(base, exist_ok=True)
    try:
        nginx = P.Nginx(nginx_exe, base, a.target_core)
        text = open(a.scenario).read()
        lines = []
        for line in text.splitlines():
            if line.strip().startswith("url = "):
                line = f'url = "{nginx.url}messages"'
            lines.append(line)
        scenario = os.path.join(base, "burst.toml")
        with open(scenario, "w") as f:
            f.write("\n".join(lines) + "\n")
        out = os.path.join(base, "out")
        cmd = ["taskset", "-c", str(a.worker_core), volley, "run", scenario,
               "--local-workers", "1", "--out", out, "--quiet"]
        print(f"burst: nginx {nginx.url} on core {a.target_core}; volley on core {a.worker_core}; "
              f"run directory {out}", flush=True)
        # The scenario lasts 130 s; bounded well beyond it.
        rc = subprocess.run(cmd, timeout=400).returncode
        r = json.load(open(os.path.join(out, "report.json")))
    finally:
        W.cleanup()
    print(f"\nexit {rc}; requests {r['requests']}")
    for s in r["stages"]:
        lat = s["latency_ms"]
        print(f"  stage {s['name']:<9} target {s['target_rps']:>8.0f} rps, achieved "
              f"{s['achieved_rps']:>8.1f}; p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms")
    per_s = r["intervals"]
    base_p99 = [i["p99_ms"] for i in per_s if i.get("stage") == "baseline" and i.get("p99_ms") is not None]
    if base_p99:
        print(f"  baseline seconds' p99: min {min(base_p99):.3f}, max {max(base_p99):.3f} ms")
    for rec in r.get("recovery") or []:
        print(f"  recovery after '{rec.get('stage')}': {json.dumps(rec)}")
    end_burst = max((i["t_s"] for i in per_s if i.get("stage") == "burst"), default=None)
    if end_burst is not None:
        print("  seconds after the burst (t, p99 ms):",
              ", ".join(f"{i['t_s']}: {i['p99_ms']:.3f}" for i in per_s
                        if end_burst < i["t_s"] <= end_burst + 10 and i.get("p99_ms") is not None))
        print("  burst seconds (t, p99 ms, dropped):",
              ", ".join(f"{i['t_s']}: {i.get('p99_ms') or 0:.3f} {i['dropped']}" for i in per_s
                        if i.get("stage") == "burst"))
    for t in r.get("thresholds") or []:
        print(f"  threshold {t['expr']}: {t['status']} ({t.get('actual')})")


if __name__ == "__main__":
    main()
