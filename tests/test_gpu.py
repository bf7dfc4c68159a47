"""vLLM on a GPU (the `vllm` package): greedy parity with transformers + peft. It needs a CUDA device and a GPU
build of vLLM; everywhere else it skips and says why (CPU parity: tests/test_vllm.py). The speed target (vLLM at
least 3x the transformers backend at concurrency 16) is a benchmark, not a test:
`bench/serve.py --device cuda --vllm-python PYTHON` prints it under `meets_targets`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

GPU_VLLM_PYTHON = os.environ.get("LORAG_TEST_GPU_VLLM_PYTHON")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not cuda_available(), reason="no CUDA device on this machine: vLLM's GPU parity is checked "
                       "on a GPU machine only"),
    pytest.mark.skipif(not GPU_VLLM_PYTHON, reason="set LORAG_TEST_GPU_VLLM_PYTHON to an interpreter with the "
                       "GPU `vllm` package (`pip install 'lorag[vllm]'`)"),
]


def test_vllm_on_a_gpu_matches_transformers_and_peft() -> None:
    env = {**os.environ, "LORAG_TEST_VLLM_PYTHON": str(GPU_VLLM_PYTHON), "LORAG_TEST_REQUIRE_VLLM": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", str(REPO / "tests" / "test_vllm.py")], env=env,
                         capture_output=True, text=True, timeout=3600, cwd=REPO)
    assert run.returncode == 0, run.stdout[-3000:]
