"""The examples in the docstrings of pure modules (no model, no store, no network) run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

PURE_MODULES = [
    "lorag.core.audience",
    "lorag.core.errors",
    "lorag.core.models",
    "lorag.core.settings",
    "lorag.ingest.document",
    "lorag.ingest.sparse",
    "lorag.retrieval.answer",
    "lorag.retrieval.citations",
    "lorag.retrieval.prompt",
    "lorag.retrieval.sentences",
    "lorag.retrieval.types",
    "lorag.finetune.examples",
    "lorag.finetune.prompts",
    "lorag.finetune.status",
    "lorag.finetune.synth",
    "lorag.tagging.evaluate",
    "lorag.app.http.routes.answers",
    "lorag.finetune.schedule",
    "lorag.app.slack",
    "lorag.tagging.checkpoint",
    "lorag.tagging.probe",
]


@pytest.mark.parametrize("name", PURE_MODULES)
def test_the_examples_in_a_pure_modules_docstrings_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0, f"{name} has no example left to run"
