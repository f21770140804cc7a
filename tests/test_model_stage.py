"""The stages Dockerfiles repeat are the same text, so one build cache serves them all: the model stage of
every multi-stage Dockerfile, and onnx_image's export stage in both of its files."""

from __future__ import annotations

import re

from scripts.variants import VARIANTS

STAGE = re.compile(r"(?ms)^FROM \$\{PYTHON_IMAGE\} AS model\n.*?(?=^FROM |\Z)")
EXPORT = re.compile(r"(?ms)^FROM \$\{PYTHON_IMAGE\} AS export\n.*?(?=^FROM |\Z)")


def model_stages(stage: re.Pattern = STAGE) -> dict[str, str]:
    files = dict.fromkeys(f for v in VARIANTS for f in (v.step_dockerfile, v.dockerfile))
    found = {f"{f.parent.name}/{f.name}": stage.search(f.read_text()) for f in files}
    return {name: "\n".join(line for line in m.group(0).splitlines() if line.strip() and not line.startswith("#"))
            for name, m in found.items() if m}  # instructions only: what BuildKit's cache keys on


def test_every_multi_stage_dockerfile_builds_the_model_with_the_same_lines():
    stages = model_stages()
    assert set(stages) == {"multi_stage_build/Dockerfile", "layered_image/Dockerfile", "distroless_image/Dockerfile",
                           "onnx_image/runtime.Dockerfile", "onnx_image/Dockerfile"}
    assert len(set(stages.values())) == 1, "the model stages differ: BuildKit would build the model once per image"
    assert "assemble.py" in next(iter(stages.values()))


def test_a_drifted_stage_is_caught():
    stages = model_stages()
    drifted = {**stages, "layered_image/Dockerfile": stages["layered_image/Dockerfile"].replace("--no-deps", "")}
    assert len(set(drifted.values())) == 2


def test_onnx_images_two_files_export_the_model_with_the_same_lines():
    stages = model_stages(EXPORT)
    assert set(stages) == {"onnx_image/runtime.Dockerfile", "onnx_image/Dockerfile"}
    assert len(set(stages.values())) == 1, "the export stages differ: torch would be installed twice"
    assert "export_onnx.py" in next(iter(stages.values()))
