"""The classifier as a BentoML service, with its adaptive batching.

A batchable API takes one list argument: BentoML gathers the lists of the requests that arrive
together (up to max_batch_size texts, waiting at most max_latency_ms) into one call and splits
the result back per request. So the body is {"texts": [...]} and the answer is the list of
predictions itself; pydantic checks the types, nothing else is checked.
"""

from __future__ import annotations

import bentoml
from classifier import Classifier


@bentoml.service(workers=1, traffic={"timeout": 30})
class BertClassifier:
    def __init__(self) -> None:
        self.model = Classifier()

    @bentoml.api(route="/classify", batchable=True, max_batch_size=32, max_latency_ms=100)
    def classify(self, texts: list[str]) -> list[dict]:
        return self.model.predict(texts)
