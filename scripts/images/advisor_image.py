"""image-advisor's own image, built and then diagnosed by itself: `make advisor-image` -> results/advisor-image.json.

    python -m scripts.images.advisor_image

Builds image-advisor/Dockerfile on the slim Python base (official, or the local stand-in
where Docker Hub cannot be reached), with the wheels it needs served from ./wheelhouse
where containers cannot reach PyPI (the same way the six images are built). Then runs the
image as a user would, with the engine's socket, on itself (--no-trace: its entrypoint is
a command-line tool, not a service) and keeps the figures its report gives.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts.images.build import BuildSetup, image_id, remove_replaced, wheelhouse_mode
from scripts.infra import bases, wheelhouse
from scripts.infra.engine import PROJECT_LABEL, EngineError, docker, ensure_engine
from scripts.results import RESULTS, human_bytes, machine, save_json
from scripts.variants import ROOT

TAG = "image-advisor:latest"
FOLDER = ROOT / "image-advisor"
OUT = RESULTS / "advisor-image.json"
PYTHON = "3.11.2"  # the stand-in slim base's Python (Debian 12): the wheels are resolved for it


def log(msg: str) -> None:
    print(f"[advisor-image] {msg}", file=sys.stderr, flush=True)


def download_wheels() -> None:
    """The tool's dependencies and its build backend, as wheels for the image's Python, into ./wheelhouse."""
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--python-version", PYTHON,
           "--implementation", "cp", "--dest", str(wheelhouse.WHEELHOUSE), "--progress-bar", "off",
           *[x for tag in wheelhouse.manylinux_tags("x86_64") for x in ("--platform", tag)],
           "setuptools>=68", "docker>=7.0", "backports.zstd>=1.0"]
    wheelhouse.WHEELHOUSE.mkdir(exist_ok=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise EngineError(f"pip download failed: {proc.stderr[-1500:]}")
    wheelhouse.write_index(wheelhouse.WHEELHOUSE)


def build(base: str, index_url: str | None) -> float:
    args = ["--build-arg", f"PYTHON_IMAGE={base}"]
    if index_url:
        args += ["--build-arg", f"PIP_INDEX_URL={index_url}", "--build-arg",
                 f"PIP_TRUSTED_HOST={index_url.split('/')[2]}", "--network", "host"]
    log(f"building {TAG} FROM {base} ...")
    old = image_id(TAG)
    docker("build", "--no-cache", "-q", *args, "--label", f"{PROJECT_LABEL}=scripts.images.advisor_image",
           "-t", TAG, str(FOLDER), timeout=900)
    remove_replaced(old, TAG)  # --no-cache builds a new image each time: the one before would linger untagged
    return float(docker("image", "inspect", "--format", "{{.Size}}", TAG).stdout.strip())


def diagnose_itself() -> dict:
    """`docker run --rm -v /var/run/docker.sock:... image-advisor image-advisor:latest --no-trace`, its report."""
    with tempfile.TemporaryDirectory(prefix="advisor-image-") as tmp:
        docker("run", "--rm", "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", f"{tmp}:/report",
               TAG, TAG, "--no-trace", "--name", "self", timeout=600)
        return json.loads((Path(tmp) / "self.json").read_text())


def main(argv: list[str] | None = None) -> int:
    # No options: --help prints what it does, anything else is refused before it measures
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    try:
        ensure_engine()
        base = bases.resolve(only={"PYTHON_SLIM_IMAGE"})["PYTHON_SLIM_IMAGE"]
        use_wheelhouse = wheelhouse_mode() != "off"
        if use_wheelhouse:
            download_wheels()
        setup = BuildSetup({}, "cpu", "", use_wheelhouse=use_wheelhouse)
        with setup.wheels() as url:
            size = build(base, url)
        report = diagnose_itself()
    except (EngineError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    advice = report["advice"]
    data = {"machine": machine(), "image": TAG, "base": base, "size_bytes": int(size),
            "diagnosed": {"total_bytes": report["total_bytes"], "layers": len(report["layers"]),
                          "findings": [[f["rule"], f["bytes"]] for f in advice["findings"]],
                          "addressable_bytes": advice["addressable_bytes"],
                          "composition": report["composition"]["categories"],
                          "python_distributions": report["python_distributions"][:8]}}
    save_json(OUT, data)
    print(f"{TAG}: {human_bytes(size)}; its own report: {len(advice['findings'])} findings, "
          f"{human_bytes(advice['addressable_bytes'])} addressable; written: {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
