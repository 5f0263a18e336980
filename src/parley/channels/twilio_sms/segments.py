"""How many SMS segments a body is billed (and paced) as.

A carrier carries 160 GSM-7 characters in one segment, or 153 a segment once a body is
split; a body with any character outside GSM 03.38 goes as UCS-2, 70 or 67 a segment.
Twilio bills by segment and a sender's throughput is counted in segments, so the sandbox
reports them as Twilio does and the pacer charges a sender for them
(:mod:`parley.messaging.pace`).

A split body is cut between characters, never inside one (3GPP TS 23.040): an extension
character and its escape, or the two UTF-16 units of a character outside the BMP, that
would straddle a boundary start the next segment, leaving a place empty in the last.
"""

from __future__ import annotations

from typing import Final

# GSM 03.38: the basic set costs one septet a character, the extension set two. A body
# with anything else goes out as UCS-2, which changes how many segments it is billed as.
_GSM_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION: Final = frozenset("^{}\\[~]|€\f")

# (one segment, a segment of a split body): septets in GSM-7, UTF-16 units in UCS-2.
_GSM_SEGMENT: Final = (160, 153)
_UCS2_SEGMENT: Final = (70, 67)


def count_segments(body: str) -> int:
    """How many SMS segments Twilio bills ``body`` as (GSM-7 or UCS-2)."""
    if all(char in _GSM_BASIC or char in _GSM_EXTENSION for char in body):
        return _segments([2 if char in _GSM_EXTENSION else 1 for char in body], _GSM_SEGMENT)
    # UCS-2 counts UTF-16 code units: a character outside the BMP takes two.
    return _segments([2 if ord(char) > 0xFFFF else 1 for char in body], _UCS2_SEGMENT)


def _segments(sizes: list[int], capacity: tuple[int, int]) -> int:
    """Segments for characters of ``sizes``, each whole in one segment."""
    single, split = capacity
    if sum(sizes) <= single:
        return 1
    count, used = 1, 0
    for size in sizes:
        if used + size > split:
            count, used = count + 1, 0
        used += size
    return count
