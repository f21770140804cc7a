"""Held-out accuracy of every form of the model (torch, ONNX fp32, ONNX int8), side by side.

    python -m scripts.model.evaluate_model                    # make evaluate
    python -m scripts.model.evaluate_model --model model-onnx-int8

The held-out reviews were never trained on (scripts.model.model_assets.split). Writes
results/evaluate.json when every form was scored (the docs quote it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from app.backends import available_cpus, load_model
from scripts.model.assemble import LABELS
from scripts.model.export_onnx import FORMS
from scripts.model.model_assets import ROOT, load_reviews, split
from scripts.results import RESULTS, machine, print_table, save_json

DEFAULT_FOLDERS = (ROOT / "model", *(ROOT / name for name in FORMS.values()))


def accuracy(folder: Path, held) -> tuple[float, int, float, str]:
    started = time.perf_counter()
    model = load_model(str(folder), device="cpu", batch_size=64, threads=available_cpus())
    preds = model.predict([e.text for e in held])
    right = sum(p.label == LABELS[e.label] for p, e in zip(preds, held, strict=True))
    return right / len(held), right, time.perf_counter() - started, model.describe()["backend"]


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, action="append", help="a model folder (repeatable); default: all forms")
    args = ap.parse_args(argv)
    folders = args.model or [f for f in DEFAULT_FOLDERS if f.exists()]
    _, held = split(load_reviews())
    rows, scores, records = [], {}, {}
    base = None
    for folder in folders:
        print(f"evaluating {folder.name} on {len(held)} held-out reviews ...", file=sys.stderr, flush=True)
        acc, right, seconds, backend = accuracy(folder, held)
        base = acc if base is None else base
        scores[folder.name] = acc
        records[folder.name] = {"backend": backend, "accuracy": round(acc, 4), "right": right, "of": len(held),
                                "seconds": round(seconds, 1)}
        rows.append([folder.name, backend, f"{acc:.4f}", f"{right}/{len(held)}", f"{acc - base:+.4f}",
                     f"{seconds:.0f}s"])
    print_table(["model", "backend", "held-out accuracy", "right", "vs first", "time"], rows)
    if not args.model:
        save_json(RESULTS / "evaluate.json", {"machine": machine(), "models": records})
    return scores


if __name__ == "__main__":
    main()
