"""docker-bake.hcl builds the variants make build-all builds, and says when it does not."""

from __future__ import annotations

import re

from scripts.images import bake
from scripts.variants import VARIANTS


def test_committed_bake_file_is_current():
    assert bake.main(["--check"]) == 0


def test_every_variant_is_a_target_with_its_dockerfile_and_tag():
    text = bake.BAKE_FILE.read_text()
    targets = dict(re.findall(r'target "(\w+)" \{\n(.*?)\}', text, re.S))
    assert list(targets) == [v.name for v in VARIANTS]
    for v in VARIANTS:
        assert f'dockerfile = "{v.name}/Dockerfile"' in targets[v.name]
        assert f'tags       = ["{v.image}"]' in targets[v.name]
    group = re.search(r'group "default" \{\n  targets = \[(.*?)\]', text).group(1)
    assert group == ", ".join(f'"{v.name}"' for v in VARIANTS)


def test_a_stale_bake_file_fails_the_check(tmp_path, capsys):
    stale = tmp_path / "docker-bake.hcl"
    stale.write_text(bake.render().replace('"onnx_image/Dockerfile"', '"onnx_image/Dockerfile.old"'))
    assert bake.main(["--check", "--file", str(stale)]) == 1
    assert "differs" in capsys.readouterr().err
