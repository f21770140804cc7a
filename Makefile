# Entry points for the whole project. Every target installs what it needs itself.
# Variables: VARIANTS="naive_image slim_image" (default: all six), FLAVOR=cpu|cuda, PLATFORM=linux/arm64,
# BASES=auto|official|local, WHEELHOUSE=auto|on|off, GPU=1 for smoke; for diagnose VARIANT=<name> or IMAGE=<ref or file>,
# BASELINE=<image or .json>, PROBE='POST /classify {"text": "hi"} | GET /healthz', FAIL_ABOVE=500MB, MAX_GROWTH=5.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PY := .venv/bin/python
# After a target writes results/: the docs' generated figures and the Kubernetes overlays rewritten from them.
REGENERATE := $(PY) -m scripts.reports.regenerate
# The host virtualenv in two steps: the lab's tools (measurements, the advisor; no torch), then the tests'
# and the model's toolchain on top (make test, make model).
VENV_STAMP := .venv/.installed
DEV_STAMP := .venv/.installed-dev
# make_model writes model/ (torch), then model-onnx/ and model-onnx-int8/: the last file stands for all three.
MODEL_STAMP := model-onnx-int8/model.onnx
export VARIANTS FLAVOR BASES GPU CONCURRENCY DURATION MIX CLIENT LOAD_ENV PLATFORM WHEELHOUSE KEEP_IMAGES CUDA_TRIM START_RUNS \
       BUILD_CACHE_KEEP DISK_CHECK REGISTRY_PORT

# ENGINE=docker26|docker26-containerd: every target runs against that engine, a container of the default one
# (scripts/infra/engines.py; results under results/engines/ENGINE/). `make engine-down` removes them.
ifneq ($(strip $(ENGINE)),)
ENGINE_VARS := $(shell [ -x $(PY) ] && $(PY) -m scripts.infra.engines up '$(ENGINE)')
$(if $(ENGINE_VARS),,$(error ENGINE=$(ENGINE) did not start: the reason is above (on a fresh clone, run make venv first)))
$(foreach kv,$(ENGINE_VARS),$(eval export $(kv)))
endif

.PHONY: help venv model train evaluate engine bases wheels build-all smoke compare load batching sbom startup request-phases diagnose onnx-cuts stdlib-modules cuda-trim cluster scale \
        serve benchmark serving-options runtime-threads gpu-pack gpu-check lint unit advisor-test advisor-speed advisor-image integration test clean clean-images engine-down engines \
        installers releases reproducible compression peers peer-images stand-ins

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# The interpreter the lab's venv is made from (PYTHON=python3.12 make venv picks another).
PYTHON ?= python3
# On Linux x86-64, PyPI's torch is the CUDA build (several GB of nvidia wheels): the CPU index's
# +cpu build wins wherever that index answers (evaluated only when the venv is made).
TORCH_CPU_INDEX = $(shell [ "$$(uname -sm)" = "Linux x86_64" ] && curl -fsI -m 5 https://download.pytorch.org/whl/cpu/ \
                    >/dev/null 2>&1 && echo --extra-index-url https://download.pytorch.org/whl/cpu)

$(VENV_STAMP): requirements-lab.txt image-advisor/pyproject.toml
	@$(PYTHON) scripts/infra/python_check.py
	$(PYTHON) -m venv .venv
	$(PY) -m pip install --quiet -r requirements-lab.txt
	touch $@

$(DEV_STAMP): $(VENV_STAMP) requirements-dev.txt app/requirements.txt app/requirements-common.txt \
              app/requirements-onnx.txt app/torch-cpu.txt app/requirements-export.txt
	$(PY) -m pip install --quiet $(TORCH_CPU_INDEX) -r requirements-dev.txt
	touch $@

venv: $(DEV_STAMP)  ## host virtualenv: the lab's tools, then the tests' and the model's (torch)

$(MODEL_STAMP): $(DEV_STAMP) model_parts/trained_top.safetensors scripts/model/make_model.py scripts/model/export_onnx.py
	$(PY) -m scripts.model.make_model --out model $(if $(MODEL_ID),--model-id $(MODEL_ID))

model: $(DEV_STAMP)  ## assemble the classifier in ./model and its ONNX forms (MODEL_ID=<hub id> downloads one)
	$(PY) -m scripts.model.make_model --out model $(if $(MODEL_ID),--model-id $(MODEL_ID))

train: $(DEV_STAMP)  ## re-train the committed part (model_parts/), ~6 min on 2 cores
	$(PY) -m scripts.model.train_model

evaluate: $(MODEL_STAMP)  ## held-out accuracy of torch, ONNX fp32 and ONNX int8 side by side
	$(PY) -m scripts.model.evaluate_model
	$(REGENERATE)

serve: $(MODEL_STAMP)  ## run the service locally on :8000 (no Docker; MODEL_DIR=model-onnx-int8 for ONNX)
	MODEL_DIR=$${MODEL_DIR:-model} .venv/bin/gunicorn -c app/gunicorn.conf.py

benchmark: $(MODEL_STAMP)  ## load time, HTTP latency p50/p95, batch throughput (local; MODEL_DIR=model-onnx-int8)
	$(PY) -m scripts.bench.benchmark --model $${MODEL_DIR:-model}
	$(REGENERATE)

serving-options: $(MODEL_STAMP)  ## app/ under gunicorn with uvloop and its C parser (gunicorn_h1c), each tried: p50 and the hostile set (local): results/serving-options.json
	$(PY) -m scripts.bench.serving_options
	$(REGENERATE)

runtime-threads: $(VENV_STAMP)  ## onnx_image as shipped, with the tokenizer's own thread pool, with ONNX Runtime's threads spinning: p50, wrk at 8 and 32 (results/runtime-threads.json)
	$(PY) -m scripts.bench.runtime_threads
	$(REGENERATE)

engine: $(VENV_STAMP)  ## find or start a Docker engine and a BuildKit-capable client
	$(PY) -m scripts.infra.engine

engine-down: $(VENV_STAMP)  ## remove the engines ENGINE=... started (their images and build cache with them)
	$(PY) -m scripts.infra.engines down

bases: $(VENV_STAMP)  ## official base images, or local Debian 12 stand-ins where they cannot be pulled
	$(PY) -m scripts.infra.bases

stand-ins: $(VENV_STAMP)  ## the stand-in bases the engine holds, sized as listed and as a push sends them: results/stand-ins.json
	$(PY) -m scripts.studies.stand_ins
	$(REGENERATE)

wheels: $(VENV_STAMP)  ## download every wheel the images need into ./wheelhouse
	$(PY) -m scripts.infra.wheelhouse --flavor $(or $(FLAVOR),cpu)

build-all: $(VENV_STAMP)  ## build all six images (cold), record size and build time
	$(PY) -m scripts.images.build
	$(REGENERATE)

smoke: $(VENV_STAMP)  ## run each built image and check it answers correctly (GPU=1 adds --gpus all)
	$(PY) -m scripts.images.smoke
	$(REGENERATE)

compare: $(VENV_STAMP)  ## build what is missing, measure everything, write results/compare.{json,md,png}
	$(PY) -m scripts.bench.compare

startup: $(VENV_STAMP)  ## start-up phase by phase, docker run to the first answer, per variant (START_RUNS=3): results/startup.{json,png}
	$(PY) -m scripts.bench.startup
	$(REGENERATE)

request-phases: $(VENV_STAMP)  ## where one sentence's /classify time goes, model's work vs the rest, per variant (VARIANTS=): results/request_phases.json
	$(PY) -m scripts.bench.request_phases $(if $(VARIANTS),--variants $(VARIANTS))
	$(REGENERATE)

sbom: $(VENV_STAMP)  ## CycloneDX SBOM and attack surface of each image: results/sbom/, results/surface.json (IMAGE= any)
	$(PY) -m scripts.studies.sbom $(if $(IMAGE),--image $(IMAGE))
	$(REGENERATE)

batching: $(VENV_STAMP)  ## concurrent requests sharing forward passes: wrk and make load, 8 and 32 connections (VARIANTS=)
	$(PY) -m scripts.bench.batching
	$(REGENERATE)

load: $(MODEL_STAMP)  ## load + hostile checks: IMAGE=<ref> (else the local service), CONCURRENCY=8,32 DURATION=60 MIX=single=80,batch=20 CLIENT=wrk LOAD_ENV='COALESCE=0'
	$(PY) -m scripts.bench.load $(if $(IMAGE),--image $(IMAGE))
	$(REGENERATE)

cluster: $(VENV_STAMP)  ## a Docker Swarm of fresh nodes (NODES=3) with a registry, until Ctrl-C
	$(PY) -m scripts.infra.swarm --nodes $(or $(NODES),3)

scale: $(MODEL_STAMP)  ## scale-out 1 -> NODES replicas on a fresh swarm per variant (built images): results/scale.{json,md}
	$(PY) -m scripts.bench.scale --nodes $(or $(NODES),3)
	$(REGENERATE)

onnx-cuts: $(MODEL_STAMP)  ## onnx_image built from each commit that cut it toward its floor: results/onnx-cuts.json
	$(PY) -m scripts.studies.onnx_cuts
	$(REGENERATE)

stdlib-modules: $(MODEL_STAMP)  ## the stdlib modules onnx_image keeps, from a trace of its service: onnx_image/stdlib-modules.txt
	$(PY) -m scripts.studies.stdlib_modules

cuda-trim: $(MODEL_STAMP)  ## CUDA images with CUDA_TRIM=1: size, smoke on the CPU, libraries (results/cuda-trim.json)
	$(PY) -m scripts.bench.cuda_libs --trimmed "$(or $(VARIANTS),multi_stage_build distroless_image)"
	$(REGENERATE)

gpu-pack: $(MODEL_STAMP)  ## pack what the GPU check needs and a GPU machine lacks into .gpu/ (model in fp16, wheels)
	$(PY) -m scripts.bench.gpu_check pack

gpu-check:  ## on a machine with an NVIDIA GPU and a CUDA torch (no Docker, no venv): results/gpu.json
	python3 -m scripts.bench.gpu_check check

engines: $(MODEL_STAMP)  ## the six images built and sized on Docker 20.10 and on Docker 26 (classic and containerd store): results/engines.{json,md}
	$(PY) -m scripts.studies.engine_sizes
	$(REGENERATE)

releases: $(VENV_STAMP)  ## bytes pushed and pulled per release (app edit, pin, model, unchanged rebuild), per variant (VARIANTS=): results/releases.json (ENGINE=docker26-containerd: reproducible builds, results/releases-docker26-containerd.json)
	$(PY) -m scripts.studies.releases
	$(REGENERATE)

reproducible: $(VENV_STAMP)  ## two clean builds per variant (VARIANTS=), compared: same digest or the files that differ (ENGINE=docker26-containerd rewrites timestamps): results/reproducible.json
	$(PY) -m scripts.studies.reproducible
	$(REGENERATE)

compression: $(VENV_STAMP)  ## zstd against gzip per variant: push bytes and seconds, a fresh node's pull and first answer, decompress seconds (ENGINE=docker26-containerd): results/compression.json
	$(PY) -m scripts.studies.compression
	$(REGENERATE)

peers: $(VENV_STAMP)  ## onnx_image beside FastAPI, LitServe, BentoML, KServe, Ray Serve serving its model, each packaged two ways (PEERS= PACKAGINGS=): results/peers.{json,md,png}
	$(PY) -m scripts.bench.peers
	$(REGENERATE)

peer-images: $(VENV_STAMP)  ## build the peers' images and check that each answers right (PEERS= PACKAGINGS=)
	$(PY) -m scripts.images.peer_images --peers '$(PEERS)' --packagings '$(PACKAGINGS)'

installers: $(MODEL_STAMP)  ## layered_image built with pip and with uv: cold, warm cache mount, app edit, pin change (results/installers.json)
	$(PY) -m scripts.bench.installers
	$(REGENERATE)

diagnose: $(VENV_STAMP)  ## where the bytes are, and what to change: VARIANT=<name> or IMAGE=<ref or archive> [BASELINE= PROBE= FAIL_ABOVE= MAX_GROWTH= OUT=]
	$(PY) -m scripts.advisor.diagnose $(if $(IMAGE),--image '$(IMAGE)',--variant $(or $(VARIANT),naive_image)) \
	    $(if $(BASELINE),--baseline '$(BASELINE)') $(if $(PROBE),--probe '$(PROBE)') \
	    $(if $(FAIL_ABOVE),--fail-above '$(FAIL_ABOVE)') $(if $(MAX_GROWTH),--max-growth '$(MAX_GROWTH)') \
	    $(if $(NO_TRACE),--no-trace) $(if $(PLATFORM),--platform '$(PLATFORM)') $(if $(OUT),--out '$(OUT)')

lint: $(DEV_STAMP)  ## ruff on the Python, hadolint on the Dockerfiles
	.venv/bin/ruff check app scripts tests image-advisor peers
	$(PY) -m scripts.images.lint_dockerfiles

unit: $(MODEL_STAMP)  ## fast tests: API, CLI, model, measurement code (needs an engine for image tests)
	$(PY) -m pytest -q tests --ignore=tests/integration

advisor-speed: $(VENV_STAMP)  ## image-advisor from a fresh venv, and beside dive --ci on naive_image (IMAGE=): results/advisor.json
	$(PY) -m scripts.advisor.speed $(if $(IMAGE),--image '$(IMAGE)')
	$(REGENERATE)

advisor-image: $(VENV_STAMP)  ## image-advisor's own image, built, then diagnosed by itself: results/advisor-image.json
	$(PY) -m scripts.images.advisor_image
	$(REGENERATE)

ADVISOR_VENV := .cache/advisor-venv
advisor-test: $(VENV_STAMP)  ## image-advisor's own tests, in a fresh virtualenv holding only it (no torch)
	$(PY) -m scripts.infra.engine
	rm -rf $(ADVISOR_VENV) && python3 -m venv $(ADVISOR_VENV)
	$(ADVISOR_VENV)/bin/pip install --quiet './image-advisor[pictures,test]'
	cd image-advisor && IMAGE_ADVISOR_NEED_ENGINE=1 ../$(ADVISOR_VENV)/bin/python -m pytest -q -p no:cacheprovider

integration: $(DEV_STAMP)  ## build all six images from scratch and smoke-test them
	$(PY) -m pytest -q tests/integration

test: lint unit advisor-test integration  ## everything CI runs

clean:  ## remove the assembled model and partial results (keeps venv, wheelhouse, images)
	rm -rf model model-onnx model-onnx-int8 results/*.tmp

clean-images: $(VENV_STAMP)  ## remove every image, stand-in, leftover scratch engine and build cache the project made
	$(PY) -m scripts.images.clean
