"""Report writers and compare's helpers, on made-up figures (no engine needed)."""

from __future__ import annotations

import pytest

from scripts.bench.compare import start_runs
from scripts.images.container import memory_in_use
from scripts.images.context import context_paths, scratch_context
from scripts.reports.report import METRICS, chart, markdown
from scripts.variants import ROOT, VARIANTS

DATA = {
    "naive_image": {"size_bytes": 3_000_000_000, "build_seconds": 80.0, "runs_as_root": True, "p50_ms": 20.0},
    "distroless_image": {"size_bytes": 900_000_000, "build_seconds": 60.0, "runs_as_root": False, "p50_ms": None},
}


def test_markdown_has_every_metric_and_ratios_to_naive():
    md = markdown(DATA, "_header_\n")
    lines = md.splitlines()
    assert lines[0] == "_header_"
    assert lines[2] == "| metric | naive_image | distroless_image |"
    assert len([ln for ln in lines if ln.startswith("| ") and "metric" not in ln]) == len(METRICS)
    size_row = next(ln for ln in lines if ln.startswith("| image size |"))
    assert "3.0 GB" in size_row and "900 MB (0.30x)" in size_row
    root_row = next(ln for ln in lines if ln.startswith("| runs as root |"))
    assert root_row == "| runs as root | yes | no |"  # booleans get no ratio
    assert "| latency p50 | 20.0 ms | n/a |" in md  # a missing figure says so


def test_chart_is_a_png(tmp_path):
    path = chart(DATA, tmp_path / "c.png", "title")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_memory_in_use_is_what_docker_stats_shows():
    # cgroup v2: usage less inactive_file (the CLI's calculateMemUsageUnixNoCache)
    assert memory_in_use({"memory_stats": {"usage": 400, "stats": {"inactive_file": 100}}}) == 300
    # cgroup v1 names it total_inactive_file
    assert memory_in_use({"memory_stats": {"usage": 400, "stats": {"total_inactive_file": 50}}}) == 350
    # nothing to subtract, or a figure larger than usage: usage as is
    assert memory_in_use({"memory_stats": {"usage": 400}}) == 400
    assert memory_in_use({"memory_stats": {"usage": 400, "stats": {"inactive_file": 900}}}) == 400


def test_scratch_context_copies_and_never_touches_the_tree(tmp_path):
    ctx = scratch_context(tmp_path / "ctx", list(VARIANTS))
    for rel in context_paths():
        assert (ctx / rel).exists()
    assert all((ctx / v.name / "Dockerfile").read_text() == v.dockerfile.read_text() for v in VARIANTS)
    assert (ctx / "onnx_image" / "Dockerfile.dockerignore").exists()  # its own context allowlist comes along
    original = (ROOT / "app" / "server.py").read_text()
    (ctx / "app" / "server.py").write_text(original + "# edit\n")
    assert (ROOT / "app" / "server.py").read_text() == original


def test_start_runs_setting(monkeypatch):
    monkeypatch.delenv("START_RUNS", raising=False)
    assert start_runs() == 5
    monkeypatch.setenv("START_RUNS", "9")
    assert start_runs() == 9
    monkeypatch.setenv("START_RUNS", "0")
    with pytest.raises(SystemExit, match="START_RUNS"):
        start_runs()


def test_redraw_rewrites_reports_from_saved_figures(tmp_path):
    import json

    from scripts.bench.compare import main

    comp = {"categories": {"OS files": 600, "model": 300, "other": 100}, "named_deps": {}, "total_bytes": 1000}
    variants = {name: {**figures, "composition": comp} for name, figures in DATA.items()}
    machine = {"measured_at": "2026-01-01T00:00:00+0000", "cpu": "test CPU", "cores": 2}
    (tmp_path / "compare.json").write_text(json.dumps({"machine": machine, "variants": variants}))
    assert main(["--redraw", "--out", str(tmp_path)]) == 0
    assert "test CPU" in (tmp_path / "compare.md").read_text()
    assert (tmp_path / "composition.png").read_bytes()[:4] == b"\x89PNG"


def test_redraw_without_measurements_is_a_clear_error(tmp_path, capsys):
    from scripts.bench.compare import main

    assert main(["--redraw", "--out", str(tmp_path)]) == 2
    assert "no measurements" in capsys.readouterr().err


def test_a_partial_compare_keeps_the_other_rows_in_variant_order():
    from scripts.bench.compare import merged

    previous = {"naive_image": {"size_bytes": 1}, "distroless_image": {"size_bytes": 2, "old": True}}
    out = merged(previous, {"distroless_image": {"size_bytes": 3}, "slim_image": {"size_bytes": 4}})
    assert list(out) == ["naive_image", "slim_image", "distroless_image"]
    assert out["distroless_image"] == {"size_bytes": 3} and out["naive_image"] == {"size_bytes": 1}


def test_scratch_rebuilds_leave_no_untagged_image(monkeypatch):
    """Each scratch rebuild moves its tag; the image it replaced is removed, and the last one at the end."""
    import contextlib

    from scripts.bench import compare
    from scripts.variants import BY_NAME

    removed, rmi = [], []
    monkeypatch.setattr(compare, "image_id", lambda tag: "sha256:before")
    monkeypatch.setattr(compare, "build_image", lambda *a, **k: 1.0)
    monkeypatch.setattr(compare, "remove_replaced", lambda old, tag: removed.append(old))
    monkeypatch.setattr(compare, "trim_build_cache", lambda keep=None: None)
    monkeypatch.setattr(compare, "docker", lambda *a, **k: rmi.append(a))

    class Setup:
        def wheels(self):
            return contextlib.nullcontext()

    out = compare.rebuild_times([BY_NAME["onnx_image"]], Setup())
    assert set(out["onnx_image"]) == {"rebuild_app_seconds", "rebuild_model_seconds"}
    assert len(removed) == 3  # warm-up, app edit, model change: each replaced image removed
    assert ("rmi", "-f", "bert-classifier-scratch:onnx_image") in rmi  # and the last one at the end


def test_compare_scratch_context_holds_what_the_images_copy():
    """make compare rebuilds from a copy of context_paths(): every path an ignore file lets in, each there."""
    paths = context_paths()
    assert {"app", "model_parts", "scripts/model/assemble.py", "scripts/model/export_onnx.py",
            "onnx_image/stdlib-modules.txt", "scripts/images/copy_python.py"} <= set(paths)
    assert not {"model", "model-onnx-int8"} & set(paths)  # every image builds its model: the host's stays out
    assert all((ROOT / rel).exists() for rel in paths), [rel for rel in paths if not (ROOT / rel).exists()]


def test_each_compare_run_edits_differently(monkeypatch):
    """The same edit again would hit the build cache of the previous run: each run's edits differ."""
    import contextlib

    from safetensors import safe_open

    from scripts.bench import compare
    from scripts.variants import BY_NAME

    seen: list[tuple[str, str]] = []

    def build(dockerfile, tag, setup, *, context, **kw):
        with safe_open(str(context / "model_parts/trained_top.safetensors"), "np") as part:
            seen.append(((context / "app/server.py").read_text()[-80:], part.metadata()))
        return 1.0

    monkeypatch.setattr(compare, "build_image", build)
    monkeypatch.setattr(compare, "image_id", lambda tag: None)
    monkeypatch.setattr(compare, "remove_replaced", lambda old, tag: None)
    monkeypatch.setattr(compare, "trim_build_cache", lambda keep=None: None)
    monkeypatch.setattr(compare, "docker", lambda *a, **k: None)

    class Setup:
        def wheels(self):
            return contextlib.nullcontext()

    for _ in range(2):
        compare.rebuild_times([BY_NAME["onnx_image"]], Setup())
    warm1, app1, model1, warm2, app2, model2 = seen
    assert warm1 == warm2  # the untouched copies are the same
    assert app1[0] != warm1[0] and app2[0] != app1[0]  # each run's app edit is its own
    assert model2[1] != model1[1] != warm1[1]  # so is the model change, a trained part that still loads


def test_smoke_of_some_variants_keeps_the_others_rows(monkeypatch, tmp_path):
    """make smoke VARIANTS=x updates x's row in results/smoke.json; the other variants' rows stay."""
    import json
    import subprocess

    from scripts.images import smoke

    path = tmp_path / "smoke.json"
    path.write_text(json.dumps({"gpu": {}, "variants": {"naive_image": {"failures": []}, "onnx_image": {"old": 1}}}))
    monkeypatch.setattr(smoke, "SMOKE_JSON", path)
    monkeypatch.setattr(smoke, "ensure_engine", lambda: None)
    monkeypatch.setattr(smoke, "docker", lambda *a, **k: subprocess.CompletedProcess(a, 0, "", ""))
    monkeypatch.setattr(smoke, "smoke_variant", lambda v, gpu=False: {"failures": [], "new": 1})
    monkeypatch.delenv("PLATFORM", raising=False)
    assert smoke.main(["--variants", "onnx_image", "--flavor", "cpu"]) == 0
    rows = json.loads(path.read_text())["variants"]
    assert rows == {"naive_image": {"failures": []}, "onnx_image": {"failures": [], "new": 1}}
