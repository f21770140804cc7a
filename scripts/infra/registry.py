"""A throwaway registry and a throwaway empty engine, as containers, for push/pull measurements.

    with measurement_infra() as infra:    # registry:2 and docker:dind on a network of their own
        docker push {infra.push_ref(...)}; pull(infra.scratch, infra.pull_ref(...))

The registry is the official `registry:2` image, the empty engine the official `docker:dind`
(privileged, its own data volume, so a pull into it really downloads every layer: the main
engine already has the base layers the variants share). Where they cannot be pulled,
stand-ins built from Debian packages take their place (scripts/infra/bases.py INFRA). Both
publish their ports on 127.0.0.1 only; once an engine answers, nothing here needs root
or apt. Where the engine refuses `--privileged` (some sandboxes: "unable to apply caps",
their bounding set lacks a capability), docker:dind runs with just what dockerd needs:
SYS_ADMIN and NET_ADMIN, no seccomp/AppArmor filter, its own cgroups remounted writable.
Everything is removed on the way out, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from scripts.infra import bases
from scripts.infra.engine import PROJECT_LABEL, EngineError, docker, sdk
from scripts.traffic.latency import free_port
from scripts.variants import ROOT

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
])
REGISTRY_ALIAS = "registry"  # the registry's name on the infra network, as the scratch engine sees it
SERVICE_PORT = 8000  # the fresh-node container binds this inside the scratch engine's network
# The port a registry that shares a network namespace with others is told to listen on when
# REGISTRY_PORT does not name one: 0, so the kernel binds a free one (found by listening_port).
ANY_PORT = 0
# What listening_port reads inside the container: the namespace's TCP sockets, and which of them
# belong to the container's own process.
LISTENERS = 'cat /proc/net/tcp /proc/net/tcp6 2>/dev/null; for fd in /proc/1/fd/*; do readlink "$fd"; done'


def wanted_port(taken: Callable[[int], bool]) -> int:
    """$REGISTRY_PORT if set (refused, in one line, when not a port or when `taken` says something
    listens there), else ANY_PORT."""
    wanted = os.environ.get("REGISTRY_PORT", "").strip()
    if not wanted:
        return ANY_PORT
    if not wanted.isdigit() or not 0 < int(wanted) < 65536:
        raise EngineError(f"REGISTRY_PORT={wanted!r} is not a port number (1-65535)")
    if taken(int(wanted)):
        raise EngineError(f"REGISTRY_PORT={wanted} is taken: something already listens there "
                          "(unset REGISTRY_PORT and the registry takes a port the kernel finds free)")
    return int(wanted)


def listens_here(port: int, address: str = "127.0.0.1") -> bool:
    """Something accepts connections on address:port (a port REGISTRY_PORT may not name)."""
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((address, port)) == 0


def on_network(registry: str) -> str:
    """A registry run_registry started, as its network reaches it: its alias there, the same port as here."""
    return f"{REGISTRY_ALIAS}:{registry.rsplit(':', 1)[1]}"


PORT_TAKEN = ("port is already allocated", "address already in use")


def run_registry(container: str, network: str, label: list[str], tries: int = 5) -> int:
    """Start the registry on network (as REGISTRY_ALIAS), listening on $REGISTRY_PORT or a port free
    on this machine, published on 127.0.0.1 at the same number, so this machine and the network
    reach it on one port; that port. A free port taken before `docker run` binds it is tried again."""
    wanted = wanted_port(listens_here)
    for _ in range(tries):
        port = wanted or free_port()  # the kernel's pick on this machine
        proc = docker("run", "-d", *label, "--name", container, "--network", network, "--network-alias",
                      REGISTRY_ALIAS, "-e", f"REGISTRY_HTTP_ADDR=:{port}", "-p", f"127.0.0.1:{port}:{port}",
                      _infra_image("REGISTRY_IMAGE"), check=False)
        if proc.returncode == 0:
            return port
        docker("rm", "-f", "-v", container, check=False)  # created, never started
        if wanted or not any(taken in proc.stderr for taken in PORT_TAKEN):
            raise EngineError(f"docker run {container} failed: {proc.stderr.strip()[-2000:]}")
    raise EngineError(f"no free port for the registry after {tries} tries (REGISTRY_PORT=N picks one)")


def own_listening_ports(listing: str) -> set[int]:
    """The ports in LISTENERS' output that a socket of the process listens on: the rows of
    /proc/net/tcp{,6} in state 0A (LISTEN) whose inode is one of its `socket:[inode]` descriptors.
    Other processes' listeners in the same namespace are left out."""
    sockets = set(re.findall(r"^socket:\[(\d+)\]$", listing, re.MULTILINE))
    ports = set()
    for fields in (line.split() for line in listing.splitlines()):
        if len(fields) > 9 and fields[3] == "0A" and fields[9] in sockets:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def listening_port(container: str, host: str | None = None, timeout: float = 60) -> int:
    """The one TCP port the container's process listens on, once it does: how a registry told to
    listen on port 0 is found, exactly, in a namespace other listeners share."""
    found: set[int] = set()

    def listens() -> bool:
        out = docker("exec", container, "sh", "-c", LISTENERS, host=host, check=False, timeout=30)
        found.clear()
        found.update(own_listening_ports(out.stdout) if out.returncode == 0 else ())
        return len(found) == 1
    wait(listens, timeout, f"a listener in {container}")
    return found.pop()


@dataclass
class Infra:
    registry: str  # host:port to push to and read manifests from, on 127.0.0.1
    registry_for_scratch: str  # the same registry as the empty engine reaches it
    scratch: str  # the empty engine, for docker --host
    bind: str  # where a container run with --network host in the empty engine should listen
    service_url: str  # ... and where this machine reaches it
    wheels_url: str | None = None  # the wheelhouse's index as builds inside the empty engine reach it
    registry_for_push: str = ""  # the registry as the engine that pushes reaches it, if not as registry
    empty_registry: Callable[[], None] | None = None  # start the registry again, holding nothing

    def push_ref(self, repo: str, tag: str) -> str:
        return f"{self.registry_for_push or self.registry}/{repo}:{tag}"

    def pull_ref(self, repo: str, tag: str) -> str:
        """The same image, as the empty engine reaches the registry."""
        return f"{self.registry_for_scratch}/{repo}:{tag}"


def published(container: str, port: int) -> str:
    """'127.0.0.1:<host port>' the container's port is published on (SDK: no `docker port` text)."""
    c = sdk().containers.get(container)
    return f"127.0.0.1:{c.ports[f'{port}/tcp'][0]['HostPort']}"


def wait(check, timeout: float, what: str, container: str | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    c = sdk().containers.get(container) if container else None
    while time.monotonic() < deadline:
        if check():
            return
        if c is not None:
            c.reload()
            if c.status != "running":
                break
        time.sleep(0.5)
    tail = (c.logs(tail=15).decode(errors="replace") if c is not None
            else "\n".join(log.read_text(errors="replace").splitlines()[-10:]) if log and log.exists() else "")
    raise EngineError(f"{what} did not start within {timeout:.0f}s; its log ends:\n{tail}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def engine_answers(host: str) -> bool:
    return docker("info", "--format", "{{.ServerVersion}}", host=host, check=False, timeout=20).returncode == 0


def _infra_image(arg: str) -> str:
    return bases.resolve_one(bases.INFRA_BY_ARG[arg])


@contextlib.contextmanager
def measurement_infra(mirror: bool = False, wheelhouse: Path | None = None) -> Iterator[Infra]:
    """Start a registry and an empty engine; yield how to reach them; remove everything after.

    mirror=True makes the registry the empty engine's Docker Hub mirror (the official-path test);
    wheelhouse serves that folder to builds inside the empty engine.
    """
    name = f"bert-infra-{secrets.token_hex(4)}"
    label = ["--label", f"{PROJECT_LABEL}=scripts.infra.registry"]
    docker("network", "create", *label, name)
    names: list[str] = []
    try:
        names.append(f"{name}-registry")
        port = run_registry(names[-1], name, label)
        registry = f"127.0.0.1:{port}"
        wait(lambda: http_ok(f"http://{registry}/v2/"), 60, "the registry", names[-1])
        names.append(f"{name}-engine")
        try:
            infra = _dind(names[-1], name, label, registry, mirror)
        except EngineError as exc:
            if "unable to apply caps" not in str(exc):
                raise
            docker("rm", "-f", "-v", names[-1], check=False)  # created, never started
            print("[registry] this engine refuses --privileged (unable to apply caps); docker:dind runs "
                  "with SYS_ADMIN and NET_ADMIN instead", file=sys.stderr, flush=True)
            infra = _dind(names[-1], name, label, registry, mirror, privileged=False)
        if wheelhouse is not None:
            names.append(f"{name}-wheels")
            infra.wheels_url = serve_wheels(wheelhouse, name, label, names[-1])
        yield infra
    finally:
        for container in reversed(names):
            docker("rm", "-f", "-v", container, check=False, timeout=120)
        docker("network", "rm", name, check=False)


# Without --privileged: the capabilities dockerd uses beyond Docker's defaults (mounts, bridges),
# no syscall filter, /proc/sys writable; cgroup mounts are read-only then, so the entrypoint
# remounts its own (v1 controllers or the v2 tree) writable before dockerd starts containers.
CONFINED = ("--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--security-opt", "seccomp=unconfined",
            "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined")
WRITABLE_CGROUPS = ('for d in /sys/fs/cgroup /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$d" 2>/dev/null || :; '
                    'done; exec dockerd-entrypoint.sh "$@"')


def _dind(container: str, network: str, label: list[str], registry: str, mirror: bool,
          privileged: bool = True) -> Infra:
    """docker:dind (its own data volume) on the infra network; API on 127.0.0.1."""
    reached = on_network(registry)
    flags = ["--host=tcp://0.0.0.0:2375", "--tls=false", f"--insecure-registry={reached}"]
    if mirror:
        flags.append(f"--registry-mirror=http://{reached}")
    mode = ["--privileged"] if privileged else [*CONFINED, "--entrypoint", "sh"]
    image = [_infra_image("DIND_IMAGE")] if privileged else [_infra_image("DIND_IMAGE"), "-c", WRITABLE_CGROUPS, "sh"]
    docker("run", "-d", *label, "--name", container, *mode, "--network", network,
           "-e", "DOCKER_TLS_CERTDIR=", "-v", "/var/lib/docker",  # an anonymous volume: not overlay on overlay
           "-p", "127.0.0.1::2375", "-p", f"127.0.0.1::{SERVICE_PORT}", *image, *flags)
    scratch = "tcp://" + published(container, 2375)
    wait(lambda: engine_answers(scratch), 90, "the empty engine (docker:dind)", container)
    return Infra(registry, reached, scratch, f"0.0.0.0:{SERVICE_PORT}",
                 "http://" + published(container, SERVICE_PORT))


WHEELS_COMMAND = ("python3", "-m", "scripts.infra.wheelhouse", "--serve", "0.0.0.0:8000", "--folder", "/srv")


def wheels_server(folder: Path) -> list[str]:
    """`docker run` arguments of a wheelhouse server: scripts/infra/wheelhouse.py's own handler, so
    pip caches what it downloads as it would from PyPI (a plain http.server sends no Cache-Control)."""
    python = bases.resolve_one(bases.BY_ARG["PYTHON_SLIM_IMAGE"])
    return ["--read-only", "-v", f"{folder.resolve()}:/srv:ro", "-v", f"{ROOT / 'scripts'}:/code/scripts:ro",
            "-w", "/code", "--entrypoint", WHEELS_COMMAND[0], python, *WHEELS_COMMAND[1:]]


def serve_wheels(folder: Path, network: str, label: list[str], container: str) -> str:
    """Serve folder from the container on network; the index URL as builds in an engine there reach it."""
    docker("run", "-d", *label, "--name", container, "--network", network, "--network-alias", "wheels",
           *wheels_server(folder))
    # Its address, not its name: BuildKit gives RUN steps no access to the network's DNS (127.0.0.11).
    address = sdk().containers.get(container).attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    return f"http://{address}:8000/simple/"


def manifest(registry: str, repo: str, tag: str) -> dict:
    """The image manifest the registry stores for repo:tag (config and layers: digests, sizes)."""
    req = urllib.request.Request(f"http://{registry}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def pushed_bytes(registry: str, repo: str, tag: str) -> tuple[int, int]:
    """(compressed bytes of config + layer blobs, layer count) as the registry stores them."""
    manifest_ = manifest(registry, repo, tag)
    layers = manifest_.get("layers", [])
    return manifest_["config"]["size"] + sum(layer["size"] for layer in layers), len(layers)


def pull(host: str, ref: str, timeout: float = 1800) -> float:
    """Seconds to pull ref into the engine at host (the scratch engine: empty before each pull)."""
    started = time.perf_counter()
    try:
        docker("pull", "--quiet", ref, timeout=timeout, host=host)
    except EngineError as exc:
        raise EngineError(f"pull of {ref} into the scratch engine failed: {exc}") from None
    return time.perf_counter() - started


def remove_all(host: str) -> None:
    """Empty the scratch engine again: containers, then every image."""
    ids = docker("ps", "-aq", host=host, check=False).stdout.split()
    if ids:
        docker("rm", "-f", *ids, host=host, check=False)
    docker("image", "prune", "-af", host=host, check=False, timeout=300)
