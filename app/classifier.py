"""Load a sequence-classification model once and classify batches of text."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

hf_logging.disable_progress_bar()  # a progress bar per load is noise in service logs


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float


def pick_device(requested: str) -> str:
    """auto -> cuda when torch sees a GPU, else cpu; cuda without a GPU is an error."""
    has_cuda = torch.cuda.is_available()
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    if requested == "cuda" and not has_cuda:
        raise RuntimeError("DEVICE=cuda but torch sees no CUDA device")
    return requested


class Classifier:
    """Tokenizer + AutoModelForSequenceClassification from a folder or model id."""

    def __init__(self, model_dir: str, device: str = "auto", batch_size: int = 32) -> None:
        started = time.perf_counter()
        self.device = pick_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir)
        self.model.to(self.device).eval()
        config = self.model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        # Longest input the model accepts: the tokenizer's limit may be a huge sentinel.
        self.max_length = min(self.tokenizer.model_max_length, config.max_position_embeddings)
        self.batch_size = batch_size
        # make_model writes model_name; for other folders or hub ids, use the last path part.
        self.name = getattr(config, "model_name", None) or Path(str(model_dir).rstrip("/")).name or str(model_dir)
        self.load_seconds = time.perf_counter() - started

    def describe(self) -> dict:
        return {
            "model": self.name,
            "labels": self.labels,
            "device": self.device,
            "max_length": self.max_length,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "load_seconds": round(self.load_seconds, 3),
        }

    def predict(self, texts: list[str]) -> list[Prediction]:
        """Classify texts in batches; long inputs are truncated to max_length."""
        # Batch similar lengths together so padding stays small, then restore order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: list[Prediction | None] = [None] * len(texts)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            for i, pred in zip(idx, self._predict_batch([texts[i] for i in idx]), strict=True):
                results[i] = pred
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def _predict_batch(self, texts: list[str]) -> list[Prediction]:
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length,
                             padding=True, return_tensors="pt").to(self.device)
        probs = self.model(**enc).logits.float().softmax(dim=-1)
        scores, ids = probs.max(dim=-1)
        return [Prediction(self.labels[i], round(s, 6)) for i, s in zip(ids.tolist(), scores.tolist(), strict=True)]
