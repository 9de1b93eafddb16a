# syntax=docker/dockerfile:1
# GPU image for the CoEA pipeline components (SFT, DPO+KL and scoring steps on an NVIDIA node pool).
#   docker build -f Dockerfiles/gpu.Dockerfile -t REGISTRY/coea:TAG .
# No ENTRYPOINT/CMD: Kubeflow Pipelines sets each component's command.
#
# CUDA version: torch comes from PyTorch's cu130 index (torch==2.13.0+cu130: a CUDA 13.0 build that pulls
# the nvidia-*-cu13 wheels, which carry the CUDA runtime and cuDNN), so the base image only needs the NVIDIA
# container setup, not a second copy of the CUDA libraries: hence the `-base` flavour of CUDA 13.0, the same
# CUDA as the torch build (tests/k8s/test_dockerfiles.py checks that the two agree). Nodes need an NVIDIA
# driver that supports CUDA 13.0: R580 (580.65) or newer. For an older driver build with an older CUDA, both
# together, e.g. --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
# --build-arg CUDA_IMAGE=nvidia/cuda:12.6.3-base-ubuntu22.04 (if that index has this torch version).

ARG CUDA_IMAGE=nvidia/cuda:13.0.0-base-ubuntu22.04

# ---- builder: python3.11 virtual environment with torch (CUDA), the pinned dependencies, the package ----
FROM ${CUDA_IMAGE} AS builder
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv
# 1. torch first: the CUDA build of TORCH_INDEX_URL (cu130 = CUDA 13.0, the CUDA of CUDA_IMAGE).
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
# 2. the pinned dependencies: a layer that only changes with constraints.txt.
COPY Dockerfiles/constraints.txt /tmp/constraints.txt
RUN pip install -r /tmp/constraints.txt
# 3. the package itself: coea (src/) and the KFP layer beside it (components/, pipelines/); pyproject needs
#    README.md.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
RUN pip install -c /tmp/constraints.txt . && pip check

# ---- runtime: python3.11 (no pip, no venv module), the venv, a non-root user ----
FROM ${CUDA_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive \
    PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/cache/huggingface \
    TORCH_HOME=/cache/torch \
    XDG_CACHE_HOME=/cache/xdg \
    MPLCONFIGDIR=/cache/matplotlib \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --create-home --shell /usr/sbin/nologin coea \
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
