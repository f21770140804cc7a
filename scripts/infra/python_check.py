"""Before the lab's virtualenv is made: is this Python new enough, and can it make a venv? One line if not.

    python3 scripts/infra/python_check.py     # the Makefile runs it first; exit 2 with the fix named

Runs on whatever `python3` is (a stock macOS has 3.9), so it uses nothing newer than Python 3.6 has
(f-strings).
"""

import sys

NEEDED = (3, 11)


def problem(version, has_venv):
    """The one line to print, or None when this interpreter will do."""
    found = f"{version[0]}.{version[1]}"
    if tuple(version[:2]) < NEEDED:
        return (f"error: the lab needs Python {NEEDED[0]}.{NEEDED[1]} or newer, and {sys.executable} is {found}: "
                "install one (python.org, Homebrew, or apt install python3.11 python3.11-venv), "
                "then: make PYTHON=python3.11 venv")
    if not has_venv:
        return (f"error: {sys.executable} has no venv module (Debian and Ubuntu split it out): "
                f"apt install python{found}-venv, then run make again")
    return None


def main():
    try:
        import ensurepip  # noqa: F401 - what `python -m venv` needs to put pip in the venv
        import venv  # noqa: F401
        has_venv = True
    except ImportError:
        has_venv = False
    line = problem(sys.version_info, has_venv)
    if line:
        print(line, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
