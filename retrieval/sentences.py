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


def lines_of(text: str) -> list[str]:
    """The lines of `text` (ends kept), a line that wraps a sentence joined to the next: text copied from a page
    or a PDF breaks its lines mid-sentence ("... can be applied\\nto many different classes of problems."). A line
    wraps when it does not end like a sentence and the next line goes on in lower case.

    >>> lines_of("Python can be applied\\nto many problems.\\nit is free.\\nSee the FAQ\\nPython 3.12")
    ['Python can be applied\\nto many problems.\\n', 'it is free.\\n', 'See the FAQ\\n', 'Python 3.12']
    """
    lines: list[str] = []
    for line in text.splitlines(keepends=True):
        if lines and lines[-1].strip() and line[:1].islower() and not is_terminated(lines[-1]):
            lines[-1] += line
        else:
            lines.append(line)
    return lines


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence or line of `text` (`lines_of`), stripped of surrounding whitespace.

    >>> sentence_spans("Python 3.11 is out. It is fast.\\nNew line")
    [(0, 19), (20, 31), (32, 40)]
    """
    spans: list[tuple[int, int]] = []
    offset = 0
    for line in lines_of(text):
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


# Words: content words carry a claim; function words are dropped before measuring overlap. "no", "not", "never"
# and "yes" are missing from STOPWORDS on purpose: they carry the claim.
TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
NEGATIONS = frozenset({"not", "no", "never", "none", "nothing", "nobody", "neither", "nor"})
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
    """A crude suffix stripper: enough to match "refunds", "refunded" and "refund", or "reminded" and "remind".

    >>> [stem(w) for w in ["refunds", "refunded", "charges", "charge", "deliveries", "status", "address"]]
    ['refund', 'refund', 'charg', 'charg', 'delivery', 'status', 'address']
    """
    if word.isdigit() or len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[:-len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def content_stems(text: str) -> frozenset[str]:
    return frozenset(stem(word) for word in content_words(text))


def is_negated(text: str) -> bool:
    """Whether the text says no: a flipped claim keeps every content word, so overlap cannot see it.

    >>> is_negated("Gift cards can't be refunded."), is_negated("Gift cards can be refunded.")
    (True, False)
    """
    return any(word in NEGATIONS for word in content_words(text))


# What a small model writes about its sources or its answer instead of a claim. A lead-in before a claim is
# set aside and the claim is checked; a sentence that only names a source, or only says "yes", makes none.
META_ONLY = re.compile(r"^\W*(?:(?:the\s+)?(?:sources?|references?|citations?)(?:\s+(?:is|are|used))?\s*[:—–-]"
                       r"|(?:see|refer\s+to|check)\s+(?:the\s+)?(?:sources?|documentation|docs)\b)", re.IGNORECASE)
LEAD_IN = re.compile(r"^\W*(?:(?:according\s+to|based\s+on|as\s+(?:stated|described|explained)\s+in|from)\s+"
                     r"(?:the\s+|this\s+|our\s+)?(?:sources?|documentation|documents?|docs|context|text)"
                     r"(?:\s*\[[\d,\s]+\])?\s*[,:]?"
                     r"|(?:so\s+|in\s+short\s*,?\s+)?the\s+(?:short\s+)?answer\s+(?:is|would\s+be)(?:\s+that)?\s*:?)\s*",
                     re.IGNORECASE)
ANSWER_WORDS = frozenset({"yes", "no", "not", "correct", "true", "false"})
MIN_CLAIM_WORDS = 2  # "Tips are optional" makes a claim with two; "It depends" and "Yes" make none


def starts_mid_sentence(sentence: str) -> bool:
    """Whether the sentence opens with a lower-case function word: the tail of a sentence whose start the model
    left out, copied from the middle of a passage ("for a list of tools that can be used to make executables").
    A lower-case name ("pip installs ...", "id() returns ...") is not one.

    >>> starts_mid_sentence("for a list of tools that can be used to make executables."), starts_mid_sentence(
    ...     "pip installs packages from PyPI.")
    (True, False)
    """
    first = TOKEN.match(sentence.lstrip(" \"'“‘("))
    return first is not None and first.group(0) in STOPWORDS  # lower case: "For a list ..." is not in it


def claim_of(sentence: str, bare_value: bool = False) -> str:
    """The part of an answer sentence that makes a checkable claim, or "" when it makes none: fewer than
    MIN_CLAIM_WORDS content words beyond yes/no. With `bare_value` (beside the question it answers), a lone number
    is one ("€150."); a lone word still is not ("Here is an example:").

    >>> claim_of("According to the source, tips are optional."), claim_of("The answer is no.")
    ('tips are optional.', '')
    >>> claim_of("The source is: Placing an order — Group orders"), claim_of("How stable is Python?")
    ('', '')
    """
    if META_ONLY.match(sentence) or sentence.rstrip().endswith("?"):
        return ""  # a source named or a question asked back is not a claim
    if repeats_itself(sentence):
        return ""  # a loop inside one sentence: "X, and X" states X once and then babbles
    claim = LEAD_IN.sub("", sentence, count=1).strip()
    words = claim_words(claim)
    return claim if len(words) >= MIN_CLAIM_WORDS or (bare_value and words and words[0].isdigit()) else ""


def claim_words(claim: str) -> list[str]:
    """The claim's content words, less a bare "yes"/"no"/"true": what it says beyond answering yes or no."""
    return [word for word in content_words(claim) if word not in ANSWER_WORDS]


def repeats_itself(sentence: str) -> bool:
    """A sentence that says the same run of words twice: a small model's loop inside one sentence. The run is at
    least 4 words and a third of the sentence, so a phrase a real sentence repeats ("per order ... per order") is
    not one.

    >>> repeats_itself("The refund is only available for credit cards, and the refund is only available for "
    ...                "credit cards.")
    True
    >>> repeats_itself("Refunds to a card take 5-10 business days; refunds to credits are instant.")
    False
    """
    words = re.findall(r"\w+", sentence.lower())
    size = max(4, len(words) // 3)
    seen: dict[tuple[str, ...], int] = {}
    for index in range(len(words) - size + 1):
        gram = tuple(words[index:index + size])
        if gram in seen and index - seen[gram] >= size:
            return True
        seen.setdefault(gram, index)
    return False
