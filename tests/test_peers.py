"""The peers (peers/, scripts/peers.py): their files, their pins, and the checks that measure them."""

from __future__ import annotations

import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scripts.bench.peers import ratio
from scripts.images.container import NEGATIVE, POSITIVE
from scripts.images.peer_images import WrongAnswer, check_answers, select
from scripts.infra.wheelhouse import REQUIREMENTS
from scripts.peers import BY_NAME, CI_PEERS, PEERS, PEERS_DIR, Peer
from scripts.results import RESULTS, load_json
from scripts.traffic import hostile, latency, wrk
from scripts.variants import ROOT


def pins(path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", line.strip()):
            found[m.group(1).lower()] = m.group(2)
    return found


def test_the_peers_run_the_model_on_the_services_pins():
    app = {**pins(ROOT / "app/requirements-common.txt"), **pins(ROOT / "app/requirements-onnx.txt"),
           **pins(ROOT / "app/requirements-export.txt")}
    peer = pins(PEERS_DIR / "requirements-model.txt")
    assert peer and {name: app.get(name) for name in peer} == peer


def test_every_peer_has_its_service_dockerfile_context_and_slim_target():
    slim = (PEERS_DIR / "slim.Dockerfile").read_text()
    assert set(re.findall(r"^FROM runtime AS (\w+)$", slim, flags=re.M)) == set(BY_NAME)
    for peer in PEERS:
        folder = PEERS_DIR / peer.name
        for name in ("Dockerfile", "Dockerfile.dockerignore", "requirements.txt", "README.md"):
            assert (folder / name).is_file(), f"peers/{peer.name}/{name} is missing"
        assert list(folder.glob("*.py")), f"peers/{peer.name} has no service"
        # The Dockerfile's context is what its .dockerignore lets through: the shared model code and its folder.
        allowed = (folder / "Dockerfile.dockerignore").read_text()
        assert "!peers/classifier.py" in allowed and f"!peers/{peer.name}/" in allowed
        assert peer.base_args("default") and peer.base_args("slim") == {"DEBIAN_IMAGE", "DISTROLESS_IMAGE"}


def test_the_wheelhouse_resolves_every_peer_on_its_own():
    files = {f for ws in REQUIREMENTS["peers"] for f in ws.files}
    assert {f"peers/{p.name}/requirements.txt" for p in PEERS} <= files
    assert all((ROOT / f).is_file() for f in files)


def test_selection_names_unknown_peers_in_one_line():
    assert select("fastapi", "slim") == [(BY_NAME["fastapi"], "slim")]
    assert len(select("", "")) == 2 * len(PEERS)
    with pytest.raises(SystemExit, match="unknown peer or packaging \\['flask'\\]"):
        select("flask", "")


class _Peer(BaseHTTPRequestHandler):
    """A peer whose answers the test chooses: right, swapped labels, unwrapped, or failing."""

    mode = "right"
    paths: list[str] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.paths.append(self.path)
        texts = json.loads(self.rfile.read(int(self.headers["content-length"])))["texts"]
        labels = {POSITIVE: "POSITIVE", NEGATIVE: "NEGATIVE"}
        if self.mode == "swapped":
            labels = {POSITIVE: "NEGATIVE", NEGATIVE: "POSITIVE"}
        predictions = [{"label": labels.get(t, "POSITIVE"), "score": 0.9} for t in texts]
        body = json.dumps(predictions if self.mode == "unwrapped" else {"predictions": predictions}).encode()
        self.send_response(500 if self.mode == "failing" else 200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_peer():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Peer)
    server.protocol_version = "HTTP/1.1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Peer.paths = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.mark.parametrize(("mode", "problem"), [("swapped", "labels"), ("failing", "HTTP 500"),
                                                ("unwrapped", "no predictions list")])
def test_a_peer_that_answers_wrongly_fails_its_smoke_check(fake_peer, mode, problem):
    _Peer.mode = mode
    with pytest.raises(WrongAnswer, match=problem):
        check_answers(fake_peer, BY_NAME["fastapi"])


def test_a_right_peer_passes_on_its_own_path_and_wrapping(fake_peer):
    _Peer.mode = "right"
    check_answers(fake_peer, Peer("x", "x", path="/v1/models/classifier:predict"))
    _Peer.mode = "unwrapped"
    check_answers(fake_peer, BY_NAME["bentoml"])  # BentoML answers with the list itself
    assert set(_Peer.paths) == {"/v1/models/classifier:predict", "/classify"}


def test_latency_asks_on_the_peers_path_with_its_field(fake_peer):
    _Peer.mode = "right"
    host, port = fake_peer.removeprefix("http://").split(":")
    figures = latency.measure(host, int(port), requests=5, warmup=1, path="/v2/x", field="texts")
    assert figures["requests"] == 5 and set(_Peer.paths) == {"/v2/x"}


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_wrk_loads_the_peers_path(fake_peer):
    _Peer.mode = "right"
    host, port = fake_peer.removeprefix("http://").split(":")
    row = wrk.run(host, int(port), 2, 1, [(json.dumps({"texts": ["ok"]}).encode(), 1.0)], path="/v1/m:predict")
    assert row["requests"] > 5 and row["errors"] == 0 and set(_Peer.paths) == {"/v1/m:predict"}


def test_the_hostile_set_attacks_the_path_it_is_given():
    path = "/v1/models/classifier:predict"
    requests = hostile.bad_requests(max_body=64, path=path)
    assert not [name for name, raw, _ in requests if b"/classify" in raw]
    assert sum(path.encode() in raw for _, raw, _ in requests) >= 10


def test_ratio_says_how_onnx_image_stands_against_the_best_peer():
    images = {"onnx_image": {"size": 100, "rps": 300}, "a": {"size": 200, "rps": 600}, "b": {"size": 400, "rps": 100}}
    assert ratio(images, "size", smaller=True) == "2.00x"  # half the best peer's size
    assert ratio(images, "rps", smaller=False) == "0.50x"  # half the best peer's throughput
    assert ratio({"onnx_image": {}}, "size", smaller=True) == "-"


def test_the_peers_make_test_builds_each_built_cold_in_under_a_minute():
    images = load_json(RESULTS / "peers.json")["images"]
    for name in CI_PEERS:
        for packaging in ("default", "slim"):
            row = images[f"{name}-{packaging}"]
            assert row["build_seconds"] < 60, f"{name}-{packaging} took {row['build_seconds']} s: not for make test"
