"""torch + transformers backend: AutoTokenizer + AutoModelForSequenceClassification from a folder or hub id."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from app.backends import BatchedClassifier, ModelLoadError, Prediction, choose_device, trim_heap

hf_logging.disable_progress_bar()  # a progress bar per load is noise in service logs


class Classifier(BatchedClassifier):
    """Tokenizer + AutoModelForSequenceClassification from a folder or model id."""

    backend = "torch"
    # One 512-token text adds ~20 MB at peak, 32 short sentences ~15 MB: about linear in tokens.
    memory_per_token = 48 << 10

    def __init__(self, model_dir: str, device: str = "auto", batch_size: int = 32, threads: int = 1) -> None:
        super().__init__()
        started = time.perf_counter()
        self.device = choose_device(device, torch.cuda.is_available(), "torch sees no CUDA device")
        # Explicit, not torch's default (all physical cores), so it matches what the container is given.
        torch.set_num_threads(threads)
        self.threads = threads
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
            self.model = AutoModelForSequenceClassification.from_pretrained(model_dir)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(str(exc)) from exc
        self.model.to(self.device).eval()
        config = self.model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        # Longest input the model accepts: the tokenizer's limit may be a huge sentinel.
        self.max_length = min(self.tokenizer.model_max_length, config.max_position_embeddings)
        self.batch_size = batch_size
        # make_model writes model_name; for other folders or hub ids, use the last path part.
        self.name = getattr(config, "model_name", None) or Path(str(model_dir).rstrip("/")).name or str(model_dir)
        self.load_seconds = time.perf_counter() - started

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__, "transformers": transformers.__version__}

    def _token_counts(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]]

    @torch.inference_mode()
    def _predict_batch(self, texts: list[str], release: bool = False) -> list[Prediction]:
        with self._tokenizer_lock:
            enc = self.tokenizer(texts, truncation=True, max_length=self.max_length,
                                 padding=True, return_tensors="pt").to(self.device)
        probs = self.model(**enc).logits.float().softmax(dim=-1)
        scores, ids = probs.max(dim=-1)
        if release:
            del enc
            trim_heap()  # the activations of a heavy request are freed; hand the pages back
        return [Prediction(self.labels[i], round(s, 6)) for i, s in zip(ids.tolist(), scores.tolist(), strict=True)]


def load(model_dir: str, *, device: str, batch_size: int, threads: int) -> Classifier:
    return Classifier(model_dir, device=device, batch_size=batch_size, threads=threads)
