"""The classifier behind LitServe, with its batching: requests that arrive within 5 ms share a pass.

LitServe decodes each request on its API server, queues it to an inference worker process, which
runs setup() once and predict() on up to max_batch_size requests at a time.
"""

from __future__ import annotations

import litserve as ls
from classifier import BadInput, Classifier, texts_of
from fastapi import HTTPException


class ClassifierAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.model = Classifier()

    def decode_request(self, request: dict) -> list[str]:
        try:
            return texts_of(request)
        except BadInput as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None

    def batch(self, inputs: list[list[str]]) -> list[list[str]]:
        return inputs  # each request keeps its own texts; predict() runs them in one pass

    def predict(self, batch: list[list[str]]) -> list[list[dict]]:
        return self.model.predict_batches(batch)

    def unbatch(self, output: list[list[dict]]) -> list[list[dict]]:
        return output

    def encode_response(self, output: list[dict]) -> dict:
        return {"predictions": output}


if __name__ == "__main__":
    api = ClassifierAPI(max_batch_size=32, batch_timeout=0.005, api_path="/classify")
    # healthcheck_path: LitServe answers 200 there once the worker's setup() has run.
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, healthcheck_path="/readyz")
    server.run(port=8000, generate_client_file=False)
