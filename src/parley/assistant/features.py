"""Text to features: normalised text, character n-grams within words, and word n-grams.

The same functions feed scikit-learn when training and the saved model when predicting, so
the two can never disagree about what a message's features are.

Character n-grams carry typos ("wer is my parcle" still shares most of its 3-grams with
"where is my parcel"); word n-grams carry the phrasing ("get invoice" vs "check invoice").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

_DIGITS = re.compile(r"\d+")
_REPEATS = re.compile(r"(.)\1{2,}")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class FeatureSettings:
    """How text becomes features; saved with a model because prediction must match training.

    Character 2- to 5-grams and word 1- and 2-grams scored best on held-out wording; single
    characters added only noise, and word bigrams are what tell "get invoice" from "check
    invoice".
    """

    char_min: int = 2
    char_max: int = 5
    word_max: int = 2
    min_df: int = 1
    sublinear_tf: bool = True

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON values, for the saved model."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureSettings:
        """Settings read back from a saved model."""
        return cls(**data)


def normalize(text: str) -> str:
    """Lower-case, strip accents, one "0" per number, at most two of a repeated character.

    Order numbers differ in every message and say nothing about the intent, so they all
    look alike; "pleeease" and "???????" become "pleease" and "??"; "dónde" matches "donde".
    """
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    text = _REPEATS.sub(r"\1\1", _DIGITS.sub("0", text))
    return " ".join(text.split())


def char_ngrams(text: str, settings: FeatureSettings) -> list[str]:
    """Character n-grams of each space-padded word of the normalised text."""
    grams: list[str] = []
    for word in normalize(text).split():
        padded = f" {word} "
        for size in range(settings.char_min, settings.char_max + 1):
            if size > len(padded):
                break
            grams.extend(padded[start : start + size] for start in range(len(padded) - size + 1))
    return grams


def word_ngrams(text: str, settings: FeatureSettings) -> list[str]:
    """Word n-grams of the normalised text, short words kept ("u", "i", "r" matter here)."""
    words = _WORD.findall(normalize(text))
    grams = list(words)
    for size in range(2, settings.word_max + 1):
        grams.extend(
            " ".join(words[start : start + size]) for start in range(len(words) - size + 1)
        )
    return grams
