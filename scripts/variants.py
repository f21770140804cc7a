"""The packaging variants (five torch ones, one ONNX Runtime one): the one place they are listed."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE_REPO = "bert-classifier"
# Which torch goes in: app/torch-<flavor>.txt. The ONNX image has no torch, so it is cpu only.
FLAVORS = ("cpu", "cuda")


@dataclass(frozen=True)
class Variant:
    name: str  # folder holding the Dockerfile, and the image tag
    technique: str
    non_root: bool  # must the service run as a non-root user?
    shell: bool  # does the image keep a shell?
    python: tuple[str, ...] = ("python",)  # how `docker run IMAGE ...` reaches Python
    runtime: str = "torch"  # the model runtime inside: torch (model/) or onnx (model-onnx-int8/)
    flavor: str = "cpu"  # which torch build the image installs (FLAVORS)

    @property
    def dockerfile(self) -> Path:
        return ROOT / self.name / "Dockerfile"

    @property
    def model_dir(self) -> Path:
        """The model folder the Dockerfile copies (written by `make model`)."""
        return ROOT / ("model-onnx-int8" if self.runtime == "onnx" else "model")

    @property
    def image(self) -> str:
        """The tag: cpu images keep the plain name, other flavours add theirs, so both can coexist."""
        return f"{IMAGE_REPO}:{self.name}" + ("" if self.flavor == "cpu" else f"-{self.flavor}")

    def supports(self, flavor: str) -> bool:
        return flavor == "cpu" or self.runtime == "torch"

    def with_flavor(self, flavor: str) -> Variant:
        if flavor not in FLAVORS:
            raise SystemExit(f"unknown FLAVOR {flavor!r}; choose from {', '.join(FLAVORS)}")
        return replace(self, flavor=flavor)

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


def select(names: str | None, flavor: str = "cpu") -> list[Variant]:
    """Variants named in a comma/space list (all when empty), in flavor; unknown names are an error.

    Variants that have no such flavour (the ONNX image has no CUDA torch) are left out, with a line
    on stderr when they were named.
    """
    wanted = names.replace(",", " ").split() if names and names.strip() else list(BY_NAME)
    unknown = [n for n in wanted if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown variant(s): {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    chosen = [BY_NAME[n].with_flavor(flavor) for n in wanted]
    skipped = [v.name for v in chosen if not v.supports(flavor)]
    if skipped:
        print(f"FLAVOR={flavor} is a torch build: skipping {', '.join(skipped)}", file=sys.stderr)
    return [v for v in chosen if v.supports(flavor)]


def flavor_from_env() -> str:
    """FLAVOR from the environment (make passes it on); cpu when unset."""
    return (os.environ.get("FLAVOR") or "cpu").strip() or "cpu"
