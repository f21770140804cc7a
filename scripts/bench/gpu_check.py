"""The GPU check: one command for a machine with an NVIDIA GPU and a CUDA torch, but no Docker.

    make gpu-pack     # here: what that machine lacks, into .gpu/ (the model in fp16, flask/gunicorn wheels)
    make gpu-check    # there: the whole check, about 3 minutes; writes results/gpu.json (and $OUT/gpu.json)

On the GPU machine (its python3 holds torch with CUDA, transformers, tokenizers, onnx and
onnxruntime, but not flask or gunicorn, and nothing can be downloaded there), `gpu-check`:
  1. fails at once, exit 2, naming why, where torch sees no CUDA device;
  2. installs the packed wheels into .gpu/site and restores model/ in fp32 from the packed
     fp16 copy (the tree that travels there is capped at 64 MiB; the fp32 model is 87 MiB);
  3. exports model-onnx-int8/ from it there (scripts/model/export_onnx.py);
  4. runs the app's tests with DEVICE=cuda (API, backends, real gunicorn, pipelining, memory);
  5. benchmarks model/ on the GPU (DEVICE=cuda) and model-onnx-int8/ on that machine's CPU;
  6. lists the CUDA libraries the service loads against those shipped (scripts/bench/cuda_libs.py's
     probe, run in a process on the GPU);
and writes every figure to results/gpu.json. Each step is bounded in time.

GPU_CHECK_REHEARSE=1 runs every step on the CPU instead (DEVICE=cpu), to try the script on a
machine without a GPU; it writes results/gpu-rehearsal.json, never gpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from scripts.results import RESULTS, machine, save_json

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / ".gpu"
WHEELS = ("flask==3.1.3", "gunicorn==27.0.1", "itsdangerous==2.2.0", "blinker==1.9.0")
APP_TESTS = ("tests/test_api.py", "tests/test_backends.py", "tests/test_gunicorn.py", "tests/test_pipelining.py",
             "tests/test_memory.py")


def log(msg: str) -> None:
    print(f"[gpu-check] {msg}", file=sys.stderr, flush=True)


def pack() -> int:
    """Here: the model in fp16 (half the bytes) and the wheels the GPU machine lacks, into .gpu/."""
    import torch
    from safetensors.torch import load_file, save_file

    if not (ROOT / "model" / "model.safetensors").is_file():
        raise SystemExit("gpu-pack: no model/: run `make model` first")
    shutil.rmtree(PACK, ignore_errors=True)
    (PACK / "model").mkdir(parents=True)
    for f in (ROOT / "model").iterdir():
        if f.name != "model.safetensors":
            shutil.copy2(f, PACK / "model" / f.name)
    weights = load_file(str(ROOT / "model" / "model.safetensors"))
    save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()},
              str(PACK / "model" / "model.fp16.safetensors"))
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "-d", str(PACK / "wheels"), *WHEELS], check=True, timeout=300)
    size = sum(p.stat().st_size for p in PACK.rglob("*") if p.is_file())
    log(f"packed {size / 1e6:.1f} MB into .gpu/: run it there with carry ['.gpu'] and `make gpu-check`")
    return 0


def cuda_reason() -> str | None:
    """Why this machine cannot run the check, or None."""
    try:
        import torch
    except ImportError:
        return "no torch in this Python"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device (torch.version.cuda={torch.version.cuda})"
    return None


def restore_model() -> None:
    """model/ in fp32 from the packed fp16 weights, unless a model/ is already there."""
    import torch
    from safetensors.torch import load_file, save_file

    target = ROOT / "model"
    if (target / "model.safetensors").is_file():
        return
    target.mkdir(exist_ok=True)
    for f in (PACK / "model").iterdir():
        if f.name != "model.fp16.safetensors":
            shutil.copy2(f, target / f.name)
    weights = load_file(str(PACK / "model" / "model.fp16.safetensors"))
    save_file({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in weights.items()},
              str(target / "model.safetensors"))


def step(name: str, cmd: list[str], env: dict, timeout: float) -> tuple[dict, str]:
    """Run one bounded step; (its record for gpu.json, its whole standard output)."""
    shown = " ".join(cmd) if len(" ".join(cmd)) < 200 else f"{cmd[0]} {cmd[1]} <{name} probe>"
    shown = shown.replace(f"{ROOT}/", "")  # results carry no absolute paths of the checkout
    log(f"{name}: {shown}")
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        rc, stdout, out = proc.returncode, proc.stdout, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired:
        rc, stdout, out = 124, "", f"timed out after {timeout:.0f} s"
    seconds = round(time.monotonic() - started, 1)
    log(f"{name}: exit {rc} in {seconds} s")
    return {"command": shown, "exit": rc, "seconds": seconds, "tail": out[-3000:]}, stdout


def check() -> int:
    rehearse = os.environ.get("GPU_CHECK_REHEARSE") == "1"
    reason = cuda_reason()
    if reason and not rehearse:
        log(f"cannot run here: {reason}. It needs an NVIDIA GPU, its driver and a CUDA build of torch "
            "(GPU_CHECK_REHEARSE=1 runs the same steps on the CPU).")
        return 2
    import torch

    device = "cpu" if rehearse else "cuda"
    result_path = RESULTS / ("gpu-rehearsal.json" if rehearse else "gpu.json")

    site = PACK / "site"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}
    if (PACK / "wheels").is_dir() and not site.is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                        "--target", str(site), *map(str, (PACK / "wheels").glob("*.whl"))], check=True, timeout=120)
    restore_model()
    out: dict = {"machine": machine(), "rehearsal": rehearse,
                 "gpu": None if rehearse else torch.cuda.get_device_name(0), "torch": torch.__version__,
                 "cuda": torch.version.cuda, "steps": {}}
    steps = out["steps"]
    if not (ROOT / "model-onnx-int8" / "model.onnx").is_file():
        steps["export_onnx"], _ = step("export", [sys.executable, "-m", "scripts.model.export_onnx"], env, 300)
    cuda = {**env, "DEVICE": device}
    steps[f"app_tests_{device}"], _ = step("tests", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                             *APP_TESTS], cuda, 300)
    for name, folder, on in ((f"benchmark_torch_{device}", "model", device),
                             ("benchmark_onnx_cpu", "model-onnx-int8", "cpu")):
        steps[name], _ = step(name, [sys.executable, "-m", "scripts.bench.benchmark", "--model", folder,
                                  "--out", str(RESULTS / f"gpu-{name}.json")], {**env, "DEVICE": on}, 240)
        path = RESULTS / f"gpu-{name}.json"
        if path.is_file():
            out[name] = json.loads(path.read_text())
            path.unlink()
    from scripts.bench import cuda_libs

    steps["cuda_libs"], stdout = step("cuda_libs", [sys.executable, "-c", cuda_libs.PROBE],
                                      {**cuda, "MODEL_DIR": str(ROOT / "model")}, 180)
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith("{")), "")
    if line:
        out["cuda_libs"] = cuda_libs.summarize(json.loads(line))
        steps["cuda_libs"]["tail"] = steps["cuda_libs"]["tail"][-300:]
    save_json(result_path, out)
    if os.environ.get("OUT"):
        save_json(Path(os.environ["OUT"]) / result_path.name, out)
    failed = [k for k, s in steps.items() if s["exit"] != 0]
    verdict = f"FAILED: {', '.join(failed)}" if failed else "every step passed"
    log(f"wrote {result_path.relative_to(ROOT)}; {verdict}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["pack", "check"])
    args = ap.parse_args(argv)
    return pack() if args.command == "pack" else check()


if __name__ == "__main__":
    raise SystemExit(main())
