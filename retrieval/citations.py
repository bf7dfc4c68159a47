"""verify: keep only the sentences of a model's answer that the sources they cite actually support.

A 135M model cites loosely and sometimes invents, so every sentence is checked against each chunk it
cites: lexically (share of its content words found in the best one or two sentences of the chunk) and,
when the caller passes an embedding similarity, semantically (cosine of the sentence and that passage).
Three hard rules cover what both measures are blind to: a number the sentence states must appear in
the cited chunk ("refunds take 30 days" scores high against "refunds take 5 days"), the sentence and its
snippet must agree on negation ("gift cards can be refunded" shares every word of "gift cards cannot be
refunded", and MiniLM puts them at 0.91), and on opposites ("before" for "after"). This checks grounding,
not entailment: a wrong claim that reuses most of a passage's words can still pass.

Only the chunk's BODY supports a claim: its title and headings (which ingestion puts at the top of the
chunk and the prompt shows beside it) do not, so a sentence that merely echoes them is unsupported.
Junk is never checked: a sentence that makes no claim ("The answer is no.", "The source is: Group orders",
a bare "Yes", a question), a repeat of an earlier claim, a sentence that loops inside itself ("X, and X"), a
sentence that starts mid-way ("for a list of tools ...") and a last sentence the token cap cut off. A
lead-in ("According to the source, ...") is set aside and the claim after it is checked. Given the question, a
terse claim ("12 months", "10 minutes") must also be found in a passage about the question (TERSE_WORDS).
Sentences are split where they end, not at "e.g.", "B.V." or "2.5" (see retrieval/sentences.py).

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

from lorag.retrieval.sentences import (
    MARKER,
    NEGATIONS,
    claim_of,
    claim_words,
    content_stems,
    content_words,
    cut_sentences,
    is_negated,
    is_terminated,
    lines_of,
    sentence_spans,
    starts_mid_sentence,
    stem,
)
from lorag.retrieval.types import ABSTENTION, Citation, ScoredChunk, VerifiedAnswer

# Thresholds, chosen on tests/retrieval/data/verifier_pairs.jsonl (288 hand-labelled sentences against real
# sample-document chunks; all-MiniLM-L6-v2 cosine) and measured on verifier_pairs_2.jsonl, a second set labelled
# blind on chunks the first does not use, by tests/retrieval/test_verifier_quality.py. A wrong claim on the right
# topic shares the topic words and reaches a lexical share of 0.5-0.8 ("on a group order every participant can add
# their own tip" against "only the host can add a tip") and a cosine of up to 0.87 ("the tip is charged separately
# after the delivery" against "... together with your order"); faithful rewordings reach 0.8-0.95. So a claim
# passes on its words when 80% of them are in the passage, or on its meaning when the cosine reaches 0.84 and half
# its words are there. On the first set that keeps 85% of the supported sentences and 1 of 165 unsupported ones
# (it was 90% and 4 at 0.7 / 0.82 with no word floor); the second set's figures are in the test's docstring.
LEXICAL_THRESHOLD = 0.8
SEMANTIC_THRESHOLD = 0.84
SEMANTIC_WORD_FLOOR = 0.5

Similarity = Callable[[list[str], list[str]], list[float]]

LIST_PREFIX = re.compile(r"\s*(?:[-*•]|\d+[.)])\s+")
TRAILING_PUNCTUATION = re.compile(r"[.!?:;]+[\"'”’)]*\Z")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
WORD = re.compile(r"[a-z]+")
# Words whose swap flips a claim while keeping its other words; each pair is listed both ways.
OPPOSITES = tuple((a, b) for x, y in (
    ("before", "after"), ("more", "less"), ("more", "fewer"), ("above", "below"), ("minimum", "maximum"),
    ("higher", "lower"), ("earlier", "later"), ("first", "last"), ("increase", "decrease"), ("include", "exclude"),
    ("included", "excluded"), ("inside", "outside"), ("allowed", "forbidden"), ("required", "optional"),
) for a, b in ((x, y), (y, x)))
# A line of markup under a plain-text heading ("-----", "====="), or such a run ending a heading line.
UNDERLINE = re.compile(r"[-=_*#~]{3,}\s*\Z")
HEADING_MARKS = re.compile(r"^[#\s]+|[\s¶:#]+$|[*_`]")
# A heading that text extraction left as a plain line (a PDF's "3. Reporting window"): a short capitalised line with
# no digits beyond its number and no closing punctuation, standing alone as a paragraph.
BARE_HEADING = re.compile(r"\s*(?:\d+(?:\.\d+)*\.?\s+)?(?=[A-Z])[^\d.!?;:,\n]+\Z")
BARE_HEADING_WORDS = 7
# A terse claim ("12 months", "Every 10 seconds", "30 days' written notice") means something only with its question:
# "10 minutes [1]" is true of every chunk that says "10 minutes" somewhere. With the question given, such a claim
# must be found in one passage together with its numbers, and that passage (or the headings above it) must hold at
# least QUESTION_SHARE of the question's content words: the question answered, not merely a true fragment.
TERSE_WORDS = 4
QUESTION_SHARE = 0.5
HOW_WORD = re.compile(r"\bhow\s+([a-z]+)", re.IGNORECASE)  # "how long", "how much": asks, the source never says it


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence of the answer: its text without markers or list bullet, and where it sat."""

    text: str
    markers: tuple[int, ...]
    prefix: str  # a list bullet ("- ", "2. ") kept for display, never checked
    new_line: bool  # first sentence of its line in the answer
    complete: bool = True  # False for a last sentence the token cap cut off mid-way


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
    for line in lines_of(text):
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
    sentences = [sentence for sentence in sentences if sentence.text]
    if sentences and not is_terminated(text):
        sentences[-1] = replace(sentences[-1], complete=False)
    return sentences


def markers_of(piece: str) -> tuple[int, ...]:
    return unique(tuple(int(n) for marker in MARKER.findall(piece) for n in re.findall(r"\d+", marker)))


def clean_sentence(piece: str) -> str:
    text = re.sub(r"\s+", " ", MARKER.sub(" ", piece)).strip()
    return re.sub(r"\s+([.!?,;:])", r"\1", text)  # "days [1]." leaves "days ." behind


def unique(values: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(values))


def numbers_in(text: str) -> frozenset[str]:
    return frozenset(number.replace(",", "") for number in NUMBER.findall(text))


def overlap(words: frozenset[str], text: str) -> float:
    """Share of `words` found in `text`; 0.0 for a sentence with no content words."""
    return len(words & content_stems(text)) / len(words) if words else 0.0


def heading_text(chunk: ScoredChunk) -> str:
    """The chunk's title, heading path and any heading lines inside it (plain text has no sections)."""
    body = body_spans(chunk)
    inside = [line for line in chunk.text.splitlines()
              if line.strip() and not any(start <= chunk.text.find(line) < end for start, end in body)]
    return " ".join((chunk.title, *chunk.section, *inside))


def is_heading_line(line: str, headings: frozenset[str], next_line: str) -> bool:
    """A title or heading the chunk repeats, a plain-text heading (underlined), or the underline itself."""
    name = HEADING_MARKS.sub("", UNDERLINE.sub("", line)).strip().lower()
    return (not name or name in headings or UNDERLINE.match(line.strip()) is not None
            or UNDERLINE.search(line) is not None or UNDERLINE.fullmatch(next_line.strip()) is not None
            or is_bare_heading(line, next_line))


def is_bare_heading(line: str, next_line: str) -> bool:
    """A plain line that reads as a heading: short, no sentence punctuation, a paragraph of its own before text.

    >>> is_bare_heading("3. Reporting window\\n", "Report within 48 hours.")
    True
    >>> is_bare_heading("Redelivery is free.\\n", "Photos are not needed.")
    False
    """
    text = line.strip()
    return (BARE_HEADING.fullmatch(text) is not None and len(text.split()) <= BARE_HEADING_WORDS
            and line.endswith("\n") and bool(next_line.strip()))


def body_spans(chunk: ScoredChunk) -> list[tuple[int, int]]:
    """The chunk's sentences outside its headings: only the body states claims.

    Ingestion starts a chunk with its section's heading, and the prompt labels each source with its title and
    headings; a sentence that merely echoes those ("Group orders [1].") must find no support in them.
    """
    headings = frozenset(HEADING_MARKS.sub("", part).strip().lower() for part in (chunk.title, *chunk.section))
    lines = lines_of(chunk.text)
    spans: list[tuple[int, int]] = []
    offset = 0
    for index, line in enumerate(lines):
        following = next((later for later in lines[index + 1:] if later.strip()), "")
        if not is_heading_line(line, headings, following):
            spans.extend((offset + start, offset + end) for start, end in sentence_spans(line))
        offset += len(line)
    return spans


def best_window(words: frozenset[str], text: str, spans: Sequence[tuple[int, int]],
                negated: bool, topic: frozenset[str] = frozenset()) -> tuple[float, int, int]:
    """The body sentence sharing most words, or two adjacent ones if together they share more than either.

    Ties go to the sentence sharing most of `topic` (a terse claim's question), then to one agreeing with the
    claim on negation, then to the earliest: with no words in common (a paraphrase) that still hands the semantic
    check the likeliest passage.
    """
    singles = [(overlap(words, text[start:end]), start, end) for start, end in spans]
    scored = list(singles)
    for (left, start, _), (right, _, end) in pairwise(singles):
        together = overlap(words, text[start:end])
        if together > max(left, right):
            scored.append((together, start, end))
    return max(scored, key=lambda item: (item[0], overlap(topic, text[item[1]:item[2]]) if topic else 0.0,
                                         is_negated(text[item[1]:item[2]]) == negated))


def question_stems(claim: str, question: str) -> frozenset[str]:
    """What a terse claim must be found beside: the question's content words, less the word a "how" asks with
    ("how long", "how many"). Empty for a claim that says enough on its own, or with no question.

    >>> sorted(question_stems("12 months.", "How long is the initial term of the partner agreement?"))
    ['agreement', 'initial', 'partner', 'term']
    >>> question_stems("Refunds to a card take 5-10 business days.", "How long do card refunds take?")
    frozenset()
    """
    if not question or len(claim_words(claim)) > TERSE_WORDS:
        return frozenset()
    asked = frozenset(content_words(" ".join(match.group(1) for match in HOW_WORD.finditer(question))))
    return frozenset(stem(word) for word in content_words(question) if word not in asked) - NEGATIONS


def check(index: int, claim: str, marker: int, chunk: ScoredChunk, question: str = "") -> Check:
    # Negation stays out of the overlap, where it would pull the window towards any negated sentence
    # nearby; it is checked on its own, as part of the facts.
    words = content_stems(claim) - NEGATIONS
    spans = body_spans(chunk)
    headings = content_stems(heading_text(chunk))
    if not spans or words <= headings:  # nothing but a heading, or its echo
        return Check(index, marker, chunk, 0, len(chunk.text), lexical=0.0, semantic=0.0, facts_match=False)
    asked = question_stems(claim, question)
    negated = is_negated(f"{question} {claim}" if asked else claim)  # a terse claim says no through its question
    lexical, start, end = best_window(words, chunk.text, spans, negated, asked)
    snippet = chunk.text[start:end]
    # A terse claim's numbers must be in its passage; a full sentence's anywhere in the body (its words place it).
    stated = snippet if asked else " ".join(chunk.text[s:e] for s, e in spans)
    facts_match = (numbers_in(claim) <= numbers_in(stated) and negated == is_negated(snippet)
                   and not contradicts(claim, snippet) and answers(asked, snippet, headings))
    return Check(index, marker, chunk, start, end, lexical=lexical, semantic=0.0, facts_match=facts_match)


def answers(asked: frozenset[str], snippet: str, headings: frozenset[str]) -> bool:
    """Whether the passage, with the headings it sits under, holds QUESTION_SHARE of the question's words."""
    return not asked or len(asked & (content_stems(snippet) | headings)) / len(asked) >= QUESTION_SHARE


def contradicts(claim: str, snippet: str) -> bool:
    """Whether the claim uses the opposite of a word the snippet uses, and not that word itself.

    Like negation, a swapped "before"/"after" keeps every other word: "gift card balance is used before any
    credit" shares all the rest of "... is used automatically at checkout, after any Dashbite Credit".
    """
    said, written = frozenset(WORD.findall(claim.lower())), frozenset(WORD.findall(snippet.lower()))
    return any(word in said and other in written and other not in said and word not in written
               for word, other in OPPOSITES)


def check_all(claims: Sequence[str], markers: Sequence[tuple[int, ...]], sources: Sequence[ScoredChunk],
              similarity: Similarity | None, question: str = "") -> list[Check]:
    """One Check per (claim, in-range marker); the semantic scores come from one batched call."""
    pairs = enumerate(zip(claims, markers, strict=True))
    checks = [check(i, claim, marker, sources[marker - 1], question)
              for i, (claim, marks) in pairs if claim for marker in marks if 1 <= marker <= len(sources)]
    asked = [c for c in checks if c.facts_match]  # a failed fact or a bare heading is not rescued by meaning
    if similarity is None or not asked:
        return checks
    scores = iter(similarity([claims[c.sentence] for c in asked], [c.snippet for c in asked]))
    return [replace(c, semantic=float(next(scores))) if c.facts_match else c for c in checks]


def is_supported(check: Check, lexical_threshold: float, semantic_threshold: float, word_floor: float) -> bool:
    return check.facts_match and (check.lexical >= lexical_threshold
                                  or (check.semantic >= semantic_threshold and check.lexical >= word_floor))


def is_abstention(sentence: str) -> bool:
    def normalise(text: str) -> str:
        text = text.lower().replace("’", "'").replace("cannot", "can't").replace("can not", "can't")
        return " ".join(re.sub(r"[^\w\s']", " ", text).split())

    return normalise(sentence).startswith(normalise(ABSTENTION))


def claims_of(sentences: Sequence[AnswerSentence], question: str = "") -> list[str]:
    """What each sentence claims, or "" for junk: no claim, a repeat of an earlier claim, a cut-off fragment.

    A small model repeats itself until the token cap ("The service fee is 5% [1]." nine times) and then stops
    mid-sentence; the user sees each claim once and never a half sentence, cut at its end or at its start (a
    sentence, not a list item, that opens with a lower-case "for", "and", "which": `starts_mid_sentence`).
    Beside its question a lone number is a claim ("€150."): the question says what it is of, and the terse rule
    (`question_stems`) checks that its passage is about the question.
    """
    claims: list[str] = []
    seen: set[frozenset[str]] = set()
    for sentence in sentences:
        whole = sentence.complete and (bool(sentence.prefix) or not starts_mid_sentence(sentence.text))
        claim = claim_of(sentence.text, bare_value=bool(question)) if whole else ""
        key = content_stems(claim)
        claims.append("" if key in seen else claim)
        seen.add(key)
    return claims


def verify(answer_text: str, sources: Sequence[ScoredChunk], *, similarity: Similarity | None,
           lexical_threshold: float, semantic_threshold: float, attribute_uncited: bool = False,
           word_floor: float = SEMANTIC_WORD_FLOOR, question: str = "") -> VerifiedAnswer:
    """The answer as the user should see it; see the module docstring for the rules. With the `question`, a terse
    claim must be found where the question's words are (TERSE_WORDS); without it, it is checked like any other.

    With `attribute_uncited`, a sentence the model left without a marker is checked against every source and
    cited with the one that supports it best, if any does: small models state the right fact and forget
    the marker. The check is the same as for a marker the model wrote.
    """
    sentences = split_answer(answer_text)
    if not sentences or any(is_abstention(sentence.text) for sentence in sentences):
        return abstain((), ())
    dropped = tuple(sorted({m for s in sentences for m in s.markers if not 1 <= m <= len(sources)}))
    claims = claims_of(sentences, question)
    attributed: set[int] = set()
    if attribute_uncited:
        sentences, attributed = attribute(sentences, claims, len(sources))
    checks = check_all(claims, [s.markers for s in sentences], sources, similarity, question)
    passed = best_only([c for c in checks if is_supported(c, lexical_threshold, semantic_threshold, word_floor)],
                       attributed)
    supported = {c.sentence for c in passed}
    kept = [i for i, s in enumerate(sentences)
            if i in supported or (not s.markers and not content_words(s.text) and s.complete)]
    unsupported = tuple(s.text for i, s in enumerate(sentences) if i not in kept)
    if not supported:
        return abstain(dropped, tuple(s.text for s in sentences))
    numbers, citations = renumber(passed)
    text = render([sentences[i] for i in kept], [marks_for(i, passed, numbers) for i in kept])
    return VerifiedAnswer(text, citations, False, False, dropped, unsupported)


def attribute(sentences: list[AnswerSentence], claims: Sequence[str],
              count: int) -> tuple[list[AnswerSentence], set[int]]:
    """Sentences that make a claim without a marker are checked against every source."""
    attributed = {i for i, s in enumerate(sentences) if not s.markers and claims[i]}
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
