"""make compare leaves results, docs and overlays that agree: the README's `make compare && make test` order."""

from __future__ import annotations

import json
import shutil

import pytest

from scripts.bench import compare
from scripts.deploy import kubernetes
from scripts.infra.engine import EngineError
from scripts.reports import docs
from scripts.variants import ROOT, VARIANTS


@pytest.fixture
def copy_of_the_repo(tmp_path, monkeypatch):
    """results/, the generated pages and the overlays copied; docs and kubernetes pointed at the copy."""
    shutil.copytree(ROOT / "results", tmp_path / "results")
    pages = []
    for page in docs.DOCS:
        target = tmp_path / page.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(page, target)
        pages.append(target)
    shutil.copytree(kubernetes.DEPLOY, tmp_path / "deploy" / "kubernetes")
    # Dockerfiles are read by the diff blocks and the overlays' USER lines: they stay the repository's.
    monkeypatch.setattr(docs, "ROOT", tmp_path)
    monkeypatch.setattr(docs, "RESULTS_ROOT", tmp_path / "results")
    monkeypatch.setattr(docs, "DOCS", tuple(pages))
    monkeypatch.setattr(kubernetes, "ROOT", tmp_path)
    monkeypatch.setattr(kubernetes, "RESULTS_ROOT", tmp_path / "results")
    monkeypatch.setattr(kubernetes, "DEPLOY", tmp_path / "deploy" / "kubernetes")
    monkeypatch.delenv("ENGINE", raising=False)
    return tmp_path


def measured_elsewhere(results) -> None:
    """compare.json as another machine would write it: every size, start and memory figure differs."""
    path = results / "compare.json"
    data = json.loads(path.read_text())
    for row in data["variants"].values():
        row["size_bytes"] += 12_345_678
        row["cold_start_seconds"] = round(row["cold_start_seconds"] * 1.7 + 0.3, 2)
        row["cold_start_max_seconds"] = round(row["cold_start_max_seconds"] * 1.7 + 0.3, 2)
        row["memory_load_peak_bytes"] += 40 * 2**20
        row["measured_at"] = "2031-01-02T03:04:05+0000"
    path.write_text(json.dumps(data))


def test_new_figures_leave_docs_and_overlays_stale_until_regenerated(copy_of_the_repo, capsys):
    measured_elsewhere(copy_of_the_repo / "results")
    assert docs.stale(), "the planted figures should make some block stale"
    assert kubernetes.main(["--check"]) == 1

    changed = compare.regenerate(copy_of_the_repo / "results")

    assert docs.stale() == []
    assert kubernetes.main(["--check"]) == 0
    readme = copy_of_the_repo / "README.md"
    assert readme in changed and "2031-01-02" in readme.read_text()
    assert any(p.parent.parent.name == "overlays" for p in changed)
    assert "rewritten from the new results: README.md" in capsys.readouterr().out


def test_nothing_to_rewrite_is_said(copy_of_the_repo, capsys):
    assert compare.regenerate(copy_of_the_repo / "results") == []
    assert "none (the figures they show are unchanged)" in capsys.readouterr().out


def test_results_of_another_engine_leave_the_docs_alone(copy_of_the_repo, monkeypatch):
    measured_elsewhere(copy_of_the_repo / "results")
    monkeypatch.setenv("ENGINE", "docker26")  # make compare writes below results/ then: results/engines/docker26/
    assert compare.regenerate(copy_of_the_repo / "results" / "engines" / "docker26") == []
    assert docs.stale()


def test_a_run_stopped_half_way_leaves_the_previous_results_whole(tmp_path, monkeypatch):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "results", results, ignore=shutil.ignore_patterns("engines", "diagnose", "sbom"))
    before = {name: (results / name).read_bytes() for name in ("compare.json", "startup.json")}
    measured = []

    def measure_variant(v, *_):
        if len(measured) == 2:
            raise EngineError(f"{v.image}: the engine went away")
        measured.append(v.name)
        return {"image": v.image, "size_bytes": 1}, {"engine": 0.1}

    monkeypatch.setattr(compare, "RESULTS", results)
    monkeypatch.setattr(compare, "prepare", lambda *a, **k: None)
    monkeypatch.setattr(compare, "load_json", lambda p: json.loads(p.read_text()) if p.is_file() else {})
    monkeypatch.setattr(compare, "measure_variant", measure_variant)
    monkeypatch.setattr(compare, "regenerate", lambda out: pytest.fail("nothing is regenerated after a failure"))
    monkeypatch.setenv("KEEP_IMAGES", "1")
    monkeypatch.delenv("VARIANTS", raising=False)

    assert compare.main(["--out", str(results), "--skip", "push,rebuild,diagnose"]) == 1

    assert {name: (results / name).read_bytes() for name in before} == before
    partial = json.loads((results / "compare.partial.json").read_text())
    assert list(partial["variants"]) == measured == [v.name for v in VARIANTS[:2]]


def test_only_a_whole_run_from_nothing_times_make_compare():
    rows = {v.name: {"build_seconds": 10.0} for v in VARIANTS}
    everything = [v.name for v in VARIANTS]
    where = {"cpu": "AMD EPYC", "cores": 2}
    assert compare.full_run(1500.4, rows, everything, set(), where) == {"seconds": 1500, "build_seconds": 60.0,
                                                                         "machine": "AMD EPYC, 2 cores"}
    assert compare.full_run(300, rows, ["onnx_image"], set(), where) == {}  # the others were built already
    assert compare.full_run(300, rows, everything, {"push"}, where) == {}  # a step skipped
    assert compare.full_run(300, {"onnx_image": rows["onnx_image"]}, everything, set(), where) == {}
