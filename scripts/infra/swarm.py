"""A Docker Swarm of fresh nodes on this machine: engine containers on a private network with a registry.

    with swarm_cluster(3) as cluster:          # one manager, two workers, all empty
        ref = cluster.push("bert-classifier:onnx_image")
        cluster.deploy("svc", ref, replicas=1)
        cluster.wait_answering("svc", 1)
        seconds = cluster.scale("svc", 3)      # until a replica on every node answers /classify

    python -m scripts.infra.swarm [--nodes 3]   # `make cluster`: bring one up, print how to reach it, wait

Each node is docker:dind (or its stand-in, scripts/infra/bases.py) with its own data volume, so
a node has never seen the image until the service puts a task there, and every node pulls from
the one registry at the same time, as a real scale-out does. Where the engine refuses
--privileged the nodes run confined (scripts/infra/registry.py), with SYS_PTRACE added: the
images' HEALTHCHECKs run through `docker exec`, which needs it there, and a service whose
health checks never run never converges. Services publish in host mode (each node's port
8000, published on 127.0.0.1 of this machine): the ingress routing mesh needs IPVS, which
such sandboxes lack. Everything is removed on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scripts.infra.engine import PROJECT_LABEL, EngineError, docker, ensure_engine, finish_cleanly_on_sigterm, sdk
from scripts.infra.registry import (
    CONFINED,
    WRITABLE_CGROUPS,
    _infra_image,
    engine_answers,
    http_ok,
    on_network,
    published,
    run_registry,
)
from scripts.infra.registry import wait as wait_for

SERVICE_PORT = 8000
LABEL = ["--label", f"{PROJECT_LABEL}=scripts.infra.swarm"]
CLASSIFY = json.dumps({"text": "I love this movie"}).encode()


@dataclass
class Node:
    container: str
    host: str  # tcp://127.0.0.1:<port>, for docker --host
    address: str  # its address on the cluster network
    service_url: str  # http://127.0.0.1:<port>: its published SERVICE_PORT


@dataclass
class Cluster:
    network: str
    registry: str  # 127.0.0.1:<port>, to push to
    nodes: list[Node] = field(default_factory=list)

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    def push(self, image: str) -> str:
        """Push a local image to the cluster's registry; returns the reference the nodes pull."""
        repo, tag = image.split(":", 1)
        local = f"{self.registry}/{repo}:{tag}"
        docker("tag", image, local)
        try:
            docker("push", "--quiet", local, timeout=1800)
        finally:
            docker("rmi", local, check=False)
        return f"{self.on_network}/{repo}:{tag}"

    @property
    def on_network(self) -> str:
        """The registry as the nodes reach it: its name on the network, the same port as here."""
        return on_network(self.registry)

    def deploy(self, name: str, ref: str, replicas: int = 1, *extra: str) -> None:
        """A service with host-mode publishing: at most one replica per node (they share the port)."""
        docker("service", "create", "--detach", "--no-resolve-image", "--name", name, "--replicas", str(replicas),
               "--publish", f"mode=host,target={SERVICE_PORT},published={SERVICE_PORT}",
               "--stop-grace-period", "10s", *extra, ref, host=self.manager.host, timeout=120)

    def answering(self) -> list[Node]:
        """The nodes whose published port answers POST /classify with 200."""
        return [n for n in self.nodes if _classify_ok(n.service_url)]

    def wait_answering(self, name: str, count: int, timeout: float = 600) -> float:
        """Seconds until count nodes answer /classify; EngineError naming the tasks' states if not."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if len(self.answering()) >= count:
                return time.monotonic() - started
            time.sleep(0.25)
        raise EngineError(f"{name}: {len(self.answering())} of {count} replicas answer after {timeout:.0f} s; "
                          f"tasks:\n{self.tasks(name)}")

    def scale(self, name: str, replicas: int, timeout: float = 600) -> float:
        """Scale the service; seconds from the command until that many replicas answer /classify."""
        started = time.monotonic()
        docker("service", "scale", "--detach", f"{name}={replicas}", host=self.manager.host, timeout=120)
        self.wait_answering(name, replicas, timeout)
        return time.monotonic() - started

    def update(self, name: str, ref: str, timeout: float = 900) -> float:
        """Roll the service to ref one task at a time; seconds until swarm calls the update completed.

        stop-first: with host-mode publishing two tasks cannot hold one node's port, so each old task
        stops (SIGTERM, then the stop grace) before its new one starts; swarm moves to the next task
        once the new one is healthy by the image's own HEALTHCHECK."""
        started = time.monotonic()
        docker("service", "update", "--detach", "--no-resolve-image", "--image", ref, "--update-order", "stop-first",
               "--update-parallelism", "1", "--update-delay", "0s", "--update-failure-action", "pause", name,
               host=self.manager.host, timeout=120)
        while time.monotonic() - started < timeout:
            status = json.loads(docker("service", "inspect", "--format", "{{json .UpdateStatus}}", name,
                                       host=self.manager.host).stdout or "null") or {}
            if status.get("State") == "completed":
                return time.monotonic() - started
            if status.get("State") in {"paused", "rollback_started", "rollback_completed", "rollback_paused"}:
                raise EngineError(f"{name}: update {status['State']}: {status.get('Message', '')}; "
                                  f"tasks:\n{self.tasks(name)}")
            time.sleep(0.5)
        raise EngineError(f"{name}: update not completed after {timeout:.0f} s; tasks:\n{self.tasks(name)}")

    def nodes_running(self, name: str) -> list[Node]:
        """The nodes with a running task of the service."""
        out = docker("service", "ps", "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}",
                     name, host=self.manager.host).stdout.split("\n")
        hosts = {line.split()[0] for line in out if " Running" in f" {line}"}
        return [n for n in self.nodes if n.container in hosts]

    def kill(self, node: Node) -> None:
        """Lose a node: its engine container removed at once (no drain, no leave), as a machine dies."""
        docker("rm", "-f", "-v", node.container, timeout=120)
        self.nodes.remove(node)

    def tasks(self, name: str) -> str:
        return docker("service", "ps", "--no-trunc", "--format", "{{.Node}} {{.CurrentState}} {{.Error}}", name,
                      host=self.manager.host, check=False).stdout.strip()


def rollout_image(image: str) -> str:
    """A new tag of image that differs by one small layer (what a one-line code change pushes)."""
    with tempfile.TemporaryDirectory() as ctx:
        (Path(ctx) / "ROLLOUT").write_text(f"{secrets.token_hex(8)}\n")
        (Path(ctx) / "Dockerfile").write_text(f"FROM {image}\nCOPY ROLLOUT /ROLLOUT\n")
        tag = f"{image}-rollout"
        docker("build", "--quiet", "-t", tag, *LABEL, ctx, timeout=600)
    return tag


def _classify_ok(base: str) -> bool:
    req = urllib.request.Request(f"{base}/classify", data=CLASSIFY, method="POST",
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


def _privileged_allowed() -> bool:
    probe = docker("run", "--rm", "--privileged", *LABEL, "--entrypoint", "true", _infra_image("DIND_IMAGE"),
                   check=False, timeout=120)
    return probe.returncode == 0


def _node(container: str, network: str, privileged: bool, registry: str) -> Node:
    """A fresh engine on network that pulls from registry (name:port on the network) without TLS."""
    flags = ["--host=tcp://0.0.0.0:2375", "--tls=false", f"--insecure-registry={registry}"]
    mode = ["--privileged"] if privileged else [*CONFINED, "--cap-add", "SYS_PTRACE", "--entrypoint", "sh"]
    image = [_infra_image("DIND_IMAGE")] if privileged else [_infra_image("DIND_IMAGE"), "-c", WRITABLE_CGROUPS, "sh"]
    docker("run", "-d", *LABEL, "--name", container, "--hostname", container, *mode, "--network", network,
           "-e", "DOCKER_TLS_CERTDIR=", "-v", "/var/lib/docker",
           "-p", "127.0.0.1::2375", "-p", f"127.0.0.1::{SERVICE_PORT}", *image, *flags)
    host = "tcp://" + published(container, 2375)
    wait_for(lambda: engine_answers(host), 90, f"swarm node {container}", container)
    address = sdk().containers.get(container).attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    return Node(container, host, address, "http://" + published(container, SERVICE_PORT))


@contextlib.contextmanager
def swarm_cluster(nodes: int = 3, log=print) -> Iterator[Cluster]:
    """A registry and `nodes` fresh engines in one swarm (the first is the manager); all removed after."""
    if nodes < 1:
        raise EngineError("a swarm needs at least one node")
    name = f"bert-swarm-{secrets.token_hex(4)}"
    docker("network", "create", *LABEL, name)
    containers: list[str] = []
    try:
        containers.append(f"{name}-registry")
        cluster = Cluster(name, f"127.0.0.1:{run_registry(containers[-1], name, LABEL)}")
        wait_for(lambda: http_ok(f"http://{cluster.registry}/v2/"), 60, "the registry", containers[-1])
        privileged = _privileged_allowed()
        log(f"[swarm] starting {nodes} node(s) ({'privileged' if privileged else 'confined'} engine containers) ...")
        for i in range(nodes):
            containers.append(f"{name}-node{i}")
            cluster.nodes.append(_node(containers[-1], name, privileged, cluster.on_network))
        manager = cluster.manager
        docker("swarm", "init", "--advertise-addr", manager.address, host=manager.host, timeout=60)
        token = docker("swarm", "join-token", "-q", "worker", host=manager.host).stdout.strip()
        for node in cluster.nodes[1:]:
            docker("swarm", "join", "--token", token, f"{manager.address}:2377", host=node.host, timeout=60)
        log(f"[swarm] {nodes} node(s) joined; registry on {cluster.registry}")
        yield cluster
    finally:
        for container in reversed(containers):
            docker("rm", "-f", "-v", container, check=False, timeout=120)
        docker("network", "rm", name, check=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=3)
    args = ap.parse_args(argv)
    finish_cleanly_on_sigterm()
    try:
        ensure_engine()
        with swarm_cluster(args.nodes) as cluster:
            print(f"registry: {cluster.registry} (docker push {cluster.registry}/<repo>:<tag>; "
                  f"nodes pull {cluster.on_network}/<repo>:<tag>)")
            for node in cluster.nodes:
                role = "manager" if node is cluster.manager else "worker"
                print(f"{node.container} ({role}): DOCKER_HOST={node.host}, port {SERVICE_PORT} at {node.service_url}")
            print("Ctrl-C removes the cluster.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
