"""image-advisor's trace runs someone else's image: one that exits at once, listens on another port,
floods its output or forks without end gets one line saying what happened, is held to its limits while
it runs, and leaves no container behind. The images are the Python stand-in base plus one command."""

from __future__ import annotations

import io
import json
import tarfile
import time

import pytest
from image_advisor.engine import LABEL
from image_advisor.trace import CONFINED, parse_requests, trace_image

from scripts.infra import bases
from scripts.infra.engine import sdk

SERVE = "exec python3 -m http.server 8000"
FORK_FOREVER = ("import os, time\\nwhile True:\\n    try:\\n        os.fork()\\n"
                "    except OSError:\\n        time.sleep(1)")
HOSTILE = {
    "exits": "echo 'no config file' && exit 3",
    "other-port": "exec python3 -m http.server 9000",
    "floods": f"yes flood & {SERVE}",
    # the server starts once the forks have had time to fill the limit (exec needs no fork of its own)
    "forks": f"python3 -c \"$(printf '{FORK_FOREVER}')\" & sleep 2; {SERVE}",
    "no-python": "exec sleep 600",  # on a base without Python: nothing to trace, nothing to send requests from
}
NO_PYTHON_BASE = {"no-python": "DEBIAN13_IMAGE"}


@pytest.fixture(scope="module")
def images():
    client = sdk()
    tags = {}
    for name, command in HOSTILE.items():
        base = bases.resolve_one(bases.BY_ARG[NO_PYTHON_BASE.get(name, "PYTHON_SLIM_IMAGE")])
        dockerfile = f'FROM {base}\nEXPOSE 8000\nCMD ["sh", "-c", {json.dumps(command)}]\n'
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = dockerfile.encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tags[name] = f"bert-classifier-scratch:hostile-{name}"
        client.images.build(fileobj=io.BytesIO(buf.getvalue()), custom_context=True, tag=tags[name], rm=True)
    yield tags
    for tag in tags.values():
        client.images.remove(tag, force=True)


def traced(image: str, after=None, ready_timeout: float = 20):
    lines: list[str] = []
    trace = trace_image(image, parse_requests("GET /"), log=lines.append, after=after, ready_timeout=ready_timeout)
    left = sdk().containers.list(all=True, filters={"label": LABEL, "ancestor": image})
    assert not left, f"the trace left {[c.name for c in left]} behind"
    return trace


def test_an_image_that_exits_at_once_is_named_with_its_code_and_last_line(images):
    trace = traced(images["exits"])
    assert not trace.ok
    assert "exited (code 3)" in trace.reason and "no config file" in trace.reason, trace.reason
    assert "\n" not in trace.reason


def test_an_image_that_listens_on_another_port_times_out_with_a_hint(images):
    started = time.monotonic()
    trace = traced(images["other-port"], ready_timeout=5)
    assert time.monotonic() - started < 60
    assert not trace.ok and "no answer to GET / after 5 s on port 8000" in trace.reason, trace.reason
    assert trace.reason.endswith("it listens on 9000"), trace.reason


def test_an_image_that_floods_its_output_keeps_a_bounded_log(images):
    seen = {}

    def after(container, base):
        time.sleep(3)  # `yes` writes far more than the log's cap in this time
        seen["log"] = len(container.logs(stdout=True, stderr=True))

    trace = traced(images["floods"], after=after)
    assert trace.ok, trace.reason
    cap = int(CONFINED["log_config"]["config"]["max-size"].removesuffix("m")) * 2**20
    assert 0 < seen["log"] <= cap * 1.1, seen


def test_the_traced_service_has_no_network_but_its_loopback(images):
    seen = {}

    def after(container, base):
        look = ("import socket; print(sorted(n for _, n in socket.if_nameindex()))\n"
                "print(len(open('/proc/net/route').read().splitlines()) - 1)")
        _, out = container.exec_run(["python3", "-c", look])
        seen["interfaces"], seen["routes"] = out.decode().split()
        seen["base"] = base

    trace = traced(images["floods"], after=after)
    assert trace.ok and trace.answers == [("GET /", 200)], trace
    assert seen == {"interfaces": "['lo']", "routes": "0", "base": ""}, seen


def test_an_image_without_python_is_named_without_waiting_for_the_time_limit(images):
    started = time.monotonic()
    trace = traced(images["no-python"], ready_timeout=300)
    assert time.monotonic() - started < 60
    assert not trace.ok and "not a Python service?" in trace.reason, trace.reason


def test_an_image_that_forks_without_end_is_held_to_its_pid_limit_and_named(images):
    trace = traced(images["forks"], ready_timeout=10)
    assert not trace.ok
    assert f"holds {CONFINED['pids_limit']} processes, the trace's limit" in trace.reason, trace.reason
