"""zstd against gzip: what a push of each variant sends and how long it takes, and a fresh node's pull and first answer.

    ENGINE=docker26-containerd python -m scripts.studies.compression [--variants onnx_image]   # make compression
    python -m scripts.studies.compression --render                                          # the table again

Each variant is built twice more (build cache on), as OCI archives loaded into the engine, that differ
only in how their layers are compressed: gzip, which every engine reads, and zstd. force-compression=true
recompresses the base's layers too, as a push with that option sends them; SOURCE_DATE_EPOCH and
rewrite-timestamp as in make reproducible. Beside the engine run a registry and an empty engine of the
same kind (scripts/infra/engines.py measurement_infra). Per compression, one run each:
- push: to the registry, emptied first; the bytes it sent (config and every layer, from the manifest)
  and its seconds;
- fresh node: the empty engine pulls the image (seconds) and runs it to its first /classify answer
  (seconds from the pull's start), and is emptied again;
- decompress: the seconds to decompress every layer, one after the other on one core here (Python's
  zlib and zstd bindings, both C), from the built archive: the CPU part of a pull.
Once per run, an engine older than Docker 23 (Debian 12's dockerd 20.10, the stand-in docker:dind)
pulls the first zstd image, and its answer is kept. Needs a buildx client and the containerd image
store (ENGINE=docker26-containerd).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from image_advisor.archive import blob, decompressed, open_source
from image_advisor.errors import AdvisorError

from scripts.images.build import BuildError, build_to_push, prepare
from scripts.images.container import fresh_node
from scripts.images.context import scratch_context
from scripts.infra import engines, registry
from scripts.infra.engine import EngineError, docker, finish_cleanly_on_sigterm, rewrites_timestamps
from scripts.results import RESULTS_ROOT, human_bytes, load_json, machine, markdown_table, print_table, save_rows
from scripts.studies.releases import blobs
from scripts.studies.reproducible import in_order
from scripts.variants import IMAGE_REPO, Variant, select

OUT = RESULTS_ROOT / "compression.json"
KINDS = ("gzip", "zstd")
REPO = "compression"


def log(msg: str) -> None:
    print(f"[compression] {msg}", file=sys.stderr, flush=True)


def figures(archive: Path) -> dict:
    """Push bytes (config and layers), layer bytes before and after compression, and the seconds to
    decompress every layer."""
    with open_source(archive) as source:
        with source.open("index.json") as f:
            digest = json.load(f)["manifests"][0]["digest"]
        with source.open(blob(digest)) as f:
            manifest = json.load(f)
        seconds = 0.0
        unpacked = 0
        for layer in manifest["layers"]:
            name = blob(layer["digest"])
            with source.open(name) as raw:
                started = time.perf_counter()
                reader = decompressed(raw, source.size(name))
                while chunk := reader.read(1 << 20):
                    unpacked += len(chunk)
                seconds += time.perf_counter() - started
    return {"push_bytes": sum(blobs(manifest).values()), "layers": len(manifest["layers"]),
            "layer_bytes": sum(layer["size"] for layer in manifest["layers"]), "unpacked_bytes": unpacked,
            "decompress_seconds": round(seconds, 2),
            "media_types": sorted({layer["mediaType"] for layer in manifest["layers"]})}


def one(v: Variant, kind: str, ctx: Path, setup, infra: registry.Infra, tmp: Path) -> dict:
    """Build v with kind layers, push it to the emptied registry, pull and run it on the empty node."""
    infra.empty_registry()
    local = f"{IMAGE_REPO}-scratch:compression-{v.name}"
    archive = tmp / f"{v.name}-{kind}.tar"
    log(f"{v.name}: building with {kind} layers ...")
    build_to_push(ctx / v.name / "Dockerfile", local, setup, archive, compression=kind, context=ctx,
                  no_cache=False, quiet=True, label=f"{v.name} {kind}")
    row = figures(archive)
    archive.unlink()
    tag = f"{v.name}-{kind}"
    ref = infra.push_ref(REPO, tag)
    docker("tag", local, ref)
    try:
        started = time.perf_counter()
        docker("push", ref, timeout=1800)
        push_seconds = time.perf_counter() - started
    finally:
        docker("rmi", ref, local, check=False)
    pushed, _ = registry.pushed_bytes(infra.registry, REPO, tag)
    if pushed != row["push_bytes"]:
        raise EngineError(f"{v.name}: the registry holds {pushed} bytes, the built image {row['push_bytes']}: "
                          "the push did not send the built blobs")
    pull_seconds, first_answer = fresh_node(infra, infra.pull_ref(REPO, tag))
    row.update(push_seconds=round(push_seconds, 1), pull_seconds=round(pull_seconds, 1),
               fresh_node_seconds=round(first_answer, 1))
    log(f"{v.name}: {kind}: pushed {human_bytes(row['push_bytes'])} in {push_seconds:.1f}s; a fresh node pulled it "
        f"in {pull_seconds:.1f}s and answered {first_answer:.1f}s after the pull began; "
        f"decompressed in {row['decompress_seconds']:.1f}s on one core")
    return row


def measure(variants: list[Variant]) -> dict:
    engine = os.environ.get("ENGINE", "")
    if not engine or not rewrites_timestamps():
        raise EngineError("zstd images need a buildx client and the containerd image store: "
                          "run it as ENGINE=docker26-containerd make compression")
    setup = prepare("cpu", variants=variants)
    rows: dict = {}
    old: dict = {}
    with contextlib.ExitStack() as stack:
        stack.enter_context(setup.wheels())
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="compression-")))
        infra = stack.enter_context(engines.measurement_infra(engine))
        ctx = scratch_context(tmp / "ctx", variants)
        for v in variants:
            rows[v.name] = {kind: one(v, kind, ctx, setup, infra, tmp) for kind in KINDS}
            if not old:  # the registry still holds this variant's zstd image
                version, answer = engines.pull_message(engine, infra, infra.pull_ref(REPO, f"{v.name}-zstd"))
                old = {"engine": version, "image": v.name, "pull": answer}
                log(f"Docker {version} pulling {v.name} with zstd layers: {answer}")
    server = docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    return {"machine": machine(), "engine": server, "measured_at": time.strftime("%Y-%m-%d"), "variants": rows,
            "older_engine": old}


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


# (column, the figure, how it is written): each cell is "gzip / zstd (zstd's ratio to gzip)"
COLUMNS = (
    ("push", "push_bytes", human_bytes),
    ("push time", "push_seconds", lambda s: f"{s:.1f} s"),
    ("fresh node: pull", "pull_seconds", lambda s: f"{s:.1f} s"),
    ("fresh node: first answer", "fresh_node_seconds", lambda s: f"{s:.1f} s"),
    ("decompress, one core", "decompress_seconds", lambda s: f"{s:.1f} s"),
)


def pair(g: dict, z: dict, key: str, fmt) -> str:
    if key not in g or key not in z:
        return "-"
    return f"{fmt(g[key])} / {fmt(z[key])} ({ratio(z[key], g[key])})"


def table(data: dict) -> tuple[list[str], list[list[str]]]:
    header = ["variant", *(f"{name}: gzip / zstd" for name, _, _ in COLUMNS)]
    body = [[name, *(pair(row["gzip"], row["zstd"], key, fmt) for _, key, fmt in COLUMNS)]
            for name, row in in_order(data.get("variants", {}))]
    return header, body


def markdown(data: dict) -> str:
    header, body = table(data)
    where = data.get("machine", {})
    lines = [f"_{where.get('cpu', '?')}, {where.get('cores', '?')} cores, Docker {data.get('engine', '?')} with "
             f"buildx, containerd image store; measured {data.get('measured_at', '?')}. Push: config and layers, "
             "compressed, to an empty registry; fresh node: an empty engine of the same kind pulls, runs, and is "
             "asked until /classify answers (seconds from the pull's start); decompress: every layer, one core. "
             "One run each; in brackets, zstd's ratio to gzip_", "",
             *markdown_table(header, body)]
    if old := data.get("older_engine"):
        lines += ["", f"Docker {old['engine']} pulling {old['image']} with zstd layers: `{old['pull']}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=os.environ.get("VARIANTS", ""))
    ap.add_argument("--render", action="store_true", help="build nothing: print the table from the file")
    args = ap.parse_args(argv)
    if args.render:
        data = load_json(OUT)
    else:
        finish_cleanly_on_sigterm()
        try:
            data = measure(select(args.variants, "cpu"))
        except (EngineError, BuildError, AdvisorError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        data = save_rows(OUT, data, some=bool(args.variants.strip()))
    print_table(*table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
