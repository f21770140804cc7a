"""Model backends: one small interface (predict, describe), one module per runtime.

The HTTP layer and the CLI only see this module. The runtime is chosen from the
model folder (a model.onnx inside -> ONNX Runtime, else torch + transformers) or
forced with BACKEND=torch|onnx; each backend module is imported only when chosen,
so an image without torch never tries to import it.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.backends.memory import MemoryGuard

BACKENDS = {"torch": "app.backends.torch_bert", "onnx": "app.backends.onnx_bert"}
# Official onnxruntime builds send usage telemetry on Linux too (1.2x+) unless this is set before
# it initialises; a service should not phone home by default. ORT_DISABLE_TELEMETRY=0 opts back in.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
ONNX_FILE = "model.onnx"


class ModelLoadError(Exception):
    """The model folder cannot be loaded by the chosen backend (missing, corrupt, wrong runtime)."""


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float


class Model(Protocol):
    name: str
    device: str

    def describe(self) -> dict: ...
    def predict(self, texts: list[str]) -> list[Prediction]: ...
    def count_tokens(self, texts: list[str]) -> int: ...  # what predict would run, after truncation


def choose_device(requested: str, has_cuda: bool, why_not: str) -> str:
    """auto -> cuda when the runtime has a GPU, else cpu; cuda without one is an error saying why_not."""
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    if requested == "cuda" and not has_cuda:
        raise ModelLoadError(f"DEVICE=cuda but {why_not}")
    return requested


def backend_for(model_dir: str, requested: str = "auto") -> str:
    """torch | onnx: the requested one, or the one the folder's files call for."""
    if requested != "auto":
        return requested
    return "onnx" if (Path(model_dir) / ONNX_FILE).is_file() else "torch"


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask, which `docker run --cpuset-cpus` narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_model(model_dir: str, *, backend: str = "auto", device: str = "auto", batch_size: int = 32,
               threads: int = 0, batch_tokens: int = 0) -> Model:
    """Load model_dir with its backend; threads=0 means one per available CPU, batch_tokens=0 the default."""
    name = backend_for(model_dir, backend)
    module = importlib.import_module(BACKENDS[name])
    model = module.load(model_dir, device=device, batch_size=batch_size, threads=threads or available_cpus())
    if batch_tokens:
        model.batch_tokens = batch_tokens
    return model


# A request whose largest pass needs more than this is "heavy": after its last pass, memory the runtime
# no longer needs goes back to the OS, or the service would keep the peak of its largest request for ever.
RELEASE_ABOVE_BYTES = 32 << 20


def trim_heap() -> None:
    """Return freed heap memory to the OS (glibc's malloc_trim); a no-op where there is none."""
    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def max_input_length(model_dir: Path, config: dict) -> int:
    """Longest input the model accepts: the tokenizer's limit may be a huge sentinel."""
    limit = config.get("max_position_embeddings", 512)
    tok_config = model_dir / "tokenizer_config.json"
    if tok_config.is_file():
        limit = min(limit, int(json.loads(tok_config.read_text()).get("model_max_length", limit)))
    return limit


def plan_batches(lengths: list[int], batch_size: int, batch_tokens: int) -> list[list[int]]:
    """Text indices grouped into forward passes: similar lengths together (little padding), at most
    batch_size texts and batch_tokens padded tokens a pass; a text longer than batch_tokens goes alone."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if current and (len(current) == batch_size or (len(current) + 1) * lengths[i] > batch_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class BatchedClassifier:
    """What every backend shares: length-sorted batches, order restored, one forward pass at a time.

    Forward passes (and every use of the tokenizer) are serialised per process: each already
    uses every inference thread, so two at once on the same cores only make both slower.
    Subclasses implement _predict_batch and _token_counts.
    """

    batch_size: int = 32
    batch_tokens: int = 512  # padded tokens per forward pass (BATCH_TOKENS): one text of the model's longest
    backend = ""  # set by each backend: "torch", "onnx"
    # Extra memory of a forward pass, per text: per token (activations) and per token pair (attention
    # scores); each backend sets them from the peak RSS it measured on this repository's MiniLM.
    memory_per_token = 0
    memory_per_token_pair = 0
    # Set by each backend's __init__: name, labels, device, max_length, threads, load_seconds.

    def __init__(self) -> None:
        self._forward_lock = threading.Lock()
        self._counted = threading.local()  # the token counts of this thread's last count_tokens call
        self.memory = MemoryGuard()

    def describe(self) -> dict:
        """What /readyz reports: the model, its labels and limits, and the runtime behind it."""
        return {"model": self.name, "labels": self.labels, "device": self.device, "max_length": self.max_length,
                "backend": self.backend, "versions": self.versions(), "threads": self.threads,
                "batch_size": self.batch_size, "batch_tokens": self.batch_tokens,
                "load_seconds": round(self.load_seconds, 3)}

    def versions(self) -> dict[str, str]:
        raise NotImplementedError

    def predict(self, texts: list[str]) -> list[Prediction]:
        """Classify texts in forward passes of similar lengths; long inputs are truncated to the model's limit.

        Each pass holds at most batch_size texts and batch_tokens padded tokens, so the heaviest request
        allowed costs no more peak memory than a moderate one: it only takes more passes. Before the
        first pass, the largest one's memory is checked against the container's limit (MemoryGuard).
        """
        if not texts:
            return []
        lengths = self._lengths(texts)
        batches = plan_batches(lengths, self.batch_size, self.batch_tokens)
        estimate = max(self.activation_bytes(len(idx), max(lengths[i] for i in idx)) for idx in batches)
        with self._forward_lock:
            self.memory.check(estimate)
        release = estimate > RELEASE_ABOVE_BYTES
        results: list[Prediction | None] = [None] * len(texts)
        for n, idx in enumerate(batches, 1):
            with self._forward_lock:
                batch = self._predict_batch([texts[i] for i in idx], release=release and n == len(batches))
            for i, pred in zip(idx, batch, strict=True):
                results[i] = pred
        if release:
            self.memory.released()  # handed back: the next heavy request allocates anew
        else:
            self.memory.ran(estimate)
        return results  # type: ignore[return-value]

    def activation_bytes(self, texts: int, length: int) -> int:
        """Memory one forward pass of texts x length padded tokens adds, as measured for the backend."""
        return texts * (self.memory_per_token * length + self.memory_per_token_pair * length * length)

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the model would process for texts, each truncated to its limit (no padding)."""
        # Under the same lock as inference: transformers' fast tokenizer switches its padding
        # setting per call, so two threads using it at once break each other's batches.
        lengths = self._lengths(texts)
        self._counted.last = (list(texts), lengths)  # predict(texts) next, in this thread, reuses them
        return sum(lengths)

    def _lengths(self, texts: list[str]) -> list[int]:
        """Token counts per text: the ones count_tokens just made in this thread for the same texts, else anew."""
        last = getattr(self._counted, "last", None)
        self._counted.last = None
        if last is not None and last[0] == texts:
            return last[1]
        with self._forward_lock:
            return self._token_counts(texts)

    def _predict_batch(self, texts: list[str], release: bool = False) -> list[Prediction]:
        """One forward pass; release: hand the memory it used back to the OS afterwards."""
        raise NotImplementedError

    def _token_counts(self, texts: list[str]) -> list[int]:
        raise NotImplementedError
