# Any peer packaged as distroless_image is: its venv built in a stage of its own and trimmed (bytecode only,
# no tests, no pip), then only that venv, the model and the service on distroless, run as non-root.
#   docker build -f peers/slim.Dockerfile --target fastapi --build-arg PEER=fastapi .
ARG DEBIAN_IMAGE=debian:12-slim
ARG DISTROLESS_IMAGE=gcr.io/distroless/python3-debian12:nonroot
# The int8 model and its tokenizer, byte for byte those onnx_image ships (make peers builds it first).
ARG MODEL_IMAGE=bert-classifier:onnx_image
FROM ${MODEL_IMAGE} AS model

FROM ${DEBIAN_IMAGE} AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
# The interpreter by its full name: the venv's links must find the one distroless has.
RUN python3.11 -m venv /opt/venv
ARG PEER
COPY peers/requirements-model.txt peers/${PEER}/requirements.txt /tmp/requirements/
ARG PIP_INDEX_URL
ARG PIP_TRUSTED_HOST
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
        -r /tmp/requirements/requirements-model.txt -r /tmp/requirements/requirements.txt
COPY scripts/images/trim_venv.py /tmp/
# BYTECODE_ONLY= keeps the sources: Ray starts its processes by the path of a .py file.
ARG BYTECODE_ONLY=1
RUN python3 /tmp/trim_venv.py ${BYTECODE_ONLY:+--bytecode-only} /opt/venv

FROM ${DISTROLESS_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:/usr/bin MODEL_DIR=/opt/model
# Distroless ships the standard library without bytecode; a read-only container would compile it at every start.
USER 0
RUN ["/usr/bin/python3.11", "-m", "compileall", "-q", "-j", "0", "/usr/lib/python3.11"]
COPY --from=build /opt/venv /opt/venv
COPY --from=model /opt/model /opt/model
WORKDIR /app
ARG PEER
COPY peers/classifier.py peers/${PEER}/*.py /app/
USER 65532:65532
EXPOSE 8000
ENTRYPOINT ["/opt/venv/bin/python"]

# One target per peer: the command its default image runs, as the venv's Python runs it.
FROM runtime AS fastapi
CMD ["-m", "fastapi", "run", "main.py", "--port", "8000"]

FROM runtime AS litserve
CMD ["server.py"]

FROM runtime AS bentoml
# BentoML makes its home's folders at start: on the tmpfs of a read-only container.
ENV BENTOML_HOME=/tmp/bentoml
CMD ["-m", "bentoml", "serve", "service:BertClassifier", "--port", "8000"]

FROM runtime AS kserve
CMD ["model.py"]

FROM runtime AS rayserve
# Ray writes its token under ~/.ray and its sessions under /tmp: both on the tmpfs of a read-only container.
ENV HOME=/tmp
CMD ["service.py"]
