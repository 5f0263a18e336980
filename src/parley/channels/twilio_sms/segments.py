"""How many SMS segments a body is billed (and paced) as.

A carrier carries 160 GSM-7 characters in one segment, or 153 a segment once a body is
split; a body with any character outside GSM 03.38 goes as UCS-2, 70 or 67 a segment.
Twilio bills by segment and a sender's throughput is counted in segments, so the sandbox
reports them as Twilio does and the pacer charges a sender for them
(:mod:`parley.messaging.pace`).
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


def count_segments(body: str) -> int:
    """How many SMS segments Twilio bills ``body`` as (GSM-7 or UCS-2)."""
    septets = 0
    for char in body:
        if char in _GSM_BASIC:
            septets += 1
        elif char in _GSM_EXTENSION:
            septets += 2
        else:
            # UCS-2 counts UTF-16 code units: a character outside the BMP takes two.
            units = len(body.encode("utf-16-le")) // 2
            return 1 if units <= 70 else -(-units // 67)
    return 1 if septets <= 160 else -(-septets // 153)
