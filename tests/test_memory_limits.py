"""The documented memory limit of each runtime (variants.MEMORY_LIMIT_MIB) covers what make compare measured."""

from __future__ import annotations

import json

import pytest

from scripts.results import RESULTS
from scripts.variants import MEMORY_LIMIT_MIB, VARIANTS

HEADROOM = 1.25
PEAKS = ("idle_memory_bytes", "memory_load_peak_bytes", "memory_heavy_peak_bytes")


def uncovered(compare: dict) -> list[str]:
    """Variants whose measured peak, with headroom, is above their runtime's documented limit."""
    problems = []
    for v in VARIANTS:
        row = compare.get("variants", {}).get(v.name, {})
        peak = max((row.get(k) or 0) for k in PEAKS)
        if peak * HEADROOM > MEMORY_LIMIT_MIB[v.runtime] << 20:
            problems.append(f"{v.name}: peak {peak >> 20} MiB x {HEADROOM} > {MEMORY_LIMIT_MIB[v.runtime]} MiB")
    return problems


def test_documented_limits_cover_the_measured_peaks():
    compare = json.loads((RESULTS / "compare.json").read_text())
    measured = [v.name for v in VARIANTS if compare["variants"].get(v.name, {}).get("memory_heavy_peak_bytes")]
    if not measured:
        pytest.fail("results/compare.json has no memory peaks: run make compare")
    assert uncovered(compare) == []


def test_a_peak_above_the_limit_is_reported():
    row = {"memory_heavy_peak_bytes": (MEMORY_LIMIT_MIB["onnx"] << 20)}
    assert uncovered({"variants": {"onnx_image": row}}) == [
        f"onnx_image: peak {MEMORY_LIMIT_MIB['onnx']} MiB x {HEADROOM} > {MEMORY_LIMIT_MIB['onnx']} MiB"]
