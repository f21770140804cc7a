"""Backend choice, the ONNX backend on the tiny model, and parity with torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import app.backends as backends
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


def _predict_from_threads(model, requests: list[list[str]]) -> list:
    """Each request from its own thread, all released at once; the answers in request order."""
    import threading

    answers: list = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def send(i: int) -> None:
        start.wait()
        try:
            answers[i] = model.predict(requests[i])
        except Exception as exc:  # noqa: BLE001 - the error is the answer
            answers[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return answers


def test_concurrent_requests_share_forward_passes_and_keep_their_own_answers(tiny_model_dirs):
    """Requests that arrive while the model is busy run together: fewer passes than requests, and each
    request gets exactly the predictions it would get alone."""
    requests = [[s] for s in SENTENCES * 4] + [SENTENCES[:2], SENTENCES[2:]]
    alone = load_model(str(tiny_model_dirs), threads=1, coalesce=False)
    expected = [alone.predict(texts) for texts in requests]
    assert alone.passes == alone.requests == len(requests)

    model = load_model(str(tiny_model_dirs), threads=1, batch_size=8)
    model.predict(["warm up"])
    answers = _predict_from_threads(model, requests)
    assert [[p.label for p in a] for a in answers] == [[p.label for p in e] for e in expected]
    assert [[p.score for p in a] for a in answers] == [pytest.approx([p.score for p in e], abs=1e-5)
                                                      for e in expected]
    assert model.requests == len(requests) + 1
    assert model.passes < model.requests  # some requests shared a pass
    assert all(len(a) == len(r) for a, r in zip(answers, requests, strict=True))


def test_a_pass_that_fails_is_retried_per_request_so_each_gets_its_own_error(tiny_onnx_dir, monkeypatch):
    model = load_model(str(tiny_onnx_dir), threads=1, batch_size=8)
    real = model._predict_batch
    slow = __import__("threading").Event()

    def flaky(texts, release=False):
        if not slow.is_set():  # the first pass holds the model while the others queue up
            slow.set()
            __import__("time").sleep(0.3)
        if "poison" in texts:
            raise ValueError("poisoned input")
        return real(texts, release)

    monkeypatch.setattr(model, "_predict_batch", flaky)
    requests = [["great film"], ["poison"], ["awful film"], ["wonderful"]]
    answers = _predict_from_threads(model, requests)
    assert isinstance(answers[1], ValueError)
    assert [type(a) for i, a in enumerate(answers) if i != 1] == [list, list, list]
    assert model.passes < 4 + 3  # the queued three did not each run alone and again


def test_a_pass_never_holds_more_than_its_budget(tiny_onnx_dir, monkeypatch):
    """Joined requests stay within batch_size texts and batch_tokens padded tokens per pass."""
    model = load_model(str(tiny_onnx_dir), threads=1, batch_size=4, batch_tokens=64)
    real = model._predict_batch
    seen: list[list[str]] = []
    gate = __import__("threading").Event()

    def recording(texts, release=False):
        if not gate.is_set():
            gate.set()
            __import__("time").sleep(0.3)
        seen.append(list(texts))
        return real(texts, release)

    monkeypatch.setattr(model, "_predict_batch", recording)
    requests = [["great film"]] * 9 + [["a long text " * 8]] * 2
    answers = _predict_from_threads(model, requests)
    assert all(isinstance(a, list) and len(a) == 1 for a in answers)
    lengths = model._token_counts
    assert max(len(texts) for texts in seen) <= 4
    assert all(len(texts) * max(lengths(texts)) <= 64 or len(texts) == 1 for texts in seen)
    assert len(seen) < len(requests)


def test_coalesce_setting(monkeypatch):
    monkeypatch.setenv("COALESCE", "0")
    assert Settings.from_env().coalesce is False
    monkeypatch.setenv("COALESCE", "maybe")
    with pytest.raises(SystemExit, match="COALESCE must be 1 or 0"):
        Settings.from_env()


def test_the_model_thread_hands_memory_back_once_idle(tiny_model_dirs, monkeypatch):
    """After idle_release_seconds without a pass, freed heap goes back to the OS: once per burst, not in a loop."""
    trims: list[float] = []
    monkeypatch.setattr(backends, "trim_heap", lambda: trims.append(time.monotonic()))
    model = load_model(str(tiny_model_dirs), threads=1)
    model.idle_release_seconds = 0.1
    released: list[float] = []  # this model's hand-backs (other tests' models run model threads too)
    real_released = model.memory.released
    monkeypatch.setattr(model.memory, "released", lambda: (released.append(time.monotonic()), real_released()))
    model.predict(["great film"])
    assert model.memory.high_water > 0  # the pass's memory is counted as kept
    time.sleep(0.6)
    assert len(released) == 1 and trims
    assert model.memory.high_water == 0  # handed back: the next pass allocates anew
    time.sleep(0.3)
    assert len(released) == 1
    model.predict(["awful film"])
    time.sleep(0.6)
    assert len(released) == 2


def test_runtime_threads_sleep_unless_told_to_spin(tiny_onnx_dir, monkeypatch):
    """INTRA_OP_SPINNING reaches ONNX Runtime's session: its threads sleep between the parallel parts of a pass
    by default, busy-wait with 1."""
    def allow_spinning(model) -> str:
        return model.session().get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    monkeypatch.delenv("INTRA_OP_SPINNING", raising=False)
    assert Settings.from_env().spinning is False
    assert allow_spinning(load_model(str(tiny_onnx_dir), threads=1)) == "0"
    monkeypatch.setenv("INTRA_OP_SPINNING", "1")
    model = load_model(str(tiny_onnx_dir), threads=1, spinning=Settings.from_env().spinning)
    assert allow_spinning(model) == "1" and model.describe()["spinning"] is True
    assert model.predict(["great film"])[0].label in {"NEGATIVE", "POSITIVE"}
    monkeypatch.setenv("INTRA_OP_SPINNING", "sometimes")
    with pytest.raises(SystemExit, match="INTRA_OP_SPINNING must be 1 or 0"):
        Settings.from_env()


def test_the_tokenizer_runs_on_the_thread_that_calls_it_unless_told_otherwise():
    """TOKENIZERS_PARALLELISM is false once a backend can load (a pool of the tokenizer's own would hand off
    every pass and spin against the runtime), and an explicit setting wins."""
    script = ("import os, app.backends; print(os.environ['TOKENIZERS_PARALLELISM'])")
    for given, expected in ((None, "false"), ("true", "true")):
        env = {k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"}
        if given is not None:
            env["TOKENIZERS_PARALLELISM"] = given
        out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                             check=True)
        assert out.stdout.strip() == expected


def test_onnx_session_keeps_no_cpu_arena_and_heavy_passes_still_release(tiny_onnx_dir):
    model = load_model(str(tiny_onnx_dir), threads=1)
    assert model.session().get_session_options().enable_cpu_mem_arena is False
    assert model._predict_batch(["great film"] * 3, release=True)[0].label in {"NEGATIVE", "POSITIVE"}


def test_large_allocations_go_back_to_the_os_unless_the_environment_says_otherwise(monkeypatch):
    calls: list[tuple[int, int]] = []

    class FakeLibc:
        def mallopt(self, param: int, value: int) -> int:
            calls.append((param, value))
            return 1

    monkeypatch.setattr(backends.ctypes, "CDLL", lambda name: FakeLibc())
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    backends.hand_back_large_allocations()
    assert calls == [(backends.M_MMAP_THRESHOLD, 128 << 10)]
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")  # glibc reads it at start; ours must not override
    backends.hand_back_large_allocations()
    assert len(calls) == 1
