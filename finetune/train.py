"""LoRA training from the base model: examples in, an adapter directory out.

    examples → tokens (prompt as served, loss on the response) → packed micro-batches → AdamW steps → adapter

>>> result = train_lora(base.location, examples, lora=Lora(), training=Training(max_steps=50), out_dir=Path("out"))
>>> {"adapter_config.json", "adapter_model.safetensors"} <= {path.name for path in Path("out").iterdir()}
True

Why it is fast on a CPU: no padding to a fixed length; short examples are packed into rows of at most
`PACK_ROW_TOKENS` whose attention cannot cross example boundaries; rows (or, without packing, examples) are
batched by length; and logits are computed for the response tokens only, where a plain trainer computes the
49k-wide vocabulary projection for every prompt and padding token too.

A run saves a checkpoint now and then under `out_dir/checkpoint/`; running it again with the same data and
settings resumes from there and ends with the same adapter as a run that was never interrupted.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import random
import resource
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lorag.core.errors import InvalidInput
from lorag.finetune.tasks import Lora, Training
from lorag.finetune.types import Example, TrainResult, stable_hash

if TYPE_CHECKING:
    import torch
    from peft import PeftModel
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

IGNORE = -100  # the label of a token that carries no loss (prompt, padding)
# Rows longer than this cost more than they save on a CPU: attention with a block-diagonal mask is computed for
# the whole row, so its cost grows with the square of the row. Measured here (forward pass, SmolLM2-135M, 2048 tokens
# per micro-batch): 8 rows of 256 ran as fast per token as 32 unpadded rows of 64, 4 rows of 512 took 1.8x as long.
PACK_ROW_TOKENS = 256
CHECKPOINT_EVERY_STEPS = 20
CHECKPOINT_EVERY_S = 60.0
LOG_EVERY_STEPS = 10
StoppedBy = Literal["completed", "time_budget", "max_steps"]


@dataclass(frozen=True)
class _Sample:
    input_ids: list[int]
    targets: list[int]  # targets[t]: the response token at t + 1, which position t is trained to predict

    @property
    def response_tokens(self) -> int:
        return sum(target != IGNORE for target in self.targets)


@dataclass
class _State:
    """Where training stands; saved with each checkpoint."""

    step: int = 0
    epoch: int = 0  # the epoch and micro-batch that come next
    index: int = 0
    epochs_done: float = 0.0
    tokens: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)


@dataclass
class _Run:
    model: PeftModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    samples: list[_Sample]
    training: Training
    total_steps: int
    pad_id: int
    device: str


def train_lora(base_dir: str, examples: Sequence[Example], *, lora: Lora, training: Training, out_dir: Path,
               device: str = "cpu", parity_prompts: Sequence[Sequence[Mapping[str, str]]] = (),
               parity_max_new_tokens: int = 48, progress: bool = True,
               on_step: Callable[[int, int], None] | None = None) -> TrainResult:
    """Train a LoRA adapter on `examples` from a fresh copy of the base model and save it into `out_dir`.

    `on_step(step, total_steps)` is told after every optimizer step (progress for other processes to show).

    `seconds` and `tokens_per_s` count the training loop only (all runs of it, when resumed), not loading.
    """
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(base_dir)
    samples, dropped = _tokenize_all(tokenizer, examples, training.max_seq_len)  # bad data fails before the load
    model = _model(base_dir, lora, training.seed, device)
    run = _setup(model, samples, training, tokenizer, device)
    fingerprint = _fingerprint(base_dir, examples, lora, training)
    state = _resume(run, out_dir, fingerprint) or _State()
    stopped_by = _loop(run, state, out_dir, fingerprint, progress, started, on_step)
    model.save_pretrained(out_dir)
    shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)
    outputs = _generate(model, tokenizer, parity_prompts, parity_max_new_tokens)
    logger.info("trained %d steps (%.2f epochs, %d examples, %d dropped) in %.0fs at %.0f tokens/s: %s",
                state.step, state.epochs_done, len(samples), dropped, state.seconds,
                state.tokens / max(state.seconds, 1e-9), stopped_by)
    return TrainResult(adapter_dir=str(out_dir), steps=state.step, epochs=round(state.epochs_done, 4),
                       examples=len(samples), tokens=state.tokens, seconds=round(state.seconds, 3),
                       tokens_per_s=round(state.tokens / max(state.seconds, 1e-9), 2),
                       final_loss=state.losses[-1] if state.losses else math.nan, losses=tuple(state.losses),
                       peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                       stopped_by=stopped_by, parity_outputs=tuple(outputs), dropped=dropped)


def tokenize_example(tokenizer: PreTrainedTokenizerBase, example: Example,
                     end_of_turn: int | None = None) -> tuple[list[int], list[int]]:
    """(input_ids, labels): the prompt exactly as serving renders it, then the response and the end-of-turn token.

    Labels are IGNORE (-100) on the prompt, so the loss falls on the response tokens only.
    """
    prompt = _prompt_ids(tokenizer, example.messages)
    eot = end_of_turn if end_of_turn is not None else end_of_turn_id(tokenizer)
    response = [*tokenizer(example.response, add_special_tokens=False)["input_ids"], eot]
    return prompt + response, [IGNORE] * len(prompt) + response


def end_of_turn_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token the chat template closes an assistant turn with (`<|im_end|>` for ChatML), else the EOS token."""
    probe, user = "lorag probe", [{"role": "user", "content": "hi"}]
    prompt = _prompt_ids(tokenizer, user)
    full = tokenizer.apply_chat_template([*user, {"role": "assistant", "content": probe}],
                                         return_dict=True)["input_ids"]
    content = tokenizer(probe, add_special_tokens=False)["input_ids"]
    rest = full[len(prompt):]
    if full[:len(prompt)] == prompt and rest[:len(content)] == content and len(rest) > len(content):
        return int(rest[len(content)])
    if tokenizer.eos_token_id is None:
        raise InvalidInput("the tokenizer has neither a chat template that closes assistant turns nor an EOS token")
    return int(tokenizer.eos_token_id)


def plan_micro_batches(lengths: Sequence[int], training: Training, epoch: int) -> list[list[list[int]]]:
    """Micro-batches of rows of example indices for one epoch: a fresh order per (seed, epoch).

    With packing, a row holds several examples (up to PACK_ROW_TOKENS, best fit decreasing); without, one.
    Rows are grouped by length so a micro-batch pads to at most `batch_tokens` tokens (a single longer row
    makes its own micro-batch).
    """
    rng = random.Random(f"{training.seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    capacity = min(PACK_ROW_TOKENS, training.batch_tokens)
    rows = _pack(order, lengths, capacity) if training.packing else [[index] for index in order]
    sized = sorted(((sum(lengths[index] for index in row), row) for row in rows), key=lambda pair: pair[0])
    batches: list[list[list[int]]] = []
    for length, row in sized:  # ascending and stable (ties keep the shuffled order): `length` is the new width
        if batches and (len(batches[-1]) + 1) * length <= training.batch_tokens:
            batches[-1].append(row)
        else:
            batches.append([row])
    rng.shuffle(batches)
    return batches


def _pack(order: list[int], lengths: Sequence[int], capacity: int) -> list[list[int]]:
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, row), sorted: the first with enough room is the best fit
    for index in sorted(order, key=lambda i: -lengths[i]):
        slot = bisect.bisect_left(free, (lengths[index], -1))
        if slot == len(free):
            rows.append([index])
            row, room = len(rows) - 1, capacity - lengths[index]
        else:
            room, row = free.pop(slot)
            rows[row].append(index)
            room -= lengths[index]
        if room > 0:
            bisect.insort(free, (room, row))
    return rows


def _tokenizer(base_dir: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_dir, local_files_only=Path(base_dir).is_dir())


def _model(base_dir: str, lora: Lora, seed: int, device: str) -> PeftModel:
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # before get_peft_model: it draws the LoRA A matrices
    # float32 even where bf16 exists: this CPU has no fast bf16 and autocast ran ~27x slower.
    base = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=Path(base_dir).is_dir(),
                                                dtype=torch.float32)
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules), task_type="CAUSAL_LM")
    model = get_peft_model(base.to(device), config)
    model.train()
    return model


def _tokenize_all(tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example],
                  max_seq_len: int) -> tuple[list[_Sample], int]:
    eot = end_of_turn_id(tokenizer)
    samples = []
    for example in examples:
        input_ids, labels = tokenize_example(tokenizer, example, eot)
        if len(input_ids) <= max_seq_len:
            samples.append(_Sample(input_ids, [*labels[1:], IGNORE]))
    dropped = len(examples) - len(samples)
    if dropped:
        logger.warning("left out %d of %d examples longer than max_seq_len=%d tokens", dropped, len(examples),
                       max_seq_len)
    if not samples:
        raise InvalidInput(f"no training examples left: all {len(examples)} are longer than max_seq_len="
                           f"{max_seq_len} tokens (or none were given); raise training.max_seq_len or shorten them")
    return samples, dropped


def _setup(model: PeftModel, samples: list[_Sample], training: Training, tokenizer: PreTrainedTokenizerBase,
           device: str) -> _Run:
    import torch
    from transformers import get_linear_schedule_with_warmup

    per_epoch = len(plan_micro_batches([len(s.input_ids) for s in samples], training, 0))
    total = math.ceil(math.ceil(training.epochs * per_epoch) / training.grad_accum)
    total = min(total, training.max_steps) if training.max_steps else total
    params = [param for param in model.parameters() if param.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=training.learning_rate, weight_decay=0.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(training.warmup_ratio * total), total)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return _Run(model, optimizer, scheduler, samples, training, total, pad or 0, device)


def _loop(run: _Run, state: _State, out_dir: Path, fingerprint: str, progress: bool, started: float,
          on_step: Callable[[int, int], None] | None = None) -> StoppedBy:
    budget = run.training.time_budget_s
    stream = _stream(run, state.epoch, state.index)
    loop_start, prior_s, saved_at = time.perf_counter(), state.seconds, time.perf_counter()
    with _progress_bar(progress, run.total_steps, state.step) as show:
        while state.step < run.total_steps:
            chunk = [next(stream) for _ in range(run.training.grad_accum)]
            loss, tokens = _optimizer_step(run, [batch for *_, batch in chunk])
            state.epoch, state.index, state.epochs_done = chunk[-1][0], chunk[-1][1], chunk[-1][2]
            state.step, state.tokens = state.step + 1, state.tokens + tokens
            state.losses.append(loss)
            state.seconds = prior_s + time.perf_counter() - loop_start
            _report(show, run, state)
            if on_step is not None:
                on_step(state.step, run.total_steps)
            if budget is not None and time.perf_counter() - started >= budget:
                return "time_budget"
            due = state.step % CHECKPOINT_EVERY_STEPS == 0 or time.perf_counter() - saved_at >= CHECKPOINT_EVERY_S
            if due and state.step < run.total_steps:
                _save_checkpoint(run, state, out_dir, fingerprint)
                saved_at = time.perf_counter()
    return "max_steps" if run.training.max_steps == run.total_steps else "completed"


def _stream(run: _Run, epoch: int, index: int) -> Iterator[tuple[int, int, float, list[list[int]]]]:
    """(epoch, next index, epochs done, micro-batch) from a position on, epoch after epoch."""
    lengths = [len(sample.input_ids) for sample in run.samples]
    while True:
        batches = plan_micro_batches(lengths, run.training, epoch)
        for position in range(index, len(batches)):
            yield epoch, position + 1, epoch + (position + 1) / len(batches), batches[position]
        epoch, index = epoch + 1, 0


def _optimizer_step(run: _Run, batches: list[list[list[int]]]) -> tuple[float, int]:
    """One AdamW step over `grad_accum` micro-batches; the loss is the mean over all their response tokens."""
    import torch

    rows = [row for batch in batches for row in batch]
    count = sum(run.samples[index].response_tokens for row in rows for index in row)
    total = 0.0
    for batch in batches:
        loss = _loss_sum(run.model, *_collate(batch, run.samples, run.pad_id, run.device)) / count
        loss.backward()
        total += loss.item()
    torch.nn.utils.clip_grad_norm_([p for p in run.model.parameters() if p.requires_grad], 1.0)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return total, sum(len(run.samples[index].input_ids) for row in rows for index in row)


def _collate(batch: list[list[int]], samples: list[_Sample], pad_id: int,
             device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids, position_ids and targets of a micro-batch; positions restart at 0 for every example.

    No attention mask is passed: transformers then derives a block-diagonal causal mask from the position
    restarts, so no token attends to another example. Padding at the end of a row is one more such segment,
    with IGNORE targets, so nothing real ever sees it either.
    """
    import torch

    width = max(sum(len(samples[index].input_ids) for index in row) for row in batch)
    ids, positions, targets = [], [], []
    for row in batch:
        row_ids = [token for index in row for token in samples[index].input_ids]
        pad = width - len(row_ids)
        ids.append(row_ids + [pad_id] * pad)
        positions.append([p for index in row for p in range(len(samples[index].input_ids))] + list(range(pad)))
        targets.append([t for index in row for t in samples[index].targets] + [IGNORE] * pad)
    return tuple(torch.tensor(values, device=device) for values in (ids, positions, targets))  # type: ignore


def _loss_sum(model: PeftModel, input_ids: torch.Tensor, position_ids: torch.Tensor,
              targets: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy over the response tokens, projecting only their hidden states onto the vocabulary.

    Assumes the plain `lm_head(hidden)` of Llama-style models (no logit soft-capping or scaling).
    """
    import torch.nn.functional as F

    network = model.get_base_model()
    hidden = network.get_decoder()(input_ids=input_ids, position_ids=position_ids, use_cache=False).last_hidden_state
    keep = targets != IGNORE
    logits = network.get_output_embeddings()(hidden[keep])
    return F.cross_entropy(logits.float(), targets[keep], reduction="sum")


@contextmanager
def _progress_bar(enabled: bool, total: int, done: int) -> Iterator[Callable[[int, float, float], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("training"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.4f}  {task.fields[tokens_per_s]:.0f} tok/s"),
               TimeRemainingColumn())
    with Progress(*columns, disable=not enabled) as bar:
        task = bar.add_task("training", total=total, completed=done, loss=math.nan, tokens_per_s=0.0)
        yield lambda step, loss, rate: bar.update(task, completed=step, loss=loss, tokens_per_s=rate)


def _report(show: Callable[[int, float, float], None], run: _Run, state: _State) -> None:
    rate = state.tokens / max(state.seconds, 1e-9)
    show(state.step, state.losses[-1], rate)
    if state.step % LOG_EVERY_STEPS == 0 or state.step == run.total_steps:
        logger.info("step %d/%d  loss %.4f  lr %.2e  %.0f tokens/s", state.step, run.total_steps, state.losses[-1],
                    run.scheduler.get_last_lr()[0], rate)


def _fingerprint(base_dir: str, examples: Sequence[Example], lora: Lora, training: Training) -> str:
    # The time budget ends a run without changing its course, so a resumed run may come with another budget.
    return stable_hash({"base": str(base_dir), "lora": lora.model_dump(),
                        "training": training.model_dump(exclude={"time_budget_s"}),
                        "examples": [[e.key, [dict(m) for m in e.messages], e.response] for e in examples]})


def _save_checkpoint(run: _Run, state: _State, out_dir: Path, fingerprint: str) -> None:
    """Adapter, optimizer, scheduler, position and RNG states, swapped in with renames so a crash never leaves
    half a checkpoint (`checkpoint.old` is the previous one while the swap is under way)."""
    import torch

    final, partial, old = out_dir / "checkpoint", out_dir / "checkpoint.partial", out_dir / "checkpoint.old"
    shutil.rmtree(partial, ignore_errors=True)
    run.model.save_pretrained(partial)
    torch.save({"optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state() if run.device.startswith("cuda") else None},
               partial / "trainer_state.pt")
    (partial / "state.json").write_text(json.dumps({"fingerprint": fingerprint, "state": asdict(state),
                                                    **_host_rng_states()}))
    if final.exists():
        final.rename(old)
    partial.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    logger.info("checkpoint at step %d in %s", state.step, final)


def _resume(run: _Run, out_dir: Path, fingerprint: str) -> _State | None:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = next((f for f in (out_dir / "checkpoint", out_dir / "checkpoint.old") if f.is_dir()), None)
    if folder is None:
        return None
    meta = json.loads((folder / "state.json").read_text())
    if meta["fingerprint"] != fingerprint:
        logger.info("discarding checkpoint %s: it was made from other data or settings", folder)
        shutil.rmtree(folder)
        return None
    set_peft_model_state_dict(run.model, load_file(folder / "adapter_model.safetensors"))
    saved = torch.load(folder / "trainer_state.pt", weights_only=True)
    run.optimizer.load_state_dict(saved["optimizer"])
    run.scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["torch_rng"])  # dropout continues with the very masks of an uninterrupted run
    if saved["cuda_rng"] is not None:
        torch.cuda.set_rng_state(saved["cuda_rng"])
    _restore_host_rng_states(meta)
    state = _State(**meta["state"])
    logger.info("resuming from step %d of %d (checkpoint %s)", state.step, run.total_steps, folder)
    return state


def _host_rng_states() -> dict[str, Any]:
    # Data order comes from (seed, epoch) alone; these are saved so code that draws from them stays repeatable.
    import numpy as np

    name, keys, position, has_gauss, gauss = np.random.get_state()
    return {"python_rng": random.getstate(), "numpy_rng": [name, keys.tolist(), position, has_gauss, gauss]}


def _restore_host_rng_states(meta: Mapping[str, Any]) -> None:
    import numpy as np

    version, internal, gauss = meta["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = meta["numpy_rng"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached))


def _generate(model: PeftModel, tokenizer: PreTrainedTokenizerBase,
              prompts: Sequence[Sequence[Mapping[str, str]]], max_new_tokens: int) -> list[str]:
    """Greedy outputs of the in-memory trained model, encoded and configured as the serving path does."""
    import torch
    from transformers import GenerationConfig

    model.eval()
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                              eos_token_id=model.generation_config.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id)
    outputs = []
    for messages in prompts:
        encoded = tokenizer.apply_chat_template([dict(m) for m in messages], add_generation_prompt=True,
                                                return_tensors="pt", return_dict=True)
        inputs = {key: value.to(model.device) for key, value in encoded.items()}
        with torch.inference_mode():
            output = model.generate(**inputs, generation_config=config)
        outputs.append(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:].tolist(), skip_special_tokens=True))
    return outputs


def _prompt_ids(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, str]]) -> list[int]:
    # Must match serving/local.py TransformersGenerator._encode token for token: train and serve see the same.
    return list(tokenizer.apply_chat_template([dict(m) for m in messages], add_generation_prompt=True,
                                              return_dict=True)["input_ids"])
