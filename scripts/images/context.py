"""A scratch copy of the build context: the edits a rebuild measurement makes never touch your tree.

Used by make compare (rebuild after an app/ edit and a model change) and make installers
(rebuild after a pin change).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from scripts.variants import ROOT, Variant


def context_paths() -> tuple[str, ...]:
    """Every path an ignore file (the root's .dockerignore, a variant's Dockerfile.dockerignore) lets in."""
    ignores = [ROOT / ".dockerignore", *sorted(ROOT.glob("*/Dockerfile.dockerignore"))]
    allowed = {line[1:].strip().rstrip("/") for ignore in ignores for line in ignore.read_text().splitlines()
               if line.startswith("!")}
    return (".dockerignore", *sorted(allowed))


def scratch_context(dest: Path, variants: list[Variant]) -> Path:
    """Copy the build context and the variants' Dockerfiles into dest."""
    for rel in context_paths():
        src = ROOT / rel
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, target)
    for v in variants:
        (dest / v.name).mkdir(exist_ok=True)
        for name in ("Dockerfile", "Dockerfile.dockerignore"):  # a variant may have its own ignore list
            if (v.dockerfile.parent / name).exists():
                shutil.copy2(v.dockerfile.parent / name, dest / v.name / name)
    return dest
