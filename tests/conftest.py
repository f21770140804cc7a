"""Shared fixtures: a tiny BERT classifier the tests create themselves (no downloads)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORDS = "i love hate this movie film great awful boring wonderful the a was is not very".split()


def make_tiny_model(path: Path) -> Path:
    """A 2-layer, 32-wide BertForSequenceClassification with a 20-word vocab (~100 KB)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True, model_max_length=512)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2,
                        id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1})
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_tiny_onnx(torch_dir: Path, out: Path, form: str = "fp32") -> Path:
    """The ONNX form of a torch folder, made by the same code as `make model`."""
    from scripts.model.export_onnx import write_folder

    scratch = out.parent / f"{out.name}-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    return write_folder(torch_dir, out, form, scratch)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_onnx_dir(tmp_path_factory, tiny_model_dir) -> Path:
    return make_tiny_onnx(tiny_model_dir, tmp_path_factory.mktemp("tiny-onnx") / "model-onnx")


@pytest.fixture(scope="session", params=["torch", "onnx"])
def tiny_model_dirs(request, tiny_model_dir, tiny_onnx_dir) -> Path:
    """The tiny model in each backend's form: tests that take it run once per backend."""
    return tiny_model_dir if request.param == "torch" else tiny_onnx_dir


@pytest.fixture(scope="session")
def tiny_classifier(tiny_model_dirs):
    from app.backends import load_model

    return load_model(str(tiny_model_dirs), device="cpu", batch_size=4, threads=1)


def start_gunicorn(folder: str, **env: str) -> tuple[subprocess.Popen, str]:
    """The real service (app/gunicorn.conf.py) on a free 127.0.0.1 port, once /readyz answers."""
    from scripts.traffic.latency import free_port

    model = ROOT / folder
    if not (model / "config.json").exists():
        pytest.fail(f"{folder}/ is missing: `make unit` builds it first (make model)")
    port = free_port()
    env = {**os.environ, "MODEL_DIR": str(model), "DEVICE": os.environ.get("DEVICE", "cpu"), "PORT": str(port), **env}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "app/gunicorn.conf.py", "-b", f"127.0.0.1:{port}"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return proc, base
        except OSError:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
    stop(proc)
    pytest.fail("gunicorn did not become ready in 90 s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
