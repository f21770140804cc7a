"""Every measuring command parses its options before it does anything: --help prints what it does, and an
option it does not know is one line and exit 2, never a measurement run over the committed results."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys

import pytest

from scripts.variants import ROOT

PACKAGES = ("bench", "studies", "reports", "advisor", "images", "deploy")
COMMANDS = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts)
    for pkg in PACKAGES for p in (ROOT / "scripts" / pkg).glob("*.py")
    if 'if __name__ == "__main__":' in p.read_text() and p.name not in ("trim_venv.py", "copy_python.py"))


def test_the_commands_are_found():
    assert "scripts.bench.compare" in COMMANDS and "scripts.bench.startup" in COMMANDS and len(COMMANDS) > 20


@pytest.mark.parametrize("name", COMMANDS)
def test_an_unknown_option_is_refused_before_anything_runs(name, capsys):
    main = importlib.import_module(name).main
    assert "argv" in inspect.signature(main).parameters, f"{name}.main takes no argv: it cannot refuse options"
    with pytest.raises(SystemExit) as exit_:
        main(["--no-such-option"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and ("--no-such-option" in err or "required" in err), err


# compare regenerates from its own --out; gpu-pack writes .gpu/, and gpu-check runs on a GPU machine
# without the lab's virtualenv (its results/gpu.json is committed by hand, then shown by the next target's step).
REGENERATES_ITSELF_OR_ELSEWHERE = {"compare", "gpu-pack", "gpu-check"}


def make_recipes() -> dict[str, str]:
    text = (ROOT / "Makefile").read_text()
    return {m[1]: m[2] for m in re.finditer(r"^([a-z][\w-]*):[^\n]*\n((?:\t[^\n]*\n)+)", text, re.M)}


def test_every_make_target_that_writes_results_ends_by_regenerating_the_docs():
    """After `make peers` (or any target that writes results/), `make test` finds the docs current."""
    writers = {}
    for target, recipe in make_recipes().items():
        for module in re.findall(r"-m (scripts\.[\w.]+)", recipe):
            source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
            if "save_json(" in source or "save_rows(" in source:
                writers[target] = recipe
    assert {"peers", "releases", "build-all", "smoke", "compression"} <= writers.keys()
    stale = [t for t, recipe in writers.items()
             if t not in REGENERATES_ITSELF_OR_ELSEWHERE and not recipe.rstrip().endswith("$(REGENERATE)")]
    assert not stale, f"these targets write results/ and leave the docs stale: {stale}"


def test_the_docs_show_results_also_on_another_engine():
    """`make releases ENGINE=docker26-containerd` ends with $(REGENERATE): the docs it checks and rewrites
    are the ones results/ shows, not the engine's own folder below it (results/engines/ENGINE/)."""
    env = {**os.environ, "ENGINE": "docker26-containerd"}
    for module in ("scripts.reports.docs", "scripts.deploy.kubernetes"):
        proc = subprocess.run([sys.executable, "-m", module, "--check"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{module}: {proc.stdout}{proc.stderr}"
