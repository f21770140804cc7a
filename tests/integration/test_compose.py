"""`VARIANT=... docker compose up` runs two variants with their health checks, read-only root,
non-root user, memory limit and a loopback port; each classifies, then everything is gone."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request

import pytest
from docker.errors import ImageNotFound

from scripts.images.build import build_all, prepare
from scripts.infra.compose import compose_command
from scripts.infra.engine import sdk
from scripts.traffic.latency import free_port
from scripts.variants import BY_NAME, MEMORY_LIMIT_MIB, ROOT


@pytest.mark.parametrize("name", ["onnx_image", "distroless_image"])
def test_compose_up_serves_the_variant(name):
    variant = BY_NAME[name]
    try:
        sdk().images.get(variant.image)
    except ImageNotFound:
        build_all([variant], prepare("cpu"))
    port = free_port()
    project = f"bert-compose-test-{name.replace('_', '-')}-{port}"
    env = {**os.environ, "VARIANT": name, "PORT": str(port), "MEMORY_LIMIT": f"{variant.memory_limit_mib}m"}
    cmd = [*compose_command(), "-f", str(ROOT / "compose.yaml"), "-p", project]
    try:
        up = subprocess.run([*cmd, "up", "-d", "--wait", "--wait-timeout", "180"], env=env, capture_output=True,
                            text=True, timeout=300)
        assert up.returncode == 0, up.stderr[-2000:]
        req = urllib.request.Request(f"http://127.0.0.1:{port}/classify", method="POST",
                                     data=json.dumps({"text": "I love this movie"}).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert json.loads(resp.read())["predictions"][0]["label"] == "POSITIVE"
        [container] = sdk().containers.list(filters={"label": f"com.docker.compose.project={project}"})
        host = container.attrs["HostConfig"]
        assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"]
        assert host["Memory"] == MEMORY_LIMIT_MIB[variant.runtime] << 20
        assert container.attrs["State"]["Health"]["Status"] == "healthy"
        assert container.attrs["Config"]["User"] not in {"", "0", "root"}
        assert host["PortBindings"]["8000/tcp"][0]["HostIp"] == "127.0.0.1"
    finally:
        subprocess.run([*cmd, "down", "--timeout", "10"], env=env, capture_output=True, timeout=120)
    assert sdk().containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"}) == []
