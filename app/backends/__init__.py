"""Model backends: one small interface (predict, describe), one module per runtime.

The HTTP layer and the CLI only see this module. The runtime is chosen from the
model folder (a model.onnx inside -> ONNX Runtime, else torch + transformers) or
forced with BACKEND=torch|onnx; each backend module is imported only when chosen,
so an image without torch never tries to import it.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from app.backends.memory import MemoryGuard, MemoryLimitError

BACKENDS = {"torch": "app.backends.torch_bert", "onnx": "app.backends.onnx_bert"}
# Official onnxruntime builds send usage telemetry on Linux too (1.2x+) unless this is set before
# it initialises; a service should not phone home by default. ORT_DISABLE_TELEMETRY=0 opts back in.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
# The tokenizer (Rust `tokenizers`) splits encode_batch over a thread pool of its own by default. One
# forward pass runs at a time here and the runtime's threads already take every core, so that pool only
# adds a hand-off per pass and spins against the runtime (make runtime-threads measures both ways).
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
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
               threads: int = 0, batch_tokens: int = 0, coalesce: bool = True, spinning: bool = False) -> Model:
    """Load model_dir with its backend; threads=0 means one per available CPU, batch_tokens=0 the default;
    coalesce: requests waiting for the model share its next forward pass; spinning: the runtime's
    threads busy-wait between the parallel parts of a pass (ONNX Runtime's own default) instead of sleeping."""
    hand_back_large_allocations()
    name = backend_for(model_dir, backend)
    module = importlib.import_module(BACKENDS[name])
    model = module.load(model_dir, device=device, batch_size=batch_size, threads=threads or available_cpus())
    if batch_tokens:
        model.batch_tokens = batch_tokens
    model.coalesce = coalesce
    model.spinning = spinning
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


# glibc serves a request above this from mmap and unmaps it on free (its default threshold slides up to
# 32 MiB after the first large free, and the heap then keeps a burst's activations while idle).
MMAP_THRESHOLD_BYTES = 128 << 10
M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h


def hand_back_large_allocations() -> None:
    """Large buffers (activations, batches) straight back to the OS when freed; MALLOC_MMAP_THRESHOLD_ wins."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):  # not glibc
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


@dataclass
class _Job:
    """Texts waiting for a forward pass: one request's, or one pass of a request of several (solo)."""

    texts: list[str]
    lengths: list[int]
    solo: bool = False  # runs in a pass of its own (a pass of a multi-pass request)
    release: bool = False  # hand the pass's memory back to the OS afterwards
    results: list[Prediction] | None = None
    error: Exception | None = None
    done: threading.Event = field(default_factory=threading.Event)


class BatchedClassifier:
    """What every backend shares: length-sorted batches, order restored, one forward pass at a time.

    Every forward pass runs on one model thread per process: each pass already uses every
    inference thread, so two at once on the same cores only make both slower, and one thread
    allocating keeps glibc from growing an arena per request thread. Requests that arrive while
    a pass runs are not run one by one after it: the next pass takes all of them that fit
    (coalesce), so 32 waiting sentences cost one batch of 32, not 32 passes. A request that finds
    the model idle runs at once: nothing ever waits for company. The tokenizer has its own lock,
    so requests are counted while a pass runs. Subclasses implement _predict_batch (tokenising
    inside `with self._tokenizer_lock:`) and _token_counts.
    """

    batch_size: int = 32
    batch_tokens: int = 512  # padded tokens per forward pass (BATCH_TOKENS): one text of the model's longest
    backend = ""  # set by each backend: "torch", "onnx"
    # Extra memory of a forward pass, per text: per token (activations) and per token pair (attention
    # scores); each backend sets them from the peak RSS it measured on this repository's MiniLM.
    memory_per_token = 0
    memory_per_token_pair = 0
    # Requests that may share a forward pass (COALESCE; False: each request runs in its own passes).
    coalesce = True
    # The runtime's threads busy-wait between a pass's parallel parts (INTRA_OP_SPINNING=1; ONNX backend).
    spinning = False
    # Requests of several passes (or heavy ones) in progress at once: the worst allowed takes ~2 s with
    # torch on 2 cores, so two of them end inside the 8 s stop grace however many threads wait.
    multi_pass_at_once = 2
    # True where the tokenizer may be called from several threads at once (its settings fixed at load).
    tokenizer_thread_safe = False
    # After this long without a pass, the memory freed since the last pass goes back to the OS (glibc keeps
    # it otherwise, and a burst of batches would leave the service at its peak while idle).
    idle_release_seconds = 1.0
    # Set by each backend's __init__: name, labels, device, max_length, threads, load_seconds.

    def __init__(self) -> None:
        # One use of the tokenizer at a time, where it keeps per-call state (transformers' does).
        self._tokenizer_lock = contextlib.nullcontext() if self.tokenizer_thread_safe else threading.Lock()
        self._pending: list[_Job] = []  # jobs waiting for the model thread (under _wakeup)
        self._wakeup = threading.Condition()
        self._runner_pid = 0  # the process whose model thread runs (a forked worker starts its own)
        self._memory_lock = threading.Lock()  # MemoryGuard's checks and high-water mark
        self._multi_pass_slots = threading.BoundedSemaphore(self.multi_pass_at_once)
        self.passes = 0  # forward passes run in this process, and the requests they served
        self.requests = 0
        self._counted = threading.local()  # the token counts of this thread's last count_tokens call
        self._unreleased = False  # passes ran since memory was last handed back (model thread only)
        self.memory = MemoryGuard()

    def describe(self) -> dict:
        """What /readyz reports: the model, its labels and limits, and the runtime behind it."""
        return {"model": self.name, "labels": self.labels, "device": self.device, "max_length": self.max_length,
                "backend": self.backend, "versions": self.versions(), "threads": self.threads,
                "batch_size": self.batch_size, "batch_tokens": self.batch_tokens, "coalesce": self.coalesce,
                "spinning": self.spinning,
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
        with self._memory_lock:  # not the model's lock: a request waiting for a pass can join it
            self.memory.check(estimate)
        release = estimate > RELEASE_ABOVE_BYTES
        if self.coalesce and len(batches) == 1 and not release:
            return self._run(_Job(texts, lengths))
        results: list[Prediction | None] = [None] * len(texts)
        with self._multi_pass_slots:  # a few at a time: all must end within the stop grace
            for n, idx in enumerate(batches, 1):
                batch = self._run(_Job([texts[i] for i in idx], [lengths[i] for i in idx], solo=True,
                                       release=release and n == len(batches)))
                for i, pred in zip(idx, batch, strict=True):
                    results[i] = pred
        self.requests += 1
        if release:
            self.memory.released()  # handed back: the next heavy request allocates anew
        else:
            self.memory.ran(estimate)
        return results  # type: ignore[return-value]

    def _run(self, job: _Job) -> list[Prediction]:
        """Hand the job to the model thread and wait for its predictions (or its error)."""
        with self._wakeup:
            if self._runner_pid != os.getpid():  # first use in this process (gunicorn forks after loading)
                self._pending.clear()
                threading.Thread(target=self._model_thread, name="model", daemon=True).start()
                self._runner_pid = os.getpid()
            self._pending.append(job)
            self._wakeup.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.results  # type: ignore[return-value]

    def _model_thread(self) -> None:
        try:
            while True:
                with self._wakeup:
                    timeout = self.idle_release_seconds if self._unreleased else None
                    group = self._take_group() if self._wakeup.wait_for(lambda: self._pending, timeout) else []
                if group:
                    self._run_together(group)
                    self._unreleased = True
                else:  # idle since the last pass
                    self._release_idle()
        finally:  # only something like SystemExit ends it: the next request starts another
            self._runner_pid = 0

    def _release_idle(self) -> None:
        """Hand the heap the last passes freed back to the OS (on the model thread, between passes)."""
        trim_heap()
        self._unreleased = False
        with self._memory_lock:
            self.memory.released()

    def _take_group(self) -> list[_Job]:
        """The oldest queued jobs that fit in one pass (batch_size texts, batch_tokens padded tokens, memory);
        a solo job alone. Called holding _wakeup."""
        group = [self._pending.pop(0)]
        count, longest = len(group[0].texts), max(group[0].lengths)
        while self._pending and not group[0].solo and not self._pending[0].solo:
            job = self._pending[0]
            more, length = count + len(job.texts), max(longest, *job.lengths)
            if more > self.batch_size or more * length > self.batch_tokens or not self._fits(more, length):
                break
            group.append(self._pending.pop(0))
            count, longest = more, length
        return group

    def _fits(self, texts: int, length: int) -> bool:
        try:
            with self._memory_lock:
                self.memory.check(self.activation_bytes(texts, length))
        except MemoryLimitError:
            return False
        return True

    def _run_together(self, group: list[_Job]) -> None:
        """One forward pass for the group, each job given its own predictions (on the model thread)."""
        try:
            preds = self._predict_batch([text for job in group for text in job.texts], release=group[0].release)
            start = 0
            for job in group:
                job.results = preds[start:start + len(job.texts)]
                start += len(job.texts)
            self.passes += 1
            self.requests += sum(not job.solo for job in group)
            if not group[0].solo:
                self.memory.ran(self.activation_bytes(start, max(max(job.lengths) for job in group)))
        except Exception as exc:  # noqa: BLE001 - whose texts broke the pass? run each job alone to tell
            if len(group) == 1:
                group[0].error = exc
            else:
                for job in group:
                    self._run_together([job])
        finally:
            for job in group:
                if job.results is None and job.error is None:  # interrupted: never leave a caller waiting
                    job.error = RuntimeError("the forward pass was interrupted")
                job.done.set()

    def activation_bytes(self, texts: int, length: int) -> int:
        """Memory one forward pass of texts x length padded tokens adds, as measured for the backend."""
        return texts * (self.memory_per_token * length + self.memory_per_token_pair * length * length)

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the model would process for texts, each truncated to its limit (no padding)."""
        # Under the tokenizer's lock: transformers' fast tokenizer switches its padding
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
        with self._tokenizer_lock:
            return self._token_counts(texts)

    def _predict_batch(self, texts: list[str], release: bool = False) -> list[Prediction]:
        """One forward pass (its tokenising under _tokenizer_lock); release: hand its memory back to the OS."""
        raise NotImplementedError

    def _token_counts(self, texts: list[str]) -> list[int]:
        raise NotImplementedError
