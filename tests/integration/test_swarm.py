"""A two-node swarm of fresh engines runs onnx_image: both replicas answer, a rolling update under load
loses no request, then everything is gone."""

from __future__ import annotations

import pytest
from docker.errors import ImageNotFound

from scripts.images.build import build_all, prepare
from scripts.infra.engine import docker, sdk
from scripts.infra.swarm import rollout_image, swarm_cluster
from scripts.traffic.spread import SpreadLoad
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

        tag = rollout_image(image)
        try:
            new = cluster.push(tag)
        finally:
            docker("rmi", tag, check=False)
        with SpreadLoad([n.service_url for n in cluster.nodes], clients=2, max_seconds=300) as load:
            cluster.update("classifier", new, timeout=240)
            cluster.wait_answering("classifier", 2, timeout=120)
        summary = load.summary()
        assert summary["requests"] > 0 and summary["failed"] == 0, summary
        images = docker("service", "ps", "--filter", "desired-state=running", "--format", "{{.Image}}",
                        "classifier", host=cluster.manager.host).stdout.split()
        assert images == [new, new], images
    left = docker("ps", "-a", "--filter", f"name={network}", "--format", "{{.Names}}").stdout.split()
    assert left == [], left
