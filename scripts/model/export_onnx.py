"""The ONNX forms of a torch classifier folder: fp32 export and int8 dynamic quantization.

    python -m scripts.model.export_onnx --model model      # writes model-onnx/ and model-onnx-int8/
    python export_onnx.py --model /opt/model --out /opt --forms int8     # onnx_image's export stage

Each output is a folder the ONNX backend loads (app/backends/onnx_bert.py): model.onnx,
the tokenizer files and config.json (labels, limits) of the torch folder, and ORIGIN.json.
`make model` runs this after assembling model/. It imports nothing of this repository, so
onnx_image's Dockerfile runs the file as it is, beside torch, transformers and onnx.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

ONNX_FILE = "model.onnx"  # the name app/backends loads (tests/test_embedded_model.py checks they agree)
INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # BERT's forward() order; all int64
# TorchScript exporter: torch 2.13's default (dynamo) graph exports too, but ORT cannot fuse its attention.
OPSET = 17
COPIED = ("config.json", "tokenizer.json", "tokenizer_config.json")  # labels, limits, the whole tokenizer
FORMS = {"fp32": "model-onnx", "int8": "model-onnx-int8"}


def export_fp32(torch_dir: Path, onnx_path: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(torch_dir)
    # Eager attention: 231 nodes once quantized and optimized, against 315 with SDPA's masking (shape ops).
    model = AutoModelForSequenceClassification.from_pretrained(torch_dir, attn_implementation="eager").eval()
    sample = tokenizer(["a short one", "and a somewhat longer second sentence"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS} | {"logits": {0: "batch"}}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
        torch.onnx.export(model, tuple(sample[name] for name in INPUTS), str(onnx_path), input_names=list(INPUTS),
                          output_names=["logits"], dynamic_axes=axes, opset_version=OPSET, dynamo=False)


def quantize_int8(fp32_path: Path, int8_path: Path) -> None:
    """Weights to int8 per output channel, activations quantized at run time (no calibration data).

    Per-channel: held-out accuracy within 0.005 of fp32 (make evaluate); one scale per tensor lost 0.016.
    """
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # its "consider pre-processing" hint: that step fails on BERT
    quantize_dynamic(str(fp32_path), str(int8_path), per_channel=True, weight_type=QuantType.QInt8)


def optimize_offline(path: Path) -> None:
    """Apply ONNX Runtime's graph fusions once, here, instead of at every session start.

    Extended level: fusions (attention, layer norm, GELU, ...) valid on any x86/ARM CPU; the
    hardware-specific layout passes of the "all" level still run at load. About 50 ms off each
    session start on this model, with the same predictions. Needs the onnxruntime version that
    serves it, which app/requirements-onnx.txt pins for both the images and this venv.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    optimized = path.with_name("optimized.onnx")
    options.optimized_model_filepath = str(optimized)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    optimized.replace(path)


def write_folder(torch_dir: Path, out: Path, form: str, scratch: Path) -> Path:
    """Write out/ for form (fp32 | int8) whole, then swap it in: a failed export leaves the old folder."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fp32 = scratch / "fp32.onnx"
    if not fp32.exists():
        export_fp32(torch_dir, fp32)
    if form == "int8":
        quantize_int8(fp32, tmp / ONNX_FILE)
        optimize_offline(tmp / ONNX_FILE)
    else:
        shutil.copy2(fp32, tmp / ONNX_FILE)
    for name in COPIED:
        if (torch_dir / name).exists():
            shutil.copy2(torch_dir / name, tmp / name)
    origin = {"exported_from": torch_dir.name, "form": form, "opset": OPSET, "exporter": "torch.onnx (TorchScript)",
              "quantization": "dynamic, int8 weights per channel" if form == "int8" else None,
              "optimized_offline": "onnxruntime extended level" if form == "int8" else None}
    (tmp / "ORIGIN.json").write_text(json.dumps(origin, indent=2) + "\n")
    for f in tmp.iterdir():
        f.chmod(0o644)  # images run as non-root users
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def export_all(torch_dir: Path, root: Path, forms: tuple[str, ...] = tuple(FORMS)) -> dict[str, Path]:
    with tempfile.TemporaryDirectory(prefix="onnx-export-") as scratch:
        return {form: write_folder(torch_dir, root / FORMS[form], form, Path(scratch)) for form in forms}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("model"), help="the torch classifier folder")
    ap.add_argument("--out", type=Path, help="where the forms' folders go (default: beside --model)")
    ap.add_argument("--forms", nargs="+", choices=FORMS, default=list(FORMS))
    args = ap.parse_args(argv)
    if not (args.model / "config.json").is_file():
        raise SystemExit(f"{args.model}: no classifier folder (config.json missing)")
    started = time.perf_counter()
    for form, folder in export_all(args.model, args.out or args.model.parent, tuple(args.forms)).items():
        size = (folder / ONNX_FILE).stat().st_size
        print(f"{form}: {folder} ({size / 2**20:.1f} MiB)", file=sys.stderr)
    print(f"ONNX forms written in {time.perf_counter() - started:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
