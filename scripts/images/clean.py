"""Remove what this project built from the engine and the disk (`make clean-images`).

    python -m scripts.images.clean [--dry-run]

- images: every bert-classifier tag of both flavours, the bert-classifier-scratch images of
  compare's rebuilds, make releases' and make peers' images, untagged images carrying the
  project's build label (replaced builds),
  and the stand-in bases (local/*: the next build makes them again, 1-3 min each);
  containers of any of these are removed first;
- the registry and empty-engine containers (and their network and volumes) of a `make compare`
  that was killed too hard to clean up (SIGKILL), and the engines ENGINE=... started with their
  volumes (scripts/infra/engines.py); older versions' scratch engines in /var/tmp
  (a live one belongs to a run in progress and is left alone);
- BuildKit's cache down to BUILD_CACHE_KEEP (default 30GB; 0 empties it).

Official images pulled from a registry are not the project's and stay. Prints what it
freed, as the engine counts it (`docker system df`) plus the scratch engines' folders.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from scripts.images.build import trim_build_cache
from scripts.infra.bases import BASES, INFRA, STAND_IN_LABEL
from scripts.infra.disk import usage
from scripts.infra.engine import PROJECT_LABEL, EngineError, docker, ensure_engine
from scripts.peers import IMAGE_REPO as PEERS_REPO
from scripts.results import human_bytes
from scripts.variants import ARCHES, IMAGE_REPO, RELEASE_REPO

SCRATCH_ROOTS = Path("/var/tmp")


def log(msg: str) -> None:
    print(f"[clean] {msg}", file=sys.stderr, flush=True)


def engine_usage() -> int:
    """Bytes of images + build cache + containers, as `docker system df` reports them."""
    return sum(n for kind, n in usage().items() if kind in {"Images", "Build Cache", "Containers"})


def project_images() -> list[str]:
    """Image IDs or refs this project built: its tags, its stand-ins, its labelled untagged images."""
    ours = {IMAGE_REPO, f"{IMAGE_REPO}-scratch", RELEASE_REPO, PEERS_REPO}
    # Stand-ins of the bases and of the measurement images (registry, dind), for every architecture.
    stand_ins = {b.local_ref(arch) for b in (*BASES, *INFRA) for arch in ("", *ARCHES)}
    refs = []
    for line in docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.splitlines():
        repo = line.rsplit(":", 1)[0]
        if repo in ours or line in stand_ins:
            refs.append(line)
    untagged: set[str] = set()
    for label in (PROJECT_LABEL, STAND_IN_LABEL):  # builds' leftovers, and stand-ins a newer recipe replaced
        found = docker("images", "-q", "--filter", "dangling=true", "--filter", f"label={label}").stdout
        untagged.update(found.split())
    return refs + sorted(untagged)


def remove_images(refs: list[str]) -> None:
    for ref in refs:
        for cid in docker("ps", "-aq", "--filter", f"ancestor={ref}").stdout.split():
            docker("rm", "-f", cid, check=False)
    if refs:
        proc = docker("image", "rm", "-f", *refs, check=False, timeout=900)
        for line in proc.stderr.splitlines():
            log(f"not removed: {line.strip()}")


def remove_infra() -> None:
    """Measurement containers and networks the project labelled (registry, docker:dind)."""
    label = f"label={PROJECT_LABEL}"
    containers = docker("ps", "-aq", "--filter", label).stdout.split()
    if containers:
        log(f"removing {len(containers)} leftover measurement containers")
        docker("rm", "-f", "-v", *containers, check=False, timeout=300)
    networks = docker("network", "ls", "-q", "--filter", label).stdout.split()
    if networks:
        docker("network", "rm", *networks, check=False)
    volumes = docker("volume", "ls", "-q", "--filter", label).stdout.split()
    if volumes:  # ENGINE=...'s engines (scripts/infra/engines.py): their images and build cache
        log(f"removing {len(volumes)} volumes of the project's other engines")
        docker("volume", "rm", *volumes, check=False, timeout=600)


def pid_alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def folder_bytes(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            pass
    return total


def stale_scratch_engines(root: Path = SCRATCH_ROOTS) -> list[Path]:
    """Scratch engine folders whose dockerd is gone (an interrupted compare's leftovers)."""
    return [d for d in sorted(root.glob("scratch-engine-*")) if d.is_dir() and not pid_alive(d / "docker.pid")]


def remove_scratch_engine(folder: Path) -> None:
    for mount in ("data", "exec"):  # overlay mounts and network namespaces it left behind
        subprocess.run(["umount", "-R", str(folder / mount)], capture_output=True, check=False)
    for ns in (folder / "exec" / "netns").glob("*") if (folder / "exec" / "netns").is_dir() else ():
        subprocess.run(["umount", str(ns)], capture_output=True, check=False)
    shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="list what would go, remove nothing")
    args = ap.parse_args(argv)
    try:
        ensure_engine()
        refs = project_images()
        scratch = stale_scratch_engines()
        scratch_bytes = sum(folder_bytes(d) for d in scratch)
        log(f"{len(refs)} project images: {', '.join(refs) or 'none'}")
        log(f"{len(scratch)} leftover scratch engines ({human_bytes(scratch_bytes)})")
        if args.dry_run:
            return 0
        before = engine_usage()
        remove_infra()
        remove_images(refs)
        trim_build_cache(os.environ.get("BUILD_CACHE_KEEP") or "30GB")  # asked for: make clean-images
        freed_engine = before - engine_usage()
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for folder in scratch:
        remove_scratch_engine(folder)
    print(f"freed {human_bytes(max(freed_engine, 0))} in the engine (images, build cache) "
          f"and {human_bytes(scratch_bytes)} of leftover scratch engines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
