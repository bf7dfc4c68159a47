"""Lexical sparse vectors over the embedder's WordPiece token ids, for hybrid search.

Each text becomes `{token_id: saturated term frequency}`. The store's sparse vector `sparse` is created
with Qdrant's IDF modifier, which multiplies every query term by the collection's inverse document
frequency at search time, so `query · document` is BM25 with `b = 0`:

    score = Σ_t idf(t) · q(t) · tf(t)·(k1+1) / (tf(t)+k1)

Why no length normalisation (`b = 0`): chunks come out of the splitter with bounded, similar lengths, and
BM25's `b` needs the corpus' average length, which would change with every ingest and force rewriting
all stored vectors. Saturation keeps a term repeated ten times from outweighing two different query terms.

Example:
    >>> sparse_vectors([[101, 7592, 7592, 2088, 102]])
    [SparseVector(indices=[2088, 7592], values=[1.0, 1.375])]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

# BM25's usual k1; 1.2 saturates fast enough that repetition stops paying after a few occurrences.
DEFAULT_K1 = 1.2

# Ids below 999 in the bert-base-uncased vocabulary (which all-MiniLM-L6-v2 uses) are [PAD], [UNK],
# [CLS], [SEP], [MASK] and the [unusedN] slots: never a word of the text.
FIRST_WORD_ID = 999

# Single-character punctuation (! " # ... ~): matching on "." or "," only adds noise and huge postings.
PUNCTUATION_IDS = frozenset([*range(999, 1014), *range(1024, 1037), *range(1063, 1067)])

# A few English function words. IDF would give them near-zero weight anyway; dropping them keeps their
# posting lists (one entry per chunk) out of the sparse index, which is what makes sparse search cheap.
# "no" and "not" are kept on purpose: a negation changes what a passage answers.
STOPWORD_IDS = frozenset(
    [
        1037,  # a
        1996,  # the
        1997,  # of
        1998,  # and
        1999,  # in
        2000,  # to
        2001,  # was
        2003,  # is
        2004,  # as
        2005,  # for
        2006,  # on
        2007,  # with
        2008,  # that
        2009,  # it
        2011,  # by
        2012,  # at
        2013,  # from
        2019,  # an
        2020,  # were
        2021,  # but
        2022,  # be
        2023,  # this
        2024,  # are
        2030,  # or
        2031,  # have
        2038,  # has
        2049,  # its
        2097,  # will
    ]
)

DROPPED_IDS = PUNCTUATION_IDS | STOPWORD_IDS


@dataclass(frozen=True)
class SparseVector:
    """Sorted, unique `indices` (token ids) with one positive weight each."""

    indices: list[int]
    values: list[float]


def saturate(tf: int, k1: float = DEFAULT_K1) -> float:
    """BM25's term-frequency saturation: 1 for one occurrence, tending to `k1 + 1`."""
    return tf * (k1 + 1.0) / (tf + k1)


def sparse_vector(token_ids: Sequence[int], k1: float = DEFAULT_K1) -> SparseVector:
    """One text's token ids → its lexical vector; special tokens, punctuation and stopwords dropped."""
    counts = Counter(t for t in token_ids if t >= FIRST_WORD_ID and t not in DROPPED_IDS)
    indices = sorted(counts)
    return SparseVector(indices=indices, values=[saturate(counts[t], k1) for t in indices])


def sparse_vectors(token_id_lists: Sequence[Sequence[int]], k1: float = DEFAULT_K1) -> list[SparseVector]:
    """Token ids per text (as the WordPiece tokenizer returns them) → one `SparseVector` per text.

    Used the same way for chunks and for queries. A text with only dropped tokens gives an empty vector,
    which matches nothing in sparse search.
    """
    return [sparse_vector(ids, k1) for ids in token_id_lists]
