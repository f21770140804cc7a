"""zstd against gzip: the bytes a push of each variant sends, and the seconds its layers take to decompress.

    ENGINE=docker26-containerd python -m scripts.measure.compression [--variants onnx_image]   # make compression
    python -m scripts.measure.compression --render                                          # the table again

Each variant is built twice more (build cache on) as OCI layouts that differ only in how their layers
are compressed: gzip, which every engine reads, and zstd. force-compression=true recompresses the
base's layers too, as a push with that option sends them; SOURCE_DATE_EPOCH and rewrite-timestamp as
in make reproducible. Per compression:
- the bytes a push to an empty registry sends: the config and every layer, from the manifest;
- the seconds to decompress every layer, one after the other on one core here (Python's zlib and
  zstd bindings, both C). A node's pull does this work too, besides downloading and writing files.
Needs a buildx client and the containerd image store (ENGINE=docker26-containerd).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from image_advisor.archive import blob, decompressed, open_source
from image_advisor.errors import AdvisorError

from scripts.images.build import BuildError, build_image, prepare
from scripts.images.context import scratch_context
from scripts.infra.engine import EngineError, docker, finish_cleanly_on_sigterm
from scripts.measure.releases import blobs
from scripts.measure.reproducible import in_order, rewrites_timestamps
from scripts.results import RESULTS_ROOT, human_bytes, load_json, machine, print_table, save_json
from scripts.variants import EPOCH, IMAGE_REPO, Variant, select

OUT = RESULTS_ROOT / "compression.json"
KINDS = ("gzip", "zstd")


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


def measure(variants: list[Variant]) -> dict:
    if not rewrites_timestamps():
        raise EngineError("zstd layouts need a buildx client and the containerd image store: "
                          "run it as ENGINE=docker26-containerd make compression")
    setup = prepare("cpu", variants=variants)
    rows: dict = {}
    with setup.wheels(), tempfile.TemporaryDirectory(prefix="compression-") as tmp:
        ctx = scratch_context(Path(tmp) / "ctx", variants)
        for v in variants:
            rows[v.name] = {}
            for kind in KINDS:
                archive = Path(tmp) / f"{v.name}-{kind}.tar"
                log(f"{v.name}: building the {kind} layout ...")
                output = (f"type=oci,dest={archive},compression={kind},force-compression=true,"
                          "rewrite-timestamp=true")
                build_image(ctx / v.name / "Dockerfile", f"{IMAGE_REPO}-scratch:compression-{v.name}", setup,
                            context=ctx, no_cache=False, quiet=True, label=f"{v.name} {kind}",
                            build_args={"SOURCE_DATE_EPOCH": str(EPOCH)}, output=output)
                rows[v.name][kind] = figures(archive)
                archive.unlink()
                log(f"{v.name}: {kind}: push {human_bytes(rows[v.name][kind]['push_bytes'])}, "
                    f"decompressed in {rows[v.name][kind]['decompress_seconds']:.1f}s")
    server = docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    return {"machine": machine(), "engine": server, "measured_at": time.strftime("%Y-%m-%d"), "variants": rows}


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def table(data: dict) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "gzip push", "zstd push", "zstd / gzip", "gzip decompress", "zstd decompress",
              "zstd / gzip"]
    body = []
    for name, row in in_order(data.get("variants", {})):
        g, z = row["gzip"], row["zstd"]
        body.append([name, human_bytes(g["push_bytes"]), human_bytes(z["push_bytes"]),
                     ratio(z["push_bytes"], g["push_bytes"]), f"{g['decompress_seconds']:.1f} s",
                     f"{z['decompress_seconds']:.1f} s", ratio(z["decompress_seconds"], g["decompress_seconds"])])
    return header, body


def markdown(data: dict) -> str:
    header, body = table(data)
    where = data.get("machine", {})
    lines = [f"_{where.get('cpu', '?')}, {where.get('cores', '?')} cores, Docker {data.get('engine', '?')} with "
             f"buildx, containerd image store; measured {data.get('measured_at', '?')}. Push: config and layers, "
             "compressed; decompress: every layer, one core_", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
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
        if args.variants.strip() and OUT.is_file():  # some variants: their rows over the file's others
            data["variants"] = {**load_json(OUT).get("variants", {}), **data["variants"]}
        save_json(OUT, data)
    print_table(*table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
