"""What each cut toward onnx_image's floor saved: the image built from each commit that made one.

    python -m scripts.studies.onnx_cuts            # `make onnx-cuts`: every commit in CUTS

Each cut is one commit. For each commit in CUTS (and the one before the first), the tree of that
commit is unpacked into a scratch folder (never your checkout) and onnx_image/Dockerfile is built
there with --no-cache, the same bases and wheelhouse as `make build-all`; the wheels that commit's
requirement files pin are added to the wheelhouse first. Each image's size and its start-up phases
(scripts/bench/startup.py, median of START_RUNS=5) are recorded, then the image is removed.
Writes results/onnx-cuts.json; onnx_image/README.md's table is generated from it.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from scripts.bench import startup
from scripts.images.build import BuildError, build_image, image_size, prepare, remove_image
from scripts.infra import wheelhouse
from scripts.infra.engine import EngineError, finish_cleanly_on_sigterm
from scripts.results import RESULTS, human_bytes, machine, save_json
from scripts.variants import BY_NAME, ROOT

# (commit, the cut in a few words, what shows it is safe). The baseline is the first commit's parent.
CUTS: tuple[tuple[str, str, str], ...] = (
    ("0cd7c01", "nested test suites out of the venv (trim_venv's `**/tests`)",
     "never imported: make diagnose's trace; make smoke"),
    ("93a4030", "Debian's numpy (reference BLAS/LAPACK) instead of the wheel's (OpenBLAS)",
     "make smoke; the integration tests (the trace sees numpy imported)"),
    ("2f9125b", "symbol tables stripped from shared objects", "make smoke: every extension module loads"),
    ("1d39106", "bytecode for the stdlib modules the service imports, not the whole stdlib",
     "make smoke; integration test: every stdlib module the trace imports has its .pyc"),
    ("f3438cc", "distroless/cc base with the interpreter and a bytecode-only stdlib copied in",
     "make smoke; the integration tests (trace, compose, swarm)"),
    ("743c100", "numpy past arrays out of the venv (random, fft, polynomial, ma, testing, _simd, stubs)",
     "make smoke (a removed module cannot be imported: any use fails at once); a test runs the trimmed numpy "
     "through the backend's array calls"),
    ("7aff6b6", "only the stdlib modules a trace of the service, HEALTHCHECK and CLI imports (make stdlib-modules)",
     "make smoke (every request kind, the hostile set, HEALTHCHECK, CLI, SIGTERM, worker restart); a missing "
     "module fails its import at once"),
    ("c88dc46", "numpy's C test modules and Cython declarations (.pxd) out of the venv",
     "make smoke; a test runs the trimmed numpy through the backend's array calls"),
    ("ac19728", "distroless/cc's files copied onto scratch without glibc's gconv charset converters",
     "make smoke (Python's codecs are its own; iconv(3) is never called); the integration tests"),
)
VARIANT = BY_NAME["onnx_image"]
TAG = "bert-classifier-cuts:onnx_image"


def log(msg: str) -> None:
    print(f"[onnx-cuts] {msg}", file=sys.stderr, flush=True)


def unpack(commit: str, dest: Path) -> Path:
    """The commit's tree in dest (git archive: tracked files only, as a fresh clone has them)."""
    tar = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as archive:
        archive.extractall(dest, filter="data")
    shutil.copytree(VARIANT.model_dir, dest / VARIANT.model_dir.name)  # built, not committed: the checkout's
    return dest


def add_wheels(tree: Path) -> None:
    """The wheels this commit's ONNX requirement files pin (an earlier pin may be missing)."""
    files = tuple(str(tree / rel) for rel in wheelhouse.ONNX_SET.files)
    wheel_set = wheelhouse.WheelSet(wheelhouse.ONNX_SET.python, files, no_deps=True)
    subprocess.run(wheelhouse.download_command(wheel_set, "x86_64"), check=True, capture_output=True)
    wheelhouse.write_index(wheelhouse.WHEELHOUSE)


def subject(commit: str) -> str:
    return subprocess.run(["git", "log", "-1", "--format=%h %s", commit], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()[:100]


def measure(commit: str, setup, runs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="onnx-cuts-") as tmp:
        tree = unpack(commit, Path(tmp))
        if setup.use_wheelhouse:
            add_wheels(tree)
        with setup.wheels():
            seconds = build_image(tree / VARIANT.name / "Dockerfile", TAG, setup, context=tree, label=commit[:9],
                                  quiet=True)
    phases = startup.medians([startup.one_start(TAG) for _ in range(runs)])
    row = {"commit": subject(commit).split()[0], "size_bytes": image_size(TAG),
           "imports_seconds": phases["interpreter and imports"],
           "cold_start_seconds": round(sum(phases[k] for k in startup.PHASES), 3)}
    remove_image(TAG)
    log(f"{subject(commit)}: {human_bytes(row['size_bytes'])} (built in {seconds:.0f} s), interpreter and imports "
        f"{row['imports_seconds']:.2f} s, cold start {row['cold_start_seconds']:.2f} s")
    return row


def main(argv: list[str] | None = None) -> int:
    # No options: --help prints what it does, anything else is refused before it measures
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    finish_cleanly_on_sigterm()
    if not CUTS:
        print("error: no cuts listed in scripts/studies/onnx_cuts.py", file=sys.stderr)
        return 2
    runs = int(os.environ.get("START_RUNS") or "5")
    try:
        setup = prepare("cpu")  # every base: the commits' Dockerfiles do not all use the same ones
        before = measure(f"{CUTS[0][0]}^", setup, runs)
        rows = []
        for commit, cut, proof in CUTS:
            row = measure(commit, setup, runs)
            rows.append({**row, "cut": cut, "proof": proof, "saved_bytes": (rows[-1] if rows else before)
                         ["size_bytes"] - row["size_bytes"]})
    except (EngineError, BuildError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    data = {"machine": machine(), "runs": runs, "baseline": before, "cuts": rows}
    save_json(RESULTS / "onnx-cuts.json", data)
    print(markdown(data))
    return 0


def markdown(data: dict) -> str:
    def row(cut: str, r: dict, saved: str, proof: str) -> str:
        return (f"| {cut} | {r['commit']} | {human_bytes(r['size_bytes'])} | {saved} | {r['imports_seconds']:.2f} s | "
                f"{r['cold_start_seconds']:.2f} s | {proof} |")

    m = data["machine"]
    lines = [f"_{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('measured_at', '?')[:10]}; start-up: "
             f"median of {data['runs']} starts_", "",
             "| cut | commit | image after | saved | interpreter and imports | cold start | what shows it is safe |",
             "|---|---|---|---|---|---|---|", row("(before the cuts)", data["baseline"], "", "")]
    lines += [row(r["cut"], r, human_bytes(r["saved_bytes"]), r["proof"]) for r in data["cuts"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
