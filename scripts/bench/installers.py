"""pip against uv in layered_image's dependency step: build times, cache empty and warm (`make installers`).

    python -m scripts.bench.installers            # on ENGINE (default docker26): results/installers.json
    python -m scripts.bench.installers --render   # the table again from results/installers.json

layered_image installs its dependencies with uv and a BuildKit cache mount for uv's cache;
the same Dockerfile at PIP_COMMIT did it with pip and a cache mount for pip's. Both are built,
from a scratch copy of the build context (scripts/images/context.py), through these steps:
  1. cold, every cache empty: `docker builder prune --all`, then a --no-cache build;
  2. cold, cache mount warm: --no-cache again (a cache mount outlives --no-cache);
  3. an app/ edit, layer cache on: the dependency layer is reused;
  4. one pin changed (gunicorn), cache mount warm: the dependency layer runs again;
  5. another pin change with the cache mounts emptied (`docker builder prune --filter type=exec.cachemount`).
Emptying the build cache touches the whole engine's, so this runs on one of the project's own
engines (scripts/infra/engines.py), never the default one. Where builds install from the local
wheelhouse (no PyPI in containers), every download is a local one: what a cache saves in
downloads from PyPI is not in these figures, only what it saves in resolving and unpacking.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.images.build import BuildError, build_image, image_id, image_size, prepare, remove_replaced
from scripts.images.context import scratch_context
from scripts.infra import engines, wheelhouse
from scripts.infra.engine import EngineError, docker, finish_cleanly_on_sigterm
from scripts.results import human_bytes, load_json, machine, save_json
from scripts.variants import BY_NAME, ROOT

PIP_COMMIT = "4bc7736"  # the last commit whose layered_image/Dockerfile installs with pip
ENGINE = "docker26"
PIN = "gunicorn"  # pinned in app/requirements-common.txt; small, pure Python, no other pin depends on its version
PIN_CHANGES = ("27.0.0", "26.2.0")  # steps 4 and 5: each a version the layer cache has not seen
STEPS = ("cold, caches empty", "cold, cache mount warm", "app/ edit", "one pin changed, cache mount warm",
         "one pin changed, cache mount empty")
OUT = ROOT / "results" / "installers.json"  # not under results/engines/: the parent process writes it


def log(msg: str) -> None:
    print(f"[installers] {msg}", file=sys.stderr, flush=True)


def repin(requirements: Path, version: str) -> None:
    text = requirements.read_text()
    new = re.sub(rf"(?m)^{PIN}==\S+", f"{PIN}=={version}", text)
    if new == text:
        raise EngineError(f"{requirements.name} has no {PIN}== pin to change")
    requirements.write_text(new)


def fetch_pins(setup) -> None:
    """The alternative pins into the wheelhouse, when the builds install from it."""
    if not setup.use_wheelhouse:
        return
    for version in PIN_CHANGES:
        if list(wheelhouse.WHEELHOUSE.glob(f"{PIN}-{version}-*.whl")):
            continue
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                               "--dest", str(wheelhouse.WHEELHOUSE), f"{PIN}=={version}"],
                              capture_output=True, text=True, check=False)
        if proc.returncode:
            raise EngineError(f"cannot fetch {PIN}=={version} into the wheelhouse: {proc.stderr.strip()[-500:]}")
    wheelhouse.write_index(wheelhouse.WHEELHOUSE)


def pip_baseline(now: str) -> str:
    """layered_image/Dockerfile at PIP_COMMIT, with the model from today's model stage (that commit copied a
    host-built model/ folder, which no build context holds any more): only the dependency step differs."""
    old = subprocess.run(["git", "show", f"{PIP_COMMIT}:layered_image/Dockerfile"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    stage = re.search(r"(?ms)^# The classifier, built .*?(?=^FROM \$\{PYTHON_IMAGE\} AS build$)", now)
    if not stage or "COPY model /opt/model\n" not in old:
        raise EngineError("layered_image/Dockerfile has no model stage to give the pip baseline")
    old = old.replace("COPY model /opt/model\n", "COPY --from=model /opt/model /opt/model\n")
    # Today's epoch lines at the head of the build stage and today's runtime stage (SOURCE_DATE_EPOCH before
    # useradd), which that commit predates: they are not what the comparison is about.
    epoch = re.search(r"(?m)^FROM \$\{PYTHON_IMAGE\} AS build\n((?:#.*\n)*ARG SOURCE_DATE_EPOCH=\d+\n)", now)
    runtime = now[now.rindex("FROM ${PYTHON_SLIM_IMAGE}"):]
    old = old[:old.rindex("FROM ${PYTHON_SLIM_IMAGE}")] + runtime
    head = "FROM ${PYTHON_IMAGE} AS build\n" + (epoch.group(1) if epoch else "")
    return old.replace("FROM ${PYTHON_IMAGE} AS build\n", stage.group(0) + head, 1)


def steps(dockerfile: Path, ctx: Path, setup, installer: str) -> dict:
    """The five builds of one installer's Dockerfile; seconds each, and the image's size."""
    tag = f"bert-classifier-scratch:layered-{installer}"
    requirements = ctx / "app" / "requirements-common.txt"
    original = requirements.read_text()
    out: dict = {"seconds": {}}

    def build(step: str, no_cache: bool) -> None:
        old = image_id(tag)
        seconds = build_image(dockerfile, tag, setup, context=ctx, no_cache=no_cache, label=f"{installer}", quiet=True)
        remove_replaced(old, tag)  # each build moves the tag: the image before would linger untagged
        out["seconds"][step] = round(seconds, 1)
        log(f"{installer}: {step}: {seconds:.1f} s")

    try:
        docker("builder", "prune", "--all", "--force", timeout=900)
        build(STEPS[0], no_cache=True)
        out["size_bytes"] = image_size(tag)
        build(STEPS[1], no_cache=True)
        with (ctx / "app" / "server.py").open("a") as f:
            f.write(f"# a one-line edit ({time.time_ns()})\n")
        build(STEPS[2], no_cache=False)
        repin(requirements, PIN_CHANGES[0])
        build(STEPS[3], no_cache=False)
        docker("builder", "prune", "--force", "--filter", "type=exec.cachemount", timeout=900)
        repin(requirements, PIN_CHANGES[1])
        build(STEPS[4], no_cache=False)
    finally:
        requirements.write_text(original)
        docker("rmi", "-f", tag, check=False)
    return out


def measure_here() -> dict:
    """Both installers on the engine this process is pointed at (the child of main)."""
    variant = BY_NAME["layered_image"]
    setup = prepare("cpu", variants=[variant])
    fetch_pins(setup)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="installers-") as tmp, setup.wheels():
        ctx = scratch_context(Path(tmp) / "ctx", [variant])
        pip_dockerfile = Path(tmp) / "Dockerfile.pip"
        pip_dockerfile.write_text(pip_baseline(variant.dockerfile.read_text()))
        for installer, dockerfile in (("pip", pip_dockerfile), ("uv", ctx / variant.name / "Dockerfile")):
            results[installer] = steps(dockerfile, ctx, setup, installer)
    docker("builder", "prune", "--all", "--force", timeout=900)  # leave the engine's cache as empty as found
    server = docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    return {"engine": os.environ.get("ENGINE", ""), "server": server, "pip_commit": PIP_COMMIT,
            "wheelhouse": setup.use_wheelhouse, "installers": results}


def markdown(data: dict) -> str:
    found = [i for i in ("pip", "uv") if i in data.get("installers", {})]
    if not found:
        return "(no results/installers.json: run make installers)\n"
    lines = ["| layered_image build | " + " | ".join(found) + " |", "|---|" + "---|" * len(found)]
    runs = [data["installers"][i] for i in found]
    for step in STEPS:
        lines.append(f"| {step} | " + " | ".join(f"{r['seconds'][step]:.1f} s" for r in runs) + " |")
    lines.append("| image size | " + " | ".join(human_bytes(r["size_bytes"]) for r in runs) + " |")
    m = data.get("machine", {})
    where = "from the local wheelhouse" if data.get("wheelhouse") else "from PyPI"
    return ("\n".join(lines) + f"\n\n_Docker {data.get('server', '')} ({data.get('engine', '')}), wheels {where}; "
            f"{m.get('cpu', '')}, {m.get('cores', '')} cores, {m.get('measured_at', '')[:10]}; `make installers`_\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--render", action="store_true", help="print the table from results/installers.json")
    ap.add_argument("--here", action="store_true", help=argparse.SUPPRESS)  # the child, on the engine
    args = ap.parse_args(argv)
    finish_cleanly_on_sigterm()
    try:
        if args.here:
            print(json.dumps(measure_here()))
            return 0
        if not args.render:
            os.environ["VARIANTS"] = "layered_image"  # the stand-ins the engine needs: layered_image's bases
            env = {**os.environ, **engines.up(os.environ.get("ENGINE") or ENGINE)}
            proc = subprocess.run([sys.executable, "-m", "scripts.bench.installers", "--here"], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, text=True, check=False)
            if proc.returncode:
                raise EngineError("the builds on the engine failed (above)")
            save_json(OUT, {**json.loads(proc.stdout), "machine": machine()})
    except (EngineError, BuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(markdown(load_json(OUT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
