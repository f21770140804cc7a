"""Another Docker engine, run as a container of the default one: `ENGINE=docker26 make ...`.

    make build-all smoke ENGINE=docker26              # any target, against that engine
    python -m scripts.infra.engines up docker26       # start it (or find it); print the variables
    python -m scripts.infra.engines down [NAME ...]   # remove it with its volume (images, build cache)

The engines are Debian 13's dockerd 26.1 with its buildx plugin (the stand-in
local/docker:26-dind where docker:26-dind cannot be pulled), started the way compare's empty
engine is (scripts/infra/registry.py). /var/lib/docker is a named volume, so images stay
between commands until `down` or `make clean-images`. docker26-containerd turns on the
containerd image store (daemon.json features.containerd-snapshotter), the default of fresh
installs of Docker Engine 29+ and Docker Desktop 4.34+.

`up` prints the variables that point the project's tools at the engine; the Makefile exports
them for every target when ENGINE is set:
- DOCKER_HOST: its API, published on 127.0.0.1;
- DOCKER_CONFIG: a folder holding the engine's own buildx plugin, so the client builds with buildx;
- ENGINE_ADDRESS: the engine container's address; containers it runs publish their ports there
  (its 127.0.0.1 is not this machine's), and this machine reaches them there; IMAGE_ADVISOR_ADDRESS
  is the same address, for image-advisor's trace;
- ENGINE_WHEELS_URL: the wheelhouse, served read-only by a container beside the engine;
- ENGINE: the name, which puts results under results/engines/NAME/;
- ENGINE_DEFAULT_HOST: the DOCKER_HOST before (empty: the default socket), so `up` and `down`
  run under ENGINE=... still manage the engines from the default engine.
The project's stand-in bases are copied in from the default engine (docker save | docker load).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scripts.infra import bases, registry
from scripts.infra.engine import PROJECT_LABEL, EngineError, buildkit_client, docker, ensure_engine
from scripts.variants import select

ROOT = Path(__file__).resolve().parents[2]
API_PORT = 2375
PLUGIN = "/usr/libexec/docker/cli-plugins/docker-buildx"  # where Debian's docker-buildx puts it


@dataclass(frozen=True)
class Engine:
    name: str
    store: str  # what `docker info` calls its image store
    features: tuple[str, ...] = ()  # daemon.json "features" turned on

    @property
    def container(self) -> str:
        """Per checkout, so two checkouts on one machine each have their own."""
        return f"bert-engine-{self.name}-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]}"

    def daemon_json(self, **more: object) -> str:
        return json.dumps({"features": {f: True for f in self.features}, **more})


ENGINES = {e.name: e for e in (
    Engine("docker26", "overlay2"),
    Engine("docker26-containerd", "overlayfs (containerd)", ("containerd-snapshotter",)),
)}
LABEL = ["--label", f"{PROJECT_LABEL}=scripts.infra.engines"]


def log(msg: str) -> None:
    print(f"[engines] {msg}", file=sys.stderr, flush=True)


def by_name(name: str) -> Engine:
    if name not in ENGINES:
        raise EngineError(f"unknown ENGINE {name!r}: choose from {', '.join(ENGINES)} (unset: the default engine)")
    return ENGINES[name]


def _state(container: str) -> str:
    """'running', 'exited' ... or '' when there is no such container."""
    proc = docker("inspect", "--format", "{{.State.Status}}", container, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _address(container: str, network: str, host: str | None = None) -> str:
    out = docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", container, host=host).stdout
    return json.loads(out)[network]["IPAddress"]


def _start(engine: Engine) -> None:
    """Create its network, volume and container (confined: no --privileged, as compare's empty engine)."""
    name = engine.container
    if docker("network", "inspect", name, check=False).returncode != 0:
        docker("network", "create", *LABEL, name)
    docker("volume", "create", *LABEL, name)
    _run_dockerd(name, name, "DIND26_IMAGE", engine.daemon_json(), volume=name)


def _run_dockerd(container: str, network: str, image_arg: str, daemon_json: str, volume: str = "",
                 host: str | None = None) -> None:
    """A dockerd container on network, API on port API_PORT (published on 127.0.0.1 too), confined."""
    # The daemon.json is written first, then the cgroups are made writable, then dockerd starts.
    script = f"mkdir -p /etc/docker && echo '{daemon_json}' > /etc/docker/daemon.json; " + registry.WRITABLE_CGROUPS
    image = _infra_image(image_arg)
    data = f"{volume}:/var/lib/docker" if volume else "/var/lib/docker"  # no name: removed with the container
    # SYS_PTRACE: runc's setns for `docker exec` and HEALTHCHECK, as for the swarm nodes (scripts/infra/swarm.py).
    docker("run", "-d", *LABEL, "--name", container, *registry.CONFINED, "--cap-add", "SYS_PTRACE",
           "--entrypoint", "sh", "--network", network, "-e", "DOCKER_TLS_CERTDIR=", "-v", data,
           "-p", f"127.0.0.1::{API_PORT}", image, "-c", script, "sh", f"--host=tcp://0.0.0.0:{API_PORT}",
           "--tls=false", host=host)


def _default_host() -> str:
    """The default engine, where the engines' containers live, as `docker --host` names it."""
    return os.environ.get("ENGINE_DEFAULT_HOST") or "unix:///var/run/docker.sock"


def _infra_image(arg: str) -> str:
    """The image (official or stand-in) for arg, looked up on the default engine, which runs it."""
    saved = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = _default_host()
    try:
        return bases.resolve_one(bases.INFRA_BY_ARG[arg])
    finally:
        if saved is None:
            os.environ.pop("DOCKER_HOST")
        else:
            os.environ["DOCKER_HOST"] = saved


def _wanted_port(address: str) -> int:
    """registry.wanted_port, probing address for a listener on the port REGISTRY_PORT names."""
    return registry.wanted_port(lambda port: registry.listens_here(port, address))


@contextlib.contextmanager
def measurement_infra(name: str) -> Iterator[registry.Infra]:
    """Beside the running engine `name`: a registry it pushes to and an empty engine of its kind.

    The registry shares the engine container's network namespace, so the engine pushes to its own
    127.0.0.1:<port>, which Docker trusts without TLS, and nothing in the engine changes; this
    machine and the empty engine reach the registry at the engine container's address (the empty
    engine told so by insecure-registries). The port is $REGISTRY_PORT, else one the kernel picks
    free when the registry binds port 0, so two measurements on one engine each get a registry of
    their own; emptying the registry starts it again on that port. The empty engine is a second
    container like the first, on its network, with no volume of its own to outlive it. Both are
    removed on the way out.
    """
    engine = by_name(name)
    host = _default_host()
    address = _address(engine.container, engine.container, host)
    suffix = secrets.token_hex(3)
    registry_container, node = f"{engine.container}-registry-{suffix}", f"{engine.container}-node-{suffix}"
    port = _wanted_port(address)
    started: list[str] = []

    def start_registry() -> None:
        nonlocal port
        docker("rm", "-f", "-v", registry_container, host=host, check=False)
        docker("run", "-d", *LABEL, "--name", registry_container, "--network", f"container:{engine.container}",
               "-e", f"REGISTRY_HTTP_ADDR=:{port}", _infra_image("REGISTRY_IMAGE"), host=host)
        if port == registry.ANY_PORT:
            port = registry.listening_port(registry_container, host)
        registry.wait(lambda: registry.http_ok(f"http://{address}:{port}/v2/"), 60, "the registry")

    try:
        started.append(registry_container)
        start_registry()
        pushed_to = f"{address}:{port}"
        started.append(node)
        _run_dockerd(node, engine.container, "DIND26_IMAGE",
                     engine.daemon_json(**{"insecure-registries": [pushed_to]}), host=host)
        scratch = f"tcp://{_address(node, engine.container, host)}:{API_PORT}"
        registry.wait(lambda: registry.engine_answers(scratch), 90, f"the empty engine ({engine.name})")
        node_address = scratch.removeprefix("tcp://").rsplit(":", 1)[0]
        yield registry.Infra(pushed_to, pushed_to, scratch, f"0.0.0.0:{registry.SERVICE_PORT}",
                             f"http://{node_address}:{registry.SERVICE_PORT}",
                             registry_for_push=f"127.0.0.1:{port}", empty_registry=start_registry)
    finally:
        for container in reversed(started):
            docker("rm", "-f", "-v", container, host=host, check=False, timeout=120)


def pull_message(name: str, infra: registry.Infra, ref: str, image_arg: str = "DIND_IMAGE") -> tuple[str, str]:
    """(engine version, the last line `docker pull ref` prints) on an empty engine of another kind
    (the stand-in docker:dind, Debian 12's dockerd 20.10, by default) beside measurement_infra(name)'s
    registry."""
    host = _default_host()
    network = by_name(name).container
    container = f"{network}-other-{secrets.token_hex(3)}"
    try:
        _run_dockerd(container, network, image_arg, json.dumps({"insecure-registries": [infra.registry]}),
                     host=host)
        other = f"tcp://{_address(container, network, host)}:{API_PORT}"
        registry.wait(lambda: registry.engine_answers(other), 90, "the other empty engine")
        version = docker("version", "--format", "{{.Server.Version}}", host=other).stdout.strip()
        proc = docker("pull", "--quiet", ref, host=other, check=False, timeout=600)
        return version, (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1]
    finally:
        docker("rm", "-f", "-v", container, host=host, check=False, timeout=120)


def _command(container: str) -> list[str]:
    """The container's entrypoint and command, as `docker run` was given them."""
    out = docker("inspect", "--format", "{{json .Config.Entrypoint}}|{{json .Config.Cmd}}", container, check=False)
    if out.returncode != 0:
        return []
    entrypoint, _, cmd = out.stdout.strip().partition("|")
    return [*(json.loads(entrypoint or "null") or []), *(json.loads(cmd or "null") or [])]


def _copy_stand_ins(host: str) -> None:
    """The stand-in bases this engine lacks, from the default engine (minutes saved each): those the
    variants VARIANTS names build on (all by default)."""
    needed = set().union(*(v.base_args for v in select(os.environ.get("VARIANTS", ""), "cpu")))
    for base in (b for b in bases.BASES if b.arg in needed):
        ref = base.local_ref()
        here = docker("image", "inspect", "--format", "{{.Id}}", ref, check=False).stdout.strip()
        if not here or docker("image", "inspect", "--format", "{{.Id}}", ref, host=host,
                              check=False).stdout.strip() == here:
            continue
        log(f"copying the stand-in {ref} into the engine (docker save | docker load) ...")
        save = subprocess.Popen([buildkit_client(), "save", ref], stdout=subprocess.PIPE)
        load = subprocess.run([buildkit_client(), "--host", host, "load", "--quiet"], stdin=save.stdout,
                              capture_output=True, text=True, check=False, timeout=900)
        save.wait(timeout=60)
        if save.returncode or load.returncode:
            raise EngineError(f"copying {ref} into the engine failed: {load.stderr.strip()[-1000:]}")


def _buildx_config(engine: Engine) -> Path | None:
    """A DOCKER_CONFIG folder with the engine's buildx plugin, if this machine can run it."""
    config = ROOT / ".cache" / "engines" / engine.name
    plugin = config / "cli-plugins" / "docker-buildx"
    if not plugin.exists():
        plugin.parent.mkdir(parents=True, exist_ok=True)
        docker("cp", f"{engine.container}:{PLUGIN}", str(plugin))
    env = {**os.environ, "DOCKER_CONFIG": str(config)}
    proc = subprocess.run(["docker", "buildx", "version"], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        log(f"the engine's buildx plugin does not run here ({proc.stderr.strip()[-200:]}); builds use "
            "the engine's built-in BuildKit through a pre-23 client instead")
        return None
    log(f"client: {proc.stdout.strip()}")
    return config


def _back_to_the_default_engine() -> None:
    """Point this process at the default engine, where the engines' containers live: under an
    ENGINE=... already in effect, DOCKER_HOST names that engine itself."""
    if not os.environ.get("ENGINE"):
        return
    default = os.environ.pop("ENGINE_DEFAULT_HOST", "")
    for key in ("ENGINE", "ENGINE_ADDRESS", "IMAGE_ADVISOR_ADDRESS", "ENGINE_WHEELS_URL", "DOCKER_CONFIG",
                "DOCKER_HOST"):
        os.environ.pop(key, None)
    if default:
        os.environ["DOCKER_HOST"] = default


def up(name: str) -> dict[str, str]:
    """Start the engine (or find it running); the variables that select it."""
    engine = by_name(name)
    _back_to_the_default_engine()
    default_host = os.environ.get("DOCKER_HOST", "")
    ensure_engine()
    state = _state(engine.container)
    if state != "running":
        if state:
            docker("rm", "-f", engine.container)  # stopped (a reboot): its volume keeps the images
        log(f"starting {engine.name} ({engine.store} image store) as the container {engine.container} ...")
        _start(engine)
    host = "tcp://" + registry.published(engine.container, API_PORT)
    registry.wait(lambda: registry.engine_answers(host), 90, f"the engine {engine.name}", engine.container)
    wheels = f"{engine.container}-wheels"
    if _state(wheels) != "running" or _command(wheels) != list(registry.WHEELS_COMMAND):  # or an older server
        docker("rm", "-f", wheels, check=False)
        (ROOT / "wheelhouse").mkdir(exist_ok=True)
        registry.serve_wheels(ROOT / "wheelhouse", engine.container, LABEL, wheels)
    wheels_url = f"http://{_address(wheels, engine.container)}:8000/simple/"
    _copy_stand_ins(host)
    address = _address(engine.container, engine.container)
    variables = {"ENGINE": engine.name, "DOCKER_HOST": host, "ENGINE_DEFAULT_HOST": default_host,
                 "ENGINE_ADDRESS": address, "IMAGE_ADVISOR_ADDRESS": address, "ENGINE_WHEELS_URL": wheels_url}
    if config := _buildx_config(engine):
        variables["DOCKER_CONFIG"] = str(config)
    version = docker("version", "--format", "{{.Server.Version}}", host=host).stdout.strip()
    driver = docker("info", "--format", "{{.Driver}}", host=host).stdout.strip()
    log(f"{engine.name}: Docker {version}, storage {driver}, DOCKER_HOST={host}")
    return variables


def down(names: list[str]) -> None:
    _back_to_the_default_engine()
    for engine in (by_name(n) for n in names or ENGINES):
        for container in (f"{engine.container}-wheels", engine.container):
            docker("rm", "-f", container, check=False, timeout=300)
        docker("volume", "rm", engine.container, check=False, timeout=600)
        docker("network", "rm", engine.container, check=False)
        log(f"{engine.name}: removed (container, volume with its images and build cache, network)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start it; print KEY=VALUE lines").add_argument("name")
    sub.add_parser("down", help="remove it (all of them without a name)").add_argument("names", nargs="*")
    args = ap.parse_args(argv)
    try:
        if args.command == "up":
            for key, value in up(args.name).items():
                print(f"{key}={value}")
        else:
            down(args.names)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
