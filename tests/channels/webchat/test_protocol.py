"""The chat socket's frames, and how a socket shows each message exactly once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from parley.channels.webchat.protocol import (
    BadFrame,
    ChatMessage,
    Entry,
    FloodGuard,
    Identify,
    Transcript,
    message_frame,
    parse_frame,
)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LONG_AGO = T0 - timedelta(minutes=5)


def test_a_message_frame_is_parsed_verbatim():
    text = "  <b>hi</b>\nsecond line  "

    frame = parse_frame(json.dumps({"type": "message", "id": "c-1_A", "text": text}))

    assert frame == ChatMessage(client_id="c-1_A", text=text)


def test_an_emoji_spelled_as_a_surrogate_pair_is_accepted():
    frame = parse_frame('{"type": "message", "id": "c1", "text": "thanks \\ud83d\\ude00"}')

    assert frame == ChatMessage(client_id="c1", text="thanks \U0001f600")


def test_an_identify_frame_is_parsed():
    assert parse_frame('{"type": "identify", "email": "ada@example.com"}') == Identify(
        email="ada@example.com"
    )


@pytest.mark.parametrize(
    ("raw", "reason", "client_id"),
    [
        pytest.param("not json", "frames are JSON text", None, id="not_json_case"),
        pytest.param(b'{"type": "message"}', "frames are JSON text", None, id="binary_case"),
        pytest.param("[1, 2]", "a frame is a JSON object", None, id="array_case"),
        pytest.param(
            '{"type": "typing"}',
            "unknown frame type: expected message or identify",
            None,
            id="unknown_type_case",
        ),
        pytest.param(
            '{"type": "message", "text": "hi"}',
            "a message needs an id of 1 to 64 letters, digits, '-' or '_'",
            None,
            id="missing_id_case",
        ),
        pytest.param(
            '{"type": "message", "id": "a b", "text": "hi"}',
            "a message needs an id of 1 to 64 letters, digits, '-' or '_'",
            None,
            id="bad_id_case",
        ),
        pytest.param(
            '{"type": "message", "id": "c1", "text": "   "}',
            "a message needs some text",
            "c1",
            id="blank_text_case",
        ),
        pytest.param(
            json.dumps({"type": "message", "id": "c1", "text": "x" * 4001}),
            "a message is at most 4000 characters",
            "c1",
            id="too_long_case",
        ),
        pytest.param(
            '{"type": "identify", "email": 42}',
            "identify needs an email address",
            None,
            id="email_not_text_case",
        ),
        pytest.param(
            '{"type": "message", "id": "c1", "text": "a\\u0000b"}',
            "a message cannot contain a NUL character or a lone surrogate",
            "c1",
            id="nul_in_text_case",
        ),
        pytest.param(
            '{"type": "message", "id": "c1", "text": "a\\udc00b"}',
            "a message cannot contain a NUL character or a lone surrogate",
            "c1",
            id="lone_surrogate_in_text_case",
        ),
        pytest.param(
            '{"type": "identify", "email": "ada\\u0000@example.com"}',
            "identify needs an email address",
            None,
            id="nul_in_email_case",
        ),
    ],
)
def test_a_bad_frame_says_what_is_wrong(raw, reason, client_id):
    with pytest.raises(BadFrame) as caught:
        parse_frame(raw)

    assert (caught.value.reason, caught.value.client_id) == (reason, client_id)


def test_the_longest_message_is_accepted():
    frame = parse_frame(json.dumps({"type": "message", "id": "c1", "text": "x" * 4000}))

    assert isinstance(frame, ChatMessage)
    assert len(frame.text) == 4000


def entry(id_: int, *, pending: bool = False, at: datetime = LONG_AGO) -> Entry:
    return Entry(
        id=id_,
        direction="outbound",
        author="assistant",
        text=f"message {id_}",
        created_at=at,
        client_id=None,
        is_pending=pending,
    )


def test_a_message_frame_has_the_documented_shape():
    assert message_frame(entry(7)) == {
        "type": "message",
        "id": 7,
        "direction": "outbound",
        "author": "assistant",
        "text": "message 7",
        "created_at": "2026-03-02T09:55:00+00:00",
        "client_id": None,
    }


def test_a_transcript_shows_each_message_once_however_often_it_is_read():
    transcript = Transcript()
    transcript.begin([entry(1)])

    first = transcript.take([entry(1), entry(2, at=T0)], settled_before=T0)
    again = transcript.take([entry(2, at=T0)], settled_before=T0)

    assert [e.id for e in first] == [2]
    assert again == []
    assert transcript.after_id == 1


def test_a_queued_reply_shows_when_sent_even_after_younger_messages():
    transcript = Transcript()
    transcript.begin([])

    shown = transcript.take([entry(5, pending=True), entry(6)], settled_before=T0)
    assert [e.id for e in shown] == [6]
    assert transcript.after_id == 0

    later = transcript.take([entry(5), entry(6)], settled_before=T0)
    assert [e.id for e in later] == [5]
    assert transcript.after_id == 6


def test_the_cursor_waits_for_young_rows_so_a_late_commit_is_not_skipped():
    transcript = Transcript()
    transcript.begin([])

    transcript.take([entry(9, at=T0)], settled_before=T0)
    late = transcript.take([entry(8, at=T0), entry(9, at=T0)], settled_before=T0)

    assert [e.id for e in late] == [8]
    assert transcript.after_id == 0


def test_history_starts_the_cursor_below_its_oldest_message():
    transcript = Transcript()

    transcript.begin([entry(40), entry(41)])

    assert transcript.after_id == 39
    assert transcript.take([entry(40), entry(41)], settled_before=T0) == []
    assert transcript.after_id == 41


def test_the_flood_guard_refuses_the_21st_frame_in_ten_seconds():
    guard = FloodGuard(limit=20, window=10.0)

    allowed = [guard.allow("v_a", 100.0 + i * 0.1) for i in range(20)]

    assert allowed == [True] * 20
    assert guard.allow("v_a", 102.0) is False
    assert guard.allow("v_b", 102.0) is True
    assert guard.allow("v_a", 110.0) is True


def test_the_flood_guard_forgets_quiet_visitors_once_there_are_many(monkeypatch):
    monkeypatch.setattr(FloodGuard, "MAX_KEYS", 2)
    guard = FloodGuard(limit=1, window=10.0)
    guard.allow("v_old", 100.0)
    guard.allow("v_a", 109.0)

    assert guard.allow("v_b", 111.0) is True

    assert sorted(guard._times) == ["v_a", "v_b"]
    assert guard.allow("v_a", 111.0) is False
