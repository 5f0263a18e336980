"""The store's own policy and FAQ text, searchable, so policy answers quote the store.

A store writes its policies as titled sections (``workspace.settings["knowledge"]``:
``[{"title": "Returns", "text": "..."}]``). Each paragraph is a passage; a question is
matched to passages by TF-IDF cosine similarity over words and character n-grams (robust
to typos). An answer quotes the best passage with its section title; when nothing matches
well enough the assistant hands off rather than invent a policy.

Similarity alone cannot tell whether a passage *covers* a question. "Can I get a refund
exception because of a bereavement?" is close to any returns text, and quoting it would
read as the store's answer to the exception (the Air Canada case, RELIABILITY A2). So a
question that names a circumstance a standard policy does not settle (an exception, a
bereavement, illness, a deadline extension) is answered only from a passage that speaks
to that circumstance too; otherwise a person answers it.

The index is scikit-learn's ``TfidfVectorizer`` arithmetic (smoothed idf, l2-normalised
rows; word 1-2-grams with sublinear tf, ``char_wb`` 3-5-grams), written out here over an
inverted index instead of called: importing scikit-learn pulls in SciPy's stats and
optimisers, about 77 MB of every ``serve`` and ``worker`` process and a second and a
half of start-up, for a few dozen passages a store writes. The intent classifier already
predicts without it (it fits with scikit-learn, offline). A test pins the scores to
scikit-learn's on the same passages and questions.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

# Below this similarity a passage does not answer the question.
MIN_SCORE = 0.12
_CACHE_SIZE = 64
# scikit-learn's default token: two or more word characters.
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


# Circumstances a standard policy does not settle, each by every form of its words in the
# languages the shipped model reads (English, and code-mixed Spanish, French and
# Portuguese). A question naming one is answered only from a passage naming it too.
CIRCUMSTANCES: dict[str, re.Pattern[str]] = {
    name: re.compile(rf"\b(?:{words})\b", re.IGNORECASE)
    for name, words in {
        "a bereavement": r"bereave\w*|funerals?|passed away|died|deaths?|deceased|"
        r"condolences?|fallec\w*|falec\w*|luto|muri[oó]|morreu|d[ée]c[èe]s|deuil|"
        r"obs[èe]ques|enterrement",
        "an exception": r"exceptions?|exceptional(?:ly)?|excepci[oó]n\w*|exce[cç](?:[aã]o|[oõ]es)|"
        r"exempt\w*|waive\w*|waiver|goodwill|just this once|one[- ]off",
        "an illness": r"ill|illness|sick\w*|surgery|medical(?:ly)?|enferm\w*|doente|"
        r"malad\w*",
        "an extension": r"extensions?|extend\w*|grace period|overdue|late returns?|"
        r"(?:past|after|missed) the (?:deadline|window|return period)|pr[oó]rroga\w*|"
        r"prolong\w*",
        "special circumstances": r"special (?:circumstances?|case)|compassion\w*|hardship|"
        r"emergenc\w*|pregnan\w*|military|deployed|disabilit\w*|disabled",
    }.items()
}


def circumstances(text: str) -> list[str]:
    """The circumstances ``text`` names, in :data:`CIRCUMSTANCES` order."""
    return [name for name, pattern in CIRCUMSTANCES.items() if pattern.search(text)]


@dataclass(frozen=True)
class Passage:
    source: str
    text: str


@dataclass(frozen=True)
class Found:
    passage: Passage
    score: float


def passages_of(sections: list[dict[str, Any]]) -> list[Passage]:
    """One passage per paragraph of each titled section."""
    found: list[Passage] = []
    for section in sections:
        title = str(section.get("title") or "Store policy").strip()
        for paragraph in str(section.get("text") or "").split("\n\n"):
            paragraph = " ".join(paragraph.split())
            if paragraph:
                found.append(Passage(source=title, text=paragraph))
    return found


def word_terms(text: str) -> list[str]:
    """Lower-cased words of two or more characters, and each pair of neighbours."""
    words = _TOKEN.findall(text.lower())
    return words + [f"{first} {second}" for first, second in pairwise(words)]


def char_terms(text: str) -> list[str]:
    """Character 3- to 5-grams of each space-padded word; a word shorter than an n-gram
    counts once, whole (scikit-learn's ``char_wb``)."""
    grams: list[str] = []
    for word in text.lower().split():
        padded = f" {word} "
        for size in range(3, 6):
            if len(padded) <= size:
                grams.append(padded)
                break
            grams.extend(padded[start : start + size] for start in range(len(padded) - size + 1))
    return grams


class _Index:
    """TF-IDF over one kind of term: each passage's l2-normalised weights, by term."""

    def __init__(
        self, documents: Sequence[str], terms: Callable[[str], list[str]], *, sublinear: bool
    ) -> None:
        self._terms = terms
        self._sublinear = sublinear
        counted = [Counter(terms(document)) for document in documents]
        frequency = Counter(term for counts in counted for term in counts)
        size = len(documents)
        self._idf = {
            term: math.log((1 + size) / (1 + found)) + 1 for term, found in frequency.items()
        }
        self._size = size
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for position, counts in enumerate(counted):
            for term, weight in self._weights(counts).items():
                self._postings.setdefault(term, []).append((position, weight))

    def _weights(self, counts: Counter[str]) -> dict[str, float]:
        """tf (1 + log tf when sublinear) times idf, over the known terms, normalised."""
        weights = {
            term: (1 + math.log(count) if self._sublinear else count) * self._idf[term]
            for term, count in counts.items()
            if term in self._idf
        }
        norm = math.sqrt(sum(weight * weight for weight in weights.values()))
        return {term: weight / norm for term, weight in weights.items()} if norm else {}

    def cosines(self, text: str) -> list[float]:
        """Each passage's cosine similarity to ``text``, in passage order."""
        scores = [0.0] * self._size
        for term, weight in self._weights(Counter(self._terms(text))).items():
            for position, passage_weight in self._postings[term]:
                scores[position] += weight * passage_weight
        return scores


class KnowledgeBase:
    """Passages and the index over them."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages
        documents = [f"{passage.source}. {passage.text}" for passage in passages]
        self._indexes = (
            _Index(documents, word_terms, sublinear=True),
            _Index(documents, char_terms, sublinear=False),
        )

    def scores(self, query: str) -> list[float]:
        """Each passage's similarity to ``query``, in passage order: the mean of the word
        and the character cosines."""
        words, chars = (index.cosines(query) for index in self._indexes)
        return [(word + char) / 2 for word, char in zip(words, chars, strict=True)]

    def search(
        self, query: str, *, covering: Sequence[str] = (), min_score: float = MIN_SCORE
    ) -> Found | None:
        """The passage that best answers ``query`` and names every one of the
        ``covering`` circumstances, or None when none does."""
        if not self.passages or not query.strip():
            return None
        scores = self.scores(query)
        # The first passage wins a tie.
        for best in sorted(range(len(scores)), key=lambda position: -scores[position]):
            if scores[best] < min_score:
                return None
            passage = self.passages[best]
            if set(covering) <= set(circumstances(f"{passage.source}. {passage.text}")):
                return Found(passage=passage, score=scores[best])
        return None


_cache: dict[str, KnowledgeBase] = {}
_lock = threading.Lock()


def knowledge_base(sections: list[dict[str, Any]]) -> KnowledgeBase:
    """The index for these sections, built once per distinct content."""
    key = hashlib.sha256(json.dumps(sections, sort_keys=True).encode()).hexdigest()
    with _lock:
        found = _cache.get(key)
    if found is not None:
        return found
    built = KnowledgeBase(passages_of(sections))
    with _lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = built
    return built
