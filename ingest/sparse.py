"""Lexical sparse vectors over the embedder's WordPiece token ids, for hybrid search.

Each text becomes `{token_id: saturated term frequency}`. The store's sparse vector `sparse` is created
with Qdrant's IDF modifier, which multiplies every query term by the collection's inverse document
frequency at search time, so `query · document` is BM25 with `b = 0`:

    score = Σ_t idf(t) · q(t) · tf(t)·(k1+1) / (tf(t)+k1)

Why no length normalisation (`b = 0`): chunks come out of the splitter with bounded, similar lengths, and
BM25's `b` needs the corpus' average length, which would change with every ingest and force rewriting
all stored vectors. Saturation keeps a term repeated ten times from outweighing two different query terms.

Which token ids never count (special tokens, placeholders such as `[unused7]`, single punctuation marks and a
few function words) is read from the configured embedder's own tokenizer, so any vocabulary works:

    >>> class Tiny:  # a WordPiece vocabulary in miniature
    ...     all_special_ids = [0, 1]
    ...     def get_vocab(self):
    ...         return {"[PAD]": 0, "[CLS]": 1, "[unused0]": 2, "the": 3, ".": 4, "hello": 5, "world": 6, "##s": 7}
    >>> encoder = SparseEncoder.for_tokenizer(Tiny())
    >>> sorted(encoder.dropped)
    [0, 1, 2, 3, 4]
    >>> encoder.vectors([[1, 5, 5, 6, 7, 3, 4]])  # [CLS] hello hello world ##s the .
    [SparseVector(indices=[5, 6, 7], values=[1.375, 1.0, 1.0])]
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

# BM25's usual k1; 1.2 saturates fast enough that repetition stops paying after a few occurrences.
DEFAULT_K1 = 1.2

# A few English function words. IDF would give them near-zero weight anyway; dropping them keeps their
# posting lists (one entry per chunk) out of the sparse index, which is what makes sparse search cheap.
# "no" and "not" are kept on purpose: a negation changes what a passage answers.
STOPWORDS = frozenset(
    [
        "a", "the", "of", "and", "in", "to", "was", "is", "as", "for", "on", "with", "that", "it", "by", "at", "from",
        "an", "were", "but", "be", "this", "are", "or", "have", "has", "its", "will",
    ]
)

# How tokenizers mark a token that starts a word (BPE "Ġ", SentencePiece "▁") or continues one (WordPiece "##").
WORD_START = ("Ġ", "▁")
CONTINUATION = "##"
# Reserved slots that are never produced from text: BERT's [unused7], Gemma's <unused7>, <extra_id_3>, ...
PLACEHOLDER = re.compile(r"\[[^\]\s]+\]|<[^>\s]+>")


class Vocabulary(Protocol):
    """What a Hugging Face tokenizer offers that this module reads."""

    all_special_ids: list[int]

    def get_vocab(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class SparseVector:
    """Sorted, unique `indices` (token ids) with one positive weight each."""

    indices: list[int]
    values: list[float]


def saturate(tf: int, k1: float = DEFAULT_K1) -> float:
    """BM25's term-frequency saturation: 1 for one occurrence, tending to `k1 + 1`."""
    return tf * (k1 + 1.0) / (tf + k1)


def dropped_ids(tokenizer: Vocabulary) -> frozenset[int]:
    """The ids of a vocabulary that never become a term: special tokens, placeholders, punctuation, stopwords."""
    dropped = set(tokenizer.all_special_ids)
    for token, token_id in tokenizer.get_vocab().items():
        if PLACEHOLDER.fullmatch(token) or _is_punctuation(token) or _is_stopword(token):
            dropped.add(token_id)
    return frozenset(dropped)


def _bare(token: str) -> str:
    for marker in (*WORD_START, CONTINUATION):
        if token.startswith(marker):
            return token[len(marker):]
    return token


def _is_punctuation(token: str) -> bool:
    bare = _bare(token)
    return bare == "" or (len(bare) == 1 and bare in string.punctuation)


def _is_stopword(token: str) -> bool:
    return not token.startswith(CONTINUATION) and _bare(token).lower() in STOPWORDS


class SparseEncoder:
    """Token ids of one tokenizer → lexical sparse vectors, the same way for chunks and for queries."""

    def __init__(self, dropped: Iterable[int], k1: float = DEFAULT_K1) -> None:
        self.dropped = frozenset(dropped)
        self.k1 = k1

    @classmethod
    def for_tokenizer(cls, tokenizer: Vocabulary, k1: float = DEFAULT_K1) -> SparseEncoder:
        return cls(dropped_ids(tokenizer), k1)

    def vector(self, token_ids: Sequence[int]) -> SparseVector:
        """One text's token ids → its lexical vector; dropped ids do not count."""
        counts = Counter(t for t in token_ids if t not in self.dropped)
        indices = sorted(counts)
        return SparseVector(indices=indices, values=[saturate(counts[t], self.k1) for t in indices])

    def vectors(self, token_id_lists: Sequence[Sequence[int]]) -> list[SparseVector]:
        """One `SparseVector` per text. A text with only dropped tokens gives an empty vector, which matches
        nothing in sparse search."""
        return [self.vector(ids) for ids in token_id_lists]
