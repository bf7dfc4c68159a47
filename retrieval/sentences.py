"""Sentences: where a sentence ends, in a model's answer and in a chunk, without cutting at "e.g." or "B.V.".

A full stop followed by a space ends a sentence unless the word it closes is an abbreviation: a title
("Dr.", "Mr."), a Latin short form ("e.g.", "i.e.", "vs."), a dotted initialism ("B.V.", "U.S.") or a
single initial ("J."). Those that can also close a sentence ("etc.", "B.V.", "Inc.") end one only when
the next word starts with a capital. Decimals and versions ("2.5", "3.11") never end a sentence, because
an end needs whitespace after the punctuation. A line break always ends one.

>>> [line[start:end] for line in ["Dashbite B.V. pays couriers, e.g. weekly. Dr. Ng wrote it."]
...  for start, end in sentence_spans(line)]
['Dashbite B.V. pays couriers, e.g. weekly.', 'Dr. Ng wrote it.']
"""

from __future__ import annotations

import re
from collections.abc import Iterator

MARKER = re.compile(r"\[\s*\d+(?:\s*,\s*\d+)*\s*\]")
MARKER_RUN = rf"(?:\s*{MARKER.pattern})*"
# A sentence ends at . ! or ? (maybe closed by a quote or bracket), plus any citation markers right after it.
SENTENCE_END = re.compile(rf"[.!?]+[\"'”’)\]]*{MARKER_RUN}(?=\s|\Z)")
TERMINATED = re.compile(rf"(?:[.!?:]+[\"'”’)\]]*|{MARKER.pattern}){MARKER_RUN}\s*\Z")
LAST_WORD = re.compile(r"[\w.]+\Z")
NEXT_WORD = re.compile(r"\s*[\"'“‘(]*(\S)")

# Abbreviations (lowercased, without their final dot) that never end a sentence: a name or a phrase follows.
NEVER_END = frozenset({"dr", "mr", "mrs", "ms", "prof", "e.g", "i.e", "eg", "ie", "vs", "cf", "approx", "incl",
                       "excl", "ca", "resp", "viz"})
# Abbreviations that only come before a number ("No. 5", "p. 12"); "No. Tips are optional." ends a sentence.
BEFORE_NUMBER = frozenset({"no", "nr", "nos", "p", "pp", "fig", "vol", "art", "sec", "ch", "jan", "feb", "mar",
                           "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"})
# Abbreviations that may close a sentence too: they end one only before a word that is not capitalised.
MAY_END = frozenset({"etc", "inc", "ltd", "co", "corp", "st", "bv", "b.v", "n.v", "gmbh", "a.m", "p.m", "u.s", "u.k"})
DOTTED = re.compile(r"(?:[a-z]\.)+[a-z]\Z")  # "b.v", "u.s": an initialism we do not list


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence or line of `text`, stripped of surrounding whitespace.

    >>> sentence_spans("Python 3.11 is out. It is fast.\\nNew line")
    [(0, 19), (20, 31), (32, 40)]
    """
    spans: list[tuple[int, int]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        start = offset
        for end in ends(line):
            spans.append((start, offset + end))
            start = offset + end
        spans.append((start, offset + len(line)))
        offset += len(line)
    return [trimmed for span in spans if (trimmed := trim(text, *span))[1] > trimmed[0]]


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def cut_sentences(line: str) -> list[str]:
    """The sentences of one line, each with the markers that follow it."""
    return [line[start:end] for start, end in sentence_spans(line)]


def ends(line: str) -> Iterator[int]:
    """Offsets just past each sentence end in `line` (a line break is left to the caller)."""
    for match in SENTENCE_END.finditer(line):
        if not is_abbreviation(line, match):
            yield match.end()


def is_abbreviation(line: str, end: re.Match[str]) -> bool:
    """Whether the full stop at `end` closes an abbreviation rather than a sentence."""
    if not end.group(0).startswith(".") or end.group(0).startswith(".."):
        return False  # "!", "?" and an ellipsis always end
    word = LAST_WORD.search(line, 0, end.start() + 1)
    following = NEXT_WORD.match(line, end.end())
    if word is None or following is None:
        return False  # the end of the line ends the sentence whatever the last word was
    token, first = word.group(0).lower().strip("."), following.group(1)
    if token in NEVER_END:
        return True
    if token in BEFORE_NUMBER:
        return first.isdigit()
    return (token in MAY_END or DOTTED.match(token) is not None) and not first.isupper()


def is_terminated(piece: str) -> bool:
    """Whether a piece of an answer ends like a finished sentence: with punctuation or a citation marker.

    A model cut off by its token cap stops mid-sentence ("Refunds take 5 business"); one that closes a claim
    with its marker and forgets the full stop has finished it.

    >>> is_terminated("Refunds take 5 days [1]"), is_terminated("Refunds take 5 business")
    (True, False)
    """
    return TERMINATED.search(piece.rstrip()) is not None
