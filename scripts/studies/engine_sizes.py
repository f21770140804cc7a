"""The six images built and sized on each engine, side by side (`make engines`).

    python -m scripts.studies.engine_sizes [--variants ...] [--engines docker20,docker26,docker26-containerd]
    python -m scripts.studies.engine_sizes --render     # results/engines.md again from results/engines.json

docker20 is the default engine (Debian 12's docker.io 20.10, the one every other figure here
comes from); the others are Debian 13's Docker 26.1 with buildx, run as containers of it
(scripts/infra/engines.py), once with the classic overlay2 store and once with the containerd
image store. On each engine the images that are missing are built (`make build-all`, cold),
the other engines' are smoke-tested, and each image is sized three ways:
- what `docker image ls` prints, and `docker image inspect`'s Size, as that engine counts them;
- the bytes of the files in the image's final filesystem, from a replay of the layers of its
  `docker save` archive (image-advisor/src/image_advisor/layers.py: the containerd store writes an OCI layout);
- the engine's whole image store, as `docker system df` counts it.
Writes results/engines.json and results/engines.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time

from image_advisor.engine import saved_image
from image_advisor.errors import AdvisorError
from image_advisor.layers import analyze, read_saved

from scripts.infra import engines
from scripts.infra.disk import parse_size
from scripts.infra.engine import EngineError, docker, finish_cleanly_on_sigterm, sdk
from scripts.results import RESULTS, human_bytes, load_json, machine, save_json
from scripts.variants import ROOT, VARIANTS, select

DEFAULT = "docker20"  # the engine ENGINE unset selects
ORDER = (DEFAULT, *engines.ENGINES)
OUT = RESULTS / "engines.json"


def log(msg: str) -> None:
    print(f"[engine-sizes] {msg}", file=sys.stderr, flush=True)


def engine_env(name: str) -> dict[str, str]:
    """This process's environment pointed at the engine name (the default one: as it is)."""
    engine_keys = {"ENGINE", "ENGINE_ADDRESS", "IMAGE_ADVISOR_ADDRESS", "ENGINE_WHEELS_URL"}
    env = {k: v for k, v in os.environ.items() if k not in engine_keys}
    return env if name == DEFAULT else {**env, **engines.up(name)}


def _tool(module: str, env: dict[str, str], *args: str) -> int:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, check=False).returncode


def image_figures(ref: str) -> dict:
    """Sizes of ref on the engine DOCKER_HOST names (run inside that engine's environment)."""
    size = int(docker("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())
    listed = docker("image", "ls", "--format", "{{.Size}}", ref).stdout.split()
    with saved_image(ref) as archive:
        saved = read_saved(archive)
        with tarfile.open(archive) as outer:
            names = set(outer.getnames())
    final = analyze(saved.layers).final
    return {"inspect_size_bytes": size, "image_ls": listed[0] if listed else "",
            "replay_bytes": sum(e.size for e in final.values()), "layers": len(saved.layers),
            "save_layout": "oci" if "index.json" in names else "docker"}


def engine_figures(variant_names: list[str]) -> dict:
    """Everything measured on one engine, in its environment (the --measure-here step)."""
    info = sdk().info()
    store = dict(info.get("DriverStatus") or [])
    buildx = subprocess.run(["docker", "buildx", "version"], capture_output=True, text=True, check=False)
    df = docker("system", "df", "--format", "{{.Type}}\t{{.Size}}").stdout.splitlines()
    built = load_json(RESULTS / "build.json").get("variants", {})
    smoke = load_json(RESULTS / "smoke.json").get("variants", {})
    images = {}
    for name in variant_names:
        ref = next(v.image for v in VARIANTS if v.name == name)
        log(f"{name}: sizing {ref} (docker save and a layer replay) ...")
        images[name] = {**image_figures(ref), "build_seconds": built.get(name, {}).get("build_seconds"),
                        "smoke": ("FAIL" if smoke[name].get("failures") else "PASS") if name in smoke else ""}
    return {"server": info.get("ServerVersion", ""), "driver": info.get("Driver", ""),
            "driver_type": store.get("driver-type", ""),
            "buildx": buildx.stdout.split()[1] if buildx.returncode == 0 else "",
            "system_df_images": next((line.split("\t")[1] for line in df if line.startswith("Images")), ""),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "images": images}


def measure(names: list[str], variant_names: list[str]) -> dict:
    data = load_json(OUT)
    data["machine"] = machine()
    data.setdefault("engines", {})
    for name in names:
        env = engine_env(name)
        here = {v.name for v in VARIANTS if docker("image", "inspect", v.image, check=False,
                                                   host=env.get("DOCKER_HOST")).returncode == 0}
        missing = [n for n in variant_names if n not in here]
        if missing:
            log(f"{name}: building {', '.join(missing)} (cold) ...")
            if _tool("scripts.images.build", env, "--variants", ",".join(missing)):
                raise EngineError(f"make build-all on {name} failed (above)")
        if name != DEFAULT:  # the default engine's images are smoke-tested by make smoke / make test
            log(f"{name}: smoke-testing ...")
            _tool("scripts.images.smoke", {**env, "VARIANTS": " ".join(variant_names)})
        proc = subprocess.run([sys.executable, "-m", "scripts.studies.engine_sizes", "--measure-here", "--variants",
                               ",".join(variant_names)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
                              check=False)
        if proc.returncode:
            raise EngineError(f"sizing the images on {name} failed (above)")
        # VARIANTS=... re-measures some images: the engine's other rows stay
        images = {**data["engines"].get(name, {}).get("images", {}), **json.loads(proc.stdout)["images"]}
        data["engines"][name] = {**json.loads(proc.stdout), "images": images}
        save_json(OUT, data)
    return data


def markdown(data: dict) -> str:
    found = [n for n in ORDER if n in data.get("engines", {})]
    heads = [_engine_head(data["engines"][n]) for n in found]
    lines = ["Each cell: what `docker image ls` prints, then `docker image inspect`'s Size in bytes.", "",
             f"| variant | {' | '.join(heads)} | files in the image (layer replay) |",
             "|---|" + "---|" * (len(found) + 1)]
    variants = [v.name for v in VARIANTS if any(v.name in data["engines"][n]["images"] for n in found)]
    for v in variants:
        cells = []
        for n in found:
            img = data["engines"][n]["images"].get(v)
            cells.append(f"{img['image_ls']} ({img['inspect_size_bytes']:,} B)" if img else "-")
        replays = [data["engines"][n]["images"][v]["replay_bytes"] for n in found if v in data["engines"][n]["images"]]
        replay = f"{human_bytes(min(replays))} ({min(replays):,} B)"
        if max(replays) != min(replays):
            replay += f", +{max(replays) - min(replays):,} B on another engine"
        lines.append(f"| `{v}` | {' | '.join(cells)} | {replay} |")
    stores = [f"{human_bytes(_bytes(data['engines'][n]['system_df_images']))}" for n in found]
    lines.append(f"| whole image store (`docker system df`) | {' | '.join(stores)} | |")
    lines += ["", f"| cold build (`make build-all`) | {' | '.join(heads)} |", "|---|" + "---|" * len(found)]
    for v in variants:
        seconds = [data["engines"][n]["images"].get(v, {}).get("build_seconds") for n in found]
        lines.append(f"| `{v}` | " + " | ".join(f"{s:.0f} s" if s else "-" for s in seconds) + " |")
    layouts = ", ".join(f"{h}: {', '.join(sorted({i['save_layout'] for i in data['engines'][n]['images'].values()}))}"
                        for n, h in zip(found, heads, strict=True))
    m = data.get("machine", {})
    return ("\n".join(lines) + f"\n\n_`docker save` layout: {layouts}; "
            f"{m.get('cpu', '')}, {m.get('cores', '')} cores, {m.get('measured_at', '')[:10]}_\n")


def summary(data: dict) -> str:
    """The README's short form: `docker image ls` of each image on each engine."""
    found = [n for n in ORDER if n in data.get("engines", {})]
    heads = [_engine_head(data["engines"][n]) for n in found]
    lines = [f"| `docker image ls` | {' | '.join(heads)} |", "|---|" + "---|" * len(found)]
    for v in (v.name for v in VARIANTS):
        cells = [data["engines"][n]["images"].get(v, {}).get("image_ls", "-") for n in found]
        lines.append(f"| `{v}` | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def _engine_head(engine: dict) -> str:
    store = "containerd store" if "containerd" in engine.get("driver_type", "") else engine.get("driver", "")
    return f"Docker {engine['server'].split('+')[0]}, {store}"


def _bytes(text: str) -> int:
    return parse_size(text) if text else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=os.environ.get("VARIANTS", ""))
    ap.add_argument("--engines", default=",".join(ORDER), help=f"comma list of: {', '.join(ORDER)}")
    ap.add_argument("--render", action="store_true", help="rewrite results/engines.md from results/engines.json")
    ap.add_argument("--measure-here", action="store_true", help=argparse.SUPPRESS)  # one engine, in its environment
    args = ap.parse_args(argv)
    finish_cleanly_on_sigterm()
    variant_names = [v.name for v in select(args.variants, "cpu")]
    try:
        if args.measure_here:  # the figures on stdout, for measure() in the parent process
            print(json.dumps(engine_figures(variant_names)))
            return 0
        if args.render:
            data = load_json(OUT)
        else:
            if os.environ.get("ENGINE"):
                print("error: make engines measures every engine itself: run it without ENGINE", file=sys.stderr)
                return 2
            names = [n.strip() for n in args.engines.split(",") if n.strip()]
            if unknown := [n for n in names if n not in ORDER]:
                print(f"error: unknown engine(s) {unknown}; choose from {', '.join(ORDER)}", file=sys.stderr)
                return 2
            data = measure(names, variant_names)
    except (EngineError, AdvisorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    (RESULTS / "engines.md").write_text(markdown(data))
    print(markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
