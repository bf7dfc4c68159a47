"""verify: keep only the sentences of a model's answer that the sources they cite actually support.

A 135M model cites loosely and sometimes invents, so every sentence is checked against each chunk it
cites: lexically (share of its content words found in the chunk) and, when the caller passes an
embedding similarity, semantically (cosine of the sentence and the chunk's best-matching passage).
Two hard rules cover what both measures are blind to: a number the sentence states must appear in
the cited chunk ("refunds take 30 days" scores high against "refunds take 5 days"), and the sentence
and its snippet must agree on negation ("gift cards can be refunded" shares every word of "gift cards
cannot be refunded", and MiniLM puts them at 0.91). This checks grounding, not entailment: a wrong
claim that reuses most of a passage's words can still pass.

What the user sees:
- A cited sentence is kept if at least one cited chunk supports it; only the supporting markers stay.
- An uncited sentence is removed, unless it has no content words at all ("Here is how:"), since
  then it makes no claim to check; it is kept only alongside at least one supported sentence.
- Markers are renumbered 1..m in order of first use (one number per chunk) and moved to the end of
  their sentence, so `[n]` in the text is always `citations[n - 1]`.
- If nothing supported survives, or any sentence of the model's answer is ABSTENTION (a model that says
  it cannot find the answer is not trusted for the rest), the answer is ABSTENTION with a human handoff.

>>> parse_markers("Refunds take 5 days [1]. Plus members get 10 [1, 3].")
[('Refunds take 5 days.', (1,)), ('Plus members get 10.', (1, 3))]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from ingest.chunk import SENTENCE
from retrieval.types import ABSTENTION, Citation, ScoredChunk, VerifiedAnswer

# Thresholds. Lexical 0.6: a supported sentence restates its chunk and shares most of its content words,
# while a wrong claim on the right topic shares the topic words; at 0.5 "gift cards can be swapped for
# cash" passed against "gift cards cannot be refunded" on "gift" and "card" alone. Rewordings that
# fall below are the semantic check's job. Semantic 0.65 (all-MiniLM-L6-v2 cosine, measured on
# support-doc pairs): paraphrases of a passage scored 0.70-0.84, a different claim on the same topic
# ("refunds are processed in Dublin" vs "refunds are available for 30 days") 0.57, unrelated
# sentences below 0.35; 0.65 sits between the first two.
LEXICAL_THRESHOLD = 0.6
SEMANTIC_THRESHOLD = 0.65

Similarity = Callable[[list[str], list[str]], list[float]]

MARKER = re.compile(r"\[\s*\d+(?:\s*,\s*\d+)*\s*\]")
MARKER_RUN = rf"(?:\s*{MARKER.pattern})*"
# A sentence ends at . ! or ? (maybe closed by a quote or bracket), plus any markers right after it.
SENTENCE_END = re.compile(rf"[.!?]+[\"'”’)]*{MARKER_RUN}(?=\s|\Z)")
LIST_PREFIX = re.compile(r"\s*(?:[-*•]|\d+[.)])\s+")
TRAILING_PUNCTUATION = re.compile(r"[.!?:;]+[\"'”’)]*\Z")
TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
NEGATIONS = frozenset({"not", "no", "never", "none", "nothing", "nobody", "neither", "nor"})

# Function words, dropped before measuring overlap. "no", "not", "never" and "yes" are missing on purpose:
# they carry the claim.
STOPWORDS = frozenset({
    "a", "an", "the", "and", "or", "but", "if", "then", "else", "of", "to", "in", "on", "at", "by", "for", "with",
    "from", "into", "onto", "about", "as", "than", "so", "too", "very", "is", "are", "was", "were", "be", "been",
    "being", "am", "do", "does", "did", "doing", "done", "have", "has", "had", "having", "will", "would", "shall",
    "should", "can", "could", "may", "might", "must", "i", "me", "my", "mine", "we", "us", "our", "ours", "you",
    "your", "yours", "he", "him", "his", "she", "her", "hers", "it", "its", "they", "them", "their", "theirs",
    "this", "that", "these", "those", "there", "here", "what", "which", "who", "whom", "whose", "when", "where",
    "why", "how", "any", "some", "all", "each", "every", "both", "either", "more", "most", "other", "such", "only",
    "own", "same", "just", "also", "again", "further", "once", "whether", "while", "because", "until", "via", "per",
    "please", "up", "down", "out", "over", "under", "off", "still", "even", "let"
})


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence of the answer: its text without markers or list bullet, and where it sat."""

    text: str
    markers: tuple[int, ...]
    prefix: str  # a list bullet ("- ", "2. ") kept for display, never checked
    new_line: bool  # first sentence of its line in the answer


@dataclass(frozen=True)
class Check:
    """How well one cited chunk supports one sentence; `start`/`end` locate the snippet in the chunk."""

    sentence: int
    marker: int
    chunk: ScoredChunk
    start: int
    end: int
    lexical: float
    semantic: float
    facts_match: bool  # same numbers as the chunk states, same negation as the snippet

    @property
    def support(self) -> float:
        return max(self.lexical, self.semantic)

    @property
    def snippet(self) -> str:
        return self.chunk.text[self.start:self.end]


def parse_markers(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """Sentences of the answer (markers and list bullets removed) with the markers each carries.

    Markers after a sentence's final punctuation, or alone on the next line, belong to that sentence;
    `[1][3]`, `[1, 3]` and `[1,3]` all give (1, 3); repeats are kept once, in order of appearance.
    """
    return [(sentence.text, sentence.markers) for sentence in split_answer(text)]


def split_answer(text: str) -> list[AnswerSentence]:
    sentences: list[AnswerSentence] = []
    for line in text.splitlines():
        bullet = LIST_PREFIX.match(line)
        prefix = bullet.group(0).strip() + " " if bullet else ""
        body = line[bullet.end():] if bullet else line
        for index, piece in enumerate(cut_sentences(body)):
            markers, clean = markers_of(piece), clean_sentence(piece)
            if clean or not sentences:
                sentences.append(AnswerSentence(clean, markers, prefix if index == 0 else "", index == 0))
            else:  # markers with no text of their own belong to the sentence before them
                last = sentences[-1]
                sentences[-1] = AnswerSentence(last.text, unique(last.markers + markers), last.prefix, last.new_line)
    return [sentence for sentence in sentences if sentence.text]


def cut_sentences(line: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for end in SENTENCE_END.finditer(line):
        pieces.append(line[start:end.end()])
        start = end.end()
    pieces.append(line[start:])
    return [piece.strip() for piece in pieces if piece.strip()]


def markers_of(piece: str) -> tuple[int, ...]:
    return unique(tuple(int(n) for marker in MARKER.findall(piece) for n in re.findall(r"\d+", marker)))


def clean_sentence(piece: str) -> str:
    text = re.sub(r"\s+", " ", MARKER.sub(" ", piece)).strip()
    return re.sub(r"\s+([.!?,;:])", r"\1", text)  # "days [1]." leaves "days ." behind


def unique(values: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(values))


def content_words(text: str) -> list[str]:
    """Lowercased words that carry meaning, in order; contractions of "not" become "not".

    >>> content_words("Can't I get the refunds for Plus members?")
    ['not', 'get', 'refunds', 'plus', 'members']
    """
    words = []
    for token in TOKEN.findall(text.lower().replace("’", "'")):
        word = "not" if token.endswith("n't") or token == "cannot" else token.split("'")[0]
        if word not in STOPWORDS and (len(word) > 1 or word.isdigit()):
            words.append(word)
    return words


def stem(word: str) -> str:
    """Plural endings only: enough to match "refunds" with "refund" without conflating words."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def content_stems(text: str) -> frozenset[str]:
    return frozenset(stem(word) for word in content_words(text))


def numbers_in(text: str) -> frozenset[str]:
    return frozenset(number.replace(",", "") for number in NUMBER.findall(text))


def is_negated(text: str) -> bool:
    """Whether the text says no: a flipped claim keeps every content word, so overlap cannot see it.

    >>> is_negated("Gift cards can't be refunded."), is_negated("Gift cards can be refunded.")
    (True, False)
    """
    return any(word in NEGATIONS for word in content_words(text))


def overlap(words: frozenset[str], text: str) -> float:
    """Share of `words` found in `text`; 0.0 for a sentence with no content words."""
    return len(words & content_stems(text)) / len(words) if words else 0.0


def best_window(words: frozenset[str], chunk_text: str, negated: bool) -> tuple[int, int]:
    """The chunk sentence sharing most words, or two adjacent ones if together they share more than either.

    Ties go to a sentence agreeing with the claim on negation, then to the earliest: with no words in
    common (a paraphrase) that still hands the semantic check the likeliest passage.
    """
    spans = [(m.start(), m.end()) for m in SENTENCE.finditer(chunk_text)] or [(0, len(chunk_text))]
    singles = [(overlap(words, chunk_text[start:end]), start, end) for start, end in spans]
    scored = list(singles)
    for (left, start, _), (right, _, end) in pairwise(singles):
        together = overlap(words, chunk_text[start:end])
        if together > max(left, right):
            scored.append((together, start, end))
    _, start, end = max(scored, key=lambda item: (item[0], is_negated(chunk_text[item[1]:item[2]]) == negated))
    return start, end


def check(index: int, sentence: AnswerSentence, marker: int, chunk: ScoredChunk) -> Check:
    # Negation stays out of the overlap, where it would pull the window towards any negated sentence
    # nearby; it is checked on its own, as part of the facts.
    words = content_stems(sentence.text) - NEGATIONS
    negated = is_negated(sentence.text)
    start, end = best_window(words, chunk.text, negated)
    facts_match = (numbers_in(sentence.text) <= numbers_in(chunk.text)
                   and negated == is_negated(chunk.text[start:end]))
    return Check(index, marker, chunk, start, end, lexical=overlap(words, chunk.text), semantic=0.0,
                 facts_match=facts_match)


def check_all(sentences: Sequence[AnswerSentence], sources: Sequence[ScoredChunk],
              similarity: Similarity | None) -> list[Check]:
    """One Check per (sentence, in-range marker); the semantic scores come from one batched call."""
    checks = [check(i, sentence, marker, sources[marker - 1])
              for i, sentence in enumerate(sentences) for marker in sentence.markers if 1 <= marker <= len(sources)]
    if similarity is None or not checks:
        return checks
    scores = similarity([sentences[c.sentence].text for c in checks], [c.snippet for c in checks])
    return [replace(c, semantic=float(score)) for c, score in zip(checks, scores, strict=True)]


def is_supported(check: Check, lexical_threshold: float, semantic_threshold: float) -> bool:
    return check.facts_match and (check.lexical >= lexical_threshold or check.semantic >= semantic_threshold)


def is_abstention(sentence: str) -> bool:
    def normalise(text: str) -> str:
        text = text.lower().replace("’", "'").replace("cannot", "can't").replace("can not", "can't")
        return " ".join(re.sub(r"[^\w\s']", " ", text).split())

    return normalise(sentence).startswith(normalise(ABSTENTION))


def verify(answer_text: str, sources: Sequence[ScoredChunk], *, similarity: Similarity | None,
           lexical_threshold: float, semantic_threshold: float, attribute_uncited: bool = False) -> VerifiedAnswer:
    """The answer as the user should see it; see the module docstring for the rules.

    With `attribute_uncited`, a sentence the model left without a marker is checked against every source and
    cited with the one that supports it best, if any does: small models state the right fact and forget
    the marker. The check is the same as for a marker the model wrote.
    """
    sentences = split_answer(answer_text)
    if not sentences or any(is_abstention(sentence.text) for sentence in sentences):
        return abstain((), ())
    dropped = tuple(sorted({m for s in sentences for m in s.markers if not 1 <= m <= len(sources)}))
    attributed: set[int] = set()
    if attribute_uncited:
        sentences, attributed = attribute(sentences, len(sources))
    passed = best_only([c for c in check_all(sentences, sources, similarity)
                        if is_supported(c, lexical_threshold, semantic_threshold)], attributed)
    supported = {c.sentence for c in passed}
    kept = [i for i, s in enumerate(sentences) if i in supported or (not s.markers and not content_words(s.text))]
    unsupported = tuple(s.text for i, s in enumerate(sentences) if i not in kept)
    if not supported:
        return abstain(dropped, tuple(s.text for s in sentences))
    numbers, citations = renumber(passed)
    text = render([sentences[i] for i in kept], [marks_for(i, passed, numbers) for i in kept])
    return VerifiedAnswer(text, citations, False, False, dropped, unsupported)


def attribute(sentences: list[AnswerSentence], count: int) -> tuple[list[AnswerSentence], set[int]]:
    """Sentences that make a claim without a marker are checked against every source."""
    attributed = {i for i, s in enumerate(sentences) if not s.markers and content_words(s.text)}
    every = tuple(range(1, count + 1))
    return [replace(s, markers=every) if i in attributed else s for i, s in enumerate(sentences)], attributed


def best_only(passed: list[Check], attributed: set[int]) -> list[Check]:
    """An attributed sentence keeps only its best-supporting source, not every source that passed."""
    best: dict[int, Check] = {}
    for c in passed:
        if c.sentence in attributed and (c.sentence not in best or c.support > best[c.sentence].support):
            best[c.sentence] = c
    return [c for c in passed if c.sentence not in attributed or best[c.sentence] is c]


def abstain(dropped: tuple[int, ...], unsupported: tuple[str, ...]) -> VerifiedAnswer:
    return VerifiedAnswer(ABSTENTION, (), abstained=True, handoff=True, dropped_markers=dropped,
                          unsupported=unsupported)


def renumber(passed: Sequence[Check]) -> tuple[dict[str, int], tuple[Citation, ...]]:
    """Numbers 1..m per chunk in order of first use; each citation quotes its best-supported snippet."""
    numbers: dict[str, int] = {}
    best: dict[str, Check] = {}
    for c in passed:  # already in sentence order, then marker order within a sentence
        numbers.setdefault(c.chunk.id, len(numbers) + 1)
        if c.chunk.id not in best or c.support > best[c.chunk.id].support:
            best[c.chunk.id] = c
    return numbers, tuple(citation(numbers[chunk_id], c) for chunk_id, c in best.items())


def citation(marker: int, c: Check) -> Citation:
    chunk = c.chunk
    return Citation(marker=marker, chunk_id=chunk.id, doc_id=chunk.doc_id, title=chunk.title, source=chunk.source,
                    section=chunk.section, page=chunk.page, start=chunk.start + c.start, end=chunk.start + c.end,
                    snippet=c.snippet, support=round(c.support, 4))


def marks_for(sentence: int, passed: Sequence[Check], numbers: dict[str, int]) -> tuple[int, ...]:
    return unique(tuple(numbers[c.chunk.id] for c in passed if c.sentence == sentence))


def render(sentences: Sequence[AnswerSentence], marks: Sequence[tuple[int, ...]]) -> str:
    """Sentences joined as the model laid them out, each with its markers before its final punctuation."""
    parts = []
    for index, (sentence, numbers) in enumerate(zip(sentences, marks, strict=True)):
        separator = "" if index == 0 else "\n" if sentence.new_line else " "
        parts.append(separator + sentence.prefix + with_markers(sentence.text, numbers))
    return "".join(parts)


def with_markers(text: str, numbers: tuple[int, ...]) -> str:
    """The markers go before the sentence's final punctuation.

    >>> with_markers("Refunds take 5 days.", (1, 2))
    'Refunds take 5 days [1][2].'
    """
    if not numbers:
        return text
    end = TRAILING_PUNCTUATION.search(text)
    cut = end.start() if end else len(text)
    return text[:cut] + " " + "".join(f"[{n}]" for n in numbers) + text[cut:]
