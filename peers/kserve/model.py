"""The classifier as a KServe custom model, served by KServe's ModelServer (its V1 REST protocol).

POST /v1/models/classifier:predict with {"text": ...} or {"texts": [...]}; the V1 protocol hands the
JSON body to predict() as it is. A sync predict() runs on the server's event loop, one request at
a time; KServe batches nothing by itself (its batcher is a sidecar of the Kubernetes deployment).
"""

from __future__ import annotations

from classifier import BadInput, Classifier, texts_of
from kserve import Model, ModelServer
from kserve.errors import InvalidInput

NAME = "classifier"


class BertClassifier(Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.load()

    def load(self) -> bool:
        self.model = Classifier()
        self.ready = True
        return self.ready

    def predict(self, payload: dict, headers: dict[str, str] | None = None) -> dict:
        try:
            texts = texts_of(payload)
        except BadInput as exc:
            raise InvalidInput(str(exc)) from None
        return {"predictions": self.model.predict(texts)}


if __name__ == "__main__":
    ModelServer(http_port=8000, enable_grpc=False).start([BertClassifier(NAME)])
