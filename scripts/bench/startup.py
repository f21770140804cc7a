"""Start-up, phase by phase, per variant (`make startup`, VARIANTS= as elsewhere; START_RUNS=3).

From `docker run` to the first 200 from /classify, split by the engine's own timestamps
(container created, process started) and the service's log lines, which the engine stamps as
they arrive (`docker logs --timestamps`):

  engine: create and start   docker run until the container's process starts
  interpreter and imports    until the model-loaded line, less the load time that line reports
  model load                 the load time the service logs (weights and tokenizer)
  gunicorn arbiter           until gunicorn's "Booting worker" line
  worker fork and warm-up    until the worker's "listening" line (post_worker_init's warm-up inside)
  first answer               until the first 200 from /classify (polled every 20 ms)

Median of each phase over START_RUNS fresh containers. Writes results/startup.json (rows of other
variants kept) and results/startup.png, a stacked bar per variant; `make compare` writes the same
from its own cold starts (START_RUNS=5 there). The table in docs/measurement.md is generated from it.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

from scripts.images.container import POSITIVE, Container, classify
from scripts.infra.engine import EngineError, ensure_engine, finish_cleanly_on_sigterm, sdk
from scripts.reports.report import save_figure
from scripts.results import RESULTS, load_json, machine, print_table, save_json
from scripts.variants import VARIANTS, select

PHASES = ("engine: create and start", "interpreter and imports", "model load", "gunicorn arbiter",
          "worker fork and warm-up", "first answer")
LOADED = re.compile(r"model .* loaded \(.*\) on \S+ in ([\d.]+)s")


def stamp(text: str) -> float:
    """Seconds since the epoch of an engine timestamp (RFC 3339, nanoseconds, Z)."""
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float(f"0.{frac or 0}")


def phases(run_at: float, started: float, log: str, answered: float) -> dict[str, float]:
    """The phases of one start from its timestamps and `docker logs --timestamps` text."""
    loaded = boot = listen = None
    load_seconds = 0.0
    for line in log.splitlines():
        when, _, text = line.partition(" ")
        if loaded is None and (m := LOADED.search(text)):
            loaded, load_seconds = stamp(when), float(m.group(1))
        elif boot is None and "Booting worker" in text:
            boot = stamp(when)
        elif listen is None and boot is not None and "listening" in text.lower():
            listen = stamp(when)
    if None in (loaded, boot, listen):
        raise EngineError(f"the service's log lacks the lines start-up is split by:\n{log[-1500:]}")
    return {"engine: create and start": started - run_at,
            "interpreter and imports": loaded - started - load_seconds,
            "model load": load_seconds, "gunicorn arbiter": boot - loaded,
            "worker fork and warm-up": listen - boot, "first answer": answered - listen}


def one_start(image: str, timeout: float = 180) -> dict[str, float]:
    run_at = time.time()
    container = Container(image).start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if classify(container.base_url, POSITIVE)[0] == 200:
                    break
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            if not container.running():
                raise EngineError(f"{image} exited during start-up:\n{container.logs()}")
            time.sleep(0.02)
        else:
            raise EngineError(f"{image}: no answer within {timeout:.0f} s:\n{container.logs()}")
        answered = time.time()
        found = sdk().containers.get(container.id)
        started = stamp(found.attrs["State"]["StartedAt"])
        return phases(run_at, started, found.logs(timestamps=True).decode(errors="replace"), answered)
    finally:
        container.remove()


def medians(starts: list[dict[str, float]]) -> dict[str, float]:
    """The median of each phase over several starts, and how many there were."""
    return {**{k: round(statistics.median(s[k] for s in starts), 3) for k in PHASES}, "runs": len(starts)}


def record(rows: dict[str, dict], path: Path = RESULTS / "startup.json") -> dict:
    """Merge these variants' medians into results/startup.json (others' rows kept) and redraw startup.png."""
    data = load_json(path) if path.exists() else {}
    data["machine"] = machine()
    data["variants"] = {v.name: r for v in VARIANTS if (r := {**data.get("variants", {}), **rows}.get(v.name))}
    save_json(path, data)
    chart(data, path.with_suffix(".png"))
    return data


def runs_label(data: dict) -> str:
    counts = sorted({r.get("runs", data.get("runs")) for r in data["variants"].values()} - {None})
    return "/".join(map(str, counts)) or "?"


def markdown(data: dict) -> str:
    m = data.get("machine", {})
    rows = data.get("variants", {})
    lines = [f"_{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('measured_at', '?')[:10]}; median of "
             f"{runs_label(data)} starts_", "",
             "| variant | " + " | ".join(PHASES) + " | total |", "|---" * (len(PHASES) + 2) + "|"]
    for v in VARIANTS:
        if v.name in rows:
            p = rows[v.name]
            lines.append(f"| {v.name} | " + " | ".join(f"{p[k]:.2f} s" for k in PHASES) +
                         f" | {sum(p[k] for k in PHASES):.2f} s |")
    return "\n".join(lines) + "\n"


def chart(data: dict, path: Path) -> Path:
    """One horizontal bar per variant, stacked by phase: where each second of a cold start goes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [v.name for v in VARIANTS if v.name in data["variants"]]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.6))
    left = [0.0] * len(names)
    for phase in PHASES:
        widths = [data["variants"][n][phase] for n in names]
        ax.barh(names, widths, left=left, label=phase)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for y, total in enumerate(left):
        ax.annotate(f"{total:.2f} s", (total, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds from docker run to the first 200 from /classify")
    ax.set_title(f"Cold start, phase by phase (median of {runs_label(data)} starts)", fontsize=10)
    ax.legend(fontsize=7, ncol=3, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    # No options: --help prints what it does, anything else is refused before it measures
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    finish_cleanly_on_sigterm()
    runs = int(os.environ.get("START_RUNS") or "3")
    rows: dict[str, dict] = {}
    try:
        ensure_engine()
        for v in select(os.environ.get("VARIANTS")):
            print(f"[startup] {v.name}: {runs} starts ...", file=sys.stderr, flush=True)
            rows[v.name] = medians([one_start(v.image) for _ in range(runs)])
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    record(rows)
    print_table(["variant", *PHASES], [[n, *(f"{p[k]:.2f}" for k in PHASES)] for n, p in rows.items()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
