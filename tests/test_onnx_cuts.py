"""make onnx-cuts builds onnx_image from the commits that cut it: they must be in this history."""

from __future__ import annotations

import subprocess

import pytest

from scripts.results import RESULTS, load_json
from scripts.studies import onnx_cuts
from scripts.variants import ROOT


def in_history(commit: str) -> bool:
    return subprocess.run(["git", "merge-base", "--is-ancestor", commit, "HEAD"], cwd=ROOT,
                          capture_output=True, check=False).returncode == 0


@pytest.mark.parametrize("commit", [c for c, _, _ in onnx_cuts.CUTS])
def test_every_cut_is_a_commit_of_this_history(commit):
    assert in_history(commit), f"{commit} is not an ancestor of HEAD: a rewritten history needs CUTS updated"


def test_a_missing_commit_is_noticed():
    assert not in_history("0" * 40)


def test_results_follow_the_list():
    data = load_json(RESULTS / "onnx-cuts.json")
    assert [r["commit"] for r in data["cuts"]] == [c for c, _, _ in onnx_cuts.CUTS]
    sizes = [data["baseline"]["size_bytes"], *(r["size_bytes"] for r in data["cuts"])]
    assert [a - b for a, b in zip(sizes[:-1], sizes[1:], strict=True)] == [r["saved_bytes"] for r in data["cuts"]]
