"""The official path, where Docker Hub is out of reach: a registry mirror stands in for Hub.

The stand-in python:3.11-slim is pushed into a throwaway registry under its official name;
an empty engine (docker:dind) uses that registry as its Docker Hub mirror. BASES=auto in
that engine must then pull the official name and build no stand-in; slim_image is built
there (wheels from a container on the same network) and answers /classify.
"""

from __future__ import annotations

import json
import time
import urllib.request

from scripts.images.build import BuildSetup, build_image, engine_arch
from scripts.infra import bases, registry, wheelhouse
from scripts.infra.engine import docker, ensure_engine
from scripts.variants import BY_NAME

SLIM = next(b for b in bases.BASES if b.arg == "PYTHON_SLIM_IMAGE")


def classify(url: str, text: str) -> str:
    req = urllib.request.Request(f"{url}/classify", data=json.dumps({"text": text}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)["predictions"][0]["label"]


def test_official_bases_come_through_a_registry_mirror(monkeypatch):
    ensure_engine()
    stand_in = bases.build_local(SLIM)  # what BASES=auto falls back to here, in the main engine
    wheelhouse.download("cpu", engine_arch())
    with registry.measurement_infra(mirror=True, wheelhouse=wheelhouse.WHEELHOUSE) as infra:
        name, tag = SLIM.official.split(":")
        official = infra.push_ref(f"library/{name}", tag)  # Hub's path for an official image
        docker("tag", stand_in, official)
        try:
            docker("push", official, timeout=600)
        finally:
            docker("rmi", official, check=False)
        # Until the block ends, every docker call is the empty engine; the infra is removed in the main one.
        with monkeypatch.context() as scratch_env:
            scratch_env.setenv("DOCKER_HOST", infra.scratch)
            scratch_env.setenv("BASES", "auto")
            assert bases.resolve_one(SLIM) == SLIM.official
            slim = BY_NAME["slim_image"]
            setup = BuildSetup({SLIM.arg: SLIM.official}, "cpu", index_url=infra.wheels_url)
            build_image(slim.dockerfile, slim.image, setup, label="slim_image (official path)")
            images = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
            assert SLIM.official in images and not any(i.startswith("local/") for i in images), images
            service = docker("run", "-d", "--network", "host", "-e", f"GUNICORN_CMD_ARGS=--bind {infra.bind}",
                             slim.image).stdout.strip()
            try:
                deadline, label = time.monotonic() + 180, None
                while time.monotonic() < deadline and label is None:
                    try:
                        label = classify(infra.service_url, "I love this movie, the acting is wonderful.")
                    except OSError:
                        time.sleep(0.5)
                assert label == "POSITIVE"
                assert classify(infra.service_url, "A dull, lifeless mess that wastes its talented cast.") == "NEGATIVE"
            finally:
                docker("rm", "-f", service, check=False)
