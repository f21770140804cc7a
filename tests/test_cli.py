"""The predictor CLI, in process, on the tiny model."""

from __future__ import annotations

import io
import json

import pytest

from app import predictor


@pytest.fixture(autouse=True)
def tiny_env(monkeypatch, tiny_model_dirs):
    monkeypatch.setenv("MODEL_DIR", str(tiny_model_dirs))
    monkeypatch.setenv("DEVICE", "cpu")


def rows(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_file_lines_become_json_rows(tmp_path, capsys):
    f = tmp_path / "reviews.txt"
    f.write_text("great film\n\n   \nawful movie\n")
    assert predictor.main([str(f)]) == 0
    out = rows(capsys.readouterr().out)
    assert [(r["line"], r["text"]) for r in out] == [(1, "great film"), (4, "awful movie")]
    assert all(r["label"] in {"NEGATIVE", "POSITIVE"} and r["source"] == str(f) for r in out)


def test_stdin_dash(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("i love this\n"))
    assert predictor.main(["-"]) == 0
    assert rows(capsys.readouterr().out)[0]["source"] == "-"


def test_missing_file_exit_2(tmp_path, capsys):
    assert predictor.main([str(tmp_path / "nope.txt")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err


def test_empty_input_exit_2(tmp_path, capsys):
    f = tmp_path / "empty.txt"
    f.write_text("\n  \n")
    assert predictor.main([str(f)]) == 2
    assert "no text" in capsys.readouterr().err


def test_binary_input_exit_2(tmp_path, capsys):
    f = tmp_path / "bin.txt"
    f.write_bytes(b"\xff\xfe\x00bad")
    assert predictor.main([str(f)]) == 2
    assert "UTF-8" in capsys.readouterr().err


def test_bad_model_dir_exit_2(tmp_path, monkeypatch, capsys):
    f = tmp_path / "t.txt"
    f.write_text("hello\n")
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "no-model"))
    assert predictor.main([str(f)]) == 2
    assert "cannot load model" in capsys.readouterr().err


def test_bad_device_setting_is_a_clear_error(tmp_path, monkeypatch):
    f = tmp_path / "t.txt"
    f.write_text("hello\n")
    monkeypatch.setenv("DEVICE", "tpu")
    with pytest.raises(SystemExit, match="DEVICE must be"):
        predictor.main([str(f)])


def test_corrupt_onnx_model_exit_2(tmp_path, tiny_onnx_dir, monkeypatch, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_onnx_dir, broken)
    (broken / "model.onnx").write_bytes(b"not a protobuf")
    f = tmp_path / "t.txt"
    f.write_text("hello\n")
    monkeypatch.setenv("MODEL_DIR", str(broken))
    assert predictor.main([str(f)]) == 2
    err = capsys.readouterr().err
    assert "cannot load model" in err and "Traceback" not in err
