"""The store's own policy and FAQ text, searchable, so policy answers quote the store.

A store writes its policies as titled sections (``workspace.settings["knowledge"]``:
``[{"title": "Returns", "text": "..."}]``). Each paragraph is a passage; a question is
matched to passages by TF-IDF cosine similarity over words and character n-grams (robust
to typos). An answer quotes the best passage with its section title; when nothing matches
well enough the assistant hands off rather than invent a policy.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

# Below this similarity a passage does not answer the question.
MIN_SCORE = 0.12
_CACHE_SIZE = 64


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


class KnowledgeBase:
    """Passages and the index over them."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages
        self._vectorizer: FeatureUnion | None = None
        self._matrix: Any = None
        if passages:
            self._vectorizer = FeatureUnion(
                [
                    ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
                    ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5))),
                ]
            )
            self._matrix = self._vectorizer.fit_transform(
                [f"{p.source}. {p.text}" for p in passages]
            )

    def search(self, query: str, *, min_score: float = MIN_SCORE) -> Found | None:
        """The passage that best answers ``query``, or None when none does."""
        if self._vectorizer is None or not query.strip():
            return None
        vector = self._vectorizer.transform([query])
        # Each half is L2-normalised, so the dot product of the union is twice a cosine.
        scores = (self._matrix @ vector.T).toarray().ravel() / 2
        best = int(scores.argmax())
        if scores[best] < min_score:
            return None
        return Found(passage=self.passages[best], score=float(scores[best]))


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
