"""The image the chart uses, built from the repository's Dockerfile (its
runtime stage, offline: see image.py) and checked from the inside: the user
the chart's securityContext expects, no shell, the size, and binaries that
run with the image's own libraries as that user.

The multi-host test (test_multihost.py) then runs the chart's pods with the
binaries taken from this same image."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import helm_python as helm
import pytest

from conftest import REPO
from image import BINARIES, Image

SIZE_LIMIT_BYTES = 40 * 1000 * 1000  # 40 MB, as registries and `podman images` count
UID = 65532


def version() -> str:
    return tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["package"]["version"]


def test_image_config(image: Image, chart: helm.Chart) -> None:
    c = image.config
    assert c["User"] == f"{UID}:{UID}"
    psc = chart.values["podSecurityContext"]
    assert (psc["runAsUser"], psc["runAsGroup"]) == (UID, UID), "the chart runs the image's user"
    assert c["Entrypoint"] == ["volley"]
    assert c["WorkingDir"] == "/report"
    env = dict(e.split("=", 1) for e in c["Env"])
    assert env["PATH"] == "/usr/local/bin"
    assert Path(image.root, env["SSL_CERT_FILE"].lstrip("/")).is_file()
    assert c["Labels"]["org.opencontainers.image.version"] == version()
    # Built offline: only the runtime stage ran, nothing was pulled.
    assert "FROM scratch" in image.build_log
    assert "rust:" not in image.build_log and "debian:" not in image.build_log


def test_image_has_no_shell_and_only_the_two_programs(image: Image) -> None:
    root = image.root
    for shell in ("bin/sh", "bin/bash", "bin/dash", "usr/bin/sh", "usr/bin/bash", "bin/busybox"):
        assert not (root / shell).exists() and not (root / shell).is_symlink(), shell
    # Every executable file outside the library directories is one of ours.
    programs = set()
    for dirpath, _, files in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel.parts[:1] in (("lib",), ("lib64",)):
            continue
        for f in files:
            st = os.lstat(Path(dirpath) / f)
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
                programs.add(str(rel / f))
    assert programs == {f"usr/local/bin/{b}" for b in BINARIES}


def test_image_files_for_the_user(image: Image) -> None:
    root = image.root
    passwd = (root / "etc" / "passwd").read_text().splitlines()
    assert f"volley:x:{UID}:{UID}:volley:/report:/sbin/nologin" in passwd
    report = os.stat(root / "report")
    assert (report.st_uid, report.st_gid) == (UID, UID), "the working directory is the user's"
    tmp = os.stat(root / "tmp")
    assert stat.S_IMODE(tmp.st_mode) == 0o1777
    # The system roots workers trust for https:// targets (rustls-native-certs).
    bundle = (root / "etc" / "ssl" / "certs" / "ca-certificates.crt").read_text()
    assert bundle.count("-----BEGIN CERTIFICATE-----") > 100
    assert (root / "usr" / "share" / "volley" / "examples" / "quickstart.toml").is_file()


def test_image_size(image: Image, capsys: pytest.CaptureFixture[str]) -> None:
    sizes = {b: image.bin(b).stat().st_size for b in BINARIES}
    with capsys.disabled():
        print(f"\nimage: {image.size_bytes / 1e6:.1f} MB "
              f"({', '.join(f'{b} {s / 1e6:.1f} MB' for b, s in sizes.items())}; "
              f"binaries from {os.environ.get('VOLLEY_IMAGE_BIN_DIR', 'the debug build')})")
    assert image.size_bytes < SIZE_LIMIT_BYTES, f"{image.size_bytes / 1e6:.1f} MB"


def chrooted(image: Image, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Runs a command inside the image's root filesystem as its user, as a
    container runtime would start it (no shell: the program is exec'd)."""
    return subprocess.run([shutil.which("chroot"), f"--userspec={UID}:{UID}", str(image.root), *argv],
                          capture_output=True, text=True, timeout=timeout,
                          env={"PATH": "/usr/local/bin", "HOME": "/report"}, stdin=subprocess.DEVNULL)


def test_image_binaries_run_inside_it(image: Image) -> None:
    for b in BINARIES:
        r = chrooted(image, f"/usr/local/bin/{b}", "--version")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"{b} {version()}"
    # A whole run inside the image, as its user: the embedded default with
    # the built-in target, writing its report under /tmp.
    scenario = image.root / "tmp" / "smoke.toml"
    scenario.write_text('name = "smoke"\nthresholds = ["success_rate > 0.99"]\n[target]\nbuiltin = true\n'
                        '[[stages]]\nname = "main"\nrate = 50\nduration = "2s"\n')
    r = chrooted(image, "volley", "run", "/tmp/smoke.toml", "--local-workers", "2",
                 "--out", "/tmp/smoke", "--quiet", "--print-report")
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    out = image.root / "tmp" / "smoke"
    report = json.loads((out / "report.json").read_text())
    assert report["requests"]["intended"] == 100
    assert report["requests"]["ok"] == 100
    assert os.stat(out / "report.json").st_uid == UID
    assert (out / "report.md").read_text() in r.stdout


def test_image_loader_runs_the_binaries_from_outside(image: Image) -> None:
    """The multi-host test runs the image's binaries this way: the image's
    loader and libraries, the host's network namespaces."""
    r = subprocess.run([*image.exec_argv("volley-worker"), "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == f"volley-worker {version()}", r.stderr
