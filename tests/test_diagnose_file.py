"""make diagnose IMAGE=<file>: an archive or OCI layout is diagnosed with no engine at all."""

from __future__ import annotations

import json

import pytest

from scripts.measure import diagnose
from tests.test_image_archive import OCI_ZSTD, Layout, write_tar


@pytest.fixture
def no_engine(monkeypatch):
    def refuse(*_a, **_k):
        pytest.fail("an image given as a file needs no engine")

    for name in ("ensure_engine", "sdk", "saved_image", "trace_image"):
        monkeypatch.setattr(diagnose, name, refuse)
    monkeypatch.setattr(diagnose, "engine_answers", lambda: False)


def test_an_oci_layout_with_zstd_layers_is_diagnosed_without_an_engine(tmp_path, no_engine, capsys):
    layout = Layout()
    path = layout.write(tmp_path / "service.oci.tar", layout.index([layout.image(OCI_ZSTD)]))
    out = tmp_path / "reports"

    assert diagnose.main(["--image", str(path), "--out", str(out)]) == 0

    report = json.loads((out / "service.json").read_text())
    assert report["total_bytes"] == 5000 + 26 + 17 + 3 + 700
    assert report["wasted_bytes"] == 5000
    assert report["python_distributions"] == [["x", 3, 1]]
    assert report["trace"]["reason"] == "the image was given as a file"
    assert "not OCI layouts" in report["dive"]["skipped"]
    assert (out / "service.md").is_file() and (out / "service-treemap.png").is_file()
    err = capsys.readouterr().err
    assert "is a file: no container to trace" in err


def test_an_unreadable_file_is_one_line_and_exit_2(tmp_path, no_engine, capsys):
    path = tmp_path / "notes.tar"
    write_tar(path, {"notes.txt": b"hello"})
    assert diagnose.main(["--image", str(path), "--out", str(tmp_path), "--no-dive"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {path} has neither manifest.json nor index.json: "
                   "not a `docker save` archive or an OCI image layout"]


def test_report_names_of_files_and_references():
    assert diagnose.report_name("registry.example/team/app:1.2") == "registry.example_team_app_1.2"


def test_a_missing_archive_is_not_looked_up_in_the_engine(tmp_path, no_engine, capsys):
    missing = tmp_path / "nowhere.tar"
    assert diagnose.main(["--image", str(missing), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: no such file or directory: {missing}"
