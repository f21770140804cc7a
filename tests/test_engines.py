"""ENGINE=...: how another engine is started and how the tools point at it, with the engine faked."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from scripts.images import build
from scripts.infra import engine, engines, registry
from scripts.infra.engine import EngineError
from scripts.studies import engine_sizes
from scripts.variants import ROOT


class FakeDefaultEngine:
    """The default engine: no containers yet; records every docker call."""

    def __init__(self):
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, *args: str, check: bool = True, host: str | None = None, **_kw):
        self.calls.append(args)
        out = ""
        if args[:2] == ("inspect", "--format") and "Networks" in args[2]:
            out = json.dumps({args[-1].removesuffix("-wheels"): {"IPAddress": "172.30.0.9"}})
        elif args[0] in ("version", "info"):
            out = "26.1.5"
        missing = args[0] in ("inspect", "network") and args[1] in ("--format", "inspect") and "Networks" not in args[2]
        return subprocess.CompletedProcess(args, 1 if missing else 0, out, "")


@pytest.fixture
def fake(monkeypatch):
    docker = FakeDefaultEngine()
    monkeypatch.setattr(engines, "docker", docker)
    monkeypatch.setattr(engines, "ensure_engine", lambda: "docker")
    monkeypatch.setattr(engines, "_copy_stand_ins", lambda host: None)
    monkeypatch.setattr(engines, "_buildx_config", lambda e: None)
    monkeypatch.setattr(engines.bases, "resolve_one", lambda base: f"stand-in/{base.arg}")
    monkeypatch.setattr(registry, "published", lambda container, port: "127.0.0.1:41000")
    monkeypatch.setattr(registry, "wait", lambda *a, **kw: None)
    monkeypatch.setattr(registry, "serve_wheels", lambda *a: "unused")
    return docker


def started(docker: FakeDefaultEngine) -> tuple[str, ...]:
    (run,) = [c for c in docker.calls if c[0] == "run" and "stand-in/DIND26_IMAGE" in c]
    return run


@pytest.mark.parametrize("name", list(engines.ENGINES))
def test_up_starts_a_confined_engine_and_prints_what_selects_it(fake, name):
    variables = engines.up(name)
    run = started(fake)
    assert "--privileged" not in run
    caps = {run[i + 1] for i, a in enumerate(run) if a == "--cap-add"}
    assert {"SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE"} <= caps  # SYS_PTRACE: docker exec and HEALTHCHECK
    assert f"{engines.ENGINES[name].container}:/var/lib/docker" in run  # a named volume: images stay
    assert "127.0.0.1::2375" in run  # the API on this machine's loopback only
    script = run[run.index("-c") + 1]
    assert ("containerd-snapshotter" in script) == (name == "docker26-containerd")
    assert script.endswith(registry.WRITABLE_CGROUPS)
    assert variables["DOCKER_HOST"] == "tcp://127.0.0.1:41000"
    assert variables["ENGINE"] == name
    assert variables["ENGINE_ADDRESS"] == variables["IMAGE_ADVISOR_ADDRESS"] == "172.30.0.9"
    assert variables["ENGINE_WHEELS_URL"] == "http://172.30.0.9:8000/simple/"


def test_daemon_json_turns_on_the_containerd_store():
    assert json.loads(engines.ENGINES["docker26-containerd"].daemon_json()) == {
        "features": {"containerd-snapshotter": True}}
    assert json.loads(engines.ENGINES["docker26"].daemon_json()) == {"features": {}}


def test_unknown_engine_names_the_choices(fake):
    with pytest.raises(EngineError, match="docker26, docker26-containerd"):
        engines.up("docker99")
    assert not fake.calls


def test_containers_publish_where_this_machine_reaches_them(monkeypatch):
    monkeypatch.delenv("ENGINE_ADDRESS", raising=False)
    assert engine.publish_address() == "127.0.0.1"
    monkeypatch.setenv("ENGINE_ADDRESS", "172.30.0.9")
    assert engine.publish_address() == "172.30.0.9"


def test_builds_on_another_engine_use_the_wheelhouse_served_beside_it(monkeypatch):
    monkeypatch.setenv("ENGINE_WHEELS_URL", "http://172.30.0.3:8000/simple/")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:41000")
    monkeypatch.setattr(build, "docker", lambda *a, **kw: subprocess.CompletedProcess(a, 0, "Debian|x", ""))
    assert build.wheelhouse_unreachable_reason() is None
    setup = build.BuildSetup({}, use_wheelhouse=True)
    with setup.wheels() as url:
        assert url == "http://172.30.0.3:8000/simple/"
        args = setup.build_args()
    assert "PIP_TRUSTED_HOST=172.30.0.3:8000" in args
    assert "PIP_INDEX_URL=http://172.30.0.3:8000/simple/" in args


def test_results_of_another_engine_go_under_results_engines():
    def results(env: dict[str, str]) -> str:
        return subprocess.run([sys.executable, "-c", "from scripts.results import RESULTS; print(RESULTS)"],
                              cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout.strip()

    env = {k: v for k, v in os.environ.items() if k != "ENGINE"}
    assert results(env) == str(ROOT / "results")
    assert results({**env, "ENGINE": "docker26"}) == str(ROOT / "results" / "engines" / "docker26")


def sized(ls: str, inspect: int, replay: int, layout: str) -> dict:
    return {"image_ls": ls, "inspect_size_bytes": inspect, "replay_bytes": replay, "layers": 8,
            "save_layout": layout, "build_seconds": 30.0, "smoke": "PASS"}


def test_engine_table_puts_each_engines_figure_beside_the_replay():
    data = {"machine": {"cpu": "cpu", "cores": 2, "measured_at": "2026-12-02T22:00:00"}, "engines": {
        "docker20": {"server": "20.10.24+dfsg1", "driver": "overlay2", "driver_type": "", "system_df_images": "8.5GB",
                     "images": {"onnx_image": sized("151MB", 150_860_057, 150_000_000, "docker")}},
        "docker26-containerd": {"server": "26.1.5+dfsg1", "driver": "overlayfs",
                                "driver_type": "io.containerd.snapshotter.v1", "system_df_images": "4GB",
                                "images": {"onnx_image": sized("82.9MB", 82_900_000, 150_000_000, "oci")}}}}
    table = engine_sizes.markdown(data)
    assert "Docker 20.10.24, overlay2" in table and "Docker 26.1.5, containerd store" in table
    row = next(line for line in table.splitlines() if line.startswith("| `onnx_image`"))
    assert "151MB (150,860,057 B)" in row and "82.9MB (82,900,000 B)" in row
    assert row.endswith("| 150 MB (150,000,000 B) |")
    assert "Docker 26.1.5, containerd store: oci" in table
    summary = engine_sizes.summary(data)
    assert "| `onnx_image` | 151MB | 82.9MB |" in summary and "| `naive_image` | - | - |" in summary


def test_up_under_an_engine_already_selected_manages_it_from_the_default_engine(fake, monkeypatch):
    """make installers ENGINE=docker26 calls up again with that engine's variables in effect: its
    container must be looked for on the default engine, not inside itself."""
    monkeypatch.setenv("ENGINE", "docker26")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:41000")
    monkeypatch.setenv("ENGINE_DEFAULT_HOST", "")
    monkeypatch.setenv("DOCKER_CONFIG", "/somewhere/.cache/engines/docker26")
    seen = []
    monkeypatch.setattr(engines, "ensure_engine", lambda: seen.append(os.environ.get("DOCKER_HOST")))
    variables = engines.up("docker26")
    assert seen == [None]  # the default socket
    assert "DOCKER_CONFIG" not in os.environ and variables["ENGINE_DEFAULT_HOST"] == ""


@pytest.fixture
def listener():
    """A socket listening on a free port of 127.0.0.1: a port something already uses."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_registry_port_from_the_environment(listener, monkeypatch):
    monkeypatch.delenv("REGISTRY_PORT", raising=False)
    assert engines._wanted_port("127.0.0.1") == registry.ANY_PORT  # the kernel picks one
    monkeypatch.setenv("REGISTRY_PORT", str(listener))
    with pytest.raises(EngineError, match=f"REGISTRY_PORT={listener} is taken"):
        engines._wanted_port("127.0.0.1")
    monkeypatch.setenv("REGISTRY_PORT", "five")
    with pytest.raises(EngineError, match="not a port number"):
        engines._wanted_port("127.0.0.1")
    with socket.socket() as sock:  # a port nothing listens on once this closes
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    monkeypatch.setenv("REGISTRY_PORT", str(free))
    assert engines._wanted_port("127.0.0.1") == free


# What LISTENERS prints in a registry sharing an engine's namespace: dockerd listens on 2375 and
# 41213, the registry (pid 1 here, sockets 88 and 91) on 40331 (0x9D8B), over IPv6, and holds a
# connection (state 01) from port 5000 that is not a listener.
V6 = "0" * 32  # the IPv6 any-address as /proc/net/tcp6 writes it
SHARED_NAMESPACE = f"""\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0947 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 71 1 0 100 0 0 10 0
   1: 0100007F:1388 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 91 1 0 20 4 30 10 -1
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when
   0: {V6}:9D8B {V6}:0000 0A 00000000:00000000 00:00000000 00000000     0        0 88 1 0 100 0 0 10 0
   1: {V6}:A0FD {V6}:0000 0A 00000000:00000000 00:00000000 00000000     0        0 880 1 0 100 0 0 10 0
/dev/null
pipe:[1036091]
socket:[88]
anon_inode:[eventpoll]
socket:[91]
"""


def test_the_registry_port_is_its_own_listener_among_the_namespaces():
    assert registry.own_listening_ports(SHARED_NAMESPACE) == {0x9D8B}
    # before it listens: only others' sockets, so nothing (listening_port waits)
    assert registry.own_listening_ports(SHARED_NAMESPACE.replace("socket:[88]", "pipe:[7]")) == set()
