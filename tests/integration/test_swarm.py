"""A two-node swarm of fresh engines runs onnx_image: both replicas answer, then everything is gone."""

from __future__ import annotations

import pytest
from docker.errors import ImageNotFound

from scripts.images.build import build_all, prepare
from scripts.infra.engine import docker, sdk
from scripts.infra.swarm import swarm_cluster
from scripts.variants import BY_NAME

ONNX = BY_NAME["onnx_image"]


@pytest.fixture(scope="module")
def image():
    try:
        sdk().images.get(ONNX.image)
    except ImageNotFound:
        build_all([ONNX], prepare("cpu"))
    return ONNX.image


def test_two_node_swarm_serves_onnx_image(image):
    with swarm_cluster(2) as cluster:
        network = cluster.network
        ref = cluster.push(image)
        cluster.deploy("classifier", ref, replicas=2)
        cluster.wait_answering("classifier", 2, timeout=300)
        assert len(cluster.answering()) == 2
        nodes = docker("node", "ls", "--format", "{{.Hostname}} {{.Status}}", host=cluster.manager.host).stdout
        assert nodes.count("Ready") == 2, nodes
    left = docker("ps", "-a", "--filter", f"name={network}", "--format", "{{.Names}}").stdout.split()
    assert left == [], left
