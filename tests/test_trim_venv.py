"""The build-stage venv trimmer removes only build/test material."""

from __future__ import annotations

from scripts.trim_venv import trim


def test_trim_removes_listed_paths_and_keeps_runtime(tmp_path):
    site = tmp_path / "lib/python3.11/site-packages"
    keep = ["torch/lib/libtorch_cpu.so", "torch/__init__.py", "torch/testing/__init__.py", "numpy/core/x.py"]
    drop = ["torch/include/ATen/x.h", "torch/bin/protoc", "torch/test/t", "torch/lib/libtorchbind_test.so",
            "numpy/tests/test_a.py", "pip/__init__.py", "pip-24.0.dist-info/RECORD"]
    for rel in keep + drop:
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(b"x" * 10)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/pip").write_text("#!")
    (tmp_path / "bin/python").write_text("#!")
    freed = trim(tmp_path)
    assert freed == 10 * len(drop)
    assert all((site / rel).exists() for rel in keep)
    assert not any((site / rel).exists() for rel in drop)
    assert (tmp_path / "bin/python").exists() and not (tmp_path / "bin/pip").exists()
