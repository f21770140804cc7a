"""The command line: an archive or OCI layout is diagnosed with no engine at all; bad input is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_archive import OCI_ZSTD, Layout, docker_save, write_tar

from image_advisor import REPORT_SCHEMA, cli, diagnosis, engine, pictures
from image_advisor.trace import CONFINED


@pytest.fixture
def no_engine(monkeypatch):
    def refuse(*_a, **_k):
        pytest.fail("an image given as a file needs no engine")

    for module, name in ((engine, "_sdk"), (diagnosis, "sdk"), (diagnosis, "saved_image"), (diagnosis, "trace_image")):
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(diagnosis, "engine_answers", lambda: False)


def test_an_oci_layout_with_zstd_layers_is_diagnosed_without_an_engine(tmp_path, no_engine, capsys):
    layout = Layout()
    path = layout.write(tmp_path / "service.oci.tar", layout.index([layout.image(OCI_ZSTD)]))
    out = tmp_path / "reports"

    assert cli.main([str(path), "--out", str(out)]) == 0

    report = json.loads((out / "service.json").read_text())
    assert report["schema"] == REPORT_SCHEMA and report["tool"].startswith("image-advisor ")
    assert report["total_bytes"] == 5000 + 26 + 17 + 3 + 700
    assert report["wasted_bytes"] == 5000
    assert report["python_distributions"] == [["x", 3, 1]]
    assert report["distribution_roles"] == {"x": "unknown without a trace"}
    assert report["trace"]["reason"] == "the image was given as a file"
    assert "not OCI layouts" in report["dive"]["skipped"]
    assert (out / "service.md").is_file()
    assert (out / "service-treemap.png").is_file() == pictures.available()
    assert "is a file: no container to trace" in capsys.readouterr().err


def test_without_the_pictures_extra_only_the_pictures_are_missing(tmp_path, no_engine, monkeypatch, capsys):
    monkeypatch.setattr(pictures, "available", lambda: False)
    assert cli.main([str(docker_save(tmp_path / "saved.tar")), "--out", str(tmp_path / "r"), "--no-dive"]) == 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["saved.json", "saved.md"]
    assert "pictures: none (pip install 'image-advisor[pictures]' draws them)" in capsys.readouterr().out


def test_the_gate_fails_with_exit_3(tmp_path, no_engine, capsys):
    path = docker_save(tmp_path / "saved.tar")
    assert cli.main([str(path), "--out", str(tmp_path), "--no-dive", "--fail-above", "1KB"]) == 3
    assert "GATE FAILED" in capsys.readouterr().err
    baseline = str(tmp_path / "saved.json")
    assert cli.main([str(path), "--out", str(tmp_path / "again"), "--no-dive", "--baseline", baseline,
                     "--max-growth", "0"]) == 0


@pytest.mark.parametrize(("args", "message"), [
    (["{archive}"], "{archive} has neither manifest.json nor index.json: "
                    "not a `docker save` archive or an OCI image layout"),
    (["{missing}"], "no such file or directory: {missing}"),
    (["{saved}", "--profile", "{archive}"], "{archive} is not JSON"),
    (["{saved}", "--profile", "{profile}"], "{profile}: unknown field(s) colour; known: dive_rules, fixes, "
                                            "onnx_reference, probe, reference_bases, runtime, shown_in"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, no_engine, capsys, args, message):
    paths = {"archive": tmp_path / "notes.tar", "missing": tmp_path / "nowhere.tar",
             "saved": docker_save(tmp_path / "saved.tar"), "profile": tmp_path / "profile.json"}
    write_tar(paths["archive"], {"notes.txt": b"hello"})
    paths["profile"].write_text('{"colour": "blue"}')
    assert cli.main([a.format(**paths) for a in args] + ["--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: " + message.format(**paths))


def test_report_names_of_files_and_references():
    assert cli.report_name("registry.example/team/app:1.2") == "registry.example_team_app_1.2"
    assert cli.report_name("./builds/app.oci.tar") == "app"


def test_the_readme_states_the_limits_the_trace_sets():
    text = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    memory = CONFINED["mem_limit"].upper().removesuffix("G")
    log = CONFINED["log_config"]["config"]["max-size"].upper().removesuffix("M")
    for said in (f"{memory} GB of memory", f"{CONFINED['pids_limit']} processes", f"a {log} MB log"):
        assert said in text, said


@pytest.mark.parametrize(("image", "asked"), [("app:pr", True), ("registry.example:5000/app@sha256:" + "a" * 64, True),
                                              ("registry.example:5000/app", False), ("1a2b3c4d", False)],
                         ids=["tagged", "digest", "repository", "id-prefix"])
def test_the_save_is_asked_early_only_for_a_name_that_means_one_image(monkeypatch, image, asked):
    sent: list[str] = []

    class Sock:
        def close(self) -> None:
            pass

    monkeypatch.setattr(engine, "_plain_endpoint", lambda: "unix:///nowhere")
    monkeypatch.setattr(engine.http_body, "connect", lambda endpoint, timeout: Sock())
    monkeypatch.setattr(engine.http_body, "send", lambda sock, path: sent.append(path))
    engine.start_save(image)
    engine.drop_started()
    assert bool(sent) == asked
