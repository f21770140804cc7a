"""The integration tests' builds record their figures in a file of their own: make test leaves
results/build.json, and the docs that show it, as make compare or make build-all wrote them."""

from __future__ import annotations

import pytest

from scripts.images import build


@pytest.fixture(scope="session", autouse=True)
def build_records_apart(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(build, "BUILD_JSON", tmp_path_factory.mktemp("results") / "build.json")
        yield
