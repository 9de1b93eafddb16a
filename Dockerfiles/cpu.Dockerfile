# syntax=docker/dockerfile:1
# CPU image for the CoEA pipeline components (dev clusters, CPU-only steps).
#   docker build -f Dockerfiles/cpu.Dockerfile -t REGISTRY/coea:TAG-cpu .
# No ENTRYPOINT/CMD: Kubeflow Pipelines sets each component's command.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: a virtual environment with torch (CPU), the pinned dependencies and the package ----
FROM ${PYTHON_IMAGE} AS builder
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# 1. torch first, from the PyTorch CPU index (the PyPI Linux wheel is the much larger CUDA build).
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
# 2. the pinned dependencies: a layer that only changes with constraints.txt.
COPY Dockerfiles/constraints.txt /tmp/constraints.txt
RUN pip install -r /tmp/constraints.txt
# 3. the package itself: coea (src/) and the KFP layer beside it (components/, pipelines/); pyproject needs
#    README.md; anything new in pyproject is still installed.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
RUN pip install -c /tmp/constraints.txt . && pip check

# ---- runtime: the same base, the venv, a non-root user ----
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/cache/huggingface \
    TORCH_HOME=/cache/torch \
    XDG_CACHE_HOME=/cache/xdg \
    MPLCONFIGDIR=/cache/matplotlib
# /cache is where the coea-model-cache PVC is mounted; it is writable by uid 1000 without a PVC too.
RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin coea \
    && mkdir -p /app /cache \
    && chown 1000:1000 /app /cache
COPY --from=builder /opt/venv /opt/venv
# provenance (make images passes both): OCI labels, and COEA_GIT_SHA for the components' artifact metadata
ARG COEA_VERSION=unknown
ARG COEA_GIT_SHA=unknown
LABEL org.opencontainers.image.title="coea" \
      org.opencontainers.image.version="${COEA_VERSION}" \
      org.opencontainers.image.revision="${COEA_GIT_SHA}"
ENV COEA_GIT_SHA=${COEA_GIT_SHA}
WORKDIR /app
USER 1000:1000
