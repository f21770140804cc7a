"""Classify the lines of text files from the command line, one JSON object per line.

    python -m app.predictor sample_data/sample_text.txt
    echo "what a great film" | python -m app.predictor -

Each non-empty line is one text. Exit status: 0 on success, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from app.settings import Settings, ensure_writable_tempdir


def read_lines(sources: list[str]) -> Iterator[tuple[str, int, str]]:
    """(source, line number, text) for every non-empty line; '-' reads stdin."""
    for source in sources:
        if source == "-":
            content = sys.stdin.read()
        else:
            content = Path(source).read_text(encoding="utf-8")
        for number, line in enumerate(content.splitlines(), start=1):
            if line.strip():
                yield source, number, line.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.predictor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", metavar="FILE", help="text file(s), or - for stdin")
    args = parser.parse_args(argv)

    for source in args.files:
        if source != "-" and not Path(source).is_file():
            print(f"error: no such file: {source}", file=sys.stderr)
            return 2
    try:
        rows = list(read_lines(args.files))
    except UnicodeDecodeError as exc:
        print(f"error: input is not valid UTF-8 text ({exc.reason})", file=sys.stderr)
        return 2
    if not rows:
        print("error: no text to classify (all input lines are empty)", file=sys.stderr)
        return 2

    ensure_writable_tempdir()
    from app.backends import ModelLoadError  # deferred: argument errors answer without loading a runtime

    settings = Settings.from_env()
    try:
        model = settings.load_model()
        predictions = model.predict([text for _, _, text in rows])
    except ModelLoadError as exc:
        print(f"error: cannot load model from {settings.model_dir!r}: {exc}\n"
              "hint: run `make model` or set MODEL_DIR", file=sys.stderr)
        return 2
    for (source, number, text), pred in zip(rows, predictions, strict=True):
        print(json.dumps({"source": source, "line": number, "text": text,
                          "label": pred.label, "score": pred.score}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
