"""The servers readers would pick instead of this repository's stack: the one place they are listed.

Each serves the model onnx_image ships (peers/classifier.py) from peers/<name>/, packaged twice:
"default", the way that project's own docs containerize a service (peers/<name>/Dockerfile), and
"slim", the way this repository packages one (peers/slim.Dockerfile, target <name>).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from scripts.variants import ROOT

PEERS_DIR = ROOT / "peers"
IMAGE_REPO = "bert-peer"
PACKAGINGS = ("default", "slim")
MODEL_IMAGE_ARG = "MODEL_IMAGE"  # the image the peers copy the model from (onnx_image)


@dataclass(frozen=True)
class Peer:
    name: str  # folder under peers/, and the slim Dockerfile's target
    title: str
    path: str = "/classify"  # where it serves the contract
    probe: str = "/healthz"  # its liveness probe (the hostile set checks it answers under slow clients)
    field: str = "texts"  # the request field one sentence goes in ({"texts": [s]} is what every peer accepts)
    wrapped: bool = True  # the answer is {"predictions": [...]}; False: the list itself
    # Its default image writes under / at start (BentoML its home, Ray its token and sessions): it is run
    # with a writable root, as its docs run it. Every other image here runs on a read-only root.
    writes_root: bool = False
    sources: bool = False  # its slim image keeps the .py sources (Ray starts processes by a script's path)

    def dockerfile(self, packaging: str) -> Path:
        return PEERS_DIR / self.name / "Dockerfile" if packaging == "default" else PEERS_DIR / "slim.Dockerfile"

    def target(self, packaging: str) -> str:
        return "" if packaging == "default" else self.name

    def build_args(self, packaging: str, model_image: str) -> dict[str, str]:
        if packaging == "default":
            return {MODEL_IMAGE_ARG: model_image}
        return {MODEL_IMAGE_ARG: model_image, "PEER": self.name, **({"BYTECODE_ONLY": ""} if self.sources else {})}

    def image(self, packaging: str) -> str:
        return f"{IMAGE_REPO}:{self.name}-{packaging}"

    def base_args(self, packaging: str) -> set[str]:
        """The base-image build args the Dockerfile declares, the model's image aside."""
        text = self.dockerfile(packaging).read_text()
        return set(re.findall(r"^ARG (\w+_IMAGE)=", text, flags=re.M)) - {MODEL_IMAGE_ARG}

    def run_options(self, packaging: str) -> dict:
        """Container options (the Docker SDK's) for running one of its images."""
        return {"read_only": False} if packaging == "default" and self.writes_root else {}

    def predictions(self, answer: dict | list) -> list:
        """The predictions of an answer, however this server wraps them."""
        if self.wrapped:
            if not isinstance(answer, dict) or not isinstance(answer.get("predictions"), list):
                raise ValueError(f"{self.title}: no predictions list in {str(answer)[:200]}")
            return answer["predictions"]
        if not isinstance(answer, list):
            raise ValueError(f"{self.title}: the answer is not a list: {str(answer)[:200]}")
        return answer


PEERS = (
    Peer("fastapi", "FastAPI + uvicorn"),
    Peer("litserve", "LitServe", probe="/readyz"),
    Peer("bentoml", "BentoML", probe="/livez", wrapped=False, writes_root=True),
    Peer("kserve", "KServe ModelServer", path="/v1/models/classifier:predict", probe="/v2/health/live"),
    Peer("rayserve", "Ray Serve", probe="/-/healthz", writes_root=True, sources=True),
)
BY_NAME = {p.name: p for p in PEERS}
# Built and smoke-tested by `make test`, both packagings: the peers whose images each build cold in under a
# minute (results/peers.json's build_seconds; tests/test_peers.py holds them to it). The rest: make peers only.
CI_PEERS = ("fastapi", "litserve")


def requirement_files(peer: Peer) -> tuple[str, ...]:
    """What its images pip install, relative to the repository (the wheelhouse resolves them)."""
    return ("peers/requirements-model.txt", f"peers/{peer.name}/requirements.txt")
