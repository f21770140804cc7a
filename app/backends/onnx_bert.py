"""ONNX Runtime backend: a model.onnx + tokenizer.json folder; imports neither torch nor transformers.

The folder is what `make model` writes to model-onnx/ and model-onnx-int8/: model.onnx
(inputs input_ids, attention_mask, token_type_ids as int64; output logits), the
tokenizer.json of the torch folder, and its config.json for labels and limits.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tokenizers
from tokenizers import Tokenizer

from app.backends import (
    ONNX_FILE,
    BatchedClassifier,
    ModelLoadError,
    Prediction,
    choose_device,
    max_input_length,
    trim_heap,
)

GPU_PROVIDER = "CUDAExecutionProvider"


class OnnxClassifier(BatchedClassifier):
    backend = "onnx"
    tokenizer_thread_safe = True  # tokenizers' Tokenizer: padding and truncation set once, below
    # One 512-token text adds 61 MB at peak.
    memory_per_token = 16 << 10
    memory_per_token_pair = 400

    def __init__(self, model_dir: str, device: str = "auto", batch_size: int = 32, threads: int = 1) -> None:
        super().__init__()
        started = time.perf_counter()
        folder = Path(model_dir)
        self.path = folder / ONNX_FILE
        try:
            config = json.loads((folder / "config.json").read_text())
            self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise ModelLoadError(f"{model_dir} is not an ONNX model folder: {exc}") from exc
        if not self.path.is_file():
            raise ModelLoadError(f"no {ONNX_FILE} in {model_dir}")
        self.device = choose_device(device, GPU_PROVIDER in ort.get_available_providers(),
                                    "this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)")
        self.labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        self.max_length = max_input_length(folder, config)
        # tokenizer.json may fix padding at a length (this one pads to 128): pad to the batch's longest instead.
        pad = config.get("pad_token_id", 0)
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.enable_padding(pad_id=pad, pad_token=self.tokenizer.id_to_token(pad) or "[PAD]")
        self.name = config.get("model_name") or folder.name
        self.batch_size = batch_size
        self.threads = threads
        self._session: ort.InferenceSession | None = None
        self._session_pid = 0
        self._session_lock = threading.Lock()
        self.load_seconds = time.perf_counter() - started

    def session(self) -> ort.InferenceSession:
        """The process's session, created on first use.

        Not created before gunicorn forks its workers: ORT's thread pool does not survive a fork
        (the worker would run single-threaded), and the master never runs the model.
        """
        with self._session_lock:
            if self._session is None or self._session_pid != os.getpid():
                started = time.perf_counter()
                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                # No CPU arena: it keeps the peak of the largest pass for ever, and is no faster here
                # (single sentence and batch of 32 alike); freed passes go back to the OS when idle.
                options.enable_cpu_mem_arena = False
                # Threads that sleep between the parallel parts of a pass leave the cores to the HTTP threads,
                # which under load parse the next requests meanwhile; spinning answers a lone request a bit sooner.
                options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
                providers = ["CPUExecutionProvider"]
                if self.device == "cuda":
                    providers.insert(0, GPU_PROVIDER)
                try:
                    self._session = ort.InferenceSession(str(self.path), options, providers=providers)
                except Exception as exc:  # onnxruntime's errors are pybind types without a common base
                    raise ModelLoadError(f"onnxruntime cannot load {self.path}: {exc}") from exc
                self._session_pid = os.getpid()
                self._inputs = [i.name for i in self._session.get_inputs()]
                self._shrink_arena = None  # the GPU's memory has an arena still: shrink it after a heavy pass
                if self.device == "cuda":
                    self._shrink_arena = ort.RunOptions()
                    self._shrink_arena.add_run_config_entry("memory.enable_memory_arena_shrinkage", "gpu:0")
                trim_heap()  # the parsed protobuf and the weights' copies before prepacking are freed by now
                self.load_seconds += time.perf_counter() - started
            return self._session

    def versions(self) -> dict[str, str]:
        return {"onnxruntime": ort.__version__, "tokenizers": tokenizers.__version__, "numpy": np.__version__}

    def _token_counts(self, texts: list[str]) -> list[int]:
        return [sum(e.attention_mask) for e in self.tokenizer.encode_batch(texts)]  # padding excluded

    def _predict_batch(self, texts: list[str], release: bool = False) -> list[Prediction]:
        session = self.session()
        with self._tokenizer_lock:
            encodings = self.tokenizer.encode_batch(texts)
        columns = {"input_ids": [e.ids for e in encodings], "attention_mask": [e.attention_mask for e in encodings],
                   "token_type_ids": [e.type_ids for e in encodings]}
        feed = {name: np.asarray(columns[name], dtype=np.int64) for name in self._inputs}
        logits = session.run(None, feed, self._shrink_arena if release else None)[0]
        if release:
            trim_heap()
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs = exp / exp.sum(axis=-1, keepdims=True)
        ids = probs.argmax(axis=-1)
        return [Prediction(self.labels[i], round(float(p[i]), 6)) for i, p in zip(ids.tolist(), probs, strict=True)]


def load(model_dir: str, *, device: str, batch_size: int, threads: int) -> OnnxClassifier:
    return OnnxClassifier(model_dir, device=device, batch_size=batch_size, threads=threads)
