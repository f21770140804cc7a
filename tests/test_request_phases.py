"""make request-phases: the split of one request's time, and the timer the images run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from scripts.bench import request_phases
from tests.conftest import ROOT


def test_each_phase_is_its_layer_less_the_one_inside_it():
    layers = {"tokenizer": 0.05, "forward pass": 2.0, "model thread": 2.3, "Flask": 2.9, "ASGI front": 3.3, "HTTP": 4.0}
    split = request_phases.phases(layers)
    assert list(split) == list(request_phases.PHASES)
    assert split == {"tokenizer": 0.05, "forward pass": 1.95, "model thread": 0.3, "Flask": 0.6, "ASGI front": 0.4,
                     "HTTP": 0.7}
    assert round(sum(split.values()), 6) == 4.0  # the phases add up to the round trip


def test_a_layer_measured_faster_than_the_one_inside_it_counts_zero_not_negative():
    layers = {"tokenizer": 0.05, "forward pass": 2.0, "model thread": 1.9, "Flask": 2.5, "ASGI front": 2.6, "HTTP": 3.0}
    split = request_phases.phases(layers)
    assert split["model thread"] == 0.0
    assert split["Flask"] == 0.5  # against the larger layer inside it, so the sum still matches the round trip
    assert round(sum(split.values()), 6) == 3.0


def test_markdown_rows_follow_the_variant_order_and_show_the_models_share(tmp_path):
    row = {"phases_ms": dict.fromkeys(request_phases.PHASES, 1.0), "total_ms": 6.0, "model_work_ms": 2.0,
           "healthz_ms": 0.5, "requests": 10}
    text = request_phases.markdown({"machine": {"cpu": "x", "cores": 2, "measured_at": "2026-12-03"},
                                    "variants": {"onnx_image": row, "naive_image": row}})
    rows = [line for line in text.splitlines() if line.startswith("| naive") or line.startswith("| onnx")]
    assert [r.split(" |")[0] for r in rows] == ["| naive_image", "| onnx_image"]
    assert "2.00 ms (33%)" in rows[0] and rows[0].endswith("| 0.50 ms |")


def test_the_timer_runs_against_the_real_service_code(tiny_model_dirs):
    """The script the images run, here against the tiny model of each backend: every layer is timed."""
    env = {**os.environ, "MODEL_DIR": str(tiny_model_dirs)}
    out = subprocess.run([sys.executable, "-c", request_phases.TIMER, "10", "a fine film"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300, check=True)
    layers = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(layers) == set(request_phases.PHASES) - {"HTTP"}
    assert all(v > 0 for v in layers.values())
    assert layers["Flask"] > layers["tokenizer"]


def test_request_count_is_bounded(capsys):
    assert request_phases.main(["--requests", "100000"]) == 2
    assert "between 10 and 5000" in capsys.readouterr().err
