"""After a command writes results/: every generated block of the docs and every Kubernetes overlay,
rewritten from it, so that the tree's docs show what it measured and `make test` finds them current.
make compare calls it on what it measured (its --out); every other make target that writes results/
runs this module after its command (the Makefile's $(REGENERATE))."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scripts.deploy import kubernetes
from scripts.reports import docs


def regenerate(out: Path) -> list[Path]:
    """The pages and overlays whose text changed; none when out is not the results/ the docs show."""
    if out.resolve() != (docs.ROOT / "results").resolve():  # ENGINE=... sends a run's figures below it
        print(f"[docs] docs and overlays left as they are: they show results/, not {out}", file=sys.stderr)
        return []
    return rewrite_all()


def rewrite_all() -> list[Path]:
    """Every generated block and overlay from results/, naming the files whose text changed."""
    changed = docs.rewrite() + kubernetes.write()
    names = ", ".join(str(p.relative_to(docs.ROOT)) for p in changed) or "none (the figures they show are unchanged)"
    print(f"rewritten from the new results: {names}")
    return changed


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    rewrite_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
