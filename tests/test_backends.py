"""Backend choice, the ONNX backend on the tiny model, and parity with torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from app.backends import ModelLoadError, backend_for, load_model
from app.settings import Settings
from tests.conftest import ROOT, make_tiny_onnx

SENTENCES = ["i love this movie", "awful boring film", "the film was not very great", "wonderful", "i hate the a"]


def test_backend_follows_the_folder(tiny_model_dir, tiny_onnx_dir):
    assert backend_for(str(tiny_model_dir)) == "torch"
    assert backend_for(str(tiny_onnx_dir)) == "onnx"
    assert backend_for(str(tiny_onnx_dir), "torch") == "torch"  # BACKEND= overrides the folder


def test_backend_setting_is_validated(monkeypatch):
    monkeypatch.setenv("BACKEND", "tensorflow")
    with pytest.raises(SystemExit, match="BACKEND must be"):
        Settings.from_env()


def test_forcing_onnx_on_a_torch_folder_is_a_clear_error(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="no model.onnx"):
        load_model(str(tiny_model_dir), backend="onnx")


def test_onnx_folder_has_what_the_backend_reads(tiny_onnx_dir):
    assert {p.name for p in tiny_onnx_dir.iterdir()} >= {"model.onnx", "tokenizer.json", "config.json"}
    assert json.loads((tiny_onnx_dir / "ORIGIN.json").read_text())["form"] == "fp32"


def test_export_is_reproducible_and_int8_is_smaller(tiny_model_dir, tmp_path):
    first = make_tiny_onnx(tiny_model_dir, tmp_path / "a")
    again = make_tiny_onnx(tiny_model_dir, tmp_path / "b")
    int8 = make_tiny_onnx(tiny_model_dir, tmp_path / "c", form="int8")
    assert (first / "model.onnx").read_bytes() == (again / "model.onnx").read_bytes()
    assert (int8 / "model.onnx").stat().st_size < (first / "model.onnx").stat().st_size
    assert load_model(str(int8), threads=1).predict(["great film"])[0].label in {"NEGATIVE", "POSITIVE"}


def test_label_and_score_parity_with_torch(tiny_model_dir, tiny_onnx_dir):
    torch_preds = load_model(str(tiny_model_dir), threads=1).predict(SENTENCES)
    onnx_preds = load_model(str(tiny_onnx_dir), threads=1).predict(SENTENCES)
    assert [p.label for p in onnx_preds] == [p.label for p in torch_preds]
    assert [p.score for p in onnx_preds] == pytest.approx([p.score for p in torch_preds], abs=1e-4)


def test_inference_threads_are_explicit(tiny_model_dir, tiny_onnx_dir):
    import torch

    load_model(str(tiny_model_dir), threads=2)
    assert torch.get_num_threads() == 2
    onnx = load_model(str(tiny_onnx_dir), threads=2)
    assert onnx.describe()["threads"] == 2
    assert onnx.session().get_session_options().intra_op_num_threads == 2


def test_onnx_session_is_made_again_after_fork(tiny_onnx_dir):
    """gunicorn forks after loading: the worker must not reuse the master's thread pool."""
    model = load_model(str(tiny_onnx_dir), threads=1)
    parent = model.session()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report whether it got its own session, then leave without cleanup
        fresh = model.session() is not parent and model.predict(["great"])[0].label in {"NEGATIVE", "POSITIVE"}
        os.write(write, b"1" if fresh else b"0")
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert model.session() is parent  # the parent keeps its own


def test_onnx_service_never_imports_torch(tiny_onnx_dir):
    code = ("import sys, app.wsgi; app.wsgi.model.predict(['great film']); "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    env = {**os.environ, "MODEL_DIR": str(tiny_onnx_dir)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_counting_and_predicting_from_many_threads_at_once(tiny_classifier):
    """The service counts tokens and predicts from several threads; neither may break the other
    (transformers' tokenizer changes its padding per call: unguarded, batches failed under load)."""
    import threading
    import time

    errors: list[str] = []
    stop = time.monotonic() + 2

    def count() -> None:
        while time.monotonic() < stop:
            try:
                tiny_classifier.count_tokens(["great film " * 20, "bad"] * 4)
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(repr(exc))

    def predict() -> None:
        while time.monotonic() < stop:
            try:
                tiny_classifier.predict(["great film", "a much longer text " * 10])
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))

    threads = [threading.Thread(target=f) for f in (count, count, predict, predict)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
