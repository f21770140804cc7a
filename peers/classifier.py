"""The model every peer serves, and the request contract they share with app/'s /classify.

The int8 ONNX classifier and its tokenizer (the folder onnx_image ships at /opt/model), run by
ONNX Runtime with as many intra-op threads as the container has CPUs, as onnx_image runs it. It
batches nothing across requests itself: each peer's own batching (or none) is what is compared.

    {"text": "..."} or {"texts": ["...", ...]}  ->  {"predictions": [{"label": ..., "score": ...}, ...]}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

MODEL_DIR = os.environ.get("MODEL_DIR", "/opt/model")
MAX_TEXTS = 64  # as app/settings.py: more texts in one request is a 413 there, a 400 here


class BadInput(ValueError):
    """The body breaks the contract; the message is what the client is told."""


def cpus() -> int:
    """CPUs this process may run on, or THREADS when set (the same rule as app/backends)."""
    raw = os.environ.get("THREADS", "").strip()
    return int(raw) if raw else len(os.sched_getaffinity(0))


def texts_of(body: object) -> list[str]:
    """The texts a request body asks about; BadInput when it does not follow the contract."""
    if not isinstance(body, dict) or ("text" in body) == ("texts" in body):
        raise BadInput('give exactly one of "text" (a string) or "texts" (a list of strings)')
    texts = [body["text"]] if "text" in body else body["texts"]
    if not isinstance(texts, list) or not texts or len(texts) > MAX_TEXTS:
        raise BadInput(f'"texts" must be a list of 1 to {MAX_TEXTS} strings')
    if not all(isinstance(t, str) and t.strip() for t in texts):
        raise BadInput("every text must be a non-empty string")
    return texts


class Classifier:
    def __init__(self, folder: str = MODEL_DIR) -> None:
        path = Path(folder)
        config = json.loads((path / "config.json").read_text())
        self.labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        limit = config.get("max_position_embeddings", 512)
        tok_config = path / "tokenizer_config.json"
        if tok_config.is_file():
            limit = min(limit, int(json.loads(tok_config.read_text()).get("model_max_length", limit)))
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(limit)
        pad = config.get("pad_token_id", 0)
        self.tokenizer.enable_padding(pad_id=pad, pad_token=self.tokenizer.id_to_token(pad) or "[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = cpus()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def predict(self, texts: list[str]) -> list[dict]:
        encodings = self.tokenizer.encode_batch(texts)
        columns = {"input_ids": [e.ids for e in encodings], "attention_mask": [e.attention_mask for e in encodings],
                   "token_type_ids": [e.type_ids for e in encodings]}
        logits = self.session.run(None, {n: np.asarray(columns[n], dtype=np.int64) for n in self.inputs})[0]
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs = exp / exp.sum(axis=-1, keepdims=True)
        return [{"label": self.labels[i], "score": round(float(p[i]), 6)}
                for i, p in zip(probs.argmax(axis=-1).tolist(), probs, strict=True)]

    def predict_batches(self, batch: list[list[str]]) -> list[list[dict]]:
        """Several requests' texts in one pass, the predictions split back per request (servers that batch)."""
        flat = self.predict([t for texts in batch for t in texts])
        out, start = [], 0
        for texts in batch:
            out.append(flat[start:start + len(texts)])
            start += len(texts)
        return out
