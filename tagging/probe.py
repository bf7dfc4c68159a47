"""A linear probe: per field, a regularised logistic regression on the labelled items' features, fitted in seconds.

    item text → [the embedder's vector, the words it contains (, the spelling of its name)] → per single field a
              softmax over its values, per value of a multi field a yes/no logistic → a `Distribution`, like the
              model's and the kNN vote's

The embedder's vector says what the item is like; the words say what is in it ("chicken", "paneer", "soy sauce"),
which a nearest-neighbour vote blurs: a chicken salad's neighbours are vegetarian salads. The spelling of the name
(character 3- to 5-grams of the text before its first dash or colon) says where a name comes from when the word
itself was never labelled ("Tagliatelle" and "Pappardelle" share "elle>"). Whether a field uses the spelling is
chosen per field by cross-validation, as its regularisation is: on the sample menu it was chosen for cuisine only,
and on the USDA food groups for the group (bench/probe.py). The probe holds no knowledge of its own, so it serves
any taxonomy with labelled items, and with few of them the tagger falls back on the kNN vote (MIN_ITEMS).

The regularisation of each field is chosen by cross-validated log-loss over the labelled items (L2_GRID), and
`cross_fitted` gives every labelled item a probability from a probe that did not see it: what the precision floors
are fitted on, so a floor rests on every labelled item rather than on the few the model is scored on. Those
cross-fitted scores also set each head's temperature (the divisor of its scores that minimises their log-loss), so
a probability of 0.7 is right about 70% of the time on items the probe did not see, not only on those it did.

>>> probe = LinearProbe.fit(embedder, taxonomy, examples)  # doctest: +SKIP
>>> probe.distributions(["Chicken tikka masala"])[0]["dietary"]["vegetarian"]  # doctest: +SKIP
0.03
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lorag.finetune.tasks import Taxonomy
from lorag.tagging.confidence import Distribution, as_sets, field_specs

MIN_ITEMS = 20  # fewer labelled items than this: no probe (the kNN vote alone)
MIN_WORD_ITEMS = 2  # a word (or a spelling n-gram) is a feature when at least this many labelled items contain it
MAX_GRAMS = 4000  # the most frequent spelling n-grams kept: bounds the fit on a large catalogue
GRAM_SIZES = (3, 4, 5)
L2_GRID = (1e-4, 1e-3, 1e-2)  # tried per field by cross-validation
FOLDS = 5
STEPS, RATE = 400, 2.0  # full-batch gradient descent: the problem is small and convex
TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 41))  # tried per head on the cross-fitted scores

_WORD = re.compile(r"[^\W\d_]+")
_NAME_END = re.compile(r"\s[—–-]\s|:\s")  # "Tonkotsu Ramen — pork broth, ...", "Cheese: blue"


class Embeds(Protocol):
    def embed_batch(self, texts: Sequence[str]) -> np.ndarray: ...


def words(text: str) -> set[str]:
    """Lower-cased words, a plural's final s dropped ("prawns" and "prawn" are one feature).

    >>> sorted(words("King prawns, wok-fried with garlic & soy sauce (GF)"))
    ['fried', 'garlic', 'gf', 'king', 'prawn', 'sauce', 'soy', 'with', 'wok']
    """
    return {word[:-1] if len(word) > 3 and word.endswith("s") else word for word in _WORD.findall(text.lower())}


def spelling(text: str) -> set[str]:
    """Character n-grams (GRAM_SIZES) of the words of the item's name: the text before its first dash or colon,
    each word marked at both ends.

    >>> sorted(g for g in spelling("Gyoza — pan-fried dumplings") if len(g) == 3)
    ['<gy', 'gyo', 'oza', 'yoz', 'za>']
    """
    name = _NAME_END.split(text.lower(), maxsplit=1)[0]
    out = set()
    for word in _WORD.findall(name):
        marked = f"<{word}>"
        out.update(marked[start:start + size] for size in GRAM_SIZES for start in range(len(marked) - size + 1))
    return out


@dataclass(frozen=True)
class Head:
    """One decision: a softmax over `classes` (a single field's values, or no/yes for one value of a multi field)."""

    field: str
    value: str | None  # the multi field's value it decides; None for a single field
    classes: tuple[str, ...]
    weights: np.ndarray  # features × classes
    l2: float
    temperature: float = 1.0  # scores are divided by it before the softmax
    spelled: bool = False  # its features include the name's spelling (`spelling`)


class LinearProbe:
    """Fitted on labelled (text, output) pairs; `distributions` for new texts, `cross_fitted` for its own."""

    def __init__(self, embedder: Embeds, taxonomy: Taxonomy, vocabulary: Sequence[str], heads: Sequence[Head],
                 texts: Sequence[str], outputs: Sequence[object], grams: Sequence[str] = ()) -> None:
        self.embedder, self.taxonomy = embedder, taxonomy
        self.vocabulary, self.grams = list(vocabulary), list(grams)
        self._column = {word: index for index, word in enumerate(self.vocabulary)}
        self._gram_column = {gram: index for index, gram in enumerate(self.grams)}
        self.heads = list(heads)
        self.texts, self.outputs = list(texts), list(outputs)
        self._honest: list[np.ndarray] | None = None  # per head, the cross-fitted scores (items × classes)

    @classmethod
    def fit(cls, embedder: Embeds, taxonomy: Taxonomy, examples: Sequence[tuple[str, object]]) -> LinearProbe | None:
        """None with fewer than MIN_ITEMS labelled items: too few for a probe to beat the kNN vote."""
        if len(examples) < MIN_ITEMS:
            return None
        texts = [text for text, _output in examples]
        outputs = [output for _text, output in examples]
        counts = Counter(word for text in texts for word in words(text))
        vocabulary = sorted(word for word, count in counts.items() if count >= MIN_WORD_ITEMS)
        spelled = Counter(gram for text in texts for gram in spelling(text))
        grams = sorted(gram for gram, count in spelled.most_common(MAX_GRAMS) if count >= MIN_WORD_ITEMS)
        probe = cls(embedder, taxonomy, vocabulary, [], texts, outputs, grams)
        plain = probe.features(texts)
        options = {False: _row_space(plain)}
        if grams:  # no n-gram repeats across items: nothing to offer
            options[True] = _row_space(probe.features(texts, spelled=True, plain=plain))
        folds = _folds(len(texts))
        heads, honest = [], []
        for name, value, classes, targets in _targets(taxonomy, outputs):
            tried = {(spell, l2): _cross_scores(options[spell][0], targets, folds, l2)
                     for spell in options for l2 in L2_GRID}
            spell, l2 = min(tried, key=lambda key, tried=tried, targets=targets: _loss(tried[key], targets))
            scores = tried[(spell, l2)]
            temperature = min(TEMPERATURES, key=lambda t, scores=scores, targets=targets: _loss(scores / t, targets))
            coordinates, basis = options[spell]
            weights = _train(coordinates, targets, l2)
            heads.append(Head(name, value, classes, weights if basis is None else basis.T @ weights, l2,
                              float(temperature), spell))
            honest.append(scores)
        probe.heads, probe._honest = heads, honest
        return probe

    def features(self, texts: Sequence[str], *, spelled: bool = False, plain: np.ndarray | None = None) -> np.ndarray:
        """[unit embedding, word indicators scaled to unit length, 1], and with `spelled` the name's spelling
        n-grams scaled alike before the 1: each block weighs alike. `plain`: the features without, if computed."""
        if plain is None:
            vectors = np.asarray(self.embedder.embed_batch(list(texts)), dtype=np.float64)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            plain = np.hstack([vectors, _indicators([words(text) for text in texts], self._column),
                               np.ones((len(texts), 1))])
        if not spelled:
            return plain
        spelling_block = _indicators([spelling(text) for text in texts], self._gram_column)
        return np.hstack([plain[:, :-1], spelling_block, plain[:, -1:]])

    def distributions(self, texts: Sequence[str]) -> list[Distribution]:
        if not texts:
            return []
        plain = self.features(texts)
        full = self.features(texts, spelled=True, plain=plain) if any(head.spelled for head in self.heads) else plain
        return _assemble(self.taxonomy, self.heads,
                         [(full if head.spelled else plain) @ head.weights for head in self.heads])

    def cross_fitted(self) -> list[Distribution]:
        """Per labelled item (in fitting order), the distribution of a probe fitted on the other folds: an honest
        probability for every item, to fit thresholds on."""
        if self._honest is None:  # a probe built, not fitted: compute them now
            plain = self.features(self.texts)
            options = {False: plain}
            if any(head.spelled for head in self.heads):
                options[True] = self.features(self.texts, spelled=True, plain=plain)
            targets = {(name, value): t for name, value, _classes, t in _targets(self.taxonomy, self.outputs)}
            self._honest = [_cross_scores(options[head.spelled], targets[(head.field, head.value)],
                                          _folds(len(self.texts)), head.l2) for head in self.heads]
        return _assemble(self.taxonomy, self.heads, self._honest)


def _indicators(sets: Sequence[set[str]], columns: dict[str, int]) -> np.ndarray:
    """One row per item: 1 in the column of each of its features that has one, the row scaled to unit length."""
    bag = np.zeros((len(sets), len(columns)))
    for row, present in enumerate(sets):
        for feature in present:
            if feature in columns:
                bag[row, columns[feature]] = 1.0
    return bag / np.maximum(np.sqrt(bag.sum(axis=1, keepdims=True)), 1.0)


def _targets(taxonomy: Taxonomy, outputs: Sequence[object]) -> list[tuple[str, str | None, tuple[str, ...],
                                                                           np.ndarray]]:
    """(field, value or None, classes, one-hot targets items × classes) per head."""
    sets = [as_sets(taxonomy, output) for output in outputs]
    heads = []
    for name, (multi, values) in field_specs(taxonomy).items():
        if multi:
            for value in values:
                yes = np.array([value in s[name] for s in sets], dtype=np.float64)
                heads.append((name, value, ("no", "yes"), np.stack([1 - yes, yes], axis=1)))
        else:
            targets = np.array([[value in s[name] for value in values] for s in sets], dtype=np.float64)
            heads.append((name, None, tuple(values), targets))
    return heads


def _assemble(taxonomy: Taxonomy, heads: Sequence[Head], scores: Sequence[np.ndarray]) -> list[Distribution]:
    """Distributions from each head's scores (items × classes), tempered."""
    out: list[Distribution] = [{} for _ in range(len(scores[0]))] if scores else []
    for head, z in zip(heads, scores, strict=True):
        probs = _softmax(z / head.temperature)
        for row, dist in enumerate(out):
            if head.value is None:
                dist[head.field] = {value: float(p) for value, p in zip(head.classes, probs[row], strict=True)}
            else:
                dist.setdefault(head.field, {})[head.value] = float(probs[row, 1])
    order = {name: values for name, (_multi, values) in field_specs(taxonomy).items()}
    return [{name: {value: dist[name][value] for value in order[name]} for name in order} for dist in out]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _row_space(features: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(the items' coordinates in an orthonormal basis of their row space, that basis), or (features, None) when
    there are no fewer features than items.

    Gradient descent from zero weights never leaves the span of the rows it is fitted on (every gradient is a
    combination of them, the L2 term included), so fitting on the coordinates takes the same steps to the same
    scores: `basis.T @ weights` are the weights of the features. With 270 items and 5,000 features (words and
    spelling n-grams) each step multiplies 270 columns instead of 5,000."""
    if features.shape[0] >= features.shape[1]:
        return features, None
    _u, _s, basis = np.linalg.svd(features, full_matrices=False)
    return features @ basis.T, basis


def _train(features: np.ndarray, targets: np.ndarray, l2: float) -> np.ndarray:
    """Multinomial logistic regression with an L2 penalty (the bias column too: it is small and harmless)."""
    weights = np.zeros((features.shape[1], targets.shape[1]))
    for _ in range(STEPS):
        gradient = features.T @ (_softmax(features @ weights) - targets) / len(features) + l2 * weights
        weights -= RATE * gradient
    return weights


def _cross_scores(features: np.ndarray, targets: np.ndarray, folds: Sequence[np.ndarray], l2: float) -> np.ndarray:
    """Every item's scores from weights trained on the other folds."""
    scores = np.zeros(targets.shape)
    for fold in folds:
        train = np.setdiff1d(np.arange(len(features)), fold)
        scores[fold] = features[fold] @ _train(features[train], targets[train], l2)
    return scores


def _loss(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean log-loss of the softmax of `scores`."""
    return -float(np.log(np.maximum((_softmax(scores) * targets).sum(axis=1), 1e-9)).mean())


def _folds(n: int) -> list[np.ndarray]:
    """FOLDS interleaved folds of the items (their order is the data's, already shuffled by the split's seed)."""
    return [np.arange(start, n, FOLDS) for start in range(min(FOLDS, n))]
