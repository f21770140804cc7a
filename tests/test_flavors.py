"""The CUDA flavour's plumbing: tags, results files, GPU skip reasons, CUDA library accounting."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from image_advisor.composition import distribution_category

from scripts.bench import cuda_libs
from scripts.images import build, smoke
from scripts.results import flavored
from scripts.variants import BY_NAME, select


def test_flavours_have_their_own_tags_and_the_onnx_image_has_no_cuda(capsys):
    cpu, cuda = select("", "cpu"), select("", "cuda")
    assert [v.image for v in cpu][:2] == ["bert-classifier:naive_image", "bert-classifier:slim_image"]
    assert "onnx_image" not in [v.name for v in cuda] and len(cuda) == len(cpu) - 1
    assert all(v.image.endswith("-cuda") and v.flavor == "cuda" for v in cuda)
    assert "skipping onnx_image" in capsys.readouterr().err
    assert select("onnx_image", "cuda") == []
    with pytest.raises(SystemExit):
        select("naive_image", "rocm")


def test_results_files_per_flavour():
    assert flavored(Path("results/compare.json"), "cpu") == Path("results/compare.json")
    assert flavored(Path("results/compare.md"), "cuda") == Path("results/compare-cuda.md")


def fake_docker(returncode: int, stderr: str = "", calls: list | None = None):
    def run(*args, **kwargs):
        if calls is not None:
            calls.append(args)
        return subprocess.CompletedProcess(args, returncode, "", stderr)
    return run


def test_gpu_skip_reasons(monkeypatch):
    calls: list = []
    monkeypatch.setattr(smoke, "docker", fake_docker(0, calls=calls))
    assert "FLAVOR=cuda" in smoke.gpu_skip_reason(select("slim_image", "cpu"))
    assert "ONNX" in smoke.gpu_skip_reason(select("onnx_image", "cpu"))
    assert calls == []  # neither needs a probe container
    assert smoke.gpu_skip_reason(select("slim_image", "cuda")) is None
    assert "--gpus" in calls[0] and "bert-classifier:slim_image-cuda" in calls[0]
    no_driver = 'docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].'
    monkeypatch.setattr(smoke, "docker", fake_docker(125, no_driver))
    reason = smoke.gpu_skip_reason(select("slim_image", "cuda"))
    assert "NVIDIA Container Toolkit" in reason and "could not select device driver" in reason
    monkeypatch.setattr(smoke, "docker", fake_docker(3))
    assert "sees no CUDA device" in smoke.gpu_skip_reason(select("slim_image", "cuda"))


def test_keep_images(monkeypatch):
    monkeypatch.delenv("KEEP_IMAGES", raising=False)
    assert build.keep_images("cpu") and not build.keep_images("cuda")
    monkeypatch.setenv("KEEP_IMAGES", "1")
    assert build.keep_images("cuda")
    monkeypatch.setenv("KEEP_IMAGES", "0")
    assert not build.keep_images("cpu")


def test_a_rebuild_removes_the_image_it_replaced(monkeypatch):
    calls: list = []

    tags = {"sha256:old": "0"}

    def docker(*args, **kwargs):
        calls.append(args)
        out = ""
        if args[:2] == ("image", "inspect"):
            out = tags[args[-1]] if "{{len .RepoTags}}" in args else "sha256:new"
        return subprocess.CompletedProcess(args, 0, out + "\n", "")

    monkeypatch.setattr(build, "docker", docker)
    build.remove_replaced("sha256:old", "bert-classifier:slim_image")
    assert ("image", "rm", "sha256:old") in calls
    calls.clear()
    build.remove_replaced("sha256:new", "bert-classifier:slim_image")  # same image: nothing to remove
    build.remove_replaced(None, "bert-classifier:slim_image")  # first build: nothing to remove
    tags["sha256:old"] = "1"  # another tag still names it (a scratch rebuild reproduced the real image's id)
    build.remove_replaced("sha256:old", "bert-classifier-scratch:slim_image")
    assert not any(c[:2] == ("image", "rm") for c in calls)


def test_a_pushed_image_replaced_by_a_rebuild_goes_too(monkeypatch):
    """Its registry digest makes plain rm refuse; untagged and unused, it is removed by force."""
    calls: list = []
    users = {"ids": ""}

    def docker(*args, **kwargs):
        calls.append(args)
        if args[:3] == ("image", "rm", "sha256:old"):
            return subprocess.CompletedProcess(args, 1, "", "referenced in multiple repositories")
        if args[:2] == ("image", "inspect"):
            out = "0\n" if "sha256:old" in args else "sha256:new\n"
            return subprocess.CompletedProcess(args, 0, out, "")
        return subprocess.CompletedProcess(args, 0, users["ids"] if args[0] == "ps" else "", "")

    monkeypatch.setattr(build, "docker", docker)
    build.remove_replaced("sha256:old", "bert-classifier:slim_image")
    assert ("image", "rm", "-f", "sha256:old") in calls
    calls.clear()
    users["ids"] = "c0ffee\n"  # a container still uses it: left alone
    build.remove_replaced("sha256:old", "bert-classifier:slim_image")
    assert ("image", "rm", "-f", "sha256:old") not in calls


SITE = "/opt/venv/lib/python3.11/site-packages"
PROBE = {
    "device": "cpu", "site_packages": SITE,
    "loaded": [f"{SITE}/torch/lib/libtorch_cuda.so", f"{SITE}/nvidia/cublas/lib/libcublas.so.12",
               "/usr/lib/x86_64-linux-gnu/libc.so.6"],
    "shipped": {f"{SITE}/torch/lib/libtorch_cuda.so": 1000, f"{SITE}/torch/lib/libtorch_cpu.so": 500,
                f"{SITE}/nvidia/cublas/lib/libcublas.so.12": 300, f"{SITE}/nvidia/cublas/lib/libcublasLt.so.12": 700,
                f"{SITE}/nvidia/cusparselt/lib/libcusparseLt.so.0": 200, f"{SITE}/triton/backends/x.so": 50},
}


def test_cuda_libraries_loaded_against_shipped():
    s = cuda_libs.summarize(PROBE)
    assert s["shipped_bytes"] == 2750 and s["loaded_bytes"] == 1300  # libc is loaded but not shipped by a wheel
    assert list(s["by_distribution"]) == ["torch", "nvidia/cublas", "nvidia/cusparselt", "triton"]
    cublas = s["by_distribution"]["nvidia/cublas"]
    assert cublas["loaded"] == [["libcublas.so.12", 300]] and cublas["not_loaded"] == [["libcublasLt.so.12", 700]]
    assert s["never_loaded_distributions"] == ["nvidia/cusparselt", "triton"]
    md = cuda_libs.markdown({"naive_image": {}, "slim_image": {"cuda_libs": s}})
    assert "slim_image" in md and "| nvidia/cublas | 1.0 KB | 300 B | 1/2 |" in md
    # One folder may hold several wheels (CUDA 13's nvidia/cu13): the RECORD owner wins over the folder.
    owned = dict(PROBE, owner={f"{SITE}/nvidia/cublas/lib/libcublasLt.so.12": "nvidia-cublaslt"})
    assert cuda_libs.summarize(owned)["by_distribution"]["nvidia-cublaslt"]["not_loaded"] == [
        ["libcublasLt.so.12", 700]]


def test_cuda_wheels_have_their_own_composition_category():
    for name in ("nvidia-cublas-cu12", "nvidia_cudnn_cu12", "triton"):
        assert distribution_category(name, set()) == "CUDA libraries (nvidia-*, triton)"
    assert distribution_category("torch", set()) == "torch"
    assert BY_NAME["naive_image"].with_flavor("cuda").image == "bert-classifier:naive_image-cuda"


def test_platform_builds_have_their_own_tags_and_results(monkeypatch):
    from scripts.variants import platform_from_env, suffix

    arm = select("onnx_image", "cpu", "linux/arm64")
    assert [v.image for v in arm] == ["bert-classifier:onnx_image-arm64"] and arm[0].emulated
    assert BY_NAME["slim_image"].with_flavor("cuda", "linux/arm64").image == "bert-classifier:slim_image-cuda-arm64"
    assert suffix("cpu") == "" and suffix("cpu", "linux/amd64") == "-amd64"
    assert flavored(Path("results/build.json"), "cpu", "linux/arm64") == Path("results/build-arm64.json")
    monkeypatch.setenv("PLATFORM", "linux/s390x")
    with pytest.raises(SystemExit):
        platform_from_env()


def test_stand_ins_for_another_architecture(tmp_path):
    from scripts.infra import bases, emulation

    base = next(b for b in bases.BASES if b.arg == "DEBIAN13_IMAGE")
    assert base.local_ref() == "local/debian:13-slim" and base.local_ref("arm64") == "local/debian:13-slim-arm64"
    assert "--architectures=arm64" in base.mmdebstrap_args("arm64")
    assert not any(a.startswith("--architectures") for a in base.mmdebstrap_args())
    assert base.recipe_hash("arm64") != base.recipe_hash()
    config = bases.image_config([*bases.distroless_changes("3.13"), "LABEL stand-in.recipe=abc stand-in.for=x:y"])
    assert config["User"] == "65532:65532" and config["Entrypoint"] == ["/usr/bin/python3.13"]
    assert "LANG=C.UTF-8" in config["Env"] and config["Labels"] == {"stand-in.recipe": "abc", "stand-in.for": "x:y"}
    with pytest.raises(ValueError):
        bases.image_config(["HEALTHCHECK NONE"])
    # binfmt_misc: an entry must be enabled and carry F (usable inside containers' own filesystems).
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"
                                           "flags: POCF\noffset 0\n")
    assert emulation.registered("aarch64", tmp_path)
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OC\n")
    assert not emulation.registered("aarch64", tmp_path)
    assert not emulation.registered("x86_64", tmp_path)
    emulation.ensure("x86_64", "x86_64")  # the engine's own architecture needs nothing


def test_each_variant_names_the_bases_its_dockerfile_uses():
    assert BY_NAME["slim_image"].base_args == {"PYTHON_SLIM_IMAGE"}
    assert BY_NAME["multi_stage_build"].base_args == {"PYTHON_IMAGE", "PYTHON_SLIM_IMAGE"}
    assert BY_NAME["onnx_image"].base_args == {  # its Dockerfile's and its step file's
        "PYTHON_IMAGE", "DEBIAN13_IMAGE", "DISTROLESS_CC13_IMAGE", "DEBIAN_IMAGE", "DISTROLESS_IMAGE"}
    from scripts.infra.bases import BASES

    known = {b.arg for b in BASES}
    assert all(v.base_args <= known and v.base_args for v in BY_NAME.values())


def test_the_one_shot_cli_command_per_image():
    assert BY_NAME["slim_image"].predictor_command("a.txt") == ["python", "-m", "app.predictor", "a.txt"]
    # distroless: the entry point is python itself
    cuda_distroless = BY_NAME["distroless_image"].with_flavor("cuda")
    assert cuda_distroless.predictor_command("a.txt") == ["-m", "app.predictor", "a.txt"]
