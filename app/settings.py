"""Runtime settings, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass


def _int_env(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}, got {value}")
    return value


def _bool_env(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SystemExit(f"{name} must be 1 or 0, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    model_dir: str = "model"  # a folder, or a hub model id where a hub is reachable
    device: str = "auto"  # auto | cpu | cuda
    backend: str = "auto"  # auto (from the model folder) | torch | onnx
    threads: int = 0  # inference threads per worker; 0 = one per available CPU
    max_texts: int = 64  # texts per request before 413
    # Tokens per request (after truncation) before 413: bounds the work of one request, so the worst
    # one allowed (8 texts of 512 tokens, ~2 s on 2 cores with torch) ends well inside the 8 s
    # graceful shutdown. 0 = no limit.
    max_tokens: int = 4096
    max_body_bytes: int = 1 << 20  # request body before 413
    batch_size: int = 32  # texts per forward pass
    # Padded tokens per forward pass: bounds a request's peak memory (a bigger one takes more passes).
    # 0 = the backend's default (app/backends: BatchedClassifier.batch_tokens).
    batch_tokens: int = 0
    # Requests that wait for the model share its next forward pass (COALESCE=0: each runs alone).
    coalesce: bool = True
    # ONNX Runtime's threads busy-wait between the parallel parts of a pass (INTRA_OP_SPINNING=1, its own
    # default) or sleep, leaving the cores to the HTTP threads under load (make runtime-threads measures both).
    spinning: bool = False
    # The front (app/asgi.py): threads running the Flask app, requests that may wait for one
    # before 503, and how long a client may take to send its body before 408.
    app_threads: int = 32  # as many as one forward pass takes texts, so waiting requests can share it
    max_queued: int = 64
    body_timeout: int = 10

    @classmethod
    def from_env(cls) -> Settings:
        device = os.environ.get("DEVICE", cls.device).strip().lower() or cls.device
        if device not in {"auto", "cpu", "cuda"}:
            raise SystemExit(f"DEVICE must be auto, cpu or cuda, got {device!r}")
        backend = os.environ.get("BACKEND", cls.backend).strip().lower() or cls.backend
        if backend not in {"auto", "torch", "onnx"}:
            raise SystemExit(f"BACKEND must be auto, torch or onnx, got {backend!r}")
        return cls(
            model_dir=os.environ.get("MODEL_DIR", cls.model_dir),
            device=device,
            backend=backend,
            threads=_int_env("INFERENCE_THREADS", cls.threads, minimum=0),
            max_texts=_int_env("MAX_TEXTS", cls.max_texts),
            max_tokens=_int_env("MAX_TOKENS", cls.max_tokens, minimum=0),
            max_body_bytes=_int_env("MAX_BODY_BYTES", cls.max_body_bytes),
            batch_size=_int_env("BATCH_SIZE", cls.batch_size),
            batch_tokens=_int_env("BATCH_TOKENS", cls.batch_tokens, minimum=0),
            coalesce=_bool_env("COALESCE", cls.coalesce),
            spinning=_bool_env("INTRA_OP_SPINNING", cls.spinning),
            app_threads=_int_env("APP_THREADS", cls.app_threads),
            max_queued=_int_env("MAX_QUEUED", cls.max_queued, minimum=0),
            body_timeout=_int_env("BODY_TIMEOUT", cls.body_timeout),
        )

    def load_model(self):
        """The model these settings name, with its backend (imported only now)."""
        from app.backends import load_model

        return load_model(self.model_dir, backend=self.backend, device=self.device,
                          batch_size=self.batch_size, threads=self.threads, batch_tokens=self.batch_tokens,
                          coalesce=self.coalesce, spinning=self.spinning)


def ensure_writable_tempdir() -> str:
    """Point tempfile (and TMPDIR) at /dev/shm when the usual temp dirs are read-only.

    Containers run with a read-only root filesystem have no writable /tmp unless a
    tmpfs is mounted there; libraries that need scratch files then fail at import.
    """
    import tempfile

    try:
        return tempfile.gettempdir()
    except FileNotFoundError:
        if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
            os.environ["TMPDIR"] = tempfile.tempdir = "/dev/shm"
            return "/dev/shm"
        raise
