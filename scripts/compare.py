"""Measure the five variants side by side (`make compare`).

    python -m scripts.compare [--variants ...] [--skip push,rebuild,diagnose]

Builds what is missing (as `make build-all` does), then per variant: size and layer
count; compressed push size to a local registry on 127.0.0.1 and pull time into an
empty second engine; rebuild time after a one-line app/ edit and after a model change
(made on a scratch copy of the build context, never on your tree); cold start (median
of 3 fresh containers); idle memory; single-sentence latency p50/p95 (200 requests);
hygiene (root, shell, OS packages, wasted bytes ours and dive's).

Writes results/compare.json (every raw figure + the machine), results/compare.md
(table with ratios to naive) and results/compare.png, and prints the table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
from pathlib import Path

from scripts import latency, registry
from scripts.build import BUILD_JSON, BuildError, build_all, build_image, prepare, trim_build_cache
from scripts.diagnose import analyze_image
from scripts.engine import EngineError, docker
from scripts.report import chart, markdown, terminal_rows
from scripts.results import RESULTS, human_bytes, load_json, machine, print_table, save_json
from scripts.smoke import Container, classify, has_shell, process_uids
from scripts.variants import ROOT, Variant, select
from scripts.wheelhouse import serve

STEPS = ("push", "rebuild", "start", "diagnose")
CONTEXT_PATHS = ("app", "model", "sample_data", "scripts/trim_venv.py", ".dockerignore")


def log(msg: str) -> None:
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


def parse_mem(text: str) -> int:
    """'312.4MiB / 23.5GiB' -> bytes of the first figure."""
    value = text.split("/")[0].strip()
    units = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "kB": 1e3, "MB": 1e6, "GB": 1e9, "B": 1}
    for unit, factor in units.items():
        if value.endswith(unit):
            return int(float(value[: -len(unit)]) * factor)
    raise ValueError(f"unrecognised memory figure {text!r}")


def first_classify_seconds(image: str, timeout: float = 180) -> float:
    """From `docker run` to the first 200 answer of /classify, in a fresh container."""
    started = time.perf_counter()
    container = Container(image).start()
    try:
        while time.perf_counter() - started < timeout:
            try:
                if classify(container.base_url, "I love this movie")[0] == 200:
                    return time.perf_counter() - started
            except (OSError, urllib.error.URLError):
                pass
            if not container.running():
                raise EngineError(f"{image} exited during start-up:\n{container.logs()}")
            time.sleep(0.05)
        raise EngineError(f"{image}: no /classify answer within {timeout:.0f}s")
    finally:
        container.remove()


def runtime_figures(variant: Variant, runs: int = 3) -> dict:
    starts = [first_classify_seconds(variant.image) for _ in range(runs)]
    container = Container(variant.image).start()
    try:
        container.wait_ready()
        host, port = container.base_url.removeprefix("http://").split(":")
        figures = latency.measure(host, int(port), requests=200, max_seconds=120)
        time.sleep(2)  # let the request burst settle before reading idle memory
        mem = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", container.id).stdout
        uids = process_uids(container.id)
    finally:
        container.remove()
    return {"cold_start_seconds": round(statistics.median(starts), 2), "cold_start_runs": [round(s, 2) for s in starts],
            "idle_memory_bytes": parse_mem(mem), "runs_as_root": 0 in uids, "shell": has_shell(variant.image),
            **figures}


def push_and_pull(variants: list[Variant]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    with registry.local_registry() as reg, registry.scratch_engine() as scratch:
        log(f"local registry on {reg}; scratch engine for cold pulls is up")
        for v in variants:
            ref = f"{reg}/bert-classifier:{v.name}"
            docker("tag", v.image, ref)
            started = time.perf_counter()
            docker("push", ref, timeout=1800)
            push_seconds = time.perf_counter() - started
            pushed, layers = registry.pushed_bytes(reg, "bert-classifier", v.name)
            pull_seconds = registry.timed_pull(scratch, ref)
            docker("rmi", ref, check=False)
            out[v.name] = {"push_bytes": pushed, "push_seconds": round(push_seconds, 1),
                           "pull_seconds": round(pull_seconds, 1), "pushed_layers": layers}
            log(f"{v.name}: pushed {human_bytes(pushed)} compressed in {push_seconds:.0f}s, "
                f"pulled into an empty engine in {pull_seconds:.0f}s")
    return out


def scratch_context(dest: Path, variants: list[Variant]) -> Path:
    """Copy the build context and the variants' Dockerfiles: edits happen here, not in your tree."""
    for rel in CONTEXT_PATHS:
        src = ROOT / rel
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, target)
    for v in variants:
        (dest / v.name).mkdir(exist_ok=True)
        shutil.copy2(v.dockerfile, dest / v.name / "Dockerfile")
    return dest


def rebuild_times(variants: list[Variant], setup) -> dict[str, dict]:
    out: dict[str, dict] = {v.name: {} for v in variants}
    with tempfile.TemporaryDirectory(prefix="compare-ctx-") as tmp, serve() as url:
        setup.index_url = url
        ctx = scratch_context(Path(tmp), variants)

        def build(v: Variant) -> float:
            return build_image(ctx / v.name / "Dockerfile", f"bert-classifier-scratch:{v.name}", setup,
                               context=ctx, no_cache=False, label=v.name, quiet=True)

        try:
            for v in variants:
                log(f"{v.name}: warming the build cache on the scratch copy ...")
                build(v)
            with (ctx / "app" / "server.py").open("a") as f:
                f.write("# a one-line edit, as a developer would make\n")
            for v in variants:
                out[v.name]["rebuild_app_seconds"] = round(build(v), 1)
                log(f"{v.name}: rebuilt after an app/ edit in {out[v.name]['rebuild_app_seconds']}s")
            (ctx / "model" / "ORIGIN.json").write_text((ctx / "model" / "ORIGIN.json").read_text() + "\n")
            for v in variants:
                out[v.name]["rebuild_model_seconds"] = round(build(v), 1)
                log(f"{v.name}: rebuilt after a model change in {out[v.name]['rebuild_model_seconds']}s")
        finally:
            for v in variants:
                docker("rmi", "-f", f"bert-classifier-scratch:{v.name}", check=False)
            trim_build_cache()
    return out


def hygiene(variant: Variant) -> dict:
    report, _ = analyze_image(variant.image, variant)
    dive = report["dive"]
    return {"os_packages": report["os_packages"], "wasted_bytes": report["wasted_bytes"],
            "dive_wasted_bytes": dive.get("wasted_bytes"), "dive_efficiency": dive.get("efficiency"),
            "dive_ci_passed": dive.get("ci_passed")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=os.environ.get("VARIANTS", ""))
    ap.add_argument("--skip", default="", help=f"comma list of steps to skip: {', '.join(STEPS)}")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    variants = select(args.variants)
    skip = {s for s in args.skip.replace(",", " ").split() if s}
    if skip - set(STEPS):
        print(f"error: unknown step(s) {sorted(skip - set(STEPS))}; choose from {', '.join(STEPS)}", file=sys.stderr)
        return 2
    if not (ROOT / "model" / "config.json").exists():
        print("error: model/ is missing: run `make model` first", file=sys.stderr)
        return 2
    try:
        setup = prepare()
        builds = load_json(BUILD_JSON).get("variants", {})
        missing = [v for v in variants
                   if v.name not in builds or docker("image", "inspect", v.image, check=False).returncode != 0]
        if missing:
            log(f"building what is missing: {', '.join(v.name for v in missing)}")
            builds.update(build_all(missing, setup))
        data: dict[str, dict] = {}
        for v in variants:
            inspect = docker("image", "inspect", "--format", "{{.Size}} {{len .RootFS.Layers}}", v.image).stdout.split()
            data[v.name] = {"image": v.image, "size_bytes": int(inspect[0]), "layers": int(inspect[1]),
                            "build_seconds": builds[v.name]["build_seconds"]}
        if "push" not in skip:
            for name, figures in push_and_pull(variants).items():
                data[name].update(figures)
        if "rebuild" not in skip:
            for name, figures in rebuild_times(variants, setup).items():
                data[name].update(figures)
        for n, v in enumerate(variants, 1):
            if "start" not in skip:
                log(f"({n}/{len(variants)}) {v.name}: cold start x3, memory, latency ...")
                data[v.name].update(runtime_figures(v))
            if "diagnose" not in skip:
                log(f"({n}/{len(variants)}) {v.name}: docker save + layer analysis + dive ...")
                data[v.name].update(hygiene(v))
    except (EngineError, BuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    where = machine()
    title = f"measured {where['measured_at']} on {where['cpu'] or 'unknown CPU'}, {where['cores']} cores"
    save_json(args.out / "compare.json", {"machine": where, "variants": data})
    (args.out / "compare.md").write_text(markdown(data, f"_{title}_\n"))
    chart(data, args.out / "compare.png", title)
    header, rows = terminal_rows(data)
    print_table(header, rows)
    print(f"\nwritten: {args.out / 'compare.json'}, {args.out / 'compare.md'}, {args.out / 'compare.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
