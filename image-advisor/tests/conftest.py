"""Fixtures that need a Docker engine: a small image built in seconds, FROM scratch (no registry needed)."""

from __future__ import annotations

import io
import os

import pytest
from tarballs import tar_bytes

from image_advisor.engine import sdk
from image_advisor.errors import AdvisorError

DOCKERFILE = b"""\
FROM scratch
COPY etc/ /etc/
COPY usr/ /usr/
COPY junk.bin /tmp/junk.bin
COPY junk-new.bin /tmp/junk.bin
"""


def context_tar() -> bytes:
    files = {"Dockerfile": DOCKERFILE, "etc/os-release": b'ID=debian\nVERSION_ID="12"\n',
             "usr/lib/python3.11/site-packages/x-1.0.dist-info/RECORD": b"x/__init__.py,,3\n",
             "usr/lib/python3.11/site-packages/x/__init__.py": b"x=1", "junk.bin": b"j" * 4096,
             "junk-new.bin": b"new"}
    return tar_bytes(files)


@pytest.fixture(scope="session")
def engine_image():
    """An image in the engine: four layers, the last one overwriting the 4096-byte /tmp/junk.bin.
    Tests that need it are skipped where no engine answers, unless IMAGE_ADVISOR_NEED_ENGINE=1 (CI)."""
    try:
        client = sdk()
    except AdvisorError as exc:
        if os.environ.get("IMAGE_ADVISOR_NEED_ENGINE") == "1":
            pytest.fail(f"IMAGE_ADVISOR_NEED_ENGINE=1 but {exc}")
        pytest.skip(f"no engine: {exc}")
    tag = "image-advisor-test:scratch"
    client.images.build(fileobj=io.BytesIO(context_tar()), custom_context=True, tag=tag, rm=True,
                        labels={"org.image-advisor.trace": "test"})
    yield tag
    client.images.remove(tag, force=True)
