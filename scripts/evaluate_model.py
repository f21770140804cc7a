"""Accuracy of an assembled model folder on the held-out reviews (never trained on).

    python -m scripts.evaluate_model --model model
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from app.classifier import Classifier
from scripts.model_assets import LABELS, ROOT, load_reviews, split


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, default=ROOT / "model")
    args = ap.parse_args(argv)
    _, held = split(load_reviews())
    started = time.perf_counter()
    clf = Classifier(str(args.model), device="cpu", batch_size=64)
    preds = clf.predict([e.text for e in held])
    right = sum(p.label == LABELS[e.label] for p, e in zip(preds, held, strict=True))
    acc = right / len(held)
    print(f"held-out accuracy: {acc:.4f} ({right}/{len(held)}) in {time.perf_counter() - started:.0f}s")
    return acc


if __name__ == "__main__":
    main()
