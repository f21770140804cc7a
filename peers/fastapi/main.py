"""The classifier behind FastAPI, as its tutorial writes a service: a pydantic body, a sync endpoint.

FastAPI runs a sync endpoint in its thread pool, so concurrent requests run the model side by side
(ONNX Runtime sessions are thread-safe); nothing batches them.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from classifier import BadInput, Classifier, texts_of
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

model: dict[str, Classifier] = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    model["classifier"] = Classifier()  # loaded before the server accepts a connection
    yield
    model.clear()


app = FastAPI(lifespan=lifespan)


class Body(BaseModel):
    text: str | None = None
    texts: list[str] | None = None


@app.get("/healthz")
@app.get("/readyz")
def ready() -> dict:
    return {"status": "ok"}


@app.post("/classify")
def classify(body: Body) -> dict:
    try:
        texts = texts_of(body.model_dump(exclude_none=True))
    except BadInput as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return {"predictions": model["classifier"].predict(texts)}
