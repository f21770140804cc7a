"""Measure the variants side by side (`make compare`, `make compare FLAVOR=cuda`).

    python -m scripts.bench.compare [--variants ...] [--flavor cpu|cuda] [--skip push,rebuild,diagnose]

One variant at a time: build it if missing (as `make build-all` does), then: size and layer
count; compressed push size to a throwaway registry (registry:2), pull time into an empty
engine (docker:dind; both scripts/infra/registry.py), and the fresh-node time (that pull,
then `docker run` there until the first 200 from /classify: what a new node or an autoscaler pays); rebuild time after a
one-line app/ edit and after a model change (made on a scratch copy of the build
context, never on your tree); cold start (median of START_RUNS=5 fresh containers, min
and max kept, each split into its phases by scripts/bench/startup.py: results/startup.json
and startup.png); idle memory; single-sentence latency p50/p95 (200 requests); hygiene
(root, shell, OS packages, wasted bytes ours and dive's); p99 under 20 s of load at concurrency 8,
and how many of scripts/traffic/hostile.py's checks pass. FLAVOR=cuda (torch variants only; no GPU
needed: DEVICE=auto falls back to the CPU) adds which CUDA libraries
the service loads against those the image ships (scripts/bench/cuda_libs.py), and removes each
image and its build cache once measured (KEEP_IMAGES=1 keeps them): five CUDA images and
their rebuilds do not fit a small disk at once.

Writes results/compare.json (every raw figure + the machine) and results/startup.json once
every variant is measured: until then each measured row goes to results/compare.partial.json,
so an interrupted run keeps what it measured and leaves the previous results whole. Then
results/compare.md (table with ratios to naive), results/compare.png and
results/composition.png (where each image's bytes are, in the same categories), prints the
table, and rewrites every generated block of the docs and the Kubernetes overlays from the new
figures, naming the files it changed (scripts/reports/docs.py, scripts/deploy/kubernetes.py).
FLAVOR=cuda writes the same files with -cuda in their names.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from image_advisor.errors import AdvisorError
from image_advisor.pictures import stacked_chart

from scripts.advisor.diagnose import analyze_image
from scripts.bench import cuda_libs, installers, memory_peak, startup
from scripts.images.build import (
    BUILD_JSON,
    BuildError,
    build_all,
    build_image,
    image_id,
    keep_images,
    prepare,
    remove_image,
    remove_replaced,
    trim_build_cache,
)
from scripts.images.container import Container, container_memory, fresh_node, has_shell, process_uids
from scripts.images.context import scratch_context
from scripts.infra import disk, registry
from scripts.infra.engine import EngineError, docker, finish_cleanly_on_sigterm
from scripts.model.assemble import new_weights
from scripts.model.make_model import TRAINED_PART
from scripts.reports.regenerate import regenerate
from scripts.reports.report import chart, markdown, terminal_rows
from scripts.results import RESULTS, flavored, human_bytes, load_json, machine, print_table, save_json
from scripts.traffic import hostile, latency
from scripts.variants import BY_NAME, FLAVORS, ROOT, Variant, flavor_from_env, select

STEPS = ("push", "rebuild", "start", "diagnose")
LOAD_SECONDS = 20  # concurrency-8 load per variant (80 % single sentences, 20 % batches of 32)


def log(msg: str) -> None:
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


def start_runs() -> int:
    raw = os.environ.get("START_RUNS", "5").strip() or "5"
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"START_RUNS must be a whole number >= 1, got {raw!r}")
    return int(raw)


def runtime_figures(variant: Variant, runs: int = 5) -> tuple[dict, dict]:
    """(figures, the start-up phases' medians for results/startup.json)."""
    # each cold start split into its phases (docker run to the first 200); their sum is the start
    phased = [startup.one_start(variant.image) for _ in range(runs)]
    starts = [sum(p.values()) for p in phased]
    container = Container(variant.image).start()
    try:
        container.wait_ready()
        host, port = container.base_url.removeprefix("http://").split(":")
        figures = latency.measure(host, int(port), requests=200, max_seconds=120)
        peaks = memory_peak.load_and_heavy_peaks(container, LOAD_SECONDS)  # load at concurrency 8, then heaviest
        loaded = peaks.pop("memory_load")
        outcomes = hostile.run_all(host, int(port))
        time.sleep(2)  # let the request burst settle before reading idle memory
        memory = container_memory(container.id)
        uids = process_uids(container.id)
    finally:
        container.remove()
    return {"cold_start_seconds": round(statistics.median(starts), 2), "cold_start_runs": [round(s, 2) for s in starts],
            "cold_start_min_seconds": round(min(starts), 2), "cold_start_max_seconds": round(max(starts), 2),
            "idle_memory_bytes": memory, "runs_as_root": 0 in uids, "shell": has_shell(variant.image),
            **peaks, "p99_c8_ms": loaded["p99_ms"], "load_c8": loaded,
            "hostile_passed": f"{sum(o.passed for o in outcomes)}/{len(outcomes)}",
            "hostile": hostile.as_dicts(outcomes), **figures}, startup.medians(phased)


def push_and_pull(v: Variant, infra: registry.Infra) -> dict:
    """Push to the throwaway registry, then the fresh-node figures on the empty engine."""
    tag = v.image.split(":", 1)[1]
    ref = infra.push_ref("bert-classifier", tag)
    docker("tag", v.image, ref)
    try:
        started = time.perf_counter()
        docker("push", ref, timeout=1800)
        push_seconds = time.perf_counter() - started
        pushed, layers = registry.pushed_bytes(infra.registry, "bert-classifier", tag)
        pull_seconds, fresh_seconds = fresh_node(infra, infra.pull_ref("bert-classifier", tag))
    finally:
        docker("rmi", ref, check=False)
    log(f"{v.name}: pushed {human_bytes(pushed)} compressed in {push_seconds:.0f}s, "
        f"pulled into an empty engine in {pull_seconds:.0f}s, first answer there after {fresh_seconds:.1f}s")
    return {"push_bytes": pushed, "push_seconds": round(push_seconds, 1), "pull_seconds": round(pull_seconds, 1),
            "pushed_layers": layers, "fresh_node_seconds": round(fresh_seconds, 1)}


def rebuild_times(variants: list[Variant], setup, cache_keep: str | None = None) -> dict[str, dict]:
    out: dict[str, dict] = {v.name: {} for v in variants}
    with tempfile.TemporaryDirectory(prefix="compare-ctx-") as tmp, setup.wheels():
        ctx = scratch_context(Path(tmp), variants)

        def build(v: Variant) -> float:
            tag = f"bert-classifier-scratch:{v.name}"
            old = image_id(tag)
            seconds = build_image(ctx / v.name / "Dockerfile", tag, setup, context=ctx, no_cache=False,
                                  label=v.name, quiet=True)
            remove_replaced(old, tag)  # each rebuild moves the tag: the image before would linger untagged
            return seconds

        try:
            for v in variants:
                log(f"{v.name}: warming the build cache on the scratch copy ...")
                build(v)
            # Each run's edits differ (a nonce): the same edit again would be a build-cache hit, not a rebuild.
            nonce = time.time_ns()
            with (ctx / "app" / "server.py").open("a") as f:
                f.write(f"# a one-line edit, as a developer would make ({nonce})\n")
            for v in variants:
                out[v.name]["rebuild_app_seconds"] = round(build(v), 1)
                log(f"{v.name}: rebuilt after an app/ edit in {out[v.name]['rebuild_app_seconds']}s")
            # A new trained part (one weight moved): each image rebuilds its model from it.
            new_weights(ctx / TRAINED_PART.relative_to(ROOT), nonce)
            for v in variants:
                out[v.name]["rebuild_model_seconds"] = round(build(v), 1)
                log(f"{v.name}: rebuilt after a model change in {out[v.name]['rebuild_model_seconds']}s")
        finally:
            for v in variants:
                docker("rmi", "-f", f"bert-classifier-scratch:{v.name}", check=False)
            trim_build_cache(cache_keep)
    return out


def hygiene(variant: Variant) -> dict:
    report, _ = analyze_image(variant.image, variant)
    dive = report["dive"]
    return {"os_packages": report["os_packages"], "wasted_bytes": report["wasted_bytes"],
            "composition": report["composition"], "largest_distributions": report["python_distributions"][:12],
            "dive_wasted_bytes": dive.get("wasted_bytes"), "dive_efficiency": dive.get("efficiency"),
            "dive_ci_passed": dive.get("ci_passed")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=os.environ.get("VARIANTS", ""))
    ap.add_argument("--flavor", choices=FLAVORS, default=flavor_from_env())
    ap.add_argument("--skip", default="", help=f"comma list of steps to skip: {', '.join(STEPS)}")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--redraw", action="store_true",
                    help="measure nothing: rewrite compare.md and the charts from compare.json")
    args = ap.parse_args(argv)
    run_started = time.perf_counter()
    finish_cleanly_on_sigterm()
    out_json = flavored(args.out / "compare.json", args.flavor)
    if args.redraw:
        saved = load_json(out_json)
        if not saved.get("variants"):
            print(f"error: no measurements in {out_json} to redraw", file=sys.stderr)
            return 2
        write_reports(args.out, saved["machine"], saved["variants"], args.flavor)
        regenerate(args.out)
        return 0
    if os.environ.get("PLATFORM"):
        print("error: make compare measures images on the engine's own platform; for another one, "
              "use make build-all and make smoke with PLATFORM (timings under emulation mean little)",
              file=sys.stderr)
        return 2
    variants = select(args.variants, args.flavor)
    skip = {s for s in args.skip.replace(",", " ").split() if s}
    if skip - set(STEPS):
        print(f"error: unknown step(s) {sorted(skip - set(STEPS))}; choose from {', '.join(STEPS)}", file=sys.stderr)
        return 2
    if os.environ.get("ENGINE") and "push" not in skip:
        # Its registry and empty engine would be containers inside ENGINE's engine: a third level of nesting.
        log(f"ENGINE={os.environ['ENGINE']}: push, pull and fresh-node are measured on the default engine only")
        skip.add("push")
    runs = start_runs()
    keep = keep_images(args.flavor)
    # Measuring some variants (VARIANTS=...) updates their rows and keeps the others' (each row has its time).
    previous = load_json(out_json).get("variants", {}) if args.variants.strip() else {}
    partial = out_json.with_suffix(".partial.json")
    data: dict[str, dict] = {}
    phases: dict[str, dict] = {}
    where = machine()
    unbuilt: list[str] = []
    try:
        setup = prepare(args.flavor, variants=variants)  # the engine first: a fresh machine may have none yet
        unbuilt = [v.name for v in variants if docker("image", "inspect", v.image, check=False).returncode != 0]
        builds = load_json(flavored(BUILD_JSON, args.flavor)).get("variants", {})
        # Its builds and the rebuilds after an edit leave about the images' size each as build cache.
        disk.check_room(disk.room_needed([builds.get(v.name, {}).get("size_bytes") for v in variants]), "make compare",
                        trim=trim_build_cache)
        with contextlib.ExitStack() as stack:
            infra = None if "push" in skip else stack.enter_context(registry.measurement_infra())
            if infra:
                log(f"registry on {infra.registry}; empty engine for cold pulls on {infra.scratch}")
            for n, v in enumerate(variants, 1):
                data[v.name], phased = measure_variant(v, setup, builds, skip, runs, f"({n}/{len(variants)})", infra)
                if phased:
                    phases[v.name] = phased
                save_json(partial, {"machine": where, "variants": data, "startup": phases})
                if not keep:
                    log(f"{v.name}: removing {v.image} and its build cache (KEEP_IMAGES=1 keeps them)")
                    remove_image(v.image)
                    trim_build_cache("0")
    except (EngineError, BuildError, AdvisorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if data:
            print(f"what was measured before that is in {partial}; {out_json.name} is as it was", file=sys.stderr)
        return 1
    rows = merged(previous, data)
    save_json(out_json, {"machine": where, "variants": rows,
                         "full_run": full_run(time.perf_counter() - run_started, rows, unbuilt, skip, where)
                         or load_json(out_json).get("full_run", {})})
    if phases:
        startup.record(phases, flavored(RESULTS / "startup.json", args.flavor))
    partial.unlink(missing_ok=True)
    write_reports(args.out, where, merged(previous, data), args.flavor)
    regenerate(args.out)
    return 0


def full_run(seconds: float, rows: dict, unbuilt: list[str], skip: set[str], where: dict) -> dict:
    """How long a run of the README's `make compare` took, and on what, when this was one: every variant,
    every step, every image built in it. {} otherwise (the previous file's figure and machine stay)."""
    if skip or set(unbuilt) != set(BY_NAME) or set(rows) != set(BY_NAME):
        return {}
    return {"seconds": round(seconds), "build_seconds": round(sum(r["build_seconds"] for r in rows.values()), 1),
            "machine": f"{where.get('cpu', '?')}, {where.get('cores', '?')} cores"}


def merged(previous: dict, data: dict) -> dict:
    """This run's rows over the previous file's, in the variants' own order."""
    rows = {**previous, **data}
    return {name: rows[name] for name in BY_NAME if name in rows}


def measure_variant(v: Variant, setup, builds: dict, skip: set[str], runs: int, step: str,
                    infra: registry.Infra | None) -> tuple[dict, dict]:
    """(every figure for one variant, its start-up phases), building it first when it is not there."""
    if v.name not in builds or docker("image", "inspect", v.image, check=False).returncode != 0:
        log(f"{step} {v.name}: not built yet, building {v.image} ...")
        builds.update(build_all([v], setup))
    inspect = docker("image", "inspect", "--format", "{{.Size}} {{len .RootFS.Layers}}", v.image).stdout.split()
    figures = {"image": v.image, "flavor": v.flavor, "size_bytes": int(inspect[0]), "layers": int(inspect[1]),
               "build_seconds": builds[v.name]["build_seconds"], "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if infra:
        log(f"{step} {v.name}: push, pull into an empty engine, first answer there ...")
        figures.update(push_and_pull(v, infra))
    if "rebuild" not in skip:
        figures.update(rebuild_times([v], setup, cache_keep=None if keep_images(v.flavor) else "0")[v.name])
    phased: dict = {}
    if "start" not in skip:
        log(f"{step} {v.name}: cold start x{runs}, memory, latency ...")
        runtime, phased = runtime_figures(v, runs)
        figures.update(runtime)
    if "diagnose" not in skip:
        log(f"{step} {v.name}: docker save + layer analysis + dive ...")
        figures.update(hygiene(v))
    if v.flavor == "cuda":
        log(f"{step} {v.name}: which CUDA libraries the service loads, of those shipped ...")
        figures["cuda_libs"] = cuda_libs.measure(v)
    return figures, phased


def installers_section() -> str:
    """The pip-against-uv build rows (make installers measures them on a project engine of its own)."""
    if not installers.OUT.exists():
        return ""
    return ("\n### Building layered_image: pip against uv, BuildKit cache mount empty and warm\n\n"
            + installers.markdown(load_json(installers.OUT)))


def write_reports(out: Path, where: dict, data: dict, flavor: str = "cpu") -> None:
    """compare.md, compare.png and composition.png (-<flavor> for cuda) from the figures; prints the table."""
    title = f"measured {where['measured_at']} on {where['cpu'] or 'unknown CPU'}, {where['cores']} cores"
    if flavor != "cpu":
        title = f"{flavor} images, {title}"
    written = [flavored(out / "compare.json", flavor), flavored(out / "compare.md", flavor),
               flavored(out / "compare.png", flavor)]
    extra = cuda_libs.markdown(data) if flavor == "cuda" else installers_section()
    written[1].write_text(markdown(data, f"_{title}_\n") + extra)
    chart(data, written[2], title)
    compositions = {name: d["composition"] for name, d in data.items() if "composition" in d}
    if compositions:
        written.append(flavored(out / "composition.png", flavor))
        stacked_chart(compositions, written[-1], f"where the bytes are, per image ({title})")
    header, rows = terminal_rows(data)
    print_table(header, rows)
    if extra:
        print(extra)
    print(f"\nwritten: {', '.join(str(p) for p in written)}")


if __name__ == "__main__":
    sys.exit(main())
