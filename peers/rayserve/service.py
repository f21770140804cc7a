"""The classifier as a Ray Serve deployment, with @serve.batch, behind Serve's FastAPI ingress.

Requests that wait together (up to 32, at most 5 ms) share one call of predict_batch. Ray starts
a head node in the container (GCS, raylet, the Serve controller and proxy) before the replica.
"""

from __future__ import annotations

from classifier import BadInput, Classifier, texts_of
from fastapi import FastAPI, HTTPException
from ray import serve

app = FastAPI()


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
@serve.ingress(app)
class BertClassifier:
    def __init__(self) -> None:
        self.model = Classifier()

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def predict_batch(self, batch: list[list[str]]) -> list[list[dict]]:
        return self.model.predict_batches(batch)

    @app.get("/readyz")
    async def ready(self) -> dict:
        return {"status": "ok"}

    @app.post("/classify")
    async def classify(self, body: dict) -> dict:
        try:
            texts = texts_of(body)
        except BadInput as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        return {"predictions": await self.predict_batch(texts)}


deployment = BertClassifier.bind()

if __name__ == "__main__":
    serve.start(http_options={"host": "0.0.0.0", "port": 8000})
    serve.run(deployment, route_prefix="/", blocking=True)
