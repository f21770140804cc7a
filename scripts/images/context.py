"""A scratch copy of the build context: the edits a rebuild measurement makes never touch your tree.

Used by make compare (rebuild after an app/ edit and a model change) and make installers
(rebuild after a pin change).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from scripts.variants import ROOT, Variant

# Every path a .dockerignore (the root's, or a variant's Dockerfile.dockerignore) lets in.
CONTEXT_PATHS = ("app", "model", "model-onnx-int8", "sample_data", "scripts/images/trim_venv.py",
                 "scripts/images/copy_python.py", ".dockerignore")


def scratch_context(dest: Path, variants: list[Variant]) -> Path:
    """Copy the build context and the variants' Dockerfiles into dest."""
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
        for name in ("Dockerfile", "Dockerfile.dockerignore"):  # a variant may have its own ignore list
            if (v.dockerfile.parent / name).exists():
                shutil.copy2(v.dockerfile.parent / name, dest / v.name / name)
    return dest
