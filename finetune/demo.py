"""First adapters: a short run for every task that has no adapter in service yet.

`lorag serve` starts them in the background (the base model answers meanwhile, and each adapter goes into service
the moment its gate passes), and `lorag setup --adapters` runs them in the foreground. The nightly job trains them
fully afterwards. A demo is planned in steps, not seconds, so it comes out the same on a busy machine and a quiet
one; `demo_budget_s` is only a safety cap.
"""

from __future__ import annotations

import logging
from typing import Any

from lorag.finetune import registry
from lorag.finetune.gate import MIN_EXAMPLES
from lorag.finetune.nightly import Outcome, Stack, run_all
from lorag.finetune.tasks import TaskSpec

logger = logging.getLogger(__name__)

# Test examples per contender: as many as the gate needs to decide on the evidence (fewer and it promotes only a
# clearly better adapter). The cap bounds the run: menu-tagging tags 30 of its 154 test items through the tagger,
# each contender after calibrating on 30 validation items (calibrating on 60, both took 27 min on 2 busy CPU
# cores); support's test split holds only 17
# questions (16 answerable) of 66, so it evaluates them all and its gate says so. The nightly job evaluates on the
# whole test split.
EVAL_EXAMPLES = MIN_EXAMPLES
STEPS = 24
# Few small steps at a high rate, on a schedule planned for those steps: a time budget alone cut a full run's
# schedule off while the rate was still warming up, and the demo adapters had learnt nothing.
TRAINING: dict[str, Any] = {"max_steps": STEPS, "batch_tokens": 1024, "learning_rate": 1e-3, "warmup_ratio": 0.1}


def missing(stack: Stack, tasks: list[TaskSpec]) -> list[TaskSpec]:
    """The tasks with no adapter in service."""
    have = registry.active(stack.sessions)
    return [task for task in tasks if task.name not in have]


def train_first(stack: Stack, tasks: list[TaskSpec], *, progress: bool) -> list[Outcome]:
    """Train, evaluate and gate a short first adapter for each task in `tasks`."""
    training = {**TRAINING, "time_budget_s": stack.settings.finetune.demo_budget_s}
    return run_all(stack, tasks, training=training, max_eval=EVAL_EXAMPLES, progress=progress)
