"""A target behind a headless Service: one name, several pod addresses.

Network namespaces on a bridge stand in for pods (the approach and helpers of
test_multihost.py): three `volley target` hosts and a client host whose
`/etc/netns/<ns>/hosts` (what `ip netns exec` mounts over /etc/hosts, so
getaddrinfo reads it) gives `svc.volley.test` two of the targets' addresses,
as cluster DNS does for a headless Service with two ready pods. The machine's
own /etc/hosts is never touched.

`volley run` (local mode) runs in the client namespace against
`http://svc.volley.test:8080/` with `resolve_every = "1s"` and connections
replaced every 20 requests. Each target counts what it answered
(`GET /__volley/stats`): the two addresses must each get half of the traffic
within 10 %. Mid-run a third address is added to the hosts file, as when the
Service scales up: it must start receiving its share. Later the first one is
removed, as when a pod goes away: once the name is resolved again it must get
nothing more. Every request must succeed: a replaced connection or a
re-resolution never fails one.

Needs root and iproute2; without them it skips and says why, except under
CI (CI=true), where it fails instead: CI runs as root.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from test_multihost import Cluster, Host, netns_unavailable

PREFIX = "vs" + secrets.token_hex(3)[:5]
NAME = "svc.volley.test"
PORT = 8080
RATE = 400  # req/s, whole run
SECONDS = 15
ADD_AT_S = 5  # when the third address appears
REMOVE_AT_S = 10  # when the first one goes away
SETTLE_S = 2.5  # re-resolution (1 s) and the connections on it finishing
REPO = Path(__file__).resolve().parents[2]


def binary(name: str) -> Path:
    """The host's build: VOLLEY_BIN_DIR, else the cargo target dir's debug
    build (run.sh builds it)."""
    if "VOLLEY_BIN_DIR" in os.environ:
        d = Path(os.environ["VOLLEY_BIN_DIR"])
    else:
        d = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "debug"
    p = d / name
    assert p.is_file(), f"{p} missing: build the binaries first (cargo build --bins)"
    return p


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    reason = netns_unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Service-address test: {reason}")
        pytest.skip(reason)
    work = Path(tempfile.mkdtemp(prefix="volley-svc-"))
    os.chmod(work, 0o755)
    c = Cluster(prefix=PREFIX, work=work)
    try:
        yield c
    finally:
        c.close()
        shutil.rmtree(work, ignore_errors=True)


def wait_for(what: str, cond, timeout_s: float, diagnostics=lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"{what}\n{diagnostics()}"
        time.sleep(0.05)


def stats(client: Host, target: Host) -> dict:
    """A target's own counters, asked from the client host."""
    url = f"http://{target.ip}:{PORT}/__volley/stats"
    r = subprocess.run(
        ["ip", "netns", "exec", client.ns, "python3", "-c",
         f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_service_name_spreads_over_its_addresses_and_a_new_one_takes_traffic(cluster: Cluster) -> None:
    volley = str(binary("volley"))
    cluster.start_network()
    client = cluster.add_host("client")
    targets = [cluster.add_host(f"pod{i}") for i in range(3)]
    for t in targets:
        cluster.spawn(t, t.pod, [volley, "target", "--listen", f"{t.ip}:{PORT}", "--threads", "1"],
                      {"PATH": os.environ.get("PATH", "")}, cluster.work, 0, 0)
    for t in targets:
        wait_for(f"{t.pod} listening", lambda t=t: "target listening on" in cluster.log(t.pod), 30,
                 lambda t=t: cluster.log(t.pod))

    # What cluster DNS answers for a headless Service with two ready pods.
    etc = Path("/etc/netns") / client.ns
    etc.mkdir(parents=True)
    cluster.etc_dirs.append(etc)
    hosts_file = etc / "hosts"
    hosts_file.write_text("127.0.0.1 localhost\n"
                          f"{targets[0].ip} {NAME}\n{targets[1].ip} {NAME}\n")

    scenario = cluster.work / "svc.toml"
    scenario.write_text(f"""
name = "service-addresses"
[target]
url = "http://{NAME}:{PORT}/"
timeout = "2s"
[load]
connections = 8
resolve_every = "1s"
max_requests_per_connection = 20
[[stages]]
rate = {RATE}
duration = "{SECONDS}s"
""")
    out = cluster.work / "out"
    run = cluster.spawn(client, "run", [volley, "run", str(scenario), "--quiet", "--out", str(out)],
                        {"PATH": os.environ.get("PATH", "")}, cluster.work, 0, 0)
    started = time.monotonic()

    def diagnostics() -> str:
        return "\n".join(f"--- {n}.log\n{cluster.log(n)[-3000:]}"
                         for n in ["run", *(t.pod for t in targets)])

    wait_for("traffic reached the targets",
             lambda: stats(client, targets[0])["requests"] > 0 or run.poll() is not None, 30, diagnostics)
    assert run.poll() is None, diagnostics()
    def counts_at(at_s: float) -> list[int]:
        time.sleep(max(0.0, started + at_s - time.monotonic()))
        return [stats(client, t)["requests"] for t in targets]

    before = counts_at(ADD_AT_S)
    assert before[2] == 0, f"the third address got traffic before it was resolvable: {before}"
    # The Service scales up. Appended in place: `ip netns exec` bind-mounted
    # this very file over the run's /etc/hosts, so a new file (a rename)
    # would not be seen; an append never shows a reader an empty file.
    with hosts_file.open("a") as f:
        f.write(f"{targets[2].ip} {NAME}\n")
    three = counts_at(REMOVE_AT_S)
    # A pod goes away: its line becomes a comment of the same length,
    # written in place, so a reader sees the old file or the new one.
    text = hosts_file.read_text()
    line = f"{targets[0].ip} {NAME}\n"
    gone = "#" * (len(line) - 1) + "\n"
    with hosts_file.open("r+") as f:
        f.write(text.replace(line, gone))
    settled = counts_at(REMOVE_AT_S + SETTLE_S)

    try:
        rc = run.wait(timeout=SECONDS + 60)
    except subprocess.TimeoutExpired:
        pytest.fail("volley run did not finish\n" + diagnostics())
    assert rc == 0, f"volley run exited {rc}\n{diagnostics()}"
    report = json.loads((out / "report.json").read_text())
    req = report["requests"]
    assert req["intended"] == RATE * SECONDS, req
    assert req["ok"] == req["intended"], f"{req} {report.get('errors_by_kind')}\n{diagnostics()}"
    after = [stats(client, t)["requests"] for t in targets]
    assert sum(after) == req["ok"], f"targets answered {after}, the report says {req}"

    # Two addresses: half each, within 10 %.
    half = (before[0] + before[1]) / 2
    assert half >= RATE, f"too little traffic before the third address: {before}"
    for i in (0, 1):
        assert abs(before[i] - half) <= 0.1 * half, f"two addresses, uneven split: {before}"

    # The third: resolved within a second, it takes new connections until it
    # has its share; while it is there, at least 60 % of a fair third.
    added = [a - b for a, b in zip(three, before)]
    fair = sum(added) / 3
    assert added[2] >= 0.6 * fair, f"the new address got {added[2]} of {sum(added)} requests: {added}"

    # The first, removed: nothing more once the name was resolved again and
    # the requests on its connections were answered; the others take it all.
    last = [a - b for a, b in zip(after, settled)]
    assert last[0] == 0, f"a removed address still got requests: {last}"
    assert last[1] > 0 and last[2] > 0, last
    print(f"\nservice addresses: two {before}, three {added}, after removing the first {last}, "
          f"{req['ok']} ok of {req['intended']}")


def test_namespaces_are_cleaned_up() -> None:
    """Runs after the test above: nothing of it is left behind."""
    if netns_unavailable():
        pytest.skip("no network namespaces here")
    left = [line for line in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                            timeout=30).stdout.splitlines() if line.startswith(PREFIX)]
    assert left == []
    if Path("/etc/netns").exists():
        assert list(Path("/etc/netns").glob(PREFIX + "*")) == []
