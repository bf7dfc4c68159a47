"""Reciprocal rank fusion of dense and sparse candidates: retrieval's own, done here and not in the store.

Why in Python and not in the engine (Qdrant's prefetch + RRF query): serving needs the dense cosines of the
candidates (the best one decides whether anything is relevant enough to answer from), which a fused query does not
return, so fusing in the engine would still need the dense search on its own. Measured side by side on the
embedded store (`bench/retrieval.py`, docs/reports/retrieval-fusion.json), the two ways rank identically (a test
asserted it while the engine's fusion existed) and take the same time within noise.
"""

from __future__ import annotations

from collections.abc import Sequence

from lorag.ingest.store import Hit

RRF_K = 60  # Qdrant's and the RRF paper's constant: a hit's rank matters less the deeper it is, never to zero


def candidates(limit: int) -> int:
    """How many hits each side of a hybrid search contributes to the fusion."""
    return max(limit * 4, 20)


def rrf(lists: Sequence[Sequence[Hit]], k: int = RRF_K, limit: int | None = None) -> list[Hit]:
    """Reciprocal rank fusion: score = Σ 1 / (k + rank), rank counted from 0, as in Qdrant's own fusion.

    A hit keeps the payload of its first appearance; ties keep first-appearance order.

    >>> [h.id for h in rrf([[Hit("a", 0.9), Hit("b", 0.8)], [Hit("b", 7.0)]], k=60)]
    ['b', 'a']
    """
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for hits in lists:
        for rank, hit in enumerate(hits):
            scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (k + rank)
            first.setdefault(hit.id, hit)
    ranked = sorted(scores, key=lambda i: scores[i], reverse=True)[:limit]
    return [Hit(i, scores[i], first[i].payload) for i in ranked]
