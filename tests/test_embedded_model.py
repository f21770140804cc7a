"""The embedded default model: assembled from the packaged encoder + the committed part."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from scripts.model import assemble as assembly
from scripts.model import make_model
from scripts.model.model_assets import CACHE, ROOT, encoder_wheel, extract_encoder

CLEARLY_POSITIVE = [
    "I love this movie",
    "A wonderful, moving film with brilliant performances.",
    "One of the best comedies of the year: smart, warm and very funny.",
]
CLEARLY_NEGATIVE = [
    "A dull, lifeless mess that wastes its talented cast.",
    "Boring, predictable and far too long.",
    "The worst film I have seen in years; avoid it.",
]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """The folder `make model` builds (./model), assembled afresh into a temp dir."""
    return make_model.assemble(tmp_path_factory.mktemp("embedded") / "model")


def test_committed_part_is_small_and_only_the_top():
    part = make_model.TRAINED_PART
    assert part.stat().st_size <= 16 * 2**20
    with safe_open(str(part), "np") as f:
        keys = list(f.keys())
        trained = json.loads(f.metadata()["trained_layers"])
    assert trained == [4, 5]
    assert all(k.startswith(("classifier.", "bert.pooler.", "bert.encoder.layer.4.", "bert.encoder.layer.5."))
               for k in keys)


def test_assembled_folder_is_a_standard_classifier(embedded):
    config = json.loads((embedded / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "NEGATIVE", "1": "POSITIVE"}
    for name in ("model.safetensors", "tokenizer.json", "vocab.txt"):
        assert (embedded / name).is_file()
        assert (embedded / name).stat().st_mode & 0o044 == 0o044  # readable by a non-root user


def test_labels_on_clear_sentences(embedded):
    from app.backends import load_model

    clf = load_model(str(embedded), device="cpu")
    assert clf.name == make_model.MODEL_NAME
    preds = clf.predict(CLEARLY_POSITIVE + CLEARLY_NEGATIVE)
    labels = [p.label for p in preds]
    assert labels == ["POSITIVE"] * 3 + ["NEGATIVE"] * 3
    assert all(p.score > 0.8 for p in preds)


def test_missing_trained_part_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="make train"):
        make_model.assemble(tmp_path / "m", trained_part=tmp_path / "absent.safetensors")


def test_assembly_never_leaves_a_half_folder(tmp_path, monkeypatch):
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("old model")

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(assembly, "write_safetensors", disk_full)
    with pytest.raises(OSError):
        make_model.assemble(out)
    assert (out / "keep.txt").read_text() == "old model"  # the previous folder survives a failed build


def test_assembled_weights_are_the_encoders_under_the_trained_part(embedded):
    """Written by the standard library alone, read back by the safetensors library: every tensor where it belongs."""
    encoder = load_file(str(extract_encoder(CACHE / "encoder") / "model.safetensors"))
    trained = load_file(str(make_model.TRAINED_PART))
    assembled = load_file(str(embedded / "model.safetensors"))
    expected = {f"bert.{k}" for k in encoder if not k.endswith("position_ids")} | set(trained)
    assert set(assembled) == expected
    for name, tensor in assembled.items():
        source = trained[name] if name in trained else encoder[name.removeprefix("bert.")]
        assert tensor.dtype == source.dtype and np.array_equal(tensor, source), name
    assert any(not np.array_equal(trained[k], encoder[k.removeprefix("bert.")]) for k in trained
               if k.removeprefix("bert.") in encoder)  # the trained part does replace encoder layers


def test_new_weights_move_one_value_and_keep_the_rest(tmp_path):
    part = tmp_path / "part.safetensors"
    shutil.copy2(make_model.TRAINED_PART, part)
    assembly.new_weights(part, 1)
    with safe_open(str(part), "np") as f:
        assert f.metadata()["edited"] == "1"
        assert f.metadata()["trained_layers"] == "[4, 5]"
    before, after = load_file(str(make_model.TRAINED_PART)), load_file(str(part))
    assert before.keys() == after.keys()
    assert [k for k in before if not np.array_equal(before[k], after[k])] == [assembly.NUDGED]
    assert abs(float(after[assembly.NUDGED][0] - before[assembly.NUDGED][0]) - 1e-3) < 1e-6


@pytest.mark.parametrize("damage", ["truncated", "not-a-wheel"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, damage):
    trained, wheel = tmp_path / "part.safetensors", tmp_path / "encoder.whl"
    data = make_model.TRAINED_PART.read_bytes()
    trained.write_bytes(data[:1000] if damage == "truncated" else data)
    if damage == "truncated":
        shutil.copy2(encoder_wheel(), wheel)
    else:
        wheel.write_bytes(b"not a zip")
    assert assembly.main(["--encoder", str(wheel), "--trained", str(trained), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "m").exists()


def test_export_writes_the_file_the_backend_loads():
    from app.backends import ONNX_FILE
    from scripts.model import export_onnx

    assert export_onnx.ONNX_FILE == ONNX_FILE


def test_repo_does_not_track_full_weights():
    assert not (ROOT / "model").exists() or "model/" in (ROOT / ".gitignore").read_text()


def test_onnx_forms_keep_labels_and_scores(embedded, tmp_path):
    """The exported fp32 and int8 forms label the clear sentences as torch does, with close scores."""
    from app.backends import load_model
    from scripts.model.export_onnx import export_all

    forms = export_all(embedded, tmp_path)
    sentences = CLEARLY_POSITIVE + CLEARLY_NEGATIVE
    reference = load_model(str(embedded), device="cpu").predict(sentences)
    for form, tolerance in (("fp32", 1e-4), ("int8", 0.05)):
        preds = load_model(str(forms[form]), device="cpu").predict(sentences)
        assert [p.label for p in preds] == [p.label for p in reference], form
        assert [p.score for p in preds] == pytest.approx([p.score for p in reference], abs=tolerance), form
