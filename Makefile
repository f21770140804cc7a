# Entry points for the whole project. Every target installs what it needs itself.
# Variables: VARIANTS="naive_image slim_image" (default: all five), FLAVOR=cpu|cuda,
# BASES=auto|official|local, VARIANT=<name> or IMAGE=<ref> for diagnose, GPU=1 for smoke.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PY := .venv/bin/python
VENV_STAMP := .venv/.installed
export VARIANTS FLAVOR BASES GPU

.PHONY: help venv model train evaluate engine bases wheels build-all smoke compare diagnose \
        serve benchmark lint unit integration test clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV_STAMP): requirements-dev.txt app/requirements.txt app/torch-cpu.txt
	python3 -m venv .venv
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV_STAMP)  ## host virtualenv with the app's and the tools' dependencies

model/config.json: $(VENV_STAMP) model_parts/trained_top.safetensors scripts/make_model.py
	$(PY) -m scripts.make_model --out model $(if $(MODEL_ID),--model-id $(MODEL_ID))

model: $(VENV_STAMP)  ## assemble the embedded classifier in ./model (MODEL_ID=<hub id> downloads one instead)
	$(PY) -m scripts.make_model --out model $(if $(MODEL_ID),--model-id $(MODEL_ID))

train: $(VENV_STAMP)  ## re-train the committed part (model_parts/), ~6 min on 2 cores
	$(PY) -m scripts.train_model

evaluate: model/config.json  ## accuracy of ./model on the held-out reviews
	$(PY) -m scripts.evaluate_model --model model

serve: model/config.json  ## run the service locally on :8000 (no Docker)
	MODEL_DIR=model .venv/bin/gunicorn -c app/gunicorn.conf.py app.wsgi:app

benchmark: model/config.json  ## load time, HTTP latency p50/p95, batch throughput (local service)
	$(PY) -m scripts.benchmark

engine: $(VENV_STAMP)  ## find or start a Docker engine and a BuildKit-capable client
	$(PY) -m scripts.engine

bases: $(VENV_STAMP)  ## official base images, or local Debian 12 stand-ins where they cannot be pulled
	$(PY) -m scripts.bases

wheels: $(VENV_STAMP)  ## download every wheel the images need into ./wheelhouse
	$(PY) -m scripts.wheelhouse --flavor $(or $(FLAVOR),cpu)

build-all: model/config.json  ## build all five images (cold), record size and build time
	$(PY) -m scripts.build

smoke: $(VENV_STAMP)  ## run each built image and check it answers correctly (GPU=1 adds --gpus all)
	$(PY) -m scripts.smoke

compare: model/config.json  ## build what is missing, measure everything, write results/compare.{json,md,png}
	$(PY) -m scripts.compare

diagnose: $(VENV_STAMP)  ## where the bytes are: VARIANT=<name> or IMAGE=<ref>
	$(PY) -m scripts.diagnose $(if $(IMAGE),--image $(IMAGE),--variant $(or $(VARIANT),naive_image))

lint: $(VENV_STAMP)  ## ruff on the Python, hadolint on the Dockerfiles
	.venv/bin/ruff check app scripts tests
	$(PY) -m scripts.lint_dockerfiles

unit: model/config.json  ## fast tests: API, CLI, model, measurement code (needs an engine for image tests)
	$(PY) -m pytest -q tests --ignore=tests/integration

integration: model/config.json  ## build all five images from scratch and smoke-test them
	$(PY) -m pytest -q tests/integration

test: lint unit integration  ## everything CI runs

clean:  ## remove the assembled model and partial results (keeps venv, wheelhouse, images)
	rm -rf model results/*.tmp
