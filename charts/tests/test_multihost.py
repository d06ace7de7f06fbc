"""The chart's wiring, run for real on separate hosts.

Renders charts/volley with Helm's own engine, takes the coordinator, worker,
target, run-Job and helm-test pod specs (commands, arguments, environment,
volumes) from the rendered objects, and runs each pod as its own host: a
network namespace with one veth into a bridge (the bridge lives in a namespace
of its own, so nothing is added to the host's network), an address on a
private test subnet, and `/etc/netns/<ns>/hosts` resolving the chart's Service
names to the pods behind them, as cluster DNS would. Every process runs as the
pod's UID/GID with no capabilities and no_new_privs, as the securityContext
asks.

Only two things are substituted, as a container runtime would: the program
`volley` / `volley-worker` is the one in the image built from the repository's
Dockerfile (test_image.py; run with the image's own loader and libraries),
and a `secretKeyRef` becomes the value in the rendered Secret. With
VOLLEY_BIN_DIR set, the binaries in that directory are run instead (no image
build: quicker while working on the chart). Volume mount paths
map to per-pod directories (ConfigMap volumes filled from the rendered
ConfigMap, emptyDirs empty).

The Job's scenario is submitted exactly as the Job submits it, and must
complete (exit 0) with every worker taking part. Needs root and iproute2;
without them it skips and says why.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import helm_python as helm
import pytest

from conftest import find, objects, one, pod_spec, render, secret_value

RELEASE = "mh"
NAMESPACE = "loadtest"
REPLICAS = 3
SUBNET = "10.213.1"  # inside the test's own namespaces only
BINARIES = ("volley", "volley-worker")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Names of this run's namespaces and links: random, so that a run killed
# before its cleanup never blocks the next one.
PREFIX = "vm" + secrets.token_hex(3)[:5]
JOB_TIMEOUT_S = 180  # the default scenario lasts 15 s
TEST_POD_TIMEOUT_S = 120


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=30)


def netns_unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "the multi-host test needs root to create network namespaces (run charts/tests/run.sh as root)"
    if shutil.which("ip") is None:
        return "the multi-host test needs iproute2 (`ip`); charts/tests/run.sh installs it"
    probe = f"vprobe{os.getpid()}"
    r = sh("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"`ip netns add` fails here (no CAP_SYS_ADMIN?): {r.stderr.strip()}"
    sh("ip", "netns", "del", probe, check=False)
    return None


# How to start `volley` or `volley-worker` here: the argv prefix.
Programs = Callable[[str], list[str]]


@pytest.fixture
def programs(request: pytest.FixtureRequest) -> Programs:
    """The image's binaries (the `image` fixture builds it), or with
    VOLLEY_BIN_DIR the binaries in that directory."""
    if "VOLLEY_BIN_DIR" in os.environ:
        bin_dir = Path(os.environ["VOLLEY_BIN_DIR"])
        for b in BINARIES:
            assert (bin_dir / b).is_file(), f"VOLLEY_BIN_DIR: {bin_dir / b} missing"
        return lambda name: [str(bin_dir / name)]
    return request.getfixturevalue("image").exec_argv


# --------------------------------------------------------------- hosts ---


@dataclass
class Host:
    """One pod: a network namespace with an address on the test subnet."""

    pod: str
    ns: str
    ip: str
    root: Path  # the pod's volumes live under here


@dataclass
class Cluster:
    """Namespaces, links and processes created by the test; torn down by
    `close` whatever happened."""

    prefix: str
    work: Path
    bridge_ns: str = ""
    hosts: dict[str, Host] = field(default_factory=dict)
    veths: list[str] = field(default_factory=list)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    etc_dirs: list[Path] = field(default_factory=list)

    def start_network(self) -> None:
        self.bridge_ns = f"{self.prefix}-switch"
        sh("ip", "netns", "add", self.bridge_ns)
        sh("ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.bridge_ns, "link", "set", "br0", "up")
        sh("ip", "-n", self.bridge_ns, "link", "set", "lo", "up")

    def add_host(self, pod: str) -> Host:
        i = len(self.hosts)
        ns = f"{self.prefix}-h{i}"
        ip = f"{SUBNET}.{10 + i}"
        sh("ip", "netns", "add", ns)
        root = self.work / pod
        root.mkdir(parents=True)
        host = Host(pod=pod, ns=ns, ip=ip, root=root)
        self.hosts[pod] = host
        # A veth pair made in the root namespace under unique names, then
        # moved at once: one end into the bridge's namespace, one into the host.
        a, b = f"{self.prefix}a{i}", f"{self.prefix}b{i}"
        self.veths += [a, b]
        sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        sh("ip", "link", "set", a, "netns", self.bridge_ns)
        sh("ip", "link", "set", b, "netns", ns)
        sh("ip", "-n", self.bridge_ns, "link", "set", a, "master", "br0", "up")
        sh("ip", "-n", ns, "link", "set", b, "name", "eth0")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        return host

    def write_hosts_files(self, services: dict[str, str]) -> None:
        """`/etc/netns/<ns>/hosts`: what cluster DNS answers for the Service
        names (each Service has a single pod behind it here)."""
        for host in self.hosts.values():
            d = Path("/etc/netns") / host.ns
            d.mkdir(parents=True, exist_ok=True)
            self.etc_dirs.append(d)
            lines = ["127.0.0.1 localhost", f"{host.ip} {host.pod}"]
            lines += [f"{self.hosts[pod].ip} {name}" for name, pod in services.items()]
            (d / "hosts").write_text("\n".join(lines) + "\n")

    def spawn(self, host: Host, name: str, argv: list[str], env: dict[str, str], cwd: Path,
              uid: int, gid: int) -> subprocess.Popen[bytes]:
        log = open(self.work / f"{name}.log", "wb")
        # setpriv execs the program in place, so the PID is the program's.
        cmd = ["ip", "netns", "exec", host.ns,
               "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
               "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--",
               *argv]
        p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        self.procs.append((name, p))
        return p

    def log(self, name: str) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        for _, p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for _, p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        for host in self.hosts.values():
            sh("ip", "netns", "del", host.ns, check=False)
        if self.bridge_ns:
            sh("ip", "netns", "del", self.bridge_ns, check=False)
        for v in self.veths:  # only left over if a move failed half way
            if sh("ip", "link", "show", v, check=False).returncode == 0:
                sh("ip", "link", "del", v, check=False)
        for d in self.etc_dirs:
            shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- pods ---


class Pod:
    """A rendered pod spec, made runnable on a Host."""

    def __init__(self, name: str, spec: dict[str, Any], objs: list[dict[str, Any]], programs: Programs):
        self.name = name
        self.spec = spec
        self.objs = objs
        self.programs = programs
        psc = spec["securityContext"]
        self.uid = int(psc["runAsUser"])
        self.gid = int(psc.get("runAsGroup", psc["runAsUser"]))
        self.fs_group = int(psc.get("fsGroup", self.gid))
        self.mounts: dict[str, Path] = {}

    def prepare_volumes(self, host: Host) -> None:
        """Each volume becomes a directory under the host's root, as the
        kubelet would mount it."""
        for v in self.spec.get("volumes", []):
            d = host.root / "volumes" / v["name"]
            d.mkdir(parents=True)
            if "configMap" in v:
                cm = one(self.objs, "ConfigMap", v["configMap"]["name"])
                for item in v["configMap"]["items"]:
                    (d / item["path"]).write_text(cm["data"][item["key"]])
            else:
                assert "emptyDir" in v, f"volume {v['name']} of {self.name}: unsupported here"
            os.chown(d, self.uid, self.fs_group)
            os.chmod(d, 0o775 if "emptyDir" in v else 0o755)
        os.chmod(host.root, 0o755)
        os.chmod(host.root / "volumes", 0o755)

    def _paths(self, container: dict[str, Any], host: Host) -> dict[str, Path]:
        return {m["mountPath"]: host.root / "volumes" / m["name"]
                for m in container.get("volumeMounts", [])}

    @staticmethod
    def _remap(value: str, mounts: dict[str, Path]) -> str:
        for mount in sorted(mounts, key=len, reverse=True):
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return str(mounts[mount]) + value[len(mount):]
        return value

    def argv(self, container: dict[str, Any], host: Host) -> list[str]:
        assert "command" in container, f"{self.name}/{container['name']}: no command (image entrypoint)"
        argv = list(container["command"]) + list(container.get("args", []))
        # Paths the chart gives map to the volumes first; the program path is
        # this machine's and must not (a checkout under /tmp is not the
        # pod's /tmp volume).
        mounts = self._paths(container, host)
        argv = [self._remap(a, mounts) for a in argv]
        # The program, as the image's PATH would find it: the image has
        # nothing else (no shell).
        assert argv[0] in BINARIES, f"{self.name}/{container['name']} runs {argv[0]}, not in the image"
        return self.programs(argv[0]) + argv[1:]

    def env(self, container: dict[str, Any]) -> dict[str, str]:
        env = {"PATH": PATH, "HOSTNAME": self.name, "HOME": "/nonexistent"}
        for e in container.get("env", []):
            if "value" in e:
                env[e["name"]] = str(e["value"])
                continue
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secret_value(self.objs, ref["name"], ref["key"])
        return env

    def cwd(self, container: dict[str, Any], host: Host) -> Path:
        wd = container.get("workingDir")
        if wd is None:
            return host.root
        mapped = Path(self._remap(wd, self._paths(container, host)))
        assert mapped != Path(wd), f"workingDir {wd} of {self.name} is not a volume"
        return mapped

    def start(self, cluster: Cluster, host: Host, container: dict[str, Any], tag: str = "") -> subprocess.Popen[bytes]:
        return cluster.spawn(host, self.name + tag, self.argv(container, host), self.env(container),
                             self.cwd(container, host), self.uid, self.gid)

    def run_to_completion(self, cluster: Cluster, host: Host, timeout_s: float) -> int:
        """Init containers in order, then the (single) container; returns
        the exit code of the first that fails, or of the container."""
        deadline = time.monotonic() + timeout_s
        for init in self.spec.get("initContainers", []):
            p = self.start(cluster, host, init, tag=f"-init-{init['name']}")
            rc = p.wait(timeout=max(1, deadline - time.monotonic()))
            if rc != 0:
                return rc
        (container,) = self.spec["containers"]
        p = self.start(cluster, host, container)
        return p.wait(timeout=max(1, deadline - time.monotonic()))


# ---------------------------------------------------------------- test ---


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    work = Path(tempfile.mkdtemp(prefix="volley-multihost-"))
    os.chmod(work, 0o755)
    c = Cluster(prefix=PREFIX, work=work)
    try:
        yield c
    finally:
        c.close()
        if os.environ.get("VOLLEY_KEEP_MULTIHOST") != "1":
            shutil.rmtree(work, ignore_errors=True)


def container_of(obj: dict[str, Any]) -> dict[str, Any]:
    (c,) = pod_spec(obj)["containers"]
    return c


def service_backend(objs: list[dict[str, Any]], svc: dict[str, Any]) -> str:
    """The Deployment behind a Service; its port must be the container's, as
    there is no kube-proxy to translate here."""
    (dep,) = [d for d in find(objs, "Deployment")
              if svc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
    assert dep["spec"]["replicas"] == 1, f"{dep['metadata']['name']}: one pod behind each Service here"
    ports = {p["name"]: p["containerPort"] for p in container_of(dep).get("ports", [])}
    for p in svc["spec"]["ports"]:
        assert ports[p["targetPort"]] == p["port"], f"{svc['metadata']['name']}:{p['port']}"
    return dep["metadata"]["name"]


def test_chart_wiring_on_separate_hosts(cluster: Cluster, chart: helm.Chart, programs: Programs,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    # Metrics on: the chart's `metrics` port must serve /metrics (checked at
    # the end), whatever the binaries' help says.
    values: dict[str, Any] = {"workers": {"replicas": REPLICAS}, "run": {"enabled": True},
                              "metrics": {"enabled": True}}
    objs = objects(render(chart, values, name=RELEASE, namespace=NAMESPACE))
    full = f"{RELEASE}-volley"

    coordinator = one(objs, "Deployment", f"{full}-coordinator")
    workers = one(objs, "Deployment", f"{full}-worker")
    target = one(objs, "Deployment", f"{full}-target")
    job = one(objs, "Job", f"{full}-run-1")
    test_pod = one(objs, "Pod", f"{full}-test")
    assert workers["spec"]["replicas"] == REPLICAS

    # Pods: names as a ReplicaSet would give them; one host each.
    pods: dict[str, Pod] = {}
    pods[f"{full}-coordinator-0"] = Pod(f"{full}-coordinator-0", pod_spec(coordinator), objs, programs)
    pods[f"{full}-target-0"] = Pod(f"{full}-target-0", pod_spec(target), objs, programs)
    worker_pods = [f"{full}-worker-{i}" for i in range(REPLICAS)]
    for name in worker_pods:
        pods[name] = Pod(name, pod_spec(workers), objs, programs)
    pods[f"{full}-run-1-0"] = Pod(f"{full}-run-1-0", pod_spec(job), objs, programs)
    pods[f"{full}-test"] = Pod(f"{full}-test", pod_spec(test_pod), objs, programs)

    services = {s["metadata"]["name"]: service_backend(objs, s) + "-0" for s in find(objs, "Service")}
    assert set(services) == {f"{full}-coordinator", f"{full}-target"}

    cluster.start_network()
    hosts = {name: cluster.add_host(name) for name in pods}
    cluster.write_hosts_files(services)
    for name, pod in pods.items():
        pod.prepare_volumes(hosts[name])

    # Start in the worst order a cluster may produce: workers and the Job
    # before the coordinator and the target. Workers must retry, the Job
    # must wait (--wait-for).
    for name in worker_pods:
        pods[name].start(cluster, hosts[name], container_of(workers))
    run_name = f"{full}-run-1-0"
    job_result: dict[str, Any] = {}

    def run_job() -> None:
        try:
            job_result["rc"] = pods[run_name].run_to_completion(cluster, hosts[run_name], JOB_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001 - reported below
            job_result["error"] = e

    t = threading.Thread(target=run_job)
    t.start()
    time.sleep(2)
    coord_name = f"{full}-coordinator-0"
    coord_proc = pods[coord_name].start(cluster, hosts[coord_name], container_of(coordinator))
    time.sleep(1)
    target_name = f"{full}-target-0"
    pods[target_name].start(cluster, hosts[target_name], container_of(target))

    t.join(JOB_TIMEOUT_S + 10)
    diagnostics = "\n".join(f"--- {n}.log\n{cluster.log(n)[-3000:]}"
                            for n in [run_name, coord_name,
                                      target_name, *worker_pods])
    assert not t.is_alive(), "the Job did not finish in time\n" + diagnostics
    assert "error" not in job_result, f"{job_result.get('error')!r}\n{diagnostics}"
    assert job_result["rc"] == 0, f"the Job exited {job_result['rc']}\n{diagnostics}"
    assert coord_proc.poll() is None, "the coordinator died\n" + diagnostics

    # The run directory, where the Job wrote it: VOLLEY_OUT under /report.
    job_container = container_of(job)
    out = {e["name"]: e.get("value") for e in job_container["env"]}["VOLLEY_OUT"]
    report_dir = pods[run_name].cwd(job_container, hosts[run_name]) / out
    report = json.loads((report_dir / "report.json").read_text())
    for f in ("report.md", "latency.hlog"):
        assert (report_dir / f).is_file(), f
    # The Job's log carries report.md (--print-report), after the summary.
    job_log = cluster.log(run_name)
    assert (report_dir / "report.md").read_text() + "----- end of report -----" in job_log, job_log[-3000:]

    assert len(report["workers"]) == REPLICAS, diagnostics
    assert len({w["id"] for w in report["workers"]}) == REPLICAS
    # Each worker names its host: HOSTNAME, the pod name, as Kubernetes sets
    # it. A report without the field fails here (it is part of the contract).
    for w in report["workers"]:
        assert "hostname" in w, f"report.json workers[] has no hostname: {w}"
    assert sorted(w["hostname"] for w in report["workers"]) == worker_pods
    for w in report["workers"]:
        assert w["requests"]["intended"] > 0, w
        assert w["requests"]["ok"] > 0, w
    assert report["requests"]["intended"] == sum(w["requests"]["intended"] for w in report["workers"])
    assert report["requests"]["ok"] == report["requests"]["intended"]
    assert all(t["pass"] for t in report["thresholds"]), report["thresholds"]
    with capsys.disabled():
        print(f"\nmulti-host: {REPLICAS} workers on {len(hosts)} hosts, "
              f"{report['requests']['intended']} requests intended, {report['requests']['ok']} ok, "
              f"per worker {[w['requests']['intended'] for w in report['workers']]}, "
              f"p99 {report['latency_ms']['p99']} ms; volley: {' '.join(programs('volley'))}")

    # `helm test`: the self-check pod, against the same running release.
    test_name = f"{full}-test"
    rc = pods[test_name].run_to_completion(cluster, hosts[test_name], TEST_POD_TIMEOUT_S)
    assert rc == 0, f"helm test pod exited {rc}\n{cluster.log(test_name)[-3000:]}"
    selfcheck = json.loads((pods[test_name].cwd(container_of(test_pod), hosts[test_name])
                            / "selfcheck" / "report.json").read_text())
    assert len(selfcheck["workers"]) == REPLICAS
    assert all(w["requests"]["ok"] > 0 for w in selfcheck["workers"])

    # /metrics through the Service's `metrics` port, from another host: the
    # two runs (the Job's and the self-check) are counted.
    ports = [p["port"] for p in one(objs, "Service", f"{full}-coordinator")["spec"]["ports"]
             if p["name"] == "metrics"]
    assert len(ports) == 1, "metrics.enabled=true gives the coordinator Service a `metrics` port"
    url = f"http://{full}-coordinator:{ports[0]}/metrics"
    r = subprocess.run(
        ["ip", "netns", "exec", hosts[test_name].ns, "python3", "-c",
         f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr  # 200
    runs = [line for line in r.stdout.splitlines() if line.startswith("volley_runs_total")]
    assert runs and float(runs[0].split()[-1]) >= 2, r.stdout[-3000:]
    assert f"volley_workers {REPLICAS}" in r.stdout.splitlines(), r.stdout[-3000:]


def test_namespaces_are_cleaned_up() -> None:
    """Runs after the multi-host test: nothing of it is left behind."""
    if netns_unavailable():
        pytest.skip("no network namespaces here")
    left = [line for line in sh("ip", "netns", "list").stdout.splitlines() if line.startswith(PREFIX)]
    assert left == []
    if Path("/etc/netns").exists():
        assert list(Path("/etc/netns").glob(PREFIX + "*")) == []
    assert PREFIX not in sh("ip", "-o", "link", "show").stdout
