"""The nouns of fine-tuning: a data record, a training example, a training result, a gate decision.

    records (from files and the database) → split by hash → Example (messages + response) → train → adapter
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Split = Literal["train", "validation", "test"]
Origin = Literal["data", "feedback", "generated", "general"]  # generated: written from the documents


def stable_hash(value: object) -> str:
    """sha256 of the canonical JSON of `value`: the same on every machine and every night."""
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Record:
    """One labelled item before it is turned into a prompt, whatever file or table it came from.

    - grounded-qa: `prompt` is the question, `output` the gold answer (None: not answerable from the
      knowledge base), `meta` may name the gold `doc` and `section`.
    - classification: `prompt` is the item's text, `output` a label (single-label task) or a dict of
      field → value(s) (a taxonomy with several fields).
    - chat: `prompt` is the user's message (earlier turns in `meta["history"]`), `output` the reply.

    `key` decides the split and deduplication: the hash of the input side only, so the same question with two
    different answers can never sit on both sides of the split.
    """

    prompt: str
    output: str | dict[str, Any] | None
    origin: Origin = "data"
    source: str = ""  # the file or table it came from, for the data report
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return stable_hash({"prompt": " ".join(self.prompt.split()).lower(),
                            "history": self.meta.get("history", [])})

    @property
    def content_hash(self) -> str:
        """Identity of the whole record (input and output), for exact-duplicate removal and the data hash."""
        return stable_hash({"prompt": self.prompt, "output": self.output, "history": self.meta.get("history", [])})


@dataclass(frozen=True)
class Example:
    """What the model is trained on: the chat messages before the answer, and the answer.

    Loss is taken on the response tokens only. `messages` are rendered with the tokenizer's chat template exactly
    as the serving path renders them (`apply_chat_template(messages, add_generation_prompt=True)`), and the
    response follows, ended by the template's end-of-turn token.
    """

    messages: tuple[Mapping[str, str], ...]
    response: str
    key: str  # the record's key, for tracing an example back to its data


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: str
    steps: int
    epochs: float
    examples: int
    tokens: int  # tokens processed (prompt + response, no padding)
    seconds: float
    tokens_per_s: float
    final_loss: float
    losses: tuple[float, ...]  # the loss logged at each optimizer step
    peak_rss_mb: float
    stopped_by: Literal["completed", "time_budget", "max_steps"]
    parity_outputs: tuple[str, ...] = ()  # greedy outputs of the trained model for the caller's parity prompts
    dropped: int = 0  # examples left out because they were longer than training.max_seq_len


@dataclass(frozen=True)
class GateResult:
    """Whether a candidate may replace the adapter in service, and why (one line per metric)."""

    promote: bool
    reasons: tuple[str, ...]
    parity: bool | None = None  # None: not checked

    def summary(self) -> str:
        return ("promote: " if self.promote else "keep the adapter in service: ") + "; ".join(self.reasons)
