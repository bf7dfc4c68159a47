"""A linear probe: per field, a regularised logistic regression on the labelled items' features, fitted in seconds.

    item text → [the embedder's vector, the words and number shapes it contains (, the vector of its name alone)
              (, the spelling of its name)] → per single field a softmax over its values, per value of a multi field
              a yes/no logistic → a `Distribution`, like the model's and the kNN vote's

The embedder's vector says what the item is like; the words say what is in it ("chicken", "paneer", "soy sauce"),
which a nearest-neighbour vote blurs: a chicken salad's neighbours are vegetarian salads. The number shapes
(`shapes`: "(4)" and "(6)" are both "(0)", "330ml" is "0ml") say how it is sold whatever the number. The name is the
text before its first dash or colon (`name`); its own vector says what the item is called without the description
drowning it, and its spelling (character 3- to 5-grams) says where a name comes from when the word itself was never
labelled ("Tagliatelle" and "Pappardelle" share "elle>"). Whether a field uses either is chosen per field by
cross-validation, as its regularisation is: on the sample menu both were chosen for cuisine only, and on the USDA
food groups both for the group (bench/probe.py). The probe holds no knowledge of its own, so it serves any taxonomy
with labelled items, and with few of them the tagger falls back on the kNN vote (MIN_ITEMS).

The regularisation of each field is chosen by cross-validated log-loss over the labelled items (L2_GRID), each fit
run to its optimum by L-BFGS. `cross_fitted` gives every labelled item a probability from a probe that did not see
it: what the precision floors are fitted on, so a floor rests on every labelled item rather than on the few the
model is scored on. Those cross-fitted scores also set each head's temperature (the divisor of its scores that
minimises their log-loss), so a probability of 0.7 is right about 70% of the time on items the probe did not see,
not only on those it did.

Measured (bench/probe.py, test splits; docs/reports/probe-*.json): against 400 plain gradient steps, the penalty
grid 1e-4..1e-2, the words alone and no name vector, the sample menu's cuisine went from 0.721 to 0.740, dish type
from 0.727 to 0.714, dietary from 0.617 to 0.604 and spice level stayed at 0.773 (154 items: one item is 0.0065);
cross-validated on the training items, every field but spice level gained (cuisine 0.648 to 0.711). The USDA food
group went from 0.867 to 0.910. The fit took 24.7 s on the menu and 106.5 s on USDA against 47.3 s and 78.4 s before,
on a shared 2-core machine under a heavier load (5.8 against 3.5); with cached vectors, back to back, the menu's fit
took half the time of the gradient steps'.

>>> probe = LinearProbe.fit(embedder, taxonomy, examples)  # doctest: +SKIP
>>> probe.distributions(["Chicken tikka masala"])[0]["dietary"]["vegetarian"]  # doctest: +SKIP
0.03
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lorag.finetune.tasks import Taxonomy
from lorag.tagging.confidence import Distribution, as_sets, field_specs

MIN_ITEMS = 20  # fewer labelled items than this: no probe (the kNN vote alone)
MIN_WORD_ITEMS = 2  # a word (or a spelling n-gram) is a feature when at least this many labelled items contain it
MAX_GRAMS = 4000  # the most frequent spelling n-grams kept: bounds the fit on a large catalogue
GRAM_SIZES = (3, 4, 5)
L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2)  # tried per field by cross-validation
FOLDS = 5
MAX_STEPS, TOLERANCE, MEMORY = 500, 1e-6, 10  # L-BFGS to the optimum: steps, gradient size, pairs remembered
TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 41))  # tried per head on the cross-fitted scores

_WORD = re.compile(r"[^\W\d_]+")
_NAME_END = re.compile(r"\s[—–-]\s|:\s")  # "Tonkotsu Ramen — pork broth, ...", "Cheese: blue"
_NUMBER = re.compile(r"[^\s,;]*\d[^\s,;]*")


class Embeds(Protocol):
    def embed_batch(self, texts: Sequence[str]) -> np.ndarray: ...


def words(text: str) -> set[str]:
    """Lower-cased words, a plural's final s dropped ("prawns" and "prawn" are one feature).

    >>> sorted(words("King prawns, wok-fried with garlic & soy sauce (GF)"))
    ['fried', 'garlic', 'gf', 'king', 'prawn', 'sauce', 'soy', 'with', 'wok']
    """
    return {word[:-1] if len(word) > 3 and word.endswith("s") else word for word in _WORD.findall(text.lower())}


def shapes(text: str) -> set[str]:
    """The tokens with digits in them, each run of digits written 0: a count, a size or a weight, whatever its
    value.

    >>> sorted(shapes("Root Beer 355ml, Gyoza (6), 2 sauces"))
    ['(0)', '0', '0ml']
    """
    return {re.sub(r"\d+", "0", token) for token in _NUMBER.findall(text.lower())}


def name(text: str) -> str:
    """The item's name: its text before the first dash or colon (all of it when there is none)."""
    return _NAME_END.split(text, maxsplit=1)[0]


def spelling(text: str) -> set[str]:
    """Character n-grams (GRAM_SIZES) of the words of the item's name: the text before its first dash or colon,
    each word marked at both ends.

    >>> sorted(g for g in spelling("Gyoza — pan-fried dumplings") if len(g) == 3)
    ['<gy', 'gyo', 'oza', 'yoz', 'za>']
    """
    out = set()
    for word in _WORD.findall(name(text.lower())):
        marked = f"<{word}>"
        out.update(marked[start:start + size] for size in GRAM_SIZES for start in range(len(marked) - size + 1))
    return out


Blocks = tuple[bool, bool]  # (spelled, named): the optional blocks of a head's features


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
    named: bool = False  # its features include the embedder's vector of the name alone (`name`)


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
        counts = Counter(token for text in texts for token in words(text) | shapes(text))
        vocabulary = sorted(token for token, count in counts.items() if count >= MIN_WORD_ITEMS)
        spelled = Counter(gram for text in texts for gram in spelling(text))
        grams = sorted(gram for gram, count in spelled.most_common(MAX_GRAMS) if count >= MIN_WORD_ITEMS)
        probe = cls(embedder, taxonomy, vocabulary, [], texts, outputs, grams)
        offered = [(spell, named) for spell in ((False, True) if grams else (False,)) for named in (False, True)]
        options = probe._options(texts, offered, row_space=True)
        folds = _folds(len(texts))
        heads, honest = [], []
        for field, value, classes, targets in _targets(taxonomy, outputs):
            tried = {(blocks, l2): scores for blocks in options
                     for l2, scores in _cross_path(options[blocks][0], targets, folds, L2_GRID).items()}
            blocks, l2 = min(tried, key=lambda key, tried=tried, targets=targets: _loss(tried[key], targets))
            scores = tried[(blocks, l2)]
            temperature = min(TEMPERATURES, key=lambda t, scores=scores, targets=targets: _loss(scores / t, targets))
            coordinates, basis = options[blocks]
            weights = _train(coordinates, targets, l2)
            heads.append(Head(field, value, classes, weights if basis is None else basis.T @ weights, l2,
                              float(temperature), *blocks))
            honest.append(scores)
        probe.heads, probe._honest = heads, honest
        return probe

    def features(self, texts: Sequence[str], *, spelled: bool = False, named: bool = False,
                 plain: np.ndarray | None = None) -> np.ndarray:
        """[unit embedding, indicators of its words and number shapes scaled to unit length, 1]; with `named` the
        unit embedding of the name alone, with `spelled` the name's spelling n-grams scaled to unit length, both
        before the 1: each block weighs alike. `plain`: the features without either, if computed."""
        if plain is None:
            plain = np.hstack([self._embed(texts), _indicators([words(text) | shapes(text) for text in texts],
                                                               self._column), np.ones((len(texts), 1))])
        extra = []
        if named:
            vectors = plain[:, :-1 - len(self.vocabulary)].copy()  # a name that is the whole text: its vector
            rows = [row for row, text in enumerate(texts) if name(text) != text]
            if rows:
                vectors[rows] = self._embed([name(texts[row]) for row in rows])
            extra.append(vectors)
        if spelled:
            extra.append(_indicators([spelling(text) for text in texts], self._gram_column))
        return np.hstack([plain[:, :-1], *extra, plain[:, -1:]]) if extra else plain

    def distributions(self, texts: Sequence[str]) -> list[Distribution]:
        if not texts:
            return []
        options = self._options(texts, {(head.spelled, head.named) for head in self.heads})
        return _assemble(self.taxonomy, self.heads,
                         [options[(head.spelled, head.named)][0] @ head.weights for head in self.heads])

    def cross_fitted(self) -> list[Distribution]:
        """Per labelled item (in fitting order), the distribution of a probe fitted on the other folds: an honest
        probability for every item, to fit thresholds on."""
        if self._honest is None:  # a probe built, not fitted: compute them now
            options = self._options(self.texts, {(head.spelled, head.named) for head in self.heads})
            targets = {(field, value): t for field, value, _classes, t in _targets(self.taxonomy, self.outputs)}
            self._honest = [_cross_path(options[(head.spelled, head.named)][0], targets[(head.field, head.value)],
                                        _folds(len(self.texts)), (head.l2,))[head.l2] for head in self.heads]
        return _assemble(self.taxonomy, self.heads, self._honest)

    def _options(self, texts: Sequence[str], offered: Iterable[Blocks], *,
                 row_space: bool = False) -> dict[Blocks, tuple[np.ndarray, np.ndarray | None]]:
        """Per choice of blocks, the texts' features (and no basis), or with `row_space` their `_row_space`."""
        plain = self.features(texts)
        options = {}
        for spelled, named in offered:
            features = self.features(texts, spelled=spelled, named=named, plain=plain)
            options[(spelled, named)] = _row_space(features) if row_space else (features, None)
        return options

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.asarray(self.embedder.embed_batch(list(texts)), dtype=np.float64)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


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

    The penalised optimum lies in the span of the rows it is fitted on (a part of the weights orthogonal to every
    row changes no score and only adds to the penalty), so fitting on the coordinates reaches the same scores:
    `basis.T @ weights` are the weights of the features. With 270 items and 5,000 features (words and spelling
    n-grams) each step multiplies 270 columns instead of 5,000."""
    if features.shape[0] >= features.shape[1]:
        return features, None
    _u, _s, basis = np.linalg.svd(features, full_matrices=False)
    return features @ basis.T, basis


def _train(features: np.ndarray, targets: np.ndarray, l2: float, start: np.ndarray | None = None) -> np.ndarray:
    """Multinomial logistic regression with an L2 penalty (the bias column too: it is small and harmless), fitted
    to its optimum by L-BFGS from `start` (zero weights if None).

    Full-batch gradient descent (400 steps) stopped well short of it at the small penalties: on the sample menu's
    cuisine at 1e-4 it left the training loss at 0.20 where the optimum is 0.13, which acted as a second, unchosen
    regulariser, and the penalty chosen sat at the grid's lower edge for six heads of seven."""
    classes = targets.shape[1]

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        weights = flat.reshape(-1, classes)
        scores = features @ weights
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        total = exp.sum(axis=1, keepdims=True)
        loss = (np.log(total).sum() - (scores * targets).sum()) / len(features) + l2 / 2 * float(flat @ flat)
        gradient = features.T @ (exp / total - targets) / len(features) + l2 * weights
        return loss, gradient.ravel()

    begin = np.zeros(features.shape[1] * classes) if start is None else start.ravel()
    return _minimise(objective, begin).reshape(-1, classes)


def _minimise(objective: Callable[[np.ndarray], tuple[float, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """L-BFGS (the two-loop recursion over the last MEMORY steps) with a backtracking line search, in numpy: scipy's
    L-BFGS-B calls its own BLAS between numpy's, and on a busy 2-core machine the two thread pools made the fit 3
    times slower than this."""
    value, gradient = objective(x)
    steps: list[tuple[np.ndarray, np.ndarray]] = []  # (step, change of gradient), oldest first
    for _ in range(MAX_STEPS):
        if np.abs(gradient).max() < TOLERANCE:
            break
        direction, alphas = -gradient, []
        for step, change in reversed(steps):
            alphas.append(step @ direction / (change @ step))
            direction = direction - alphas[-1] * change
        if steps:
            direction *= steps[-1][0] @ steps[-1][1] / (steps[-1][1] @ steps[-1][1])
        for (step, change), alpha in zip(steps, reversed(alphas), strict=True):
            direction = direction + (alpha - change @ direction / (change @ step)) * step
        rate = 1.0 if steps else min(1.0, 1.0 / np.abs(gradient).sum())  # a first step no longer than 1 in all
        while True:
            new_value, new_gradient = objective(x + rate * direction)
            if new_value <= value + 1e-4 * rate * (gradient @ direction) or rate < 1e-10:
                break
            rate /= 2
        step, change = rate * direction, new_gradient - gradient
        if step @ change > 1e-12:  # curvature to learn from (always, but for rounding: the loss is convex)
            steps = [*steps[-MEMORY + 1:], (step, change)]
        x, value, gradient = x + step, new_value, new_gradient
    return x


def _cross_path(features: np.ndarray, targets: np.ndarray, folds: Sequence[np.ndarray],
                grid: Sequence[float]) -> dict[float, np.ndarray]:
    """Per penalty of `grid`, every item's scores from weights trained on the other folds; in each fold the fits
    run from the largest penalty down, each starting where the last ended (a nearby optimum: fewer steps)."""
    path = {l2: np.zeros(targets.shape) for l2 in grid}
    for fold in folds:
        train, weights = np.setdiff1d(np.arange(len(features)), fold), None
        for l2 in sorted(grid, reverse=True):
            weights = _train(features[train], targets[train], l2, weights)
            path[l2][fold] = features[fold] @ weights
    return path


def _loss(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean log-loss of the softmax of `scores`."""
    return -float(np.log(np.maximum((_softmax(scores) * targets).sum(axis=1), 1e-9)).mean())


def _folds(n: int) -> list[np.ndarray]:
    """FOLDS interleaved folds of the items (their order is the data's, already shuffled by the split's seed)."""
    return [np.arange(start, n, FOLDS) for start in range(min(FOLDS, n))]
