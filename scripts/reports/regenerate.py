"""After a command writes results/: every generated block of the docs and every Kubernetes overlay,
rewritten from it, so that the tree's docs show what it measured and `make test` finds them current.
make compare, make build-all and make smoke end with it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from scripts.deploy import kubernetes
from scripts.reports import docs


def regenerate(out: Path) -> list[Path]:
    """The pages and overlays whose text changed; none when out is not the results/ the docs show."""
    if os.environ.get("ENGINE", "").strip() or out.resolve() != (docs.ROOT / "results").resolve():
        print(f"[docs] docs and overlays left as they are: they show results/, not {out}", file=sys.stderr)
        return []
    changed = docs.rewrite() + kubernetes.write()
    names = ", ".join(str(p.relative_to(docs.ROOT)) for p in changed) or "none (the figures they show are unchanged)"
    print(f"rewritten from the new results: {names}")
    return changed
