"""Serving the wheelhouse: a stable port per checkout, never a collision between checkouts."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from scripts import wheelhouse


def test_port_is_stable_per_checkout_and_differs_between_checkouts():
    assert wheelhouse.checkout_port(Path("/a/clone")) == wheelhouse.checkout_port(Path("/a/clone"))
    ports = {wheelhouse.checkout_port(Path(f"/work/clone-{n}")) for n in range(20)}
    assert len(ports) >= 19 and all(20000 <= p < 40000 for p in ports)


def test_serves_on_the_checkout_port(tmp_path, monkeypatch):
    monkeypatch.delenv("WHEELHOUSE_PORT", raising=False)
    (tmp_path / "simple").mkdir()
    (tmp_path / "simple" / "index.html").write_text("ok")
    with wheelhouse.serve(tmp_path) as url:
        assert url == f"http://127.0.0.1:{wheelhouse.checkout_port()}/simple/"
        assert urllib.request.urlopen(url, timeout=5).read() == b"ok"


def test_a_taken_checkout_port_falls_back_to_a_free_one(tmp_path, monkeypatch):
    """What a second build of the same checkout, or a port collision, gets: a working index."""
    monkeypatch.delenv("WHEELHOUSE_PORT", raising=False)
    (tmp_path / "simple").mkdir()
    (tmp_path / "simple" / "index.html").write_text("ok")
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the previous test's port may be in TIME_WAIT
        busy.bind(("127.0.0.1", wheelhouse.checkout_port()))
        busy.listen()
        with wheelhouse.serve(tmp_path) as url:
            assert f":{wheelhouse.checkout_port()}/" not in url
            assert urllib.request.urlopen(url, timeout=5).read() == b"ok"


def test_a_taken_port_that_was_asked_for_is_a_clear_error(tmp_path, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        monkeypatch.setenv("WHEELHOUSE_PORT", str(busy.getsockname()[1]))
        with pytest.raises(SystemExit, match="WHEELHOUSE_PORT"):
            with wheelhouse.serve(tmp_path):
                pass
