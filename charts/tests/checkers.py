"""Independent checkers that run under node (charts/tests/node/check.mjs,
installed by charts/tests/run.sh with `npm ci`), and the real `volley`
binary the integration checks start."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from conftest import REPO

NODE_DIR = Path(__file__).resolve().parent / "node"


def node(command: str, payload: Any) -> Any:
    """Runs `node check.mjs COMMAND` with PAYLOAD as JSON on stdin; returns
    its JSON answer."""
    assert (NODE_DIR / "node_modules").is_dir(), (
        f"{NODE_DIR}/node_modules missing: run charts/tests/run.sh, or "
        f"`npm ci --prefix {NODE_DIR}`"
    )
    res = subprocess.run(
        ["node", str(NODE_DIR / "check.mjs"), command],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, f"node check.mjs {command}: {res.stderr}"
    return json.loads(res.stdout)


def typescript_schema(path: str, type_name: str) -> dict[str, Any]:
    """A JSON Schema generated from a published TypeScript declaration
    (path under node_modules), unknown properties forbidden."""
    return node("schema", {"path": path, "type": type_name})


def volley_binary(name: str = "volley") -> Path:
    """The host's build: VOLLEY_BIN_DIR, else the cargo target dir's debug
    build (run.sh builds it)."""
    if "VOLLEY_BIN_DIR" in os.environ:
        d = Path(os.environ["VOLLEY_BIN_DIR"])
    else:
        d = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "debug"
    p = d / name
    assert p.is_file(), f"{p} missing: build the binaries first (cargo build --bins)"
    return p
