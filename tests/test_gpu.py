"""The GPU figures of the serving issue: vLLM (the `vllm` package) at least 3x the transformers backend at
concurrency 16, and greedy parity with transformers + peft. They need a CUDA device and a GPU build of vLLM;
everywhere else they skip and say why (CPU figures: bench/serve.py, tests/test_vllm.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

GPU_VLLM_PYTHON = os.environ.get("LORAG_TEST_GPU_VLLM_PYTHON")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not cuda_available(), reason="no CUDA device on this machine: the GPU target (vLLM >= 3x "
                       "the transformers backend at concurrency 16) is measured on a GPU machine only"),
    pytest.mark.skipif(not GPU_VLLM_PYTHON, reason="set LORAG_TEST_GPU_VLLM_PYTHON to an interpreter with the "
                       "GPU `vllm` package (`pip install 'lorag[vllm]'`)"),
]


def test_vllm_on_a_gpu_is_three_times_the_transformers_backend(tmp_path: Path) -> None:
    out = tmp_path / "serve-gpu.json"
    run = subprocess.run([sys.executable, str(REPO / "bench" / "serve.py"), "--device", "cuda", "--vllm-python",
                          str(GPU_VLLM_PYTHON), "--out", str(out)], capture_output=True, text=True, timeout=3600)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["meets_targets"]["vllm_vs_transformers_at_16"], report["ratios"]


def test_vllm_on_a_gpu_matches_transformers_and_peft() -> None:
    env = {**os.environ, "LORAG_TEST_VLLM_PYTHON": str(GPU_VLLM_PYTHON), "LORAG_TEST_REQUIRE_VLLM": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", str(REPO / "tests" / "test_vllm.py")], env=env,
                         capture_output=True, text=True, timeout=3600, cwd=REPO)
    assert run.returncode == 0, run.stdout[-3000:]
