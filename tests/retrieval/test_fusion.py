"""Unit tests of reciprocal rank fusion (retrieval's, over the store's dense and sparse hits)."""

from __future__ import annotations

import pytest

from lorag.ingest.store import Hit
from lorag.retrieval.fusion import candidates, rrf


def test_rrf_sums_reciprocal_ranks_counted_from_zero() -> None:
    fused = rrf([[Hit("a", 9.0), Hit("b", 8.0)], [Hit("b", 1.0), Hit("c", 0.5)]], k=60)
    assert [h.id for h in fused] == ["b", "a", "c"]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 60)
    assert fused[1].score == pytest.approx(1 / 60)
    assert fused[2].score == pytest.approx(1 / 61)


def test_rrf_keeps_the_first_payload_and_honours_limit() -> None:
    fused = rrf([[Hit("a", 1.0, {"t": 1})], [Hit("a", 2.0, {"t": 2}), Hit("z", 1.0)]], k=1, limit=1)
    assert fused == [Hit("a", 1 / 1 + 1 / 1, {"t": 1})]


def test_rrf_of_nothing_is_empty() -> None:
    assert rrf([], k=60) == []
    assert rrf([[], []], k=60) == []


def test_candidates_is_four_times_the_limit_and_at_least_twenty() -> None:
    assert candidates(1) == 20
    assert candidates(8) == 32
