"""docker-bake.hcl, written from scripts/variants.py: `docker buildx bake` builds what make build-all builds.

    python -m scripts.images.bake            # rewrite docker-bake.hcl
    python -m scripts.images.bake --check    # exit 1 if it differs from the variants (make test runs this)

Each target is one variant: its folder's Dockerfile (and the Dockerfile.dockerignore beside it,
which BuildKit reads on its own), the repository as context, the tag make build-all gives it.
Bases and indexes keep their Dockerfile defaults (python:3.11, PyPI, the PyTorch CPU index).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scripts.variants import ROOT, VARIANTS

BAKE_FILE = ROOT / "docker-bake.hcl"
HEADER = """\
# The six images of the walk, in order: `docker buildx bake` builds them all (BuildKit runs the
# model stages they share once), `docker buildx bake onnx_image` one of them.
# Written by `python -m scripts.images.bake` from scripts/variants.py, as make build-all builds them.
"""


def render() -> str:
    names = ", ".join(f'"{v.name}"' for v in VARIANTS)
    blocks = [HEADER, f"group \"default\" {{\n  targets = [{names}]\n}}\n"]
    for v in VARIANTS:
        blocks.append(
            f'target "{v.name}" {{\n'
            f'  context    = "."\n'
            f'  dockerfile = "{v.dockerfile.relative_to(ROOT)}"\n'
            f'  tags       = ["{v.image}"]\n'
            "}\n"
        )
    return "\n".join(blocks)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only say whether the file is current")
    ap.add_argument("--file", type=Path, default=BAKE_FILE)
    args = ap.parse_args(argv)
    text = render()
    current = args.file.read_text() if args.file.is_file() else ""
    if args.check:
        if current != text:
            print(f"{args.file.name} differs from scripts/variants.py: run python -m scripts.images.bake",
                  file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.file.write_text(text)
        print(f"wrote {args.file.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
