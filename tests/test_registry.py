"""measurement_infra's choice of empty engine, with the engine faked: no container starts here."""

from __future__ import annotations

import subprocess

import pytest

from scripts.infra import registry
from scripts.infra.engine import EngineError
from scripts.traffic.latency import free_port

CAPS_ERROR = "docker: Error response from daemon: runc create failed: unable to apply caps: operation not permitted"


class FakeEngine:
    """Records every docker call; `docker run --privileged` fails as refuse_privileged says."""

    def __init__(self, refuse_privileged: str | None, ports_taken: int = 0):
        self.refuse_privileged = refuse_privileged
        self.ports_taken = ports_taken  # this many registry runs fail: their port got taken meanwhile
        self.calls: list[tuple[str, ...]] = []
        self.started: list[tuple[str, ...]] = []

    def __call__(self, *args: str, check: bool = True, **_kw) -> subprocess.CompletedProcess:
        self.calls.append(args)
        if args[0] == "run" and "--privileged" in args and self.refuse_privileged:
            if check:
                raise EngineError(f"docker run -d --label failed: {self.refuse_privileged}")
            return subprocess.CompletedProcess(args, 125, "", self.refuse_privileged)
        if args[0] == "run" and "stand-in/REGISTRY_IMAGE" in args and self.ports_taken:
            self.ports_taken -= 1
            return subprocess.CompletedProcess(args, 125, "", "Bind for 127.0.0.1:5 failed: port is already allocated")
        if args[0] == "run":
            self.started.append(args)
        return subprocess.CompletedProcess(args, 0, "", "")

    def runs(self) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[0] == "run"]


@pytest.fixture
def fake(monkeypatch):
    def make(refuse_privileged: str | None, ports_taken: int = 0) -> FakeEngine:
        engine = FakeEngine(refuse_privileged, ports_taken)
        monkeypatch.setattr(registry, "docker", engine)
        monkeypatch.setattr(registry, "published", lambda container, port: f"127.0.0.1:{40000 + port}")
        monkeypatch.setattr(registry, "wait", lambda *a, **kw: None)
        monkeypatch.setattr(registry, "_infra_image", lambda arg: f"stand-in/{arg}")
        return engine
    return make


def registry_port(engine: FakeEngine) -> int:
    """The port the started registry listens on, and is published at, as its `docker run` said."""
    (run,) = [r for r in engine.runs() if "stand-in/REGISTRY_IMAGE" in r and r in engine.started]
    listen = run[run.index("-e") + 1].removeprefix("REGISTRY_HTTP_ADDR=:")
    assert f"127.0.0.1:{listen}:{listen}" in run
    return int(listen)


def engine_runs(engine: FakeEngine) -> list[tuple[str, ...]]:
    return [r for r in engine.runs() if "stand-in/DIND_IMAGE" in r]


def test_privileged_dind_when_the_engine_allows_it(fake):
    engine = fake(refuse_privileged=None)
    with registry.measurement_infra() as infra:
        assert infra.scratch == "tcp://127.0.0.1:42375"
    (run,) = engine_runs(engine)
    assert "--privileged" in run and "--cap-add" not in run


def test_refused_privileged_falls_back_to_named_capabilities(fake, capsys):
    engine = fake(refuse_privileged=CAPS_ERROR)
    with registry.measurement_infra(mirror=True) as infra:
        port = registry_port(engine)
        assert infra.registry_for_scratch == f"{registry.REGISTRY_ALIAS}:{port}"
        assert infra.registry == f"127.0.0.1:{port}"
    first, second = engine_runs(engine)
    assert "--privileged" in first
    assert "--privileged" not in second
    assert {"SYS_ADMIN", "NET_ADMIN"} <= {second[i + 1] for i, a in enumerate(second) if a == "--cap-add"}
    # the entrypoint makes the cgroups writable, then starts dockerd with the same flags
    image = second.index("stand-in/DIND_IMAGE")
    assert second[image + 1:image + 3] == ("-c", registry.WRITABLE_CGROUPS)
    assert f"--registry-mirror=http://{registry.REGISTRY_ALIAS}:{registry_port(engine)}" in second
    # the container the refused run created is removed before its name is used again
    name = second[second.index("--name") + 1]
    between = engine.calls[engine.calls.index(first) + 1:engine.calls.index(second)]
    assert ("rm", "-f", "-v", name) in between
    assert "refuses --privileged" in capsys.readouterr().err


def test_other_failures_are_not_retried(fake):
    engine = fake(refuse_privileged="Cannot connect to the Docker daemon")
    with pytest.raises(EngineError, match="Cannot connect"):
        with registry.measurement_infra():
            pass
    assert len(engine_runs(engine)) == 1


def test_everything_started_is_removed_on_the_way_out(fake):
    engine = fake(refuse_privileged=CAPS_ERROR)
    with pytest.raises(RuntimeError):
        with registry.measurement_infra():
            raise RuntimeError("interrupted")
    started = {r[r.index("--name") + 1] for r in engine.runs()}
    removed = {c[-1] for c in engine.calls if c[:3] == ("rm", "-f", "-v")}
    assert started <= removed
    assert any(c[:2] == ("network", "rm") for c in engine.calls)


def test_the_registry_takes_a_free_port_and_tries_again_if_it_was_taken_meanwhile(fake, monkeypatch):
    monkeypatch.delenv("REGISTRY_PORT", raising=False)
    engine = fake(refuse_privileged=None, ports_taken=2)
    with registry.measurement_infra() as infra:
        port = registry_port(engine)
        assert infra.registry == f"127.0.0.1:{port}" and not registry.listens_here(port)
    tried = [r for r in engine.runs() if "stand-in/REGISTRY_IMAGE" in r]
    assert len(tried) == 3  # two refused, then started
    name = tried[0][tried[0].index("--name") + 1]
    assert sum(c[:4] == ("rm", "-f", "-v", name) for c in engine.calls) >= 2  # each refused one removed


def test_a_registry_port_the_user_names_is_not_replaced(fake, monkeypatch):
    engine = fake(refuse_privileged=None, ports_taken=1)
    monkeypatch.setenv("REGISTRY_PORT", str(free_port()))
    with pytest.raises(EngineError, match="port is already allocated"):
        with registry.measurement_infra():
            pass
    assert len([r for r in engine.runs() if "stand-in/REGISTRY_IMAGE" in r]) == 1
