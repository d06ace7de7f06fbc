"""The Helm chart, checked with Helm's own code (helm-python-sdk: lint, render,
values-schema validation) and every rendered object validated against the
Kubernetes API's JSON schemas (kubernetes-validate, strict: unknown fields are
errors)."""

from __future__ import annotations

import base64
import re
import tomllib
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from conftest import (
    CHART,
    NAMESPACE,
    RELEASE,
    REPO,
    find,
    notes,
    objects,
    one,
    pod_labels,
    pod_spec,
    render,
    secret_value,
)

FULL = f"{RELEASE}-volley"

# Everything switched away from its default, to render every branch.
NON_DEFAULT: dict[str, Any] = {
    "fullnameOverride": "bench",
    "commonLabels": {"team": "perf"},
    "image": {
        "repository": "registry.example.com/perf/volley",
        "digest": "sha256:" + "ab" * 32,
        "pullPolicy": "Always",
    },
    "imagePullSecrets": [{"name": "regcred"}],
    "auth": {"existingSecret": "volley-auth", "existingSecretKey": "shared-token"},
    "serviceAccount": {"create": False, "name": "loadtest"},
    "coordinator": {
        "port": 7800,
        "heartbeatTimeout": "10s",
        "idleHeartbeatTimeout": "1m",
        "maxReportsPerSecond": 5000,
        "keepReportsMiB": 64,
        "service": {"type": "NodePort", "annotations": {"a": "b"}},
        "podAnnotations": {"x": "y"},
        "nodeSelector": {"pool": "control"},
        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
        "extraEnv": [{"name": "RUST_LOG", "value": "debug"}],
    },
    "metrics": {"enabled": True, "port": 9102},
    "workers": {
        "replicas": 7,
        "threads": 4,
        "weight": 2,
        "maxOutage": "2m",
        "topologySpread": {
            "topologyKey": "topology.kubernetes.io/zone",
            "maxSkew": 2,
            "whenUnsatisfiable": "DoNotSchedule",
        },
        "podAntiAffinity": "hard",
        "nodeSelector": {"pool": "load"},
        "tolerations": [
            {"key": "load", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        ],
        "extraEnv": [
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
        ],
        "resources": {"requests": {"cpu": 2, "memory": "1Gi"}, "limits": {"cpu": 2, "memory": "1Gi"}},
    },
    "target": {
        "replicas": 2,
        "port": 8081,
        "delay": "5ms",
        "errorRate": 0.001,
        "bodySize": 1024,
        "capacity": 5_000_000,
        "threads": 4,
    },
    "run": {
        "enabled": True,
        "wait": "10m",
        "extraArgs": ["--strict"],
        "backoffLimit": 1,
        "activeDeadlineSeconds": 3600,
        "ttlSecondsAfterFinished": 86400,
        "persistence": {"enabled": True, "storageClassName": "fast", "size": "5Gi"},
        "nodeSelector": {"pool": "control"},
    },
    "tests": {"rate": 20, "duration": "3s", "wait": "1m"},
}


def k8s_versions() -> list[str]:
    """The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and
    the newest kubernetes-validate knows."""
    return ["1.25", kubernetes_validate.latest_version()]


# ---------------------------------------------------------------- lint ---


def lint_problems(report: dict[str, Any]) -> list[str]:
    # Severity: 1 info, 2 warning, 3 error (strict lint turns warnings into errors).
    return list(report["errors"]) + [
        f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2
    ]


@pytest.mark.parametrize("values", [None, NON_DEFAULT], ids=["default", "non-default"])
def test_lint_is_clean(values: dict[str, Any] | None) -> None:
    for version in k8s_versions():
        report = helm.lint(CHART, values, strict=True, kube_version=f"v{version}.0")
        assert report["total_charts_linted"] == 1
        assert lint_problems(report) == [], f"helm lint (Kubernetes {version})"


def test_lint_catches_a_typo() -> None:
    """Lint is not vacuous: a misspelt key is an error."""
    report = helm.lint(CHART, {"worker": {"replicas": 3}}, strict=True)
    problems = lint_problems(report)
    assert problems and any("worker" in p for p in problems), report


# ------------------------------------------------------ values schema ---


def test_default_values_meet_the_schema(chart: helm.Chart) -> None:
    assert chart.schema is not None, "the chart ships values.schema.json"
    chart.validate_schema(chart.values)
    chart.validate_schema(NON_DEFAULT)


@pytest.mark.parametrize(
    "values, complaint",
    [
        ({"worker": {"replicas": 3}}, "worker"),  # typo at the top
        ({"workers": {"replica": 3}}, "replica"),  # typo nested
        ({"run": {"persistence": {"enable": True}}}, "enable"),  # typo deep
        ({"podSecurityContext": {"runAsNonroot": True}}, "runAsNonroot"),
        ({"workers": {"resources": {"limit": {"cpu": 1}}}}, "limit"),
    ],
)
def test_schema_rejects_unknown_keys(chart: helm.Chart, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=complaint):
        chart.validate_schema(values)
    # and Helm refuses to render (install) with them
    with pytest.raises(helm.HelmValuesError):
        render(chart, values)


@pytest.mark.parametrize(
    "values, where",
    [
        ({"workers": {"replicas": "3"}}, "/workers/replicas"),
        ({"workers": {"replicas": 0}}, "/workers/replicas"),
        ({"run": {"enabled": "yes"}}, "/run/enabled"),
        ({"coordinator": {"port": 70000}}, "/coordinator/port"),
        ({"workers": {"podAntiAffinity": "sometimes"}}, "/workers/podAntiAffinity"),
        ({"workers": {"topologySpread": {"whenUnsatisfiable": "Maybe"}}}, "whenUnsatisfiable"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"coordinator": {"heartbeatTimeout": "5"}}, "/coordinator/heartbeatTimeout"),
        ({"coordinator": {"idleHeartbeatTimeout": "12"}}, "/coordinator/idleHeartbeatTimeout"),
        ({"coordinator": {"maxReportsPerSecond": -1}}, "/coordinator/maxReportsPerSecond"),
        ({"coordinator": {"keepReportsMiB": -1}}, "/coordinator/keepReportsMiB"),
        ({"coordinator": {"keepReportsMiB": "256"}}, "/coordinator/keepReportsMiB"),
        ({"target": {"errorRate": 2}}, "/target/errorRate"),
        ({"commonLabels": {"team": 7}}, "/commonLabels/team"),
    ],
)
def test_schema_rejects_wrong_types(chart: helm.Chart, values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(where)):
        chart.validate_schema(values)
    with pytest.raises(helm.HelmValuesError):
        render(chart, values)


def test_every_value_is_documented() -> None:
    """Every key in values.yaml has a comment right above it, except the
    fields of Kubernetes objects documented as a whole (security contexts,
    resources)."""
    whole = {"podSecurityContext", "securityContext", "resources"}
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing keys
    block_indent: int | None = None  # inside a `|` block scalar
    undocumented = []
    previous = ""
    for line in lines:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if block_indent is not None:
            if indent > block_indent:
                continue
            block_indent = None
        m = re.match(r"^(\s*)([A-Za-z][\w.-]*):(\s|$)", line)
        if m:
            while stack and stack[-1][0] >= indent:
                stack.pop()
            key = m.group(2)
            path = ".".join([k for _, k in stack] + [key])
            inside_whole = any(k in whole for _, k in stack)
            if not inside_whole and not previous.lstrip().startswith("#"):
                undocumented.append(path)
            stack.append((indent, key))
            if line.rstrip().endswith(("|", ">")):
                block_indent = indent
        previous = line
    assert undocumented == []


def test_schema_covers_every_value(chart: helm.Chart) -> None:
    """Every key of values.yaml is declared in the schema (so the schema's
    `additionalProperties: false` rejects only real typos) and every object
    in the schema is closed."""
    schema = chart.schema
    assert schema is not None
    definitions = schema.get("definitions", {})

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = definitions[node["$ref"].split("/")[-1]]
        return node

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        node = resolve(node)
        if isinstance(value, dict):
            assert "object" in node.get("type", []), path
            props = node.get("properties")
            if props is None:  # a map (labels, annotations, node selectors)
                assert isinstance(node.get("additionalProperties"), dict), path
                return
            assert node.get("additionalProperties") is False, f"{path} is not closed"
            for k, v in value.items():
                assert k in props, f"{path}.{k} missing from values.schema.json"
                walk(v, props[k], f"{path}.{k}")

    walk(chart.values, schema, "values")

    def closed(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                assert node.get("additionalProperties") is False, f"{path} is not closed"
            for k, v in node.items():
                closed(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                closed(v, f"{path}/{i}")

    closed(schema, "#")


# --------------------------------------------------------- rendering ---


def kinds_and_names(objs: list[dict[str, Any]]) -> set[str]:
    return {f"{o['kind']}/{o['metadata']['name']}" for o in objs}


def test_render_default(chart: helm.Chart) -> None:
    objs = objects(render(chart))
    assert kinds_and_names(objs) == {
        f"ServiceAccount/{FULL}",
        f"Secret/{FULL}-token",
        f"Deployment/{FULL}-coordinator",
        f"Service/{FULL}-coordinator",
        f"Deployment/{FULL}-worker",
        f"Deployment/{FULL}-target",
        f"Service/{FULL}-target",
        f"ConfigMap/{FULL}-scenarios",
        f"Pod/{FULL}-test",
    }
    assert one(objs, "Deployment", f"{FULL}-coordinator")["spec"]["replicas"] == 1
    worker = one(objs, "Deployment", f"{FULL}-worker")
    assert worker["spec"]["replicas"] == 3
    # By default a worker runs a thread per core its pod may use and weighs
    # its thread count: volley-worker decides both, so neither flag is set.
    args = pod_spec(worker)["containers"][0]["args"]
    assert "--threads" not in args and "--weight" not in args, args
    # The idle timeout is left to `volley serve` (5 × the heartbeat timeout).
    coord_args = pod_spec(one(objs, "Deployment", f"{FULL}-coordinator"))["containers"][0]["args"]
    assert coord_args[coord_args.index("--heartbeat-timeout") + 1] == "5s", coord_args
    assert "--idle-heartbeat-timeout" not in coord_args, coord_args
    assert "--max-reports-per-second" not in coord_args, coord_args
    assert "--keep-reports-mib" not in coord_args, coord_args
    for o in objs:
        assert o["metadata"].get("namespace", NAMESPACE) == NAMESPACE


def test_render_non_default(chart: helm.Chart) -> None:
    objs = objects(render(chart, NON_DEFAULT, revision=4, is_upgrade=True))
    assert kinds_and_names(objs) == {
        "Deployment/bench-coordinator",
        "Service/bench-coordinator",
        "Deployment/bench-worker",
        "Deployment/bench-target",
        "Service/bench-target",
        "ConfigMap/bench-scenarios",
        "Job/bench-run-4",
        "PersistentVolumeClaim/bench-report",
        "Pod/bench-test",
    }  # no Secret (existingSecret), no ServiceAccount (create: false)
    image = "registry.example.com/perf/volley@sha256:" + "ab" * 32
    for o in objs:
        spec = pod_spec(o)
        if spec is None:
            continue
        assert spec["serviceAccountName"] == "loadtest"
        assert spec["imagePullSecrets"] == [{"name": "regcred"}]
        for c in spec["containers"] + spec.get("initContainers", []):
            assert c["image"] == image and c["imagePullPolicy"] == "Always"
    coord_args = pod_spec(one(objs, "Deployment", "bench-coordinator"))["containers"][0]["args"]
    assert coord_args[coord_args.index("--heartbeat-timeout") :][:8] == [
        "--heartbeat-timeout", "10s", "--idle-heartbeat-timeout", "1m",
        "--max-reports-per-second", "5000", "--keep-reports-mib", "64",
    ], coord_args
    worker = one(objs, "Deployment", "bench-worker")
    wspec = pod_spec(worker)
    assert worker["spec"]["replicas"] == 7
    assert wspec["nodeSelector"] == {"pool": "load"}
    assert wspec["tolerations"][0]["key"] == "load"
    args = wspec["containers"][0]["args"]
    assert args == [
        "--coordinator", "http://bench-coordinator:7800", "--threads", "4", "--weight", "2", "--max-outage", "2m",
    ]
    target_args = pod_spec(one(objs, "Deployment", "bench-target"))["containers"][0]["args"]
    assert target_args == [
        "target", "--listen", "0.0.0.0:8081", "--delay", "5ms", "--error-rate", "0.001",
        "--body-size", "1024", "--capacity", "5000000", "--threads", "4",
    ]
    job = one(objs, "Job", "bench-run-4")
    assert job["spec"]["backoffLimit"] == 1
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert "--strict" in pod_spec(job)["containers"][0]["args"]


@pytest.mark.parametrize("values", [None, NON_DEFAULT, {"run": {"enabled": True}}, {"target": {"enabled": False}}],
                         ids=["default", "non-default", "run", "no-target"])
def test_every_object_is_valid_kubernetes(chart: helm.Chart, values: dict[str, Any] | None) -> None:
    objs = objects(render(chart, values))
    assert objs
    for version in k8s_versions():
        for o in objs:
            try:
                kubernetes_validate.validate(o, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                pytest.fail(f"{o['kind']}/{o['metadata']['name']} (Kubernetes {version}): {path}: {e.message}")


def test_names_fit_kubernetes_limits(chart: helm.Chart) -> None:
    long_release = "a-very-long-release-name-for-a-load-test-of-stuff"  # 49 characters
    objs = objects(render(chart, {"run": {"enabled": True, "persistence": {"enabled": True}}},
                          name=long_release, revision=123456))
    for o in objs:
        name = o["metadata"]["name"]
        limit = 253 if o["kind"] in ("ConfigMap", "Secret", "ServiceAccount", "PersistentVolumeClaim") else 63
        assert len(name) <= limit, name
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
        for v in o["metadata"]["labels"].values():
            assert len(v) <= 63, v


# ---------------------------------------------------------- labels ---

RECOMMENDED = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)


@pytest.mark.parametrize("values", [None, NON_DEFAULT], ids=["default", "non-default"])
def test_labels(chart: helm.Chart, values: dict[str, Any] | None) -> None:
    objs = objects(render(chart, values))
    for o in objs:
        labels = o["metadata"]["labels"]
        for key in RECOMMENDED:
            assert labels.get(key), f"{o['kind']}/{o['metadata']['name']} lacks {key}"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        if values is NON_DEFAULT:
            assert labels["team"] == "perf"
        if pod_spec(o) is not None:
            plabels = pod_labels(o)
            for key in RECOMMENDED:
                assert plabels.get(key), f"pods of {o['metadata']['name']} lack {key}"
            if o["kind"] == "Deployment":
                selector = o["spec"]["selector"]["matchLabels"]
                assert selector.items() <= plabels.items()
    # Each Service selects exactly the pods of its own Deployment.
    deployments = find(objs, "Deployment")
    for svc in find(objs, "Service"):
        selected = [d for d in deployments if svc["spec"]["selector"].items() <= pod_labels(d).items()]
        assert [d["metadata"]["name"] for d in selected] == [svc["metadata"]["name"]]


# ------------------------------------------------- security contexts ---


@pytest.mark.parametrize("values", [None, NON_DEFAULT, {"run": {"enabled": True}}],
                         ids=["default", "non-default", "run"])
def test_security_contexts_on_every_pod(chart: helm.Chart, values: dict[str, Any] | None) -> None:
    objs = objects(render(chart, values))
    pods = [o for o in objs if pod_spec(o) is not None]
    assert len(pods) >= 4
    for o in pods:
        spec = pod_spec(o)
        what = f"{o['kind']}/{o['metadata']['name']}"
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True, what
        assert psc["runAsUser"] != 0, what
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, what
        assert spec["automountServiceAccountToken"] is False, what
        assert "hostNetwork" not in spec and "hostPID" not in spec, what
        mounts_ok = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v or "persistentVolumeClaim" in v}
        for c in spec["containers"] + spec.get("initContainers", []):
            where = f"{what} container {c['name']}"
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["runAsNonRoot"] is True, where
            assert sc.get("privileged", False) is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert not sc["capabilities"].get("add"), where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert c["resources"]["requests"] and c["resources"]["limits"], where
            # A read-only root filesystem needs somewhere to write: /tmp, and
            # the working directory (the run directory of `volley run`).
            writable = {m["mountPath"] for m in c.get("volumeMounts", [])
                        if m["name"] in mounts_ok and not m.get("readOnly")}
            assert "/tmp" in writable, where
            if "workingDir" in c:
                assert c["workingDir"] in writable, where


# ---------------------------------------------------------- wiring ---


def job_and_test_pod(objs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{o['kind']}/{o['metadata']['name']}", pod_spec(o)["containers"][0])
            for o in objs if o["kind"] in ("Job", "Pod")]


def wait_for(args: list[str]) -> list[str]:
    """The addresses of every `--wait-for`."""
    return [args[i + 1] for i, a in enumerate(args) if a == "--wait-for"]


def test_run_waits_for_the_coordinator_only_without_the_builtin_target(chart: helm.Chart) -> None:
    own = 'name = "own"\n[target]\nurl = "http://shop.default:8080/"\n[[stages]]\nrate = 10\nduration = "1s"\n'
    objs = objects(render(chart, {"run": {"enabled": True, "scenario": own}, "target": {"enabled": False},
                                  "coordinator": {"port": 7800}}))
    (c,) = pod_spec(one(objs, "Job", f"{FULL}-run-1"))["containers"]
    assert wait_for(c["args"]) == [f"{FULL}-coordinator:7800"]


def flag(args: list[str], name: str) -> str:
    assert args.count(name) == 1, f"{name} in {args}"
    return args[args.index(name) + 1]


@pytest.mark.parametrize("replicas", [1, 3, 7, 64])
def test_min_workers_equals_worker_replicas(chart: helm.Chart, replicas: int) -> None:
    objs = objects(render(chart, {"workers": {"replicas": replicas}, "run": {"enabled": True}}))
    assert one(objs, "Deployment", f"{FULL}-worker")["spec"]["replicas"] == replicas
    submitters = job_and_test_pod(objs)
    assert {w for w, _ in submitters} == {f"Job/{FULL}-run-1", f"Pod/{FULL}-test"}
    for what, c in submitters:
        args = c["args"]
        assert c["command"] == ["volley"] and args[0] == "run", what
        assert flag(args, "--min-workers") == str(replicas), what
        assert flag(args, "--coordinator") == f"http://{FULL}-coordinator:7700", what


def service_port(svc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in svc["spec"]["ports"] if p["name"] == name)


@pytest.mark.parametrize("values", [None, NON_DEFAULT], ids=["default", "non-default"])
def test_coordinator_address_is_its_service(chart: helm.Chart, values: dict[str, Any] | None) -> None:
    objs = objects(render(chart, values))
    coord = next(d for d in find(objs, "Deployment") if d["metadata"]["name"].endswith("-coordinator"))
    svc = one(objs, "Service", coord["metadata"]["name"])
    port = service_port(svc, "grpc")
    container = pod_spec(coord)["containers"][0]
    cport = next(p for p in container["ports"] if p["name"] == port["targetPort"])
    assert cport["containerPort"] == port["port"]
    assert flag(container["args"], "--listen") == f"0.0.0.0:{cport['containerPort']}"
    url = f"http://{svc['metadata']['name']}:{port['port']}"
    worker = next(d for d in find(objs, "Deployment") if d["metadata"]["name"].endswith("-worker"))
    assert flag(pod_spec(worker)["containers"][0]["args"], "--coordinator") == url
    for what, c in job_and_test_pod(objs):
        assert flag(c["args"], "--coordinator") == url, what


def test_workers_spread_over_nodes(chart: helm.Chart) -> None:
    spec = pod_spec(one(objects(render(chart)), "Deployment", f"{FULL}-worker"))
    (tsc,) = spec["topologySpreadConstraints"]
    assert tsc["topologyKey"] == "kubernetes.io/hostname"
    assert tsc["maxSkew"] == 1
    assert tsc["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    soft = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert soft[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert spec["containers"][0]["resources"]["limits"]["cpu"]

    hard = pod_spec(one(objects(render(chart, NON_DEFAULT)), "Deployment", "bench-worker"))
    assert hard["topologySpreadConstraints"][0]["whenUnsatisfiable"] == "DoNotSchedule"
    assert hard["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]

    none = pod_spec(one(objects(render(chart, {"workers": {"podAntiAffinity": "none",
                                                            "topologySpread": {"enabled": False}}})),
                        "Deployment", f"{FULL}-worker"))
    assert "affinity" not in none and "topologySpreadConstraints" not in none


def test_metrics(chart: helm.Chart) -> None:
    objs = objects(render(chart))
    coord = pod_spec(one(objs, "Deployment", f"{FULL}-coordinator"))["containers"][0]
    assert "--metrics-listen" not in coord["args"]
    assert [p["name"] for p in one(objs, "Service", f"{FULL}-coordinator")["spec"]["ports"]] == ["grpc"]

    objs = objects(render(chart, {"metrics": {"enabled": True}}))
    dep = one(objs, "Deployment", f"{FULL}-coordinator")
    coord = pod_spec(dep)["containers"][0]
    assert flag(coord["args"], "--metrics-listen") == "0.0.0.0:9090"
    svc = one(objs, "Service", f"{FULL}-coordinator")
    assert service_port(svc, "metrics")["port"] == 9090
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in coord["ports"]
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9090"


# ----------------------------------------------------------- token ---


def token_refs(objs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    refs = set()
    for o in objs:
        spec = pod_spec(o)
        if spec is None:
            continue
        for c in spec["containers"]:
            if c["name"] == "target":
                continue
            env = {e["name"]: e for e in c.get("env", [])}
            ref = env["VOLLEY_TOKEN"]["valueFrom"]["secretKeyRef"]
            refs.add((ref["name"], ref["key"]))
    return refs


def test_token_is_generated_when_not_given(chart: helm.Chart) -> None:
    objs = objects(render(chart, {"run": {"enabled": True}}))
    token = secret_value(objs, f"{FULL}-token", "token")
    assert re.fullmatch(r"[A-Za-z0-9]{32}", token)
    assert token_refs(objs) == {(f"{FULL}-token", "token")}
    # offline there is nothing to look up, so every render draws a new one
    assert secret_value(objects(render(chart)), f"{FULL}-token", "token") != token


def test_token_given(chart: helm.Chart) -> None:
    objs = objects(render(chart, {"auth": {"token": "s3cret"}}))
    assert secret_value(objs, f"{FULL}-token", "token") == "s3cret"


def test_existing_secret(chart: helm.Chart) -> None:
    objs = objects(render(chart, {"run": {"enabled": True}, "auth": {"existingSecret": "mine", "existingSecretKey": "k"}}))
    assert find(objs, "Secret") == []
    assert token_refs(objs) == {("mine", "k")}


def test_token_lookup_keeps_the_token_on_upgrade() -> None:
    """The generated token is read back from the cluster with `lookup` (not
    callable offline; checked in the template source)."""
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace' in helpers
    assert "randAlphaNum 32" in helpers


# ---------------------------------------------------- run Job, report ---


def test_run_job(chart: helm.Chart) -> None:
    objs = objects(render(chart, {"run": {"enabled": True}}, revision=3, is_upgrade=True))
    job = one(objs, "Job", f"{FULL}-run-3")
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 0
    (c,) = spec["containers"]
    # `volley run` itself, no shell: it prints report.md to the log.
    assert c["command"] == ["volley"]
    assert c["args"][:2] == ["run", "/etc/volley/scenario.toml"]
    assert "--quiet" in c["args"] and "--print-report" in c["args"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["VOLLEY_OUT"] == f"{FULL}-r3"
    assert c["workingDir"] == "/report"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes["report"]
    assert volumes["scenario"]["configMap"]["name"] == f"{FULL}-scenarios"
    # No init container: `volley run` waits for the Services itself.
    assert "initContainers" not in spec
    assert wait_for(c["args"]) == [f"{FULL}-coordinator:7700", f"{FULL}-target:8080"]
    assert flag(c["args"], "--wait") == "5m"
    # the scenario: valid TOML, aimed at the built-in target's Service
    cm = one(objs, "ConfigMap", f"{FULL}-scenarios")
    scenario = tomllib.loads(cm["data"]["scenario.toml"])
    assert scenario["target"]["url"] == f"http://{FULL}-target:8080/"
    assert sum(1 for _ in scenario["stages"]) >= 1
    selfcheck = tomllib.loads(cm["data"]["selfcheck.toml"])
    assert selfcheck["target"]["url"] == f"http://{FULL}-target:8080/"


GRPC_SCENARIO = """name = "grpc"
[target]
url = "http://{{ include "volley.target.fullname" . }}:{{ .Values.target.port }}"
protocol = "grpc"
method = "/echo.v1.Echo/Say"
body_file = "hello.bin"
[[stages]]
rate = 10
duration = "2s"
"""

TCP_VALUES: dict[str, Any] = {"target": {"tcpPort": 9000}}


def test_run_files_are_mounted_next_to_the_scenario(chart: helm.Chart) -> None:
    hello = base64.b64encode(b"\n\x06volley").decode()
    values = {"run": {"enabled": True, "scenario": GRPC_SCENARIO, "files": {"hello.bin": hello}}}
    objs = objects(render(chart, values, revision=2))
    cm = one(objs, "ConfigMap", f"{FULL}-scenarios")
    assert cm["binaryData"] == {"hello.bin": hello}
    assert base64.b64decode(cm["binaryData"]["hello.bin"]) == b"\n\x06volley"
    job = one(objs, "Job", f"{FULL}-run-2")
    items = {v["name"]: v for v in pod_spec(job)["volumes"]}["scenario"]["configMap"]["items"]
    assert {"key": "hello.bin", "path": "hello.bin"} in items
    assert "checksum/files" in job["spec"]["template"]["metadata"]["annotations"]
    for o in objs:
        for version in k8s_versions():
            kubernetes_validate.validate(o, version, strict=True)
    # Names a ConfigMap cannot hold, the scenario's own name, and
    # something that is not base64, are refused by the schema.
    for files, complaint in (
        ({"a/b": hello}, "a/b"),
        ({"scenario.toml": hello}, "scenario.toml"),
        ({"x.bin": "not base64!"}, "/run/files/x.bin"),
    ):
        with pytest.raises(helm.HelmValuesError, match=re.escape(complaint)):
            chart.validate_schema({"run": {"enabled": True, "files": files}})


def test_target_tcp_port(chart: helm.Chart) -> None:
    objs = objects(render(chart, TCP_VALUES))
    target = one(objs, "Deployment", f"{FULL}-target")
    (c,) = pod_spec(target)["containers"]
    i = c["args"].index("--tcp-listen")
    assert c["args"][i + 1] == "0.0.0.0:9000"
    assert {"name": "frames", "containerPort": 9000, "protocol": "TCP"} in c["ports"]
    svc = one(objs, "Service", f"{FULL}-target")
    assert {"name": "frames", "port": 9000, "targetPort": "frames", "protocol": "TCP"} in svc["spec"]["ports"]
    # Off by default.
    c = pod_spec(one(objects(render(chart, None)), "Deployment", f"{FULL}-target"))["containers"][0]
    assert "--tcp-listen" not in c["args"]


def test_run_scenario_is_a_template(chart: helm.Chart) -> None:
    own = 'name = "mine"\n[target]\nurl = "http://{{ .Release.Name }}-api:80/"\n[[stages]]\nrate = 1\nduration = "1s"\n'
    objs = objects(render(chart, {"run": {"enabled": True, "scenario": own}, "target": {"enabled": False}}))
    cm = one(objs, "ConfigMap", f"{FULL}-scenarios")
    assert tomllib.loads(cm["data"]["scenario.toml"])["target"]["url"] == f"http://{RELEASE}-api:80/"
    assert "selfcheck.toml" not in cm["data"]
    assert find(objs, "Pod") == []  # no helm test without the built-in target


def test_default_scenario_needs_the_target(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmRenderError, match="target.enabled is false"):
        render(chart, {"run": {"enabled": True}, "target": {"enabled": False}})


def test_report_persistence(chart: helm.Chart) -> None:
    objs = objects(render(chart, {"run": {"enabled": True, "persistence": {"enabled": True, "size": "2Gi"}}}))
    pvc = one(objs, "PersistentVolumeClaim", f"{FULL}-report")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    volumes = {v["name"]: v for v in pod_spec(one(objs, "Job", f"{FULL}-run-1"))["volumes"]}
    assert volumes["report"] == {"name": "report", "persistentVolumeClaim": {"claimName": f"{FULL}-report"}}

    objs = objects(render(chart, {"run": {"enabled": True, "persistence": {"enabled": True, "existingClaim": "old"}}}))
    assert find(objs, "PersistentVolumeClaim") == []
    volumes = {v["name"]: v for v in pod_spec(one(objs, "Job", f"{FULL}-run-1"))["volumes"]}
    assert volumes["report"]["persistentVolumeClaim"]["claimName"] == "old"


def test_helm_test_hook(chart: helm.Chart) -> None:
    pod = one(objects(render(chart)), "Pod", f"{FULL}-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    (c,) = pod["spec"]["containers"]
    assert c["command"] == ["volley"]
    assert c["args"][:2] == ["run", "/etc/volley/selfcheck.toml"]
    assert "--print-report" in c["args"]
    assert "initContainers" not in pod["spec"]
    assert wait_for(c["args"]) == [f"{FULL}-coordinator:7700", f"{FULL}-target:8080"]


def test_notes(chart: helm.Chart) -> None:
    text = notes(chart, {"run": {"enabled": True, "persistence": {"enabled": True}}})
    assert f"kubectl -n {NAMESPACE} logs -f job/{FULL}-run-1" in text
    assert f"helm test {RELEASE}" in text
    assert f"{FULL}-report" in text and "kubectl -n perf cp" in text
    # `kubectl cp` needs tar, which the Volley image does not have
    assert '"image":"busybox:1.36","command":["sleep","600"]' in text
    text = notes(chart)
    assert "port-forward" in text and "--min-workers 3" in text


# ----------------------------------------------------- the image ---


def test_dockerfile_matches_the_chart(chart: helm.Chart) -> None:
    """The chart runs `volley` and `volley-worker` from PATH as UID 65532 and
    nothing else (the image has no shell); the Dockerfile's runtime stage must
    provide that. test_image.py builds that stage and looks inside."""
    text = (REPO / "Dockerfile").read_text()
    stages = {m.group(2): m.group(1) for m in re.finditer(r"(?ms)^FROM\s+(\S+)\s+AS\s+(\S+)$", text)}
    assert stages == {"build": "${RUST_IMAGE}", "rootfs": "${DEBIAN_IMAGE}", "runtime": "scratch"}
    bodies = dict(zip(re.findall(r"(?m)^FROM\s+\S+\s+AS\s+(\S+)$", text),
                      re.split(r"(?m)^FROM\s.*$", text)[1:]))
    assert "cargo build --release --locked" in bodies["build"]
    assert "--bin volley " in bodies["build"] and "--bin volley-worker" in bodies["build"]
    assert "strip /out/volley /out/volley-worker" in bodies["build"]
    assert "image/rootfs.sh" in bodies["rootfs"]
    runtime = bodies["runtime"]
    assert re.search(r"(?m)^USER 65532:65532$", runtime)
    assert "RUN " not in runtime, "the runtime stage has no shell to run anything"
    assert "COPY --from=build /out/volley /out/volley-worker /usr/local/bin/" in runtime
    uid = chart.values["podSecurityContext"]["runAsUser"]
    assert uid == 65532 and chart.values["podSecurityContext"]["runAsGroup"] == 65532
    # the default image tag is the appVersion, which is Volley's version
    workspace = tomllib.loads((REPO / "Cargo.toml").read_text())
    assert chart.values["image"]["tag"] == ""
    assert chart.metadata["appVersion"] == workspace["workspace"]["package"]["version"]
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.lstrip().startswith("#")]
    assert "target" in ignored and ".git" in ignored
    for needed in ("Cargo.lock", "proto", "plan", "worker", "coordinator", "integration-tests", "image"):
        assert needed not in ignored
    # every program the chart runs is one the image installs: no shell, and
    # no init container that would need one
    objs = objects(render(chart, {"run": {"enabled": True}, "metrics": {"enabled": True}}))
    programs = set()
    for o in objs:
        spec = pod_spec(o)
        if spec is None:
            continue
        for c in spec["containers"] + spec.get("initContainers", []):
            programs.add(tuple(c["command"]))
    assert programs == {("volley",), ("volley-worker",)}


def rust_secs(path: str, name: str) -> int:
    """The seconds of `const NAME: Duration = ...from_secs(N)` in a Rust file,
    so the chart's timings follow the code's."""
    text = (REPO / path).read_text()
    m = re.search(rf"const {name}: [\w:]*Duration = [\w:]*Duration::from_secs\((\d+)\)", text)
    assert m, f"{name} not found in {path}"
    return int(m.group(1))


def test_grace_periods_fit_the_shutdown_timings(chart: helm.Chart) -> None:
    """SIGTERM is followed by SIGKILL after terminationGracePeriodSeconds: the
    coordinator must have time to stop the run and write its report, a
    leaving worker to hand over its share and report its last requests."""
    objs = objects(render(chart))
    coord = pod_spec(one(objs, "Deployment", f"{FULL}-coordinator"))
    worker = pod_spec(one(objs, "Deployment", f"{FULL}-worker"))
    run_end = rust_secs("coordinator/src/server.rs", "RUN_END_WAIT")
    close = rust_secs("coordinator/src/service/mod.rs", "CLOSE_WAIT")
    assert coord["terminationGracePeriodSeconds"] > run_end + close
    # The hand-over boundary is under 2 s away; the drain is at most twice
    # the request timeout plus a second; then the worker closes its session.
    timeout_s = 5  # the default scenario's target.timeout
    assert 'timeout = "5s"' in (CHART / "values.yaml").read_text()
    worker_close = rust_secs("worker/src/session.rs", "CLOSE_WAIT")
    assert worker["terminationGracePeriodSeconds"] >= 2 + 2 * timeout_s + 1 + worker_close
    objs = objects(
        render(
            chart,
            {
                "coordinator": {"terminationGracePeriodSeconds": 90},
                "workers": {"terminationGracePeriodSeconds": 45},
            },
        )
    )
    assert pod_spec(one(objs, "Deployment", f"{FULL}-coordinator"))["terminationGracePeriodSeconds"] == 90
    assert pod_spec(one(objs, "Deployment", f"{FULL}-worker"))["terminationGracePeriodSeconds"] == 45
