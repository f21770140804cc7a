"""Results files and terminal tables shared by build, smoke and compare."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from scripts.variants import suffix

# ENGINE=docker26 (scripts/infra/engines.py): what is measured on that engine goes under results/engines/docker26/.
RESULTS_ROOT = Path(__file__).resolve().parent.parent / "results"
RESULTS = RESULTS_ROOT / (f"engines/{os.environ['ENGINE'].strip()}" if os.environ.get("ENGINE", "").strip() else "")


def flavored(path: Path, flavor: str, platform: str = "") -> Path:
    """results/compare.json for cpu, compare-cuda.json for cuda, build-arm64.json for PLATFORM=linux/arm64."""
    return path.with_name(f"{path.stem}{suffix(flavor, platform)}{path.suffix}")


def load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path} is not valid JSON ({exc}); move it away and run again") from None


def save_json(path: Path, data: dict) -> None:
    """Write atomically: a crash mid-write never leaves a truncated results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def save_rows(path: Path, data: dict, some: bool) -> dict:
    """Write a measurement's data (its rows under "variants") to path. A run of some variants only (some)
    keeps the file's other rows, its own over theirs. Returns what was written."""
    if some:
        data = {**data, "variants": {**load_json(path).get("variants", {}), **data["variants"]}}
    save_json(path, data)
    return data


def human_bytes(n: float) -> str:
    """Decimal units as `docker image ls` prints them: one decimal below 100, none above."""
    units = ("B", "KB", "MB", "GB")
    step = 0
    while abs(n) >= 1000 and step < len(units) - 1:
        n /= 1000
        step += 1
    unit = units[step]
    return f"{n:.0f} {unit}" if unit == "B" or n >= 100 else f"{n:.1f} {unit}"


def print_table(header: list[str], rows: list[list[str]], out=sys.stdout) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header), file=out)
    print(line.format(*("-" * w for w in widths)), file=out)
    for row in rows:
        print(line.format(*row), file=out)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def machine() -> dict:
    """Where a measurement ran: enough to tell runs apart."""
    def cmd(*args: str) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    cpu = ""
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), "")
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"hostname": platform.node(), "os": cmd("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
            "kernel": platform.release(), "cpu": cpu, "cores": os.cpu_count(), "memory_bytes": mem,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
