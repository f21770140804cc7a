"""The packaging variants (five torch ones, one ONNX Runtime one): the one place they are listed."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE_REPO = "bert-classifier"
RELEASE_REPO = f"{IMAGE_REPO}-release"  # make releases' builds, pushed release after release
# SOURCE_DATE_EPOCH for reproducible builds: fixed, not the commit's time, so a layer whose inputs did
# not change is the same bytes in every release. 1980-01-01, the earliest time a zip (a wheel) can hold.
EPOCH = 315532800
# Which torch goes in: app/torch-<flavor>.txt. The ONNX image has no torch, so it is cpu only.
FLAVORS = ("cpu", "cuda")
# Where pip finds each flavour's torch (the Dockerfiles' TORCH_INDEX_URL default is the cpu one).
TORCH_INDEX = {"cpu": "https://download.pytorch.org/whl/cpu", "cuda": "https://pypi.org/simple"}


# The container memory limit a replica of each runtime needs (cpu flavour, 2 inference threads):
# the highest peak `make compare` measured (under its load mix, or for the heaviest request the
# limits allow) plus a quarter for headroom, rounded up to 32 MiB. tests/test_memory_limits.py
# checks it against results/compare.json; docs and manifests quote it from here.
MEMORY_LIMIT_MIB = {"onnx": 288, "torch": 576}


@dataclass(frozen=True)
class Variant:
    name: str  # folder holding the Dockerfile, and the image tag
    technique: str
    non_root: bool  # must the service run as a non-root user?
    shell: bool  # does the image keep a shell?
    python: tuple[str, ...] = ("python",)  # how `docker run IMAGE ...` reaches Python
    runtime: str = "torch"  # the model runtime inside: torch (model/) or onnx (model-onnx-int8/)
    flavor: str = "cpu"  # which torch build the image installs (FLAVORS)
    platform: str = ""  # "" builds for the engine's own platform; PLATFORM=linux/arm64 for another
    previous: str = ""  # the variant this one adds its technique to (the progression the READMEs walk)
    step: str = ""  # the file the walk shows for this step, where the measured Dockerfile goes further than one change

    @property
    def dockerfile(self) -> Path:
        return ROOT / self.name / "Dockerfile"

    @property
    def step_dockerfile(self) -> Path:
        """The walk's step: the previous variant's Dockerfile plus this one's technique, and nothing else."""
        return self.dockerfile.parent / self.step if self.step else self.dockerfile

    @property
    def base_args(self) -> set[str]:
        """The base-image build args its Dockerfiles declare (ARG PYTHON_SLIM_IMAGE=... and the like): the
        measured one's and the walk's step file's."""
        files = {self.dockerfile, self.step_dockerfile}
        return {arg for f in files for arg in re.findall(r"^ARG (\w+_IMAGE)=", f.read_text(), flags=re.M)}

    @property
    def model_dir(self) -> Path:
        """The host's form of the model this image builds for itself (written by `make model`)."""
        return ROOT / ("model-onnx-int8" if self.runtime == "onnx" else "model")

    @property
    def suffix(self) -> str:
        """What tells this build apart: '' (cpu, the engine's platform), '-cuda', '-arm64', '-cuda-arm64'."""
        return suffix(self.flavor, self.platform)

    @property
    def image(self) -> str:
        """The tag: cpu images on the engine's platform keep the plain name, others add theirs."""
        return f"{IMAGE_REPO}:{self.name}{self.suffix}"

    @property
    def emulated(self) -> bool:
        """Built for another platform than the engine's own (run under qemu)."""
        return bool(self.platform)

    def supports(self, flavor: str) -> bool:
        return flavor == "cpu" or self.runtime == "torch"

    def with_flavor(self, flavor: str, platform: str = "") -> Variant:
        if flavor not in FLAVORS:
            raise SystemExit(f"unknown FLAVOR {flavor!r}; choose from {', '.join(FLAVORS)}")
        return replace(self, flavor=flavor, platform=platform)

    @property
    def memory_limit_mib(self) -> int:
        """The container memory limit a replica is sized for (MEMORY_LIMIT_MIB)."""
        return MEMORY_LIMIT_MIB[self.runtime]

    def predictor_command(self, *files: str) -> list[str]:
        return [*self.python, "-m", "app.predictor", *files]


def suffix(flavor: str, platform: str = "") -> str:
    """Tag and results-file suffix of a flavour and a platform (linux/arm64 -> '-arm64')."""
    arch = platform.split("/")[1] if platform.count("/") >= 1 else platform
    return ("" if flavor == "cpu" else f"-{flavor}") + (f"-{arch}" if arch else "")


VARIANTS = (
    Variant("naive_image", "full python base, dev tools, caches left behind", non_root=False, shell=True),
    Variant("slim_image", "-slim base, runtime deps only", non_root=True, shell=True, previous="naive_image"),
    Variant("multi_stage_build", "build stage venv -> slim runtime, layers by change rate", non_root=True, shell=True,
            previous="slim_image"),
    Variant("layered_image", "multi-stage, installed by uv with its cache in a BuildKit cache mount", non_root=True,
            shell=True, previous="multi_stage_build"),
    # The distroless entry point is the venv's python, so arguments go straight to it.
    Variant("distroless_image", "distroless runtime, no shell, non-root", non_root=True, shell=False, python=(),
            previous="layered_image"),
    Variant("onnx_image", "ONNX Runtime + int8 model, then cut toward the floor (Debian 13), no torch", non_root=True,
            shell=False,
            python=(), runtime="onnx", previous="distroless_image",
            step="runtime.Dockerfile"),
)
TORCH_VARIANTS = tuple(v for v in VARIANTS if v.runtime == "torch")
BY_NAME = {v.name: v for v in VARIANTS}


def select(names: str | None, flavor: str = "cpu", platform: str = "") -> list[Variant]:
    """Variants named in a comma/space list (all when empty), in flavor; unknown names are an error.

    Variants that have no such flavour (the ONNX image has no CUDA torch) are left out, with a line
    on stderr when they were named.
    """
    wanted = names.replace(",", " ").split() if names and names.strip() else list(BY_NAME)
    unknown = [n for n in wanted if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown variant(s): {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    chosen = [BY_NAME[n].with_flavor(flavor, platform) for n in wanted]
    skipped = [v.name for v in chosen if not v.supports(flavor)]
    if skipped:
        print(f"FLAVOR={flavor} is a torch build: skipping {', '.join(skipped)}", file=sys.stderr)
    return [v for v in chosen if v.supports(flavor)]


def flavor_from_env() -> str:
    """FLAVOR from the environment (make passes it on); cpu when unset."""
    return (os.environ.get("FLAVOR") or "cpu").strip() or "cpu"


# The architectures images are built for: Docker's name (platforms, tags) -> the kernel's
# (`uname -m`, `docker info`, wheel tags, qemu). The one place the two names meet.
ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}
PLATFORMS = tuple(f"linux/{arch}" for arch in ARCHES)


def machine_arch(platform: str) -> str:
    """'linux/arm64' (or docker info's 'aarch64') -> the kernel's and wheel tags' name, 'aarch64'."""
    os_name, _, arch = platform.partition("/") if "/" in platform else ("linux", "", platform)
    arch = arch.split("/")[0].lower()  # linux/arm64/v8 -> arm64
    arch = ARCHES.get(arch, arch)
    if os_name.lower() != "linux" or arch not in ARCHES.values():
        raise SystemExit(f"images can be built for {' or '.join(PLATFORMS)}, not {platform!r}")
    return arch


def docker_platform(machine: str) -> str:
    """'aarch64' (docker info, uname -m) -> 'linux/arm64'."""
    return "linux/" + next(docker for docker, kernel in ARCHES.items() if kernel == machine_arch(machine))


def platform_from_env() -> str:
    """PLATFORM from the environment ('' = the engine's own); only Linux on amd64 or arm64."""
    platform = (os.environ.get("PLATFORM") or "").strip().lower()
    if platform and platform not in PLATFORMS:
        raise SystemExit(f"PLATFORM must be one of {', '.join(PLATFORMS)} (or unset), got {platform!r}")
    return platform
