"""A throwaway registry and a throwaway empty engine, as containers, for push/pull measurements.

    with measurement_infra() as infra:    # registry:2 and docker:dind on a network of their own
        docker push {infra.push_ref(...)}; pull(infra.scratch, infra.pull_ref(...))

The registry is the official `registry:2` image, the empty engine the official `docker:dind`
(privileged, its own data volume, so a pull into it really downloads every layer: the main
engine already has the base layers the variants share). Where they cannot be pulled,
stand-ins built from Debian packages take their place (scripts/bases.py INFRA). Both
publish their ports on 127.0.0.1 only; once an engine answers, nothing here needs root,
apt or a second daemon on the host. Everything is removed on the way out, Ctrl-C and
SIGTERM included.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scripts import bases
from scripts.build import PROJECT_LABEL
from scripts.engine import EngineError, docker, sdk

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
])
REGISTRY_ALIAS = "registry"  # the registry's name on the infra network, as the scratch engine sees it
SERVICE_PORT = 8000  # the fresh-node container binds this inside the scratch engine's network


@dataclass
class Infra:
    registry: str  # host:port to push to and read manifests from, on 127.0.0.1
    scratch: str  # the empty engine, for docker --host
    service_url: str  # where a container run with --network host in the scratch engine answers
    network: str
    wheels_url: str | None = None  # the wheelhouse's index as builds inside the scratch engine reach it

    def push_ref(self, repo: str, tag: str) -> str:
        return f"{self.registry}/{repo}:{tag}"

    def pull_ref(self, repo: str, tag: str) -> str:
        """The same image, as the scratch engine reaches the registry (over the infra network)."""
        return f"{REGISTRY_ALIAS}:5000/{repo}:{tag}"


def _published(container: str, port: int) -> str:
    """'127.0.0.1:<host port>' the container's port is published on (SDK: no `docker port` text)."""
    c = sdk().containers.get(container)
    return f"127.0.0.1:{c.ports[f'{port}/tcp'][0]['HostPort']}"


def _wait(check, timeout: float, what: str, container: str) -> None:
    deadline = time.monotonic() + timeout
    c = sdk().containers.get(container)
    while time.monotonic() < deadline:
        if check():
            return
        c.reload()
        if c.status != "running":
            break
        time.sleep(0.5)
    raise EngineError(f"{what} did not start within {timeout:.0f}s; its log ends:\n"
                      + c.logs(tail=15).decode(errors="replace"))


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _engine_answers(host: str) -> bool:
    return docker("info", "--format", "{{.ServerVersion}}", host=host, check=False, timeout=20).returncode == 0


@contextlib.contextmanager
def measurement_infra(mirror: bool = False, wheelhouse: Path | None = None) -> Iterator[Infra]:
    """Start registry + empty engine on a private network; yield how to reach them; remove all after.

    mirror=True makes the registry the empty engine's Docker Hub mirror (the official-path test);
    wheelhouse serves that folder to builds inside the empty engine, from a container on the
    same network (a server on this machine's 127.0.0.1 is out of their reach).
    """
    registry_image = bases.resolve_one(next(b for b in bases.INFRA if b.arg == "REGISTRY_IMAGE"))
    dind_image = bases.resolve_one(next(b for b in bases.INFRA if b.arg == "DIND_IMAGE"))
    name = f"bert-infra-{secrets.token_hex(4)}"
    label = ["--label", f"{PROJECT_LABEL}=scripts.registry"]
    started: list[str] = []
    docker("network", "create", *label, name)
    try:
        started.append(docker(
            "run", "-d", *label, "--name", f"{name}-registry", "--network", name, "--network-alias", REGISTRY_ALIAS,
            "-p", "127.0.0.1::5000", registry_image).stdout.strip())
        registry = _published(started[-1], 5000)
        _wait(lambda: _http_ok(f"http://{registry}/v2/"), 60, "the registry", started[-1])
        flags = ["--host=tcp://0.0.0.0:2375", "--tls=false", f"--insecure-registry={REGISTRY_ALIAS}:5000"]
        if mirror:
            flags.append(f"--registry-mirror=http://{REGISTRY_ALIAS}:5000")
        started.append(docker(
            "run", "-d", *label, "--name", f"{name}-engine", "--privileged", "--network", name,
            "-e", "DOCKER_TLS_CERTDIR=", "-v", "/var/lib/docker",  # an anonymous volume: not overlay on overlay
            "-p", "127.0.0.1::2375", "-p", f"127.0.0.1::{SERVICE_PORT}", dind_image, *flags).stdout.strip())
        scratch = "tcp://" + _published(started[-1], 2375)
        _wait(lambda: _engine_answers(scratch), 90, "the empty engine (docker:dind)", started[-1])
        infra = Infra(registry, scratch, "http://" + _published(started[-1], SERVICE_PORT), name)
        if wheelhouse is not None:
            python = bases.resolve_one(next(b for b in bases.BASES if b.arg == "PYTHON_SLIM_IMAGE"))
            started.append(docker(
                "run", "-d", *label, "--name", f"{name}-wheels", "--network", name, "--network-alias", "wheels",
                "--read-only", "-v", f"{wheelhouse.resolve()}:/srv:ro", "--entrypoint", "python3", python,
                "-m", "http.server", "8000", "--directory", "/srv").stdout.strip())
            infra.wheels_url = "http://wheels:8000/simple/"
        yield infra
    finally:
        for container in reversed(started):
            docker("rm", "-f", "-v", container, check=False, timeout=120)
        docker("network", "rm", name, check=False)


def pushed_bytes(registry: str, repo: str, tag: str) -> tuple[int, int]:
    """(compressed bytes of config + layer blobs, layer count) as the registry stores them."""
    req = urllib.request.Request(f"http://{registry}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES})
    with urllib.request.urlopen(req, timeout=30) as resp:
        manifest = json.load(resp)
    layers = manifest.get("layers", [])
    return manifest["config"]["size"] + sum(layer["size"] for layer in layers), len(layers)


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
