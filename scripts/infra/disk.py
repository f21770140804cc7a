"""Room on the disk an engine on this machine writes to, checked before the builds that fill it.

A cold build leaves its layers behind as BuildKit cache, about as large as the image it
replaced, and a full disk surfaces as pip's "No space left on device" in the middle of a
build. So each cold build first checks that the engine's data root has about twice the size
of the image it makes (as the engine holds it, or a default for one it does not hold), trims
the build cache where that was asked for (BUILD_CACHE_KEEP, CI=true) when the room is short,
and stops in one line, naming the cache and the command that trims it, when it still is.
An engine elsewhere (Docker Desktop's VM, DOCKER_HOST=tcp://..., ENGINE=...) keeps its disk
out of reach: no check there. DISK_CHECK=off skips it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from scripts.infra.engine import EngineError, docker
from scripts.results import human_bytes

UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
# A build of an image not built before: the size of the largest of the six.
UNKNOWN_IMAGE_BYTES = 4_000_000_000


def parse_size(text: str) -> int:
    """`docker system df`'s sizes ('29.39GB', '0B', '512kB') in bytes."""
    m = re.fullmatch(r"([\d.]+)\s*([kKMGT]?B)", text.strip())
    if not m:
        raise ValueError(f"unrecognised size {text!r}")
    return int(float(m.group(1)) * UNITS[m.group(2)])


def usage() -> dict[str, int]:
    """Bytes per kind (Images, Containers, Local Volumes, Build Cache), as `docker system df` counts them."""
    rows = (json.loads(line) for line in docker("system", "df", "--format", "{{json .}}").stdout.splitlines())
    return {row["Type"]: parse_size(row["Size"]) for row in rows}


def engine_root_here() -> Path | None:
    """The engine's data root, when the engine runs on this machine and the root is a folder here."""
    host = os.environ.get("DOCKER_HOST", "").strip()
    if host and not host.startswith("unix://"):
        return None
    root = docker("info", "--format", "{{.DockerRootDir}}", check=False).stdout.strip()
    return Path(root) if root and Path(root).is_dir() else None


def room_needed(image_sizes: list[int | None]) -> int:
    """Twice the images a cold build makes: their layers, and the cache that keeps them after a rebuild."""
    return 2 * sum(size or UNKNOWN_IMAGE_BYTES for size in image_sizes)


def check_room(needed: int, doing: str, trim: Callable[[], None] | None = None) -> None:
    """Raise one line when the engine's disk here has less than needed bytes free (after trim(), when short)."""
    if os.environ.get("DISK_CHECK", "").strip().lower() in {"off", "0", "no"}:
        return
    root = engine_root_here()
    if root is None:
        return
    free = shutil.disk_usage(root).free
    if free < needed and trim is not None:
        trim()
        free = shutil.disk_usage(root).free
    if free >= needed:
        return
    cache = usage().get("Build Cache", 0)
    trim = (f"; the engine's build cache holds {human_bytes(cache)}: `docker builder prune --all --keep-storage "
            "30GB` trims it, `make clean-images` also removes the project's images") if cache else ""
    raise EngineError(f"{human_bytes(free)} free on {root}, and {doing} needs about {human_bytes(needed)}{trim} "
                      "(DISK_CHECK=off skips this check)")
