"""How many segments an SMS is billed and paced as, where a character sits on a boundary.

A segment is whole characters: GSM-7's escape and the extension character after it travel
in one segment, and so do the two UTF-16 units of a character outside the BMP (3GPP TS
23.040 concatenation; Twilio's segment calculator splits the same way). A character that
would straddle a boundary opens the next segment, leaving its last place empty.
"""

from __future__ import annotations

import pytest

from parley.channels.twilio_sms.segments import count_segments


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        pytest.param("a" * 152 + "€" + "a" * 152, 3, id="escape_pair_on_the_boundary"),
        pytest.param("a" * 153 + "€" + "a" * 151, 2, id="escape_pair_after_the_boundary"),
        pytest.param("a" * 151 + "€" + "a" * 153, 2, id="escape_pair_before_the_boundary"),
        pytest.param("€" * 153, 3, id="only_escape_pairs"),
        pytest.param("ł" * 66 + "😀" + "ł" * 66, 3, id="surrogate_pair_on_the_boundary"),
        pytest.param("ł" * 67 + "😀" + "ł" * 65, 2, id="surrogate_pair_after_the_boundary"),
        pytest.param("😀" * 35, 1, id="astral_single_segment"),
        pytest.param("😀" * 67, 3, id="astral_only_fills_66_units_a_segment"),
    ],
)
def test_a_character_on_a_segment_boundary_is_not_split(body: str, segments: int) -> None:
    assert count_segments(body) == segments
