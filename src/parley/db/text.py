"""Text every engine can store.

A provider or an API client can spell characters no database keeps: JSON's ``\\u0000``
(PostgreSQL refuses NUL in text and in JSONB) and half a surrogate pair, ``\\ud800``
(no engine encodes a lone surrogate as UTF-8). Left in, they fail the write with a 500 that
every retry of the same bytes repeats. Each edge decides what to do with them: a
provider's delivery is kept with them replaced (refusing it would lose it for good), an
API request or a chat frame is refused with the reason (its sender can fix it).
"""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass, replace
from typing import Any, TypeVar

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""In Python a whole surrogate pair is one character, so any surrogate here is alone."""
REASON = "text may not hold a NUL character or half a surrogate pair"

T = TypeVar("T")


def is_storable(text: str) -> bool:
    return UNSTORABLE.search(text) is None


def holds_unstorable(value: Any) -> bool:
    """Whether any string in a JSON value (keys included) cannot be stored."""
    if isinstance(value, str):
        return not is_storable(value)
    if isinstance(value, dict):
        return any(holds_unstorable(key) or holds_unstorable(item) for key, item in value.items())
    if isinstance(value, list):
        return any(holds_unstorable(item) for item in value)
    return False


def storable(value: T) -> T:
    """``value`` (a string, or a dataclass or tuple and what it holds) with every
    character no database can store replaced by U+FFFD."""
    if isinstance(value, str):
        if is_storable(value):
            return value
        return UNSTORABLE.sub("\ufffd", value)  # type: ignore[return-value]
    if isinstance(value, tuple):
        return tuple(storable(item) for item in value)  # type: ignore[return-value]
    if is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: storable(getattr(value, f.name)) for f in fields(value)}
        return replace(value, **changes)
    return value
