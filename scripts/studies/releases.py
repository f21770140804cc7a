"""What each release moves: bytes pushed to a registry and pulled by a node that hold the previous one.

    python -m scripts.studies.releases [--variants onnx_image]    # `make releases`: results/releases.json
    python -m scripts.studies.releases --render                   # the table again from the file

Per variant, from a scratch copy of the build context (your tree is never touched), five
releases in a row, each built with the build cache on unless said otherwise:
  0. the first release: pushed whole to an empty registry, pulled by an empty node;
  1. an app/ edit (one line appended to app/server.py);
  2. one pin changed (gunicorn, in app/requirements-common.txt);
  3. a model change (a new trained part: one weight of the classifier moved by a hair, so every
     form of the model, the int8 one included, has new bytes, and the labels stay as they were);
  4. the same sources rebuilt from an empty build cache (--no-cache), as a CI without a cache does.
Each release is pushed to the registry, which holds every release before it, and pulled by a
node (the empty engine of make compare) that holds the release just before it. Bytes pushed are
the compressed blobs (config and layers) the registry did not hold yet; bytes pulled are the
layers of the new manifest the node's previous image did not have. Both are read from the
manifests, and the push and the pull are timed as they happen.

Under ENGINE=docker26-containerd (a buildx client, the containerd image store) every release is built
reproducibly, as make reproducible builds (SOURCE_DATE_EPOCH, rewrite-timestamp; scripts/images/build.py
build_to_push), and the registry and the node are beside that engine, the node an empty engine of its
kind (scripts/infra/engines.py measurement_infra): results/releases-ENGINE.json. Elsewhere the builds
are plain `docker build`s, whose file and history times differ from build to build: results/releases.json.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

from scripts.bench.installers import PIN_CHANGES, fetch_pins, repin
from scripts.images.build import BuildError, build_image, build_to_push, prepare, trim_build_cache
from scripts.images.context import scratch_context
from scripts.infra import engines, registry
from scripts.infra.engine import EngineError, docker, finish_cleanly_on_sigterm, rewrites_timestamps
from scripts.model.assemble import new_weights
from scripts.model.make_model import TRAINED_PART
from scripts.results import (
    RESULTS_ROOT,
    human_bytes,
    load_json,
    machine,
    markdown_table,
    print_table,
    save_json,
    save_rows,
)
from scripts.variants import RELEASE_REPO, ROOT, Variant, select

ENGINE = os.environ.get("ENGINE", "").strip()
OUT = RESULTS_ROOT / (f"releases-{ENGINE}.json" if ENGINE else "releases.json")
PARTIAL = OUT.with_suffix(".partial.json")  # the rows measured so far, until the run ends
REPO = RELEASE_REPO
CHANGES = ("app/ edit", "one pin changed", "model change", "unchanged, empty build cache")


def log(msg: str) -> None:
    print(f"[releases] {msg}", file=sys.stderr, flush=True)


def blobs(manifest: dict) -> dict[str, int]:
    """digest -> compressed size of the config and every layer a manifest names."""
    entries = [manifest["config"], *manifest.get("layers", [])]
    return {e["digest"]: e["size"] for e in entries}


def moved(new: dict[str, int], held: set[str]) -> tuple[int, int]:
    """(bytes, blob count) of new that held lacks."""
    missing = {d: s for d, s in new.items() if d not in held}
    return sum(missing.values()), len(missing)


def edit(ctx: Path, change: str, nonce: int) -> None:
    """Apply one kind of change to the scratch context."""
    if change == CHANGES[0]:
        with (ctx / "app" / "server.py").open("a") as f:
            f.write(f"# a one-line edit, as a developer would make ({nonce})\n")
    elif change == CHANGES[1]:
        repin(ctx / "app" / "requirements-common.txt", PIN_CHANGES[0])
    elif change == CHANGES[2]:
        new_weights(ctx / TRAINED_PART.relative_to(ROOT), nonce)



def releases_of(v: Variant, ctx: Path, setup, infra: registry.Infra, reproducible: bool) -> dict:
    """The five releases of one variant: what each pushed and pulled, and how long that took."""
    tag_base = v.name
    pushed_so_far: set[str] = set()
    node_holds: set[str] = set()
    previous_ref = ""
    out: dict = {"changes": {}}
    nonce = time.time_ns()
    try:
        for n, change in enumerate(("first release", *CHANGES)):
            edit(ctx, change, nonce)
            tag = f"{tag_base}-r{n}"
            local = f"{REPO}:{tag}"
            build = build_to_push if reproducible else build_image
            # gzip forced: the base's layers too, as a registry serves them (a base loaded with docker load, as the
            # stand-ins are, is kept uncompressed, and would be pushed so)
            archive = ctx.parent / f"{tag}.tar"
            extra = {"archive": archive, "compression": "gzip"} if reproducible else {}
            build(ctx / v.name / "Dockerfile", local, setup, context=ctx, label=f"{v.name} r{n}", quiet=True,
                  no_cache=change == CHANGES[3], **extra)
            archive.unlink(missing_ok=True)
            ref = infra.push_ref(REPO, tag)
            docker("tag", local, ref)
            started = time.perf_counter()
            docker("push", ref, timeout=1800)
            push_seconds = time.perf_counter() - started
            docker("rmi", ref, local, check=False)
            new = blobs(registry.manifest(infra.registry, REPO, tag))
            push_bytes, push_blobs = moved(new, pushed_so_far)
            pull_bytes, pull_blobs = moved(new, node_holds)
            pull_seconds = registry.pull(infra.scratch, infra.pull_ref(REPO, tag))
            if previous_ref:  # the node keeps only the release before this one
                docker("rmi", previous_ref, host=infra.scratch, check=False)
            previous_ref = infra.pull_ref(REPO, tag)
            pushed_so_far |= set(new)
            node_holds = set(new)
            row = {"push_bytes": push_bytes, "push_blobs": push_blobs, "push_seconds": round(push_seconds, 1),
                   "pull_bytes": pull_bytes, "pull_blobs": pull_blobs, "pull_seconds": round(pull_seconds, 1)}
            if n == 0:
                out["first"] = row
            else:
                out["changes"][change] = row
            log(f"{v.name}: {change}: pushed {human_bytes(push_bytes)} ({push_blobs} blobs) in {push_seconds:.0f}s, "
                f"pulled {human_bytes(pull_bytes)} in {pull_seconds:.0f}s")
    finally:
        registry.remove_all(infra.scratch)
    return out


def measure(variants: list[Variant]) -> dict:
    setup = prepare("cpu", variants=variants)
    fetch_pins(setup)
    reproducible = bool(ENGINE) and rewrites_timestamps()
    rows: dict = {}
    with contextlib.ExitStack() as stack:
        stack.enter_context(setup.wheels())
        infra = stack.enter_context(engines.measurement_infra(ENGINE) if ENGINE else registry.measurement_infra())
        for v in variants:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="releases-ctx-"))
            ctx = scratch_context(Path(tmp) / "ctx", [v])
            rows[v.name] = releases_of(v, ctx, setup, infra, reproducible)
            save_json(PARTIAL, {"machine": machine(), "variants": rows})  # a run stopped later keeps these rows
            # each variant adds GBs of build cache: an ENGINE= engine is this project's own, emptied (a full run
            # filled 51 GB and stopped at distroless_image); the default engine's only where BUILD_CACHE_KEEP says
            trim_build_cache("0" if ENGINE else None)
    server = docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    return {"machine": machine(), "engine": server, "measured_at": time.strftime("%Y-%m-%d"),
            "reproducible": reproducible, "variants": rows}


def cell(row: dict | None) -> str:
    if not row:
        return "-"
    return f"{human_bytes(row['push_bytes'])} / {human_bytes(row['pull_bytes'])}"


def table(data: dict) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "first release", *CHANGES]
    body = [[name, cell(r.get("first")), *(cell(r["changes"].get(c)) for c in CHANGES)]
            for name, r in data.get("variants", {}).items()]
    return header, body


def markdown(data: dict) -> str:
    header, body = table(data)
    where = data.get("machine", {})
    how = (" with buildx and the containerd image store, builds reproducible (SOURCE_DATE_EPOCH, rewritten times)"
           if data.get("reproducible") else "")
    lines = [f"_{where.get('cpu', '?')}, {where.get('cores', '?')} cores, Docker {data.get('engine', '?')}{how}; "
             f"measured {data.get('measured_at', '?')}. Each cell: bytes pushed / bytes pulled, compressed_", "",
             *markdown_table(header, body)]
    if data.get("note"):  # how the rows were measured, where not in one run
        lines += ["", f"_{data['note']}_"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=os.environ.get("VARIANTS", ""))
    ap.add_argument("--render", action="store_true", help="measure nothing: print the table from the file")
    args = ap.parse_args(argv)
    if args.render:
        data = load_json(OUT)
    else:
        finish_cleanly_on_sigterm()
        variants = select(args.variants, "cpu")
        try:
            data = measure(variants)
        except (EngineError, BuildError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            if PARTIAL.is_file():
                print(f"the variants measured before that are in {PARTIAL}", file=sys.stderr)
            return 1
        data = save_rows(OUT, data, some=bool(args.variants.strip()))
        PARTIAL.unlink(missing_ok=True)
    print_table(*table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
