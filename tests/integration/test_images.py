"""Integration: build all five images from scratch (cold), then smoke-test each one in a container.

This is what CI runs after the unit tests (`make integration`). It needs a Docker engine,
which scripts.infra.engine finds or starts (installing docker.io on a fresh Debian machine).
"""

from __future__ import annotations

import pytest

from scripts.images.build import build_all, prepare
from scripts.images.smoke import smoke_variant
from scripts.variants import VARIANTS

SMALLEST_TO_NAIVE_MAX = 1 / 3


@pytest.fixture(scope="module")
def built():
    """Cold builds of every variant; returns build.json's figures."""
    return build_all(list(VARIANTS), prepare("cpu"), cached=False)


def test_every_variant_builds_and_is_recorded(built):
    for variant in VARIANTS:
        record = built[variant.name]
        assert record["cold"] and record["size_bytes"] > 50_000_000 and record["build_seconds"] > 0


def test_naive_is_the_largest(built):
    sizes = {name: r["size_bytes"] for name, r in built.items()}
    assert max(sizes, key=sizes.get) == "naive_image"


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_smoke(built, variant):
    result = smoke_variant(variant)
    assert not result["failures"], "; ".join(result["failures"])
    assert result["runs_as_root"] == (not variant.non_root)
    assert result["exit_code"] == 0 and result["stop_seconds"] < 10
