# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH_VERSION := 2.13.0
# pytest worker processes for `make test` (pytest-xdist; each with one torch thread unless COEA_TORCH_THREADS is set)
TEST_WORKERS ?= 2
# Images (`make images`, needs Docker): IMAGE=REGISTRY/coea PUSH=1 pushes and prints the digest references.
DOCKER  ?= docker
IMAGE   ?= coea
PUSH    ?= 0
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
GIT_SHA := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
IMAGE_TAG := $(VERSION)-$(GIT_SHA)
BUILD_ARGS := --build-arg COEA_VERSION=$(VERSION) --build-arg COEA_GIT_SHA=$(GIT_SHA)
IMAGE_ID := {{.Id}}
REPO_DIGEST := {{index .RepoDigests 0}}
# torch is installed first, as PyTorch's CPU build (PyPI's torch is the CUDA build on Linux): from an index pip
# already has that holds the +cpu wheel (an offline mirror), else from PyTorch's CPU index. For another build set
# TORCH_INDEX, e.g. `make demo TORCH_INDEX=https://download.pytorch.org/whl/cu128` on a CUDA 12.8 machine.
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
TORCH_INDEX ?= $(TORCH_CPU_INDEX)
ifeq ($(TORCH_INDEX),$(TORCH_CPU_INDEX))
TORCH_INSTALL = $(BIN)/pip install -q "torch==$(TORCH_VERSION)+cpu" 2>/dev/null \
	|| $(BIN)/pip install -q "torch==$(TORCH_VERSION)+cpu" --extra-index-url $(TORCH_CPU_INDEX)
else
TORCH_INSTALL = $(BIN)/pip install -q "torch==$(TORCH_VERSION)" --index-url $(TORCH_INDEX)
endif

.PHONY: demo test lint bench compile compile-check images clean help

help:
	@echo "make demo   - create .venv, install, run the main job (coea run) on the synthetic data"
	@echo "              (DEMO_ARGS=-v also shows every step's log; TORCH_INDEX=URL installs torch from that index)"
	@echo "make test   - create .venv, install, ruff check + pytest on TEST_WORKERS (2) processes"
	@echo "make bench  - benchmarks (wall time; peak memory where traced) on MovieLens-1M from ../shared"
	@echo "make compile - regenerate the checked-in compiled YAML (components/*.yaml, pipelines/*.yaml)"
	@echo "make compile-check - fail when a checked-in compiled YAML differs from the code"
	@echo "make images - build Dockerfiles/cpu+gpu as IMAGE:VERSION-GITSHA and IMAGE:VERSION-GITSHA-gpu, print digests"
	@echo "              (needs Docker; IMAGE=REGISTRY/coea PUSH=1 pushes and prints the coea compile command)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall only when the package metadata changes; torch first so nothing pulls a CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(TORCH_INSTALL)
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/coea run $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	COEA_TORCH_THREADS=$${COEA_TORCH_THREADS:-1} $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# The compiled component and pipeline YAML is checked in; regenerate it after changing a component or pipeline.
compile: $(STAMP)
	$(BIN)/python -m pipelines.compile --write

compile-check: $(STAMP)
	$(BIN)/python -m pipelines.compile --check

# Both images, tagged with the package version and the git commit; the digest to pin in `coea compile --image`.
# A local build has only an image id; the registry digest (REGISTRY/coea@sha256:...) exists after the push.
images:
	$(DOCKER) build -f Dockerfiles/cpu.Dockerfile $(BUILD_ARGS) -t $(IMAGE):$(IMAGE_TAG) .
	$(DOCKER) build -f Dockerfiles/gpu.Dockerfile $(BUILD_ARGS) -t $(IMAGE):$(IMAGE_TAG)-gpu .
ifeq ($(PUSH),1)
	$(DOCKER) push $(IMAGE):$(IMAGE_TAG)
	$(DOCKER) push $(IMAGE):$(IMAGE_TAG)-gpu
	@echo "coea compile --image $$($(DOCKER) image inspect --format '$(REPO_DIGEST)' $(IMAGE):$(IMAGE_TAG)) \
	--gpu-image $$($(DOCKER) image inspect --format '$(REPO_DIGEST)' $(IMAGE):$(IMAGE_TAG)-gpu)"
else
	@echo "$(IMAGE):$(IMAGE_TAG) $$($(DOCKER) image inspect --format '$(IMAGE_ID)' $(IMAGE):$(IMAGE_TAG))"
	@echo "$(IMAGE):$(IMAGE_TAG)-gpu $$($(DOCKER) image inspect --format '$(IMAGE_ID)' $(IMAGE):$(IMAGE_TAG)-gpu)"
endif

clean:
	rm -rf $(VENV) runs build .pytest_cache .ruff_cache
