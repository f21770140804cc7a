"""Smoke-test every built image in a real container (`make smoke`).

    python -m scripts.images.smoke [--variants layered_image] [--flavor cpu|cuda] [--gpu]

For each image: start it (port on 127.0.0.1 only, read-only root filesystem),
wait for /readyz, classify a clearly positive and a clearly negative sentence,
check bad input gets 4xx JSON, run the short hostile set (slow and idle clients must not
starve /healthz or /classify; every malformed or oversized request gets its 4xx as JSON),
check the user and the shell, wait for the
HEALTHCHECK to report healthy, run the one-shot CLI, then `docker stop` (SIGTERM) while
the largest allowed request is in flight: it must get its answer, and the container
must exit 0 within 10 s. GPU=1 adds --gpus all and expects the service to report
cuda; when that cannot work here (cpu images, an engine that cannot give containers a
GPU, a torch that sees none) it prints why, records it in smoke.json and runs the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

from docker.types import DeviceRequest

from scripts.images.build import engine_arch
from scripts.images.container import (
    NEGATIVE,
    POSITIVE,
    Container,
    classify,
    has_shell,
    http,
    process_uids,
)
from scripts.infra import emulation
from scripts.infra.engine import (
    EngineError,
    docker,
    ensure_engine,
    finish_cleanly_on_sigterm,
    sdk,
)
from scripts.results import RESULTS, flavored, load_json, print_table, save_json
from scripts.traffic import heavy, hostile, pipeline
from scripts.variants import FLAVORS, PLATFORMS, Variant, flavor_from_env, machine_arch, platform_from_env, select

SMOKE_JSON = RESULTS / "smoke.json"
EXPECTED_CLI_LABELS = ["POSITIVE", "NEGATIVE", "POSITIVE", "NEGATIVE"]  # sample_data/sample_text.txt
STOP_LIMIT_S = 10
GRACEFUL_S = 8  # app/gunicorn.conf.py's graceful_timeout default
LONG_TEXT = "a long and rather wonderful film " * 120  # truncated to the model's 512 tokens
EMULATED_TEXT = "a long and rather wonderful film " * 8
EMULATION_SLOWDOWN = 5  # start-up and readiness waits under qemu (PLATFORM=linux/arm64 on amd64)


def log(msg: str) -> None:
    print(f"[smoke] {msg}", file=sys.stderr, flush=True)


def under_limit(variant: Variant, limit_mib: int, environment: dict | None = None) -> dict:
    """The heaviest allowed request three times, then a small one, in a container limited to limit_mib."""
    limit = f"{limit_mib}m"
    options = {"mem_limit": limit, "memswap_limit": limit, "environment": environment or {}}
    container = Container(variant.image, options).start()
    try:
        container.wait_ready()
        host, port = container.base_url.removeprefix("http://").split(":")
        statuses = heavy.heaviest(host, int(port), repeats=3)
        small = heavy.small(host, int(port))
        booted = container.logs(500).count("Booting worker")  # once at start, again after each kill
        return {"limit_mib": limit_mib, "heaviest_statuses": statuses, "small_status": small,
                "oom_killed": bool(container.state().get("OOMKilled")), "worker_restarts": max(0, booted - 1)}
    finally:
        container.remove()


# What an orchestrator may impose (Kubernetes' restricted profile, OpenShift's arbitrary uid in group 0):
# a uid the image never named, every capability dropped, no new privileges, a CPU limit below one core.
ORCHESTRATOR_UID = 1000680000
KILL_WORKER = ("import os, signal\n"
               "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
               "    try:\n"
               "        stat = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()\n"
               "        cmd = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
               "    except OSError:\n"
               "        continue\n"
               "    if stat[1] == '1' and b'gunicorn' in cmd:\n"
               "        os.kill(int(pid), signal.SIGKILL)\n"
               "        print(pid)\n")


def under_orchestrator(variant: Variant, timeout: float = 120) -> dict:
    """Serve under an orchestrator's conditions, then survive its gunicorn worker being killed."""
    limit = f"{variant.memory_limit_mib}m"
    options = {"user": f"{ORCHESTRATOR_UID}:0", "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"],
               "mem_limit": limit, "memswap_limit": limit, "nano_cpus": 900_000_000}
    container = Container(variant.image, options).start()
    try:
        ready = container.wait_ready(timeout)
        status, body = classify(container.base_url, POSITIVE)
        served = status == 200 and (body.get("predictions") or [{}])[0].get("label") == "POSITIVE"
        # The interpreter: `python` on PATH, or the entrypoint of images that run Python directly.
        python = list(variant.python) or sdk().images.get(variant.image).attrs["Config"]["Entrypoint"]
        killed = sdk().containers.get(container.id).exec_run([*python, "-c", KILL_WORKER])
        started = time.monotonic()
        back = None
        while time.monotonic() - started < timeout:
            if classify(container.base_url, POSITIVE)[0] == 200 and container.logs(500).count("Booting worker") > 1:
                back = round(time.monotonic() - started, 2)
                break
            time.sleep(0.2)
        return {"uid": ORCHESTRATOR_UID, "cpus": 0.9, "limit_mib": variant.memory_limit_mib,
                "ready_seconds": round(ready, 2), "served": served,
                "worker_killed": killed.exit_code == 0 and killed.output.strip().isdigit(),
                "serving_again_seconds": back, "uids": sorted(process_uids(container.id))}
    finally:
        container.remove()


GPU_PROBE = "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)"


def gpu_skip_reason(variants: list[Variant]) -> str | None:
    """None when GPU=1 can be honoured for these images; else why not, in one sentence.

    The probe is the real thing: a throw-away container of the first image with --gpus all
    asks its torch for CUDA. That works with the NVIDIA Container Toolkit however the engine
    was set up (nvidia runtime, hook or CDI), where a look at `docker info` would not.
    """
    torch_images = [v for v in variants if v.runtime == "torch"]
    if not torch_images:
        return "none of these images has torch (the ONNX image runs on the CPU only)"
    if torch_images[0].flavor == "cpu":
        return ("these are the cpu images, whose torch has no CUDA: build and smoke the CUDA ones "
                "with FLAVOR=cuda (make build-all FLAVOR=cuda && GPU=1 make smoke FLAVOR=cuda)")
    probe = torch_images[0]
    proc = docker("run", "--rm", "--gpus", "all", probe.image, *probe.python, "-c", GPU_PROBE,
                  check=False, timeout=300)
    if proc.returncode == 3:
        return f"the engine gave {probe.image} a GPU, but its torch sees no CUDA device (driver too old?)"
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return (f"this engine cannot give containers a GPU ({why[:200]}); it needs an NVIDIA GPU, "
                "its driver and the NVIDIA Container Toolkit")
    return None


def smoke_variant(variant: Variant, gpu: bool = False, image: str | None = None) -> dict:
    """Run every check on one image (the variant's, or image built from its Dockerfile); 'failures' lists misses."""
    image = image or variant.image
    failures: list[str] = []
    result: dict = {"image": image, "failures": failures}

    def check(ok: bool, what: str) -> None:
        if not ok:
            failures.append(what)

    options: dict = {"device_requests": [DeviceRequest(count=-1, capabilities=[["gpu"]])]} if gpu else {}
    slow = EMULATION_SLOWDOWN if variant.emulated else 1  # qemu runs everything many times slower
    if variant.emulated:  # gunicorn's graceful window stretches with every other limit
        options["environment"] = {"GUNICORN_GRACEFUL_TIMEOUT": str(GRACEFUL_S * slow)}
    stop_limit = STOP_LIMIT_S * slow
    container = Container(image, options)
    try:
        container.start()
        result["ready_seconds"] = round(container.wait_ready(180 * slow), 2)
        base = container.base_url
        status, ready = http("GET", f"{base}/readyz")
        result["device"] = ready.get("device")
        result["backend"] = ready.get("backend")
        check(ready.get("backend") == variant.runtime,
              f"backend is {ready.get('backend')!r}, expected {variant.runtime!r}")
        if gpu:
            check(ready.get("device") == "cuda", f"device is {ready.get('device')!r}, expected 'cuda'")
        for text, want in ((POSITIVE, "POSITIVE"), (NEGATIVE, "NEGATIVE")):
            status, body = classify(base, text)
            got = (body.get("predictions") or [{}])[0].get("label")
            check(status == 200 and got == want, f"{want.lower()} sentence: HTTP {status}, label {got!r}")
        bad = {
            "not JSON -> 400": (http("POST", f"{base}/classify", b"{oops", "application/json"), 400),
            "empty text -> 400": (classify(base, "   "), 400),
            "GET /classify -> 405": (http("GET", f"{base}/classify"), 405),
            "unknown route -> 404": (http("GET", f"{base}/nope"), 404),
        }
        for what, ((status, body), want) in bad.items():
            check(status == want and body.get("status") == want, f"{what}: got HTTP {status} {body}")
        host, port = base.removeprefix("http://").split(":")
        for case in pipeline.CASES:  # every pipelined request answered, in order (RFC 9112 9.3.2)
            problem = pipeline.check_case(host, int(port), case, timeout=10 * slow)
            check(problem is None, f"pipelining: {problem}")
        outcomes = hostile.run_all(host, int(port), short=True, slowdown=slow)
        result["hostile"] = hostile.as_dicts(outcomes)
        for o in outcomes:
            check(o.passed, f"hostile: {o.scenario}: {o.detail}")
        uids = process_uids(container.id)
        result["uids"] = sorted(uids)
        result["runs_as_root"] = 0 in uids
        if variant.non_root:
            check(0 not in uids, f"service runs as root (uids {sorted(uids)})")
        result["shell"] = has_shell(image)
        check(result["shell"] == variant.shell, f"shell present={result['shell']}, expected {variant.shell}")
        result["health"] = wait_healthy(container, 40 * slow)
        check(result["health"] == "healthy", f"HEALTHCHECK status {result['health']!r}")
        cli = docker("run", "--rm", "--read-only", image,
                     *variant.predictor_command("sample_data/sample_text.txt"), check=False, timeout=180 * slow)
        labels = [json.loads(line)["label"] for line in cli.stdout.splitlines() if line.startswith("{")]
        check(cli.returncode == 0 and labels == EXPECTED_CLI_LABELS,
              f"one-shot CLI: exit {cli.returncode}, labels {labels}, stderr {cli.stderr[-300:]!r}")
        # SIGTERM while the largest allowed request is being computed: it must still get its answer.
        in_flight: dict = {}
        # 8 x 512 tokens = MAX_TOKENS. Under qemu one 512-token text takes minutes, past even a stretched
        # graceful window: one ~50-token text (3.7-4.8 s there with ONNX Runtime, measured) instead.
        texts = 1 if variant.emulated else 8
        text = EMULATED_TEXT if variant.emulated else LONG_TEXT
        largest = json.dumps({"texts": [text] * texts}).encode()
        sender = threading.Thread(target=lambda: in_flight.update(
            answer=http("POST", f"{base}/classify", largest, timeout=stop_limit + 20)))
        sender.start()
        time.sleep(0.5)  # accepted and running
        started = time.monotonic()
        container.stop(stop_limit)
        result["stop_seconds"] = round(time.monotonic() - started, 2)
        sender.join(timeout=30)
        status, body = in_flight.get("answer", (0, {}))
        result["in_flight_at_sigterm"] = status
        check(status == 200 and len(body.get("predictions", [])) == texts,
              f"the request in flight at SIGTERM got HTTP {status} {str(body)[:120]}")
        code = container.state().get("ExitCode")
        result["exit_code"] = code
        check(code == 0 and result["stop_seconds"] < stop_limit,
              f"SIGTERM: exit code {code} after {result['stop_seconds']}s (want 0 within {stop_limit}s)")
        container.remove()
        if not variant.emulated:  # the heaviest request fits the documented memory limit (MEMORY_LIMIT_MIB)
            limited = result["under_memory_limit"] = under_limit(variant, variant.memory_limit_mib)
            check(limited["heaviest_statuses"] == [200] * 3 and limited["small_status"] == 200
                  and not limited["worker_restarts"], f"under --memory {variant.memory_limit_mib}m: {limited}")
            imposed = result["under_orchestrator"] = under_orchestrator(variant)
            check(imposed["served"] and imposed["worker_killed"] and imposed["serving_again_seconds"] is not None
                  and imposed["uids"] == [ORCHESTRATOR_UID],
                  f"as uid {ORCHESTRATOR_UID}:0, no capabilities, 0.9 CPU, worker killed: {imposed}")
    except EngineError as exc:
        failures.append(str(exc))
    finally:
        container.remove()
    return result


def wait_healthy(container: Container, timeout: float = 40) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = container.state().get("Health", {}).get("Status", "")
        if status in ("healthy", "unhealthy", ""):
            return status or "none"
        time.sleep(1)
    return status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=os.environ.get("VARIANTS", ""))
    ap.add_argument("--flavor", choices=FLAVORS, default=flavor_from_env())
    ap.add_argument("--platform", choices=PLATFORMS, default=platform_from_env())
    ap.add_argument("--gpu", action="store_true", default=os.environ.get("GPU", "") not in ("", "0"))
    args = ap.parse_args(argv)
    finish_cleanly_on_sigterm()
    variants = select(args.variants, args.flavor, args.platform)
    gpu_note: dict = {"requested": args.gpu}
    try:
        ensure_engine()
        if args.platform:  # its images run under qemu: a new enough one must be registered
            emulation.ensure(machine_arch(args.platform), engine_arch())
        for variant in variants:
            if docker("image", "inspect", variant.image, check=False).returncode != 0:
                flag = ("" if args.flavor == "cpu" else f" FLAVOR={args.flavor}") + (
                    f" PLATFORM={args.platform}" if args.platform else "")
                raise EngineError(f"{variant.image} is not built: run `make build-all{flag}` first")
        if args.gpu and (reason := gpu_skip_reason(variants)):
            log(f"GPU=1: GPU checks SKIPPED: {reason}. The other checks run on the CPU.")
            gpu_note["skipped"] = reason
            args.gpu = False
        results, rows = {}, []
        for variant in variants:
            log(f"{variant.name}: starting {variant.image} ...")
            r = results[variant.name] = smoke_variant(variant, gpu=args.gpu)
            log(f"{variant.name}: {'PASS' if not r['failures'] else 'FAIL: ' + '; '.join(r['failures'])}")
            rows.append([variant.name, "PASS" if not r["failures"] else "FAIL", f"{r.get('ready_seconds', '-')}s",
                         r.get("device", "-"), "root" if r.get("runs_as_root") else "non-root",
                         "yes" if r.get("shell") else "no", str(r.get("health", "-")),
                         f"{r.get('stop_seconds', '-')}s"])
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # Smoking some variants (VARIANTS=...) updates their rows and keeps the others', as make build-all does.
    path = flavored(SMOKE_JSON, args.flavor, args.platform)
    save_json(path, {"gpu": gpu_note, "variants": {**load_json(path).get("variants", {}), **results}})
    print_table(["variant", "result", "ready", "device", "user", "shell", "health", "stop"], rows)
    if "skipped" in gpu_note:
        print(f"\nGPU checks skipped: {gpu_note['skipped']}")
    return 0 if all(not r["failures"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
