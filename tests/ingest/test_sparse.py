"""Unit tests for the lexical sparse vectors (no model, no store; the embedder's tokenizer only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from lorag.core.models import resolve
from lorag.ingest.sparse import STOPWORDS, SparseEncoder, SparseVector, dropped_ids, saturate

CLS, SEP, PAD, UNK = 101, 102, 0, 100
HELLO, WORLD, THE, PERIOD = 7592, 2088, 1996, 1012


@pytest.fixture(scope="module")
def tokenizer():  # noqa: ANN201
    return AutoTokenizer.from_pretrained(resolve("packaged:all-minilm-l6-v2", Path(".")).location)


@pytest.fixture(scope="module")
def encoder(tokenizer) -> SparseEncoder:  # noqa: ANN001
    return SparseEncoder.for_tokenizer(tokenizer)


def sparse_vector(encoder: SparseEncoder, ids: list[int], k1: float | None = None) -> SparseVector:
    return (encoder if k1 is None else SparseEncoder(encoder.dropped, k1)).vector(ids)


def test_one_vector_per_text_in_order(encoder: SparseEncoder) -> None:
    out = encoder.vectors([[HELLO], [WORLD], []])
    assert [v.indices for v in out] == [[HELLO], [WORLD], []]


def test_indices_sorted_unique_and_values_saturated(encoder: SparseEncoder) -> None:
    v = sparse_vector(encoder, [WORLD, HELLO, WORLD, WORLD, HELLO])
    assert v.indices == [WORLD, HELLO]
    assert v.values == [pytest.approx(saturate(3)), pytest.approx(saturate(2))]


def test_saturation_starts_at_one_and_stays_below_k1_plus_one() -> None:
    assert saturate(1) == pytest.approx(1.0)
    assert saturate(2) == pytest.approx(2 * 2.2 / 3.2)
    assert saturate(1000) < 2.2
    assert saturate(1) < saturate(2) < saturate(3)


def test_special_tokens_punctuation_and_stopwords_are_dropped(encoder: SparseEncoder) -> None:
    v = sparse_vector(encoder, [CLS, PAD, UNK, THE, HELLO, PERIOD, SEP])
    assert v == SparseVector(indices=[HELLO], values=[1.0])


def test_only_dropped_tokens_give_an_empty_vector(encoder: SparseEncoder) -> None:
    assert sparse_vector(encoder, [CLS, THE, PERIOD, SEP]) == SparseVector(indices=[], values=[])


def test_k1_changes_how_fast_repetition_saturates(encoder: SparseEncoder) -> None:
    low, high = sparse_vector(encoder, [HELLO] * 4, k1=0.5), sparse_vector(encoder, [HELLO] * 4, k1=5.0)
    assert low.values[0] < high.values[0]


def test_accepts_any_sequence_of_ints(encoder: SparseEncoder) -> None:
    assert encoder.vectors(([HELLO, HELLO],))[0].values == [pytest.approx(saturate(2))]


def test_dropped_ids_match_the_embedders_vocabulary(tokenizer) -> None:  # noqa: ANN001
    vocab = {token_id: token for token, token_id in tokenizer.get_vocab().items()}
    dropped = dropped_ids(tokenizer)
    assert all(vocab[i].startswith("[") for i in range(999)) and set(range(999)) <= dropped
    words = {vocab[i].removeprefix("##") for i in dropped if i >= 999}
    assert all(len(word) == 1 and not word.isalnum() or word in STOPWORDS for word in words)
    assert {vocab[i] for i in dropped} >= {"the", "a", "of", "and", "is", ".", ",", "?"}
    assert "not" not in {vocab[i] for i in dropped} and "no" not in {vocab[i] for i in dropped}


def test_any_tokenizer_gives_its_own_dropped_ids() -> None:
    class Bpe:  # a byte-level BPE vocabulary: words start with "Ġ", specials look like <|...|>
        all_special_ids = [0]

        def get_vocab(self) -> dict[str, int]:
            return {"<|endoftext|>": 0, "ĠThe": 1, "the": 2, "Ġrefund": 3, ".": 4, "Ġ.": 5, "Ġnot": 6, "<extra_1>": 7}

    assert dropped_ids(Bpe()) == {0, 1, 2, 4, 5, 7}
