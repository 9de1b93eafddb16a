# syntax=docker/dockerfile:1
# GPU image for the CoEA pipeline components (SFT, DPO+KL and scoring steps on an NVIDIA node pool).
#   docker build -f Dockerfiles/gpu.Dockerfile -t REGISTRY/coea:TAG .
# No ENTRYPOINT/CMD: Kubeflow Pipelines sets each component's command.
#
# CUDA version: torch 2.13.0's Linux wheel on PyPI is a CUDA 13 build (it depends on the nvidia-*-cu13
# wheels, which carry the CUDA runtime and cuDNN), so the base image only needs the NVIDIA container
# setup, not a second copy of the CUDA libraries: hence the `-base` flavour. Nodes need a driver that
# supports CUDA 13 (R580 or newer). For an older driver pick a torch build for an older CUDA (PyTorch's
# own index, e.g. --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 if it has that
# torch version) and a matching CUDA_IMAGE.

ARG CUDA_IMAGE=nvidia/cuda:13.0.0-base-ubuntu22.04

# ---- builder: python3.11 virtual environment with torch (CUDA), the pinned dependencies, the package ----
FROM ${CUDA_IMAGE} AS builder
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://pypi.org/simple
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv
# 1. torch first (CUDA build).
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
WORKDIR /app
USER 1000:1000
