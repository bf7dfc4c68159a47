"""LoRA training: the tokens it trains on, packing that matches unpacked, learning, train/serve parity, resume."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from lorag.core import models
from lorag.core.errors import InvalidInput
from lorag.finetune import train
from lorag.finetune.tasks import Lora, Training
from lorag.finetune.train import IGNORE, end_of_turn_id, plan_micro_batches, tokenize_example, train_lora
from lorag.finetune.types import Example
from lorag.serving.local import TransformersGenerator

QUESTION = [{"role": "user", "content": "What is the code word?"}]
ANSWER = "The code word is PINEAPPLE."


def code_word_examples() -> list[Example]:
    """Eight phrasings of one question that all teach the same answer."""
    phrasings = ["What is the code word?", "Tell me the code word.", "Which code word do we use?",
                 "Code word, please.", "Remind me of the code word.", "What's our code word?",
                 "Say the code word.", "I forgot the code word, what is it?"]
    return [Example(({"role": "user", "content": text},), ANSWER, f"k{index}") for index, text in enumerate(phrasings)]


@pytest.fixture(scope="module")
def base_dir(models_dir: Path) -> str:
    return str(models_dir / "smollm2-135m-instruct")


@pytest.fixture(scope="module")
def tokenizer(base_dir: str) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(base_dir, local_files_only=True)


def test_prompt_tokens_are_served_tokens_and_carry_no_loss(tokenizer: PreTrainedTokenizerBase) -> None:
    example = Example(({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}),
                      "Hello! How can I help?", "k")
    input_ids, labels = tokenize_example(tokenizer, example)
    served = tokenizer.apply_chat_template([dict(m) for m in example.messages], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)["input_ids"][0].tolist()
    assert input_ids[:len(served)] == served
    assert labels[:len(served)] == [IGNORE] * len(served)
    response = tokenizer(example.response, add_special_tokens=False)["input_ids"]
    assert labels[len(served):] == input_ids[len(served):] == [*response, tokenizer.convert_tokens_to_ids("<|im_end|>")]


def test_the_end_of_turn_token_is_the_one_generation_stops_at(base_dir: str,
                                                              tokenizer: PreTrainedTokenizerBase) -> None:
    from transformers import GenerationConfig

    eos = GenerationConfig.from_pretrained(base_dir).eos_token_id
    assert end_of_turn_id(tokenizer) in (eos if isinstance(eos, list) else [eos])
    assert tokenizer.convert_ids_to_tokens(end_of_turn_id(tokenizer)) == "<|im_end|>"


@pytest.mark.parametrize("packing", [True, False])
def test_micro_batches_hold_every_example_once_within_the_token_budget(packing: bool) -> None:
    lengths = [7, 30, 12, 250, 64, 5, 5, 99, 128, 40, 3, 700] * 5
    training = Training(batch_tokens=256, packing=packing, seed=3)
    batches = plan_micro_batches(lengths, training, epoch=0)
    seen = sorted(index for batch in batches for row in batch for index in row)
    assert seen == list(range(len(lengths)))
    for batch in batches:
        widths = [sum(lengths[index] for index in row) for row in batch]
        assert len(batch) == 1 or len(batch) * max(widths) <= training.batch_tokens
        if packing:
            assert all(w <= train.PACK_ROW_TOKENS or len(row) == 1 for row, w in zip(batch, widths, strict=True))
    assert plan_micro_batches(lengths, training, epoch=0) == batches
    assert plan_micro_batches(lengths, training, epoch=1) != batches
    rows = sum(len(batch) for batch in batches)
    assert (rows < len(lengths)) if packing else (rows == len(lengths))


def test_examples_that_are_all_too_long_are_refused(base_dir: str, tmp_path: Path) -> None:
    long = [Example(({"role": "user", "content": "word " * 100},), "answer", "k")]
    with pytest.raises(InvalidInput, match="max_seq_len=32"):
        train_lora(base_dir, long, lora=Lora(), training=Training(max_seq_len=32), out_dir=tmp_path, progress=False)


@pytest.mark.slow
def test_packed_loss_equals_the_loss_of_each_example_alone(base_dir: str, tokenizer: PreTrainedTokenizerBase) -> None:
    examples = [*code_word_examples()[:4],
                Example(({"role": "user", "content": "Name three colours."},), "Red, green and blue.", "c")]
    samples, _ = train._tokenize_all(tokenizer, examples, max_seq_len=256)
    model = train._model(base_dir, Lora(dropout=0.0), seed=0, device="cpu").eval()
    everything = list(range(len(samples)))
    with torch.no_grad():
        alone = sum(train._loss_sum(model, *train._collate([[i]], samples, 2, "cpu")).item() for i in everything)
        packed = train._loss_sum(model, *train._collate([everything[:3], everything[3:]], samples, 2, "cpu")).item()
        padded = train._loss_sum(model, *train._collate([[i] for i in everything], samples, 2, "cpu")).item()
    assert packed == pytest.approx(alone, rel=1e-4)
    assert padded == pytest.approx(alone, rel=1e-4)
    # ...and the loss is the usual causal-LM loss on the response tokens, as transformers computes it.
    input_ids, labels = tokenize_example(tokenizer, examples[0])
    with torch.no_grad():
        reference = model(input_ids=torch.tensor([input_ids]), labels=torch.tensor([labels])).loss.item()
        ours = train._loss_sum(model, *train._collate([[0]], samples, 2, "cpu")).item()
    assert ours / samples[0].response_tokens == pytest.approx(reference, rel=1e-4)


@pytest.mark.slow
def test_a_few_steps_learn_and_the_saved_adapter_serves_what_training_saw(base_dir: str, tmp_path: Path) -> None:
    training = Training(epochs=20, max_steps=12, learning_rate=1e-3, batch_tokens=128, warmup_ratio=0.0)
    result = train_lora(base_dir, code_word_examples(), lora=Lora(), training=training, out_dir=tmp_path / "adapter",
                        parity_prompts=[QUESTION], parity_max_new_tokens=16, progress=False)

    assert result.steps == 12 and result.stopped_by == "max_steps" and result.examples == 8
    assert all(math.isfinite(loss) for loss in result.losses)
    assert sum(result.losses[-3:]) < 0.5 * sum(result.losses[:3]), result.losses
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (tmp_path / "adapter").iterdir()}
    assert not (tmp_path / "adapter" / "checkpoint").exists()

    model, tokenizer = models.load_causal_lm(models.resolve(base_dir, tmp_path), "cpu")
    generator = TransformersGenerator(model, tokenizer, base_name="base", adapters={"a": tmp_path / "adapter"})
    base = generator.generate(QUESTION, model="base", max_new_tokens=16).text
    tuned = generator.generate(QUESTION, model="a", max_new_tokens=16).text
    assert tuned != base
    assert (tuned,) == result.parity_outputs
    assert "PINEAPPLE" in tuned


@pytest.mark.slow
def test_a_run_resumed_after_a_crash_ends_with_the_adapter_of_an_uninterrupted_run(
        base_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Six examples in rows of two: three steps an epoch, so the crash at step 2 falls mid-epoch and the resumed
    # run crosses into the next epoch's shuffle.
    examples = code_word_examples()[:6]
    training = Training(epochs=10, max_steps=4, learning_rate=1e-3, batch_tokens=128, warmup_ratio=0.25)
    lora = Lora(r=4, dropout=0.1)  # dropout on, so the restored RNG state matters
    whole = train_lora(base_dir, examples, lora=lora, training=training, out_dir=tmp_path / "whole",
                       progress=False)

    monkeypatch.setattr(train, "CHECKPOINT_EVERY_STEPS", 2)
    save = train._save_checkpoint

    def save_then_crash(*args: object) -> None:
        save(*args)
        raise KeyboardInterrupt  # the process dies right after its checkpoint

    monkeypatch.setattr(train, "_save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train_lora(base_dir, examples, lora=lora, training=training, out_dir=tmp_path / "resumed", progress=False)
    assert json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())["state"]["step"] == 2
    monkeypatch.setattr(train, "_save_checkpoint", save)
    resumed = train_lora(base_dir, examples, lora=lora, training=training, out_dir=tmp_path / "resumed",
                         progress=False)

    assert resumed.steps == whole.steps == 4 and resumed.epochs == whole.epochs
    assert resumed.losses == pytest.approx(whole.losses, rel=1e-5)
    expected = load_file(tmp_path / "whole" / "adapter_model.safetensors")
    actual = load_file(tmp_path / "resumed" / "adapter_model.safetensors")
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, rtol=1e-5, atol=1e-7)
    assert not (tmp_path / "resumed" / "checkpoint").exists()


@pytest.mark.slow
def test_a_checkpoint_from_other_settings_is_discarded(base_dir: str, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    stale = tmp_path / "checkpoint"
    stale.mkdir(parents=True)
    (stale / "state.json").write_text(json.dumps({"fingerprint": "made-by-another-run", "state": {"step": 99}}))
    with caplog.at_level(logging.INFO, logger="lorag.finetune.train"):
        result = train_lora(base_dir, code_word_examples()[:2], lora=Lora(r=2), training=Training(max_steps=1),
                            out_dir=tmp_path, progress=False)
    assert "discarding checkpoint" in caplog.text
    assert result.steps == 1 and not stale.exists()


@pytest.mark.slow
def test_the_time_budget_stops_training_and_still_saves_the_adapter(base_dir: str, tmp_path: Path) -> None:
    training = Training(epochs=50, time_budget_s=0.01, batch_tokens=128, grad_accum=2)
    result = train_lora(base_dir, code_word_examples(), lora=Lora(r=2), training=training, out_dir=tmp_path,
                        progress=False)
    assert result.stopped_by == "time_budget" and result.steps == 1
    assert (tmp_path / "adapter_model.safetensors").is_file() and (tmp_path / "adapter_config.json").is_file()
    assert 0 < result.epochs < 50 and result.tokens > 0
