"""Find or start a Docker engine and pick a client that can do BuildKit builds.

    python -m scripts.infra.engine        # `make engine`

Order: an engine that already answers is used as is. Otherwise, if `dockerd`
is missing and we are root on Debian, `apt-get install docker.io` brings it;
then dockerd is started in the background (log: .cache/dockerd.log).

BuildKit: a client with the buildx plugin builds with BuildKit directly; a
client older than 23.0 uses the daemon's built-in BuildKit with
DOCKER_BUILDKIT=1. Newer clients without buildx can do neither, so we look
for another client (Debian's /usr/bin/docker) before giving up.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERD_LOG = ROOT / ".cache" / "dockerd.log"
CANDIDATE_CLIENTS = ("docker", "/usr/bin/docker", "/usr/local/bin/docker")
# On every image and container the project makes, so `make clean-images` finds them even once untagged.
PROJECT_LABEL = "org.bert-classifier.built-by"


class EngineError(RuntimeError):
    """Something the user must fix; the message says what."""


def log(msg: str) -> None:
    print(f"[engine] {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _client_version(client: str) -> tuple[int, ...] | None:
    try:
        out = _run([client, "version", "--format", "{{.Client.Version}}"], timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    try:
        return tuple(int(p) for p in out.split("+")[0].split("~")[0].split(".")[:2])
    except ValueError:
        return None


def _has_buildx(client: str) -> bool:
    try:
        return _run([client, "buildx", "version"], timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@functools.cache
def buildkit_client() -> str:
    """Path of a docker client whose `build` uses BuildKit (with DOCKER_BUILDKIT=1 set)."""
    seen: set[str] = set()
    for name in CANDIDATE_CLIENTS:
        path = shutil.which(name)
        if not path or os.path.realpath(path) in seen:
            continue
        seen.add(os.path.realpath(path))
        if _has_buildx(path):
            return path
        version = _client_version(path)
        if version is not None and version < (23, 0):
            return path
    raise EngineError(
        "no docker client here can do BuildKit builds: the client on PATH has no buildx plugin "
        "and no pre-23 client was found. Install the buildx plugin, or Debian's docker.io "
        "(which puts a suitable client at /usr/bin/docker)."
    )


def rewrites_timestamps() -> bool:
    """Whether builds here can rewrite file and history times to SOURCE_DATE_EPOCH: a buildx client and an
    engine with the containerd image store (BuildKit's rewrite-timestamp, in the image and oci exporters)."""
    if _run([buildkit_client(), "buildx", "version"]).returncode != 0:
        return False
    return "io.containerd.snapshotter" in docker("info", "--format", "{{json .DriverStatus}}").stdout


def finish_cleanly_on_sigterm() -> None:
    """SIGTERM (a timeout, `kill`, CI) unwinds like Ctrl-C, so cleanup in finally blocks runs:
    containers, the registry and the scratch engine a measurement started are stopped."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def docker(*args: str, timeout: float = 120, check: bool = True,
           host: str | None = None) -> subprocess.CompletedProcess:
    """Run the chosen client with BuildKit enabled (against host, e.g. a scratch engine, if given)."""
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    prefix = [buildkit_client(), *(["--host", host] if host else [])]
    proc = subprocess.run([*prefix, *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)
    if check and proc.returncode != 0:
        raise EngineError(f"docker {' '.join(args[:3])} failed: {proc.stderr.strip()[-2000:]}")
    return proc


def sdk(host: str | None = None):
    """A Docker SDK client for the engine (or host, e.g. compare's empty engine).

    It honours DOCKER_HOST; without it, the CLI's current context (Docker Desktop's socket in
    the user's home on macOS) before the SDK's default /var/run/docker.sock.
    """
    return _sdk(host or os.environ.get("DOCKER_HOST") or _context_endpoint())


@functools.cache
def _sdk(base_url: str | None):
    import docker as docker_sdk

    try:
        return (docker_sdk.DockerClient(base_url=base_url, version="auto", timeout=600) if base_url
                else docker_sdk.from_env(version="auto", timeout=600))
    except docker_sdk.errors.DockerException as exc:
        raise EngineError(f"the Docker SDK cannot reach the engine ({base_url or 'default socket'}): {exc}") from None


@functools.cache
def _context_endpoint() -> str | None:
    """The docker CLI's current context endpoint, when it is not the default socket."""
    if Path("/var/run/docker.sock").exists():
        return None
    try:
        out = _run([buildkit_client(), "context", "inspect", "--format", "{{.Endpoints.docker.Host}}"]).stdout.strip()
    except (OSError, subprocess.TimeoutExpired, EngineError):
        return None
    return out or None


def publish_address() -> str:
    """Where a container publishes its port and this machine reaches it: 127.0.0.1, or, under
    ENGINE=..., the engine container's address (its own 127.0.0.1 is not this machine's)."""
    return os.environ.get("ENGINE_ADDRESS") or "127.0.0.1"


def engine_answers() -> bool:
    for name in CANDIDATE_CLIENTS:
        path = shutil.which(name)
        if path:
            try:
                if _run([path, "info", "--format", "{{.ServerVersion}}"], timeout=20).returncode == 0:
                    return True
            except (OSError, subprocess.TimeoutExpired):
                continue
    return False


def apt_install(*packages: str) -> None:
    """Install Debian packages (root only); used for docker.io, mmdebstrap, docker-registry."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise EngineError(f"need {' '.join(packages)}: install them (Debian: apt-get install {' '.join(packages)})")
    log(f"apt-get install {' '.join(packages)} (once) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise EngineError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")


def ensure_engine(timeout: float = 90) -> str:
    """Make sure an engine answers; return the BuildKit-capable client path."""
    if not engine_answers():
        if not shutil.which("dockerd"):
            apt_install("docker.io")
        if not shutil.which("dockerd"):
            raise EngineError("dockerd is still missing after installing docker.io")
        DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
        log(f"starting dockerd in the background (log: {DOCKERD_LOG})")
        with DOCKERD_LOG.open("ab") as out:
            subprocess.Popen(["dockerd"], stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not engine_answers():
            if time.monotonic() > deadline:
                tail = DOCKERD_LOG.read_text(errors="replace").splitlines()[-15:]
                raise EngineError(f"dockerd did not answer within {timeout:.0f}s; its log ends:\n" + "\n".join(tail))
            time.sleep(1)
    client = buildkit_client()
    return client


def main() -> int:
    try:
        client = ensure_engine()
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    server = docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    log(f"engine {server} is up; BuildKit builds use {client}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
