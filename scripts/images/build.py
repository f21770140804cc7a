"""Build every variant (`make build-all`): cold build time and image size, side by side.

    python -m scripts.images.build [--variants naive_image,slim_image] [--flavor cpu|cuda] [--cached]

Each build runs with --no-cache (cold for the variant's own steps; base images are
local and not re-pulled). Results go to results/build.json and a table is printed.
A failed build names the variant and shows the build's last lines.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scripts.infra import bases, disk, emulation, wheelhouse
from scripts.infra.engine import (
    PROJECT_LABEL,
    EngineError,
    buildkit_client,
    docker,
    ensure_engine,
    finish_cleanly_on_sigterm,
)
from scripts.results import RESULTS, flavored, human_bytes, load_json, print_table, save_json
from scripts.variants import (
    EPOCH,
    FLAVORS,
    PLATFORMS,
    ROOT,
    TORCH_INDEX,
    Variant,
    docker_platform,
    flavor_from_env,
    machine_arch,
    platform_from_env,
    select,
)

BUILD_JSON = RESULTS / "build.json"  # build-cuda.json for FLAVOR=cuda (results.flavored)
STEP_LINE = re.compile(r"^#\d+ (\[|DONE|CACHED|ERROR)")  # BuildKit's plain progress: step starts and ends


def keep_images(flavor: str) -> bool:
    """CUDA images are removed once measured unless KEEP_IMAGES=1; cpu images stay unless KEEP_IMAGES=0."""
    raw = os.environ.get("KEEP_IMAGES", "").strip().lower()
    return flavor == "cpu" if not raw else raw not in {"0", "no", "off", "false"}


def log(msg: str) -> None:
    print(f"[build] {msg}", file=sys.stderr, flush=True)


class BuildError(RuntimeError):
    pass


@dataclass
class BuildSetup:
    """Everything a build needs besides the variant: bases, flavour, where wheels come from."""

    base_args: dict[str, str]
    flavor: str = "cpu"
    platform: str = ""  # --platform for every build ('' = the engine's own)
    cuda_trim: bool = False  # CUDA_TRIM=1: multi_stage_build/distroless_image drop CUDA parts inference never loads
    use_wheelhouse: bool = False  # decided once by prepare() (WHEELHOUSE=auto|on|off)
    index_url: str | None = None  # the wheelhouse's index while it is served

    @contextlib.contextmanager
    def wheels(self) -> Iterator[str | None]:
        """Serve the wheelhouse for the builds inside (when this setup uses one)."""
        if not self.use_wheelhouse:
            yield None
            return
        # ENGINE=...: a container beside that engine serves it (scripts/infra/engines.py).
        served = contextlib.nullcontext(os.environ["ENGINE_WHEELS_URL"]) if os.environ.get("ENGINE_WHEELS_URL") \
            else wheelhouse.serve()
        with served as url:
            self.index_url = url
            try:
                yield url
            finally:
                self.index_url = None

    def build_args(self) -> list[str]:
        args = dict(self.base_args, TORCH_FLAVOR=self.flavor, TORCH_INDEX_URL=TORCH_INDEX[self.flavor])
        if self.cuda_trim and self.flavor == "cuda":
            args["CUDA_TRIM"] = "1"
        if self.index_url:
            # Trusted, so pip caches downloads from this http index as it would from PyPI over https.
            host = self.index_url.split("/")[2]
            args.update(PIP_INDEX_URL=self.index_url, TORCH_INDEX_URL=self.index_url, PIP_TRUSTED_HOST=host)
        return [x for k, v in sorted(args.items()) for x in ("--build-arg", f"{k}={v}")]


def rewritten_output(dest: Path, name: str = "", compression: str = "") -> str:
    """An --output that writes an OCI layout archive at dest, with file and history times rewritten to
    SOURCE_DATE_EPOCH (engine.rewrites_timestamps() says where; the engine's own image exporter cannot
    rewrite them, as it unpacks), the image named name in it, and, given a compression, every layer
    compressed so, the base's too (what a push with that option sends)."""
    parts = ["type=oci", f"dest={dest}", *([f"name={name}"] if name else [])]
    if compression:
        parts += [f"compression={compression}", "force-compression=true", "oci-mediatypes=true"]
    return ",".join([*parts, "rewrite-timestamp=true"])


def build_to_push(dockerfile: Path, tag: str, setup: BuildSetup, archive: Path, *, compression: str = "",
                  **kw) -> float:
    """Build reproducibly into the archive (rewritten_output), then load it into the engine as tag to push:
    the containerd image store keeps the archive's blobs as they are, so the push sends those bytes and
    the manifest keeps its digest. The build's seconds."""
    seconds = build_image(dockerfile, tag, setup, build_args={"SOURCE_DATE_EPOCH": str(EPOCH)},
                          output=rewritten_output(archive, tag, compression), **kw)
    docker("load", "--quiet", "-i", str(archive), timeout=1800)
    return seconds


def build_image(dockerfile: Path, tag: str, setup: BuildSetup, *, context: Path = ROOT,
                no_cache: bool = True, label: str = "", quiet: bool = False,
                build_args: dict[str, str] | None = None, target: str = "", output: str = "") -> float:
    """docker build with progress; returns wall seconds. Raises BuildError with the last lines.

    build_args: more --build-arg pairs, after (so over) the setup's own; target: the stage to build;
    output: an --output (buildx: type=oci,dest=...) instead of an image in the engine; the image alone,
    without buildx's provenance attestation.
    """
    # The host network only to reach the wheelhouse (on 127.0.0.1, or beside ENGINE's engine); else the builder's own.
    network = ["--network=host"] if setup.index_url else []
    platform = ["--platform", setup.platform] if setup.platform else []
    cmd = [buildkit_client(), "build", "--progress=plain", *network, *platform, "-f", str(dockerfile),
           "-t", tag, "--label", f"{PROJECT_LABEL}=scripts.images.build", *setup.build_args()]
    cmd += [x for k, v in sorted((build_args or {}).items()) for x in ("--build-arg", f"{k}={v}")]
    cmd += ["--target", target] if target else []
    cmd += ["--output", output, "--provenance=false"] if output else []
    if no_cache:
        cmd.append("--no-cache")
        disk.check_room(disk.room_needed([image_size(tag) if image_id(tag) else None]),
                        f"a cold build of {label or tag}", trim=trim_build_cache)
    cmd.append(str(context))
    tail: collections.deque[str] = collections.deque(maxlen=40)
    started = time.perf_counter()
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                line = line.rstrip()
                tail.append(line)
                # Step headers and their completion are progress enough; the full log is kept on failure.
                if not quiet and STEP_LINE.match(line):
                    print(f"  [{label or tag}] {line[:150]}", file=sys.stderr, flush=True)
        except BaseException:  # Ctrl-C, SIGTERM: stop the build too, rather than wait for it to finish
            proc.terminate()
            raise
        rc = proc.wait()
    elapsed = time.perf_counter() - started
    if rc != 0:
        raise BuildError(f"build of {label or tag} failed (exit {rc}) after {elapsed:.0f}s; last lines:\n"
                         + "\n".join(tail))
    return elapsed


def image_size(ref: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())


def image_id(ref: str) -> str | None:
    proc = docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def remove_image(ref: str, tries: int = 5) -> bool:
    """Remove the image ref names, tags and layers, and check it is gone.

    A container just removed with --rm may still hold the image for a moment (the daemon
    removes it after the CLI returns), and an untag alone leaves the bytes behind.
    """
    ident = image_id(ref)
    for _ in range(tries if ident else 0):
        docker("image", "rm", "-f", ident, check=False, timeout=600)
        if docker("image", "inspect", ident, check=False).returncode != 0:
            return True
        time.sleep(2)
    if ident:
        log(f"could not remove {ref} ({ident.removeprefix('sha256:')[:12]}): something still uses it")
    return ident is None


def remove_replaced(old_id: str | None, ref: str) -> None:
    """After a rebuild, remove the image the tag pointed to before (it would linger untagged).

    Left alone when something still uses it (a container, another tag): docker refuses, and
    that is the right answer.
    """
    if not old_id or old_id == image_id(ref):
        return
    # Still tagged (a rebuild from the same context can reproduce another tag's image id exactly): keep it;
    # `docker image rm ID` would delete the image under its last tag.
    if docker("image", "inspect", "--format", "{{len .RepoTags}}", old_id, check=False).stdout.strip() != "0":
        return
    removed = docker("image", "rm", old_id, check=False).returncode == 0
    if not removed:
        # Pushed once (make compare), it keeps its registry digest with no tag left: plain rm refuses
        # ("referenced in multiple repositories"). Untagged and in no container, nothing else needs it.
        users = docker("ps", "-aq", "--filter", f"ancestor={old_id}", check=False).stdout.split()
        removed = not users and docker("image", "rm", "-f", old_id, check=False).returncode == 0
    if removed:
        log(f"removed the image {ref} replaced ({old_id.removeprefix('sha256:')[:12]})")


PROBE_BASES = ("PYTHON_SLIM_IMAGE", "PYTHON_IMAGE", "DISTROLESS13_IMAGE", "DISTROLESS_IMAGE")  # bases with python3
INDEX_PROBE = "import urllib.request as u; u.urlopen('https://pypi.org/simple/pip/', timeout=10)"


def wheelhouse_mode() -> str:
    """WHEELHOUSE: auto (default: only where containers cannot reach PyPI), on, or off."""
    raw = (os.environ.get("WHEELHOUSE") or "auto").strip().lower()
    mode = {"1": "on", "yes": "on", "true": "on", "0": "off", "no": "off", "false": "off"}.get(raw, raw)
    if mode not in {"auto", "on", "off"}:
        raise EngineError(f"WHEELHOUSE must be auto, on or off, got {raw!r}")
    return mode


def index_reachable(image: str) -> bool:
    """Can a container of image (one the builds start from) fetch PyPI's index over HTTPS?"""
    proc = docker("run", "--rm", "--entrypoint", "python3", image, "-c", INDEX_PROBE, check=False, timeout=90)
    return proc.returncode == 0


def engine_arch() -> str:
    """The wheel tags' name for the engine's CPU (docker info: x86_64 or aarch64)."""
    return machine_arch(docker("info", "--format", "{{.Architecture}}").stdout.strip())


def wheelhouse_unreachable_reason() -> str | None:
    """Why builds on this engine could not reach a wheelhouse served on this machine's 127.0.0.1."""
    info = docker("info", "--format", "{{.OperatingSystem}}|{{.Name}}").stdout.strip()
    host = os.environ.get("DOCKER_HOST", "")
    if os.environ.get("ENGINE_WHEELS_URL"):
        return None  # ENGINE=...: served beside that engine
    if "Docker Desktop" in info:
        return f"this engine runs in Docker Desktop's VM ({info.split('|')[0]}), whose host network is not this one"
    if host and not host.startswith("unix://"):
        return f"this engine is elsewhere (DOCKER_HOST={host})"
    return None


def prepare(flavor: str = "cpu", platform: str = "", variants: list[Variant] | None = None) -> BuildSetup:
    """Engine, emulation, bases (those the variants' Dockerfiles use; all by default) and wheelhouse."""
    ensure_engine()
    native = engine_arch()
    target = machine_arch(platform) if platform else native
    emulation.ensure(target, native)
    foreign = platform.split("/")[1] if target != native else ""  # stand-ins are built per architecture
    needed = set().union(*(v.base_args for v in variants)) if variants else None
    setup = BuildSetup(bases.resolve(arch=foreign, only=needed), flavor, platform,
                       cuda_trim=os.environ.get("CUDA_TRIM", "").strip() not in {"", "0"})
    mode = wheelhouse_mode()
    if mode == "auto":
        probe_image = next((setup.base_args[a] for a in PROBE_BASES if a in setup.base_args), None) \
            or bases.resolve_one(bases.BY_ARG["PYTHON_SLIM_IMAGE"], arch=foreign)  # none of them has python3
        setup.use_wheelhouse = not index_reachable(probe_image)
        log("WHEELHOUSE=auto: " + ("containers here cannot reach PyPI: builds install from the local wheelhouse"
                                   if setup.use_wheelhouse else "containers reach PyPI: builds install from it"))
    else:
        setup.use_wheelhouse = mode == "on"
    if setup.use_wheelhouse:
        if reason := wheelhouse_unreachable_reason():
            raise EngineError(f"the wheelhouse is served on this machine's 127.0.0.1, which builds cannot reach: "
                              f"{reason}. Build where containers reach PyPI with WHEELHOUSE=off.")
        wheelhouse.download(flavor, target)
    return setup


def trim_build_cache(keep: str | None = None) -> None:
    """Bound BuildKit's cache, only when asked: every cold build adds GBs of snapshots the daemon keeps.

    The cache is the engine's, shared with every other project built on it, so it is left alone
    unless keep is given or BUILD_CACHE_KEEP is set (CI=true implies 30GB). keep is what stays,
    most recently used first; "0" empties it; "off" skips this.
    """
    if keep is None:
        keep = os.environ.get("BUILD_CACHE_KEEP") or ("30GB" if os.environ.get("CI") == "true" else "")
    if keep.lower() in {"off", "no", ""}:
        return
    # --all: without it, prune only touches records no image refers to, and the cache stays (53 GB seen).
    args = ["--all"] if keep == "0" else ["--all", "--keep-storage", keep]
    out = docker("builder", "prune", "-f", *args, check=False, timeout=900).stdout.strip()
    if out:
        log(f"build cache trimmed to {keep}: {out.splitlines()[-1]}")


def build_all(variants: list[Variant], setup: BuildSetup, *, cached: bool = False) -> dict:
    if any((v.flavor, v.platform) != (setup.flavor, setup.platform) for v in variants):
        raise ValueError(f"variants of another flavour or platform than {setup.flavor} {setup.platform} "
                         "passed to build_all")
    path = flavored(BUILD_JSON, setup.flavor, setup.platform)
    results = load_json(path).get("variants", {})
    with setup.wheels():
        for n, variant in enumerate(variants, 1):
            kind = "cached" if cached else "cold"
            log(f"({n}/{len(variants)}) building {variant.name} -> {variant.image} ({kind}) ...")
            old_id = image_id(variant.image)
            seconds = build_image(variant.dockerfile, variant.image, setup, no_cache=not cached, label=variant.name)
            remove_replaced(old_id, variant.image)
            size = image_size(variant.image)
            results[variant.name] = {
                "image": variant.image, "flavor": setup.flavor, "platform": setup.platform or native_platform(),
                "cold": not cached,
                "build_seconds": round(seconds, 1), "size_bytes": size,
                "bases": dict(setup.base_args), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            log(f"{variant.name}: {human_bytes(size)} in {seconds:.0f}s")
            save_json(path, {"variants": results})
    trim_build_cache()
    return results


def native_platform() -> str:
    return docker_platform(engine_arch())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=os.environ.get("VARIANTS", ""))
    ap.add_argument("--flavor", choices=FLAVORS, default=flavor_from_env())
    ap.add_argument("--platform", choices=PLATFORMS, default=platform_from_env(),
                    help="build for another platform (under emulation), e.g. linux/arm64; tags get -arm64")
    ap.add_argument("--cached", action="store_true", help="allow the build cache (not a cold build)")
    args = ap.parse_args(argv)
    finish_cleanly_on_sigterm()
    variants = select(args.variants, args.flavor, args.platform)
    try:
        results = build_all(variants, prepare(args.flavor, args.platform, variants), cached=args.cached)
    except (EngineError, BuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = [[v.name, human_bytes(results[v.name]["size_bytes"]), f"{results[v.name]['build_seconds']:.0f}s"]
            for v in variants]
    print_table(["variant", "image size", "cold build"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
