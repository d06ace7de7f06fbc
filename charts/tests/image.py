"""Builds the repository's Dockerfile the way the tests can: offline.

The Dockerfile's `runtime` stage is FROM scratch and copies from two stages,
`build` (the binaries, compiled in a Rust image) and `rootfs` (Debian
packages unpacked in debian:bookworm-slim). No base image can be pulled here,
so both are replaced by host directories (`--build-context NAME=DIR`), filled
the same way:

- build/out/: the binaries built on this host (target/debug by default, or
  VOLLEY_IMAGE_BIN_DIR), stripped as the build stage strips them;
- rootfs/rootfs/: the output of image/rootfs.sh, the script the rootfs stage
  runs, on this Debian host.

Podman builds with the vfs storage driver in a private storage directory
(nothing is added to the host's images) and `--pull=never`. `podman run` is
not available in this sandbox, so the image's files are read from `podman
export` of a created (never started) container.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO

BINARIES = ("volley", "volley-worker")
TAG = "localhost/volley:chart-tests"


def host_bin_dir() -> Path:
    """Where `cargo build --bins` put the binaries (CARGO_TARGET_DIR aware)."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return Path(os.environ.get("VOLLEY_IMAGE_BIN_DIR", target / "debug"))


def unavailable() -> str | None:
    """Why the image cannot be built here, or None."""
    if os.geteuid() != 0:
        return "building the image needs root (podman with vfs storage, tar ownership); run charts/tests/run.sh as root"
    for tool, why in (("podman", "charts/tests/run.sh installs it"), ("apt-get", "image/rootfs.sh downloads Debian packages"),
                      ("dpkg-deb", "image/rootfs.sh unpacks Debian packages"), ("strip", "binutils"),
                      ("chroot", "coreutils")):
        if shutil.which(tool) is None:
            return f"building the image needs `{tool}` ({why})"
    return None


@dataclass
class Image:
    """The built image: its config, its size, and its files unpacked."""

    config: dict
    size_bytes: int
    root: Path  # the exported root filesystem
    build_log: str

    def bin(self, name: str) -> Path:
        return self.root / "usr" / "local" / "bin" / name

    def exec_argv(self, name: str) -> list[str]:
        """Runs the image's binary with the image's own loader and libraries
        (libc6, libgcc-s1 from the image), from outside the image."""
        return [str(self.root / "lib64" / "ld-linux-x86-64.so.2"),
                "--library-path", str(self.root / "lib" / "x86_64-linux-gnu"),
                str(self.bin(name))]


def run(argv: list[str], timeout: float = 300, **kw) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, argv))} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def build(work: Path) -> Image:
    """Builds the Dockerfile's runtime stage from host directories and
    exports it under work/."""
    bin_dir = host_bin_dir()
    if not all((bin_dir / b).is_file() for b in BINARIES):
        run(["cargo", "build", "--bins"], timeout=1800, cwd=REPO)
    out = work / "build" / "out"
    out.mkdir(parents=True)
    for b in BINARIES:
        shutil.copy2(bin_dir / b, out / b)
        run(["strip", str(out / b)])
    run([str(REPO / "image" / "rootfs.sh"), str(work / "rootfs" / "rootfs")])

    storage = work / "storage"
    podman = ["podman", "--storage-driver", "vfs", "--root", str(storage / "root"),
              "--runroot", str(storage / "run")]
    built = run([*podman, "build", "--pull=never", "--target", "runtime",
                 "--build-context", f"build={work / 'build'}",
                 "--build-context", f"rootfs={work / 'rootfs'}",
                 "-f", str(REPO / "Dockerfile"), "-t", TAG, str(REPO)])
    (info,) = json.loads(run([*podman, "image", "inspect", TAG]).stdout)
    container = run([*podman, "create", TAG]).stdout.strip()
    tar = work / "image.tar"
    run([*podman, "export", "-o", str(tar), container])
    run([*podman, "rm", container])
    root = work / "root"
    root.mkdir()
    run(["tar", "-xpf", str(tar), "-C", str(root), "--numeric-owner"])
    tar.unlink()
    # The storage holds a second copy of every layer: only the export is used.
    shutil.rmtree(storage, ignore_errors=True)
    os.chmod(work, 0o755)  # the pods' users reach the binaries through it
    return Image(config=info["Config"], size_bytes=int(info["Size"]), root=root,
                 build_log=built.stdout + built.stderr)


def new_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="volley-image-"))
