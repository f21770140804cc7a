"""The GPU check refuses clearly where there is no GPU (this machine, CI), and never writes gpu.json then."""

from __future__ import annotations

import pytest

from scripts.bench import gpu_check
from scripts.results import RESULTS


def test_without_a_gpu_it_exits_2_and_says_why(monkeypatch, capsys):
    monkeypatch.delenv("GPU_CHECK_REHEARSE", raising=False)
    monkeypatch.setattr(gpu_check, "cuda_reason", lambda: "torch 2.13.0+cpu sees no CUDA device")
    before = (RESULTS / "gpu.json").exists()
    assert gpu_check.main(["check"]) == 2
    assert "sees no CUDA device" in capsys.readouterr().err
    assert (RESULTS / "gpu.json").exists() == before


def test_cuda_reason_on_this_machine():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        assert gpu_check.cuda_reason() is None
    else:
        assert "sees no CUDA device" in gpu_check.cuda_reason()
