"""Every measuring command parses its options before it does anything: --help prints what it does, and an
option it does not know is one line and exit 2, never a measurement run over the committed results."""

from __future__ import annotations

import importlib
import inspect

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
