"""Sizes as the reports print them, and plain terminal tables."""

from __future__ import annotations

import re
import sys


def human_bytes(n: float) -> str:
    """Decimal units as `docker image ls` prints them: one decimal below 100, none above."""
    units = ("B", "KB", "MB", "GB")
    step = 0
    while abs(n) >= 1000 and step < len(units) - 1:
        n /= 1000
        step += 1
    unit = units[step]
    return f"{n:.0f} {unit}" if unit == "B" or n >= 100 else f"{n:.1f} {unit}"


def byte_count(text: str) -> int:
    """'500MB' -> 500_000_000 (decimal units, as the reports print them); plain numbers are bytes."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMG]?B?)\s*", text.upper())
    if not match:
        raise ValueError(f"{text!r} is not a size (e.g. 500MB, 1.2GB, 123456)")
    scale = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9}[match.group(2)]
    return int(float(match.group(1)) * scale)


def print_table(header: list[str], rows: list[list[str]], out=None) -> None:
    out = out or sys.stdout
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header), file=out)
    print(line.format(*("-" * w for w in widths)), file=out)
    for row in rows:
        print(line.format(*row), file=out)
