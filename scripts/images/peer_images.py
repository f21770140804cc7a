"""Build the peers' images (scripts/peers.py) and check that one answers as the contract says.

    python -m scripts.images.peer_images [--peers fastapi,litserve] [--packagings default,slim]

Every peer image copies the model from onnx_image (MODEL_IMAGE), which is built first when it is
missing. The builds install from the wheelhouse where containers cannot reach PyPI, as the six do.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from scripts.images.build import BuildSetup, build_all, build_image, engine_arch, image_size, prepare
from scripts.images.container import NEGATIVE, POSITIVE, Container, http
from scripts.infra import wheelhouse
from scripts.infra.engine import EngineError, docker, finish_cleanly_on_sigterm
from scripts.peers import BY_NAME, PACKAGINGS, PEERS_DIR, Peer
from scripts.results import human_bytes
from scripts.variants import BY_NAME as VARIANTS
from scripts.variants import ROOT

ONNX = VARIANTS["onnx_image"]
TRIM_VENV = Path("scripts/images/trim_venv.py")  # the one file from outside peers/ a peer build copies


class WrongAnswer(Exception):
    """A peer answered, but not what the contract or the model says."""


def log(msg: str) -> None:
    print(f"[peers] {msg}", file=sys.stderr, flush=True)


def select(peers: str, packagings: str) -> list[tuple[Peer, str]]:
    names = [n for n in peers.replace(",", " ").split() if n] or list(BY_NAME)
    kinds = [k for k in packagings.replace(",", " ").split() if k] or list(PACKAGINGS)
    unknown = [n for n in names if n not in BY_NAME] + [k for k in kinds if k not in PACKAGINGS]
    if unknown:
        raise SystemExit(f"error: unknown peer or packaging {unknown}; peers: {', '.join(BY_NAME)}; "
                         f"packagings: {', '.join(PACKAGINGS)}")
    return [(BY_NAME[n], k) for n in names for k in kinds]


def prepared() -> BuildSetup:
    """The builds' setup, with the peers' wheels in the wheelhouse and onnx_image built."""
    setup = prepare("cpu")
    if setup.use_wheelhouse:
        wheelhouse.download("peers", engine_arch())
    if docker("image", "inspect", ONNX.image, check=False).returncode != 0:
        log(f"{ONNX.image} is not built: building it first (the peers copy its model) ...")
        build_all([ONNX], setup)
    return setup


def build(peer: Peer, packaging: str, setup: BuildSetup, cold: bool = True) -> dict:
    """Build one peer image; its size and build seconds."""
    image = peer.image(packaging)
    # A scratch context holding only what the Dockerfiles copy: BuildKit 0.8 (Docker 20.10) was seen to
    # send this checkout's root as context, not what <Dockerfile>.dockerignore lets through, now and then.
    with tempfile.TemporaryDirectory(prefix="peer-context-") as tmp, setup.wheels():
        context = Path(tmp)
        shutil.copytree(PEERS_DIR, context / "peers", ignore=shutil.ignore_patterns("__pycache__"))
        (context / TRIM_VENV.parent).mkdir(parents=True)
        shutil.copy2(ROOT / TRIM_VENV, context / TRIM_VENV)
        dockerfile = context / peer.dockerfile(packaging).relative_to(ROOT)
        seconds = build_image(dockerfile, image, setup, context=context, no_cache=cold,
                              label=f"{peer.name} ({packaging})", build_args=peer.build_args(packaging, ONNX.image),
                              target=peer.target(packaging))
    size = image_size(image)
    log(f"{image}: {human_bytes(size)} in {seconds:.0f}s")
    return {"image": image, "build_seconds": round(seconds, 1), "size_bytes": size, "cold": cold}


def ask(base_url: str, peer: Peer, texts: list[str], timeout: float = 30) -> tuple[int, list | None]:
    """(status, predictions or None) for one request of the contract."""
    status, answer = http("POST", base_url + peer.path, json.dumps({"texts": texts}).encode(), timeout=timeout)
    if status != 200:
        return status, None
    try:
        return status, peer.predictions(answer)
    except ValueError as exc:
        raise WrongAnswer(str(exc)) from None


def check_answers(base_url: str, peer: Peer) -> None:
    """The sample sentences get their labels, one at a time and together; WrongAnswer if not."""
    for texts, want in (([POSITIVE], ["POSITIVE"]), ([NEGATIVE], ["NEGATIVE"]),
                        ([POSITIVE, NEGATIVE], ["POSITIVE", "NEGATIVE"])):
        status, predictions = ask(base_url, peer, texts)
        labels = [p.get("label") if isinstance(p, dict) else p for p in predictions or []]
        if status != 200 or labels != want:
            raise WrongAnswer(f"{peer.title}: {len(texts)} sample sentence(s): HTTP {status}, labels {labels}, "
                              f"expected {want}")
        if not all(isinstance(p, dict) and 0.5 <= float(p.get("score", 0)) <= 1 for p in predictions or []):
            raise WrongAnswer(f"{peer.title}: scores out of range in {predictions}")


def wait_first_answer(container: Container, peer: Peer, started: float, timeout: float = 180) -> float:
    """Seconds from started (a perf_counter reading) to the first 200 the contract's path gives."""
    return container.wait_answer(lambda: ask(container.base_url, peer, [POSITIVE], timeout=5)[0] == 200, started,
                                 peer.path, timeout)


def smoke(peer: Peer, packaging: str) -> float:
    """Run the image as every check here runs one (read-only root, /tmp a tmpfs); its first answer's seconds."""
    started = time.perf_counter()
    container = Container(peer.image(packaging), peer.run_options(packaging)).start()
    try:
        seconds = wait_first_answer(container, peer, started)
        check_answers(container.base_url, peer)
        return seconds
    finally:
        container.remove()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", default="")
    ap.add_argument("--packagings", default="")
    args = ap.parse_args(argv)
    finish_cleanly_on_sigterm()
    chosen = select(args.peers, args.packagings)
    try:
        setup = prepared()
        for peer, packaging in chosen:
            build(peer, packaging, setup)
            log(f"{peer.image(packaging)}: first answer after {smoke(peer, packaging):.1f}s, labels right")
    except (EngineError, WrongAnswer) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
