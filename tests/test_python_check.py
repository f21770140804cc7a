"""The check before the lab's venv: one line naming the fix, on the interpreters readers have."""

from __future__ import annotations

import subprocess
import sys

from scripts.infra import python_check
from scripts.variants import ROOT


def test_old_pythons_are_refused_with_the_fix_named():
    for version in ((3, 9, 6), (3, 10, 12)):  # a stock macOS, Ubuntu 22.04
        line = python_check.problem(version, True)
        assert line.startswith("error: the lab needs Python 3.11 or newer")
        assert f"is {version[0]}.{version[1]}:" in line and "make PYTHON=python3.11 venv" in line
        assert "\n" not in line


def test_a_python_without_venv_names_the_package():
    assert "apt install python3.11-venv" in python_check.problem((3, 11, 2), False)


def test_this_python_passes_and_the_file_runs_on_its_own():
    assert python_check.problem(sys.version_info, True) is None
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/infra/python_check.py")], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == ""
