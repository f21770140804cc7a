"""What a project knows about its own images that the images cannot say: a profile, passed in as JSON.

    image-advisor IMAGE --profile profile.json

Every field is optional; without a profile the advisor judges an image by the image and its trace
alone. The fields:

    runtime       distribution names the service runs on: they and what they require are its
                  runtime; a profile-less run calls a distribution "dev extras" only when it is
                  a known test, lint, notebook or build tool
    probe         the requests the trace sends, as --probe takes them ("GET /healthz", ...)
    shown_in      finding key -> where the project shows the fix (a folder, a file)
    fixes         finding key -> the fix to print instead of the generic one ({image} is the
                  reference base's name where the finding has one)
    reference_bases  {"slim": [refs], "distroless": [refs]}: bases to measure the image against,
                  the first of each list that the engine holds
    onnx_reference   measured figures for the torch-for-onnx estimate: onnxruntime_bytes,
                  onnx_model_bytes, torch_model_bytes, kept (distributions the ONNX image keeps),
                  ratio_from and source (who measured them, for the evidence lines)
    dive_rules    a .dive-ci file for dive's CI verdict

A finding key is its rule id, or rule/branch where one rule gives two kinds of fix
(installer-in-runtime/venv and /base, build-toolchain/slim and /stage).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from image_advisor.errors import AdvisorError


@dataclass
class Profile:
    runtime: set[str] | None = None  # None: no runtime list given (not: an empty runtime)
    probe: list[str] = field(default_factory=list)
    shown_in: dict[str, str] = field(default_factory=dict)
    fixes: dict[str, str] = field(default_factory=dict)
    reference_bases: dict[str, list[str]] = field(default_factory=dict)
    onnx_reference: dict | None = None
    dive_rules: str = ""

    def fix(self, key: str, generic: str, **values: str) -> str:
        return self.fixes.get(key, generic).format(**values)

    def demo(self, key: str) -> str:
        return self.shown_in.get(key, "")

    def to_json(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["runtime"] = sorted(self.runtime) if self.runtime is not None else None
        return out


def from_json(data: dict, where: str = "the profile") -> Profile:
    if not isinstance(data, dict):
        raise AdvisorError(f"{where} is not a JSON object")
    known = {f.name for f in fields(Profile)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise AdvisorError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = dict(data)
    if values.get("runtime") is not None:
        values["runtime"] = set(values["runtime"])
    return Profile(**values)


def load(path: str | Path) -> Profile:
    """The profile in a JSON file; AdvisorError with one line when it cannot be read."""
    path = Path(path)
    try:
        return from_json(json.loads(path.read_text()), str(path))
    except FileNotFoundError:
        raise AdvisorError(f"no profile {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdvisorError(f"{path} is not JSON ({exc})") from None
    except TypeError as exc:
        raise AdvisorError(f"{path}: {exc}") from None
