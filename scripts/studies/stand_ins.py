"""The stand-in bases beside the official images they replace: sizes here against published figures (`make stand-ins`).

    python -m scripts.studies.stand_ins            # every stand-in the engine holds: results/stand-ins.json
    python -m scripts.studies.stand_ins --render   # the table again from results/stand-ins.json

Each stand-in (scripts/infra/bases.py) is sized as `docker image ls` prints it and as a push would send
it: every layer of its `docker save` archive gzip-compressed at level 6, the level of the compressor a
push uses (Go's gzip.DefaultCompression). The official images' compressed sizes are what
docker-library/repo-info publishes for linux/amd64 ("Total Size"), copied into PUBLISHED with the page
and its date: no registry is reachable from the machine these figures come from.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path
from typing import IO, NamedTuple

from image_advisor.archive import decompressed, image_manifest, open_source
from image_advisor.engine import saved_image
from image_advisor.errors import AdvisorError

from scripts.infra.bases import BASES, Base
from scripts.infra.engine import EngineError, docker, ensure_engine
from scripts.results import RESULTS, human_bytes, load_json, machine, save_json

OUT = RESULTS / "stand-ins.json"
GZIP_LEVEL = 6  # what Go's gzip.DefaultCompression means, the compressor behind `docker push`
BLOCK = 1 << 20


class Published(NamedTuple):
    compressed_bytes: int  # repo-info's "Total Size" of the linux/amd64 image ("compressed transfer size")
    source: str


PUBLISHED = {  # build arg -> the official image's compressed size where a source readable here publishes it
    "PYTHON_IMAGE": Published(379_021_228, "docker-library/repo-info `repos/python/remote/3.11-bookworm.md` "
                                           "(amd64, 2026-09-19)"),
    "PYTHON_SLIM_IMAGE": Published(47_790_358, "docker-library/repo-info "
                                               "`repos/python/remote/3.11-slim-bookworm.md` (amd64, 2026-08-25)"),
    "DEBIAN_IMAGE": Published(28_232_590, "docker-library/repo-info `repos/debian/remote/bookworm-slim.md` "
                                          "(amd64, 2026-08-04)"),
}
UNPUBLISHED = "not published in a source readable from here"


def log(msg: str) -> None:
    print(f"[stand-ins] {msg}", file=sys.stderr, flush=True)


def gzip_size(stream: IO[bytes]) -> int:
    """The bytes of stream gzip-compressed at GZIP_LEVEL, counted without keeping them."""
    packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # wbits 31: a gzip header and trailer
    total = 0
    while block := stream.read(BLOCK):
        total += len(packer.compress(block))
    return total + len(packer.flush())


def layers_compressed(archive: Path) -> tuple[int, int]:
    """(layers, their bytes gzip-compressed) of a saved archive, each layer read as its uncompressed tar
    (a layer kept compressed, gzip or zstd, as the containerd store may keep it, is unpacked first)."""
    with open_source(archive) as source:
        _, refs = image_manifest(source)
        total = 0
        for ref in refs:
            with source.open(ref.name) as raw:
                total += gzip_size(decompressed(raw, source.size(ref.name)))
    return len(refs), total


def figures(ref: str) -> dict:
    """How big ref is in the engine and as a push would send its layers."""
    size = int(docker("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())
    listed = docker("image", "ls", "--format", "{{.Size}}", ref).stdout.split()
    with saved_image(ref) as archive:
        layers, compressed = layers_compressed(archive)
    return {"size_bytes": size, "image_ls": listed[0] if listed else "", "layers": layers,
            "compressed_bytes": compressed}


def measure(bases: tuple[Base, ...] = BASES) -> dict:
    ensure_engine()
    data = load_json(OUT)
    rows = data.get("bases", {})
    for base in bases:
        ref = base.local_ref()
        if docker("image", "inspect", ref, check=False).returncode:
            log(f"{ref}: not in this engine (make bases builds it); its row is kept as it was")
            continue
        log(f"{ref}: docker save and gzip of each layer ...")
        rows[base.arg] = {"official": base.official, "stand_in": ref, **figures(ref),
                          "measured_at": time.strftime("%Y-%m-%d")}
    data = {"machine": machine(), "gzip_level": GZIP_LEVEL,
            "bases": {b.arg: rows[b.arg] for b in BASES if b.arg in rows}}
    save_json(OUT, data)
    return data


def markdown(data: dict) -> str:
    lines = ["| official base | stand-in | stand-in size (`docker image ls`) | stand-in compressed | "
             "official compressed | ratio | official figure from |", "|---|---|---|---|---|---|---|"]
    for arg, row in data.get("bases", {}).items():
        published = PUBLISHED.get(arg)
        if published:
            official = human_bytes(published.compressed_bytes)
            ratio = f"{row['compressed_bytes'] / published.compressed_bytes:.2f}"
            source = published.source
        else:
            official, ratio, source = "n/a", "n/a", f"{UNPUBLISHED} (stand-in measured {row['measured_at']})"
        lines.append(f"| `{row['official']}` | `{row['stand_in']}` | {human_bytes(row['size_bytes'])} | "
                     f"{human_bytes(row['compressed_bytes'])} | {official} | {ratio} | {source} |")
    m = data.get("machine", {})
    return ("\n".join(lines) + f"\n\n_Stand-ins as built here, each layer gzip level {data.get('gzip_level')}; "
            f"{m.get('cpu', '')}, {m.get('cores', '')} cores, {m.get('measured_at', '')[:10]}; `make stand-ins`_\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--render", action="store_true", help="print the table from results/stand-ins.json")
    args = ap.parse_args(argv)
    try:
        data = load_json(OUT) if args.render else measure()
    except (EngineError, AdvisorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(markdown(data), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
