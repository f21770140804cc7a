"""The packaging variants (five torch ones, one ONNX Runtime one): the one place they are listed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE_REPO = "bert-classifier"


@dataclass(frozen=True)
class Variant:
    name: str  # folder holding the Dockerfile, and the image tag
    technique: str
    non_root: bool  # must the service run as a non-root user?
    shell: bool  # does the image keep a shell?
    python: tuple[str, ...] = ("python",)  # how `docker run IMAGE ...` reaches Python
    runtime: str = "torch"  # the model runtime inside: torch (model/) or onnx (model-onnx-int8/)

    @property
    def dockerfile(self) -> Path:
        return ROOT / self.name / "Dockerfile"

    @property
    def model_dir(self) -> Path:
        """The model folder the Dockerfile copies (written by `make model`)."""
        return ROOT / ("model-onnx-int8" if self.runtime == "onnx" else "model")

    @property
    def image(self) -> str:
        return f"{IMAGE_REPO}:{self.name}"

    def predictor_command(self, *files: str) -> list[str]:
        return [*self.python, "-m", "app.predictor", *files]


VARIANTS = (
    Variant("naive_image", "full python base, dev tools, caches left behind", non_root=False, shell=True),
    Variant("slim_image", "-slim base, runtime deps only", non_root=True, shell=True),
    Variant("multi_stage_build", "build stage venv -> slim runtime", non_root=True, shell=True),
    Variant("layered_image", "layers ordered OS -> deps -> model -> code", non_root=True, shell=True),
    # The distroless entry point is the venv's python, so arguments go straight to it.
    Variant("distroless_image", "distroless runtime, no shell, non-root", non_root=True, shell=False, python=()),
    Variant("onnx_image", "ONNX Runtime + int8 model on distroless Debian 13, no torch", non_root=True, shell=False,
            python=(), runtime="onnx"),
)
TORCH_VARIANTS = tuple(v for v in VARIANTS if v.runtime == "torch")
BY_NAME = {v.name: v for v in VARIANTS}


def select(names: str | None) -> list[Variant]:
    """Variants named in a comma/space list (all when empty); unknown names are an error."""
    if not names or not names.strip():
        return list(VARIANTS)
    wanted = names.replace(",", " ").split()
    unknown = [n for n in wanted if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown variant(s): {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    return [BY_NAME[n] for n in wanted]
