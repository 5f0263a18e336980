"""Instagram webhooks: DMs, echoes of the store's own messages, read receipts and comments
parse to exactly these events; everything else is ignored. The fixtures were built from
Meta's documentation (see fixtures/README.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from parley.channels.base import (
    Attachment,
    ChannelKind,
    InboundMessage,
    MalformedWebhook,
    SignatureError,
    StatusUpdate,
)
from parley.channels.instagram import webhook
from parley.channels.meta import PartlyMalformed

FIXTURES = Path(__file__).parent / "fixtures"
ACCOUNT = "17841400000000001"
CUSTOMER = "1234567890123456"
ECHO_MID = "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMDAwMDAwMDE6ZWNobw"
SECRET = "demo-meta-app-secret"


def _parse(name: str) -> list[object]:
    return list(webhook.parse((FIXTURES / name).read_bytes()))


def test_signature_uses_metas_scheme() -> None:
    body = (FIXTURES / "dm_text.json").read_bytes()
    header = webhook.sign(body, SECRET)

    webhook.verify_signature(body, header, SECRET)
    with pytest.raises(SignatureError, match="does not match"):
        webhook.verify_signature(body.replace(b"Spain", b"Spaim"), header, SECRET)


def test_handshake_is_metas() -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "42"}

    assert webhook.handshake(params, "tok") == "42"
    assert webhook.handshake(params, "other") is None


def test_direct_message() -> None:
    assert _parse("dm_text.json") == [
        InboundMessage(
            channel=ChannelKind.INSTAGRAM,
            provider_message_id=(
                "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMDAwMDAwMDE6MTIzNDU2Nzg5MDEyMzQ1Ng"
            ),
            sender=CUSTOMER,
            text="Do you ship the Merino Crew Sweater to Spain?",
            account=ACCOUNT,
            sent_at=datetime(2025, 3, 14, 9, 26, 53, 500000, tzinfo=UTC),
        )
    ]


def test_echo_is_flagged_and_stays_in_the_customers_conversation() -> None:
    assert _parse("dm_echo.json") == [
        InboundMessage(
            channel=ChannelKind.INSTAGRAM,
            provider_message_id=ECHO_MID,
            sender=CUSTOMER,
            text="Yes, we ship to Spain in 3-5 days.",
            account=ACCOUNT,
            sent_at=datetime(2025, 3, 14, 9, 26, 59, tzinfo=UTC),
            is_echo=True,
        )
    ]


def test_attachment_without_text_takes_the_attachments_kind_and_reply_to() -> None:
    assert _parse("dm_attachment_reply.json") == [
        InboundMessage(
            channel=ChannelKind.INSTAGRAM,
            provider_message_id="aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMDAwMDAwMDE6cGhvdG8",
            sender=CUSTOMER,
            text="",
            account=ACCOUNT,
            sent_at=datetime(2025, 3, 14, 9, 27, 9, tzinfo=UTC),
            kind="image",
            attachments=(
                Attachment(
                    kind="image",
                    url="https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1795&signature=abc",
                ),
            ),
            reply_to=ECHO_MID,
        )
    ]


def test_read_receipt_is_a_read_status_for_the_stores_message() -> None:
    assert _parse("read.json") == [
        StatusUpdate(
            channel=ChannelKind.INSTAGRAM,
            provider_message_id=ECHO_MID,
            status="read",
            account=ACCOUNT,
            recipient=CUSTOMER,
            occurred_at=datetime(2025, 3, 14, 9, 27, 19, tzinfo=UTC),
        )
    ]


def test_comment_is_a_message_addressed_by_its_comment_id() -> None:
    assert _parse("comment.json") == [
        InboundMessage(
            channel=ChannelKind.INSTAGRAM,
            provider_message_id="17865799348089039",
            sender=CUSTOMER,
            text="How much is this one?",
            account=ACCOUNT,
            sender_name="ada.codes",
            kind="comment",
            comment_id="17865799348089039",
            post_id="18030000000000001",
        )
    ]


def test_the_stores_own_comment_is_an_echo() -> None:
    payload = json.loads((FIXTURES / "comment.json").read_text())
    payload["entry"][0]["changes"][0]["value"]["from"] = {"id": ACCOUNT, "username": "store"}
    payload["entry"][0]["changes"][0]["value"]["parent_id"] = "17865799348089001"

    [event] = webhook.parse(json.dumps(payload).encode())

    assert isinstance(event, InboundMessage)
    assert event.is_echo is True
    assert event.reply_to == "17865799348089001"


def test_live_comments_are_comments_too() -> None:
    payload = json.loads((FIXTURES / "comment.json").read_text())
    payload["entry"][0]["changes"][0]["field"] = "live_comments"

    [event] = webhook.parse(json.dumps(payload).encode())

    assert isinstance(event, InboundMessage)
    assert event.kind == "comment"


def test_an_edit_names_the_message_it_changes_and_its_new_text() -> None:
    body = {
        "object": "instagram",
        "entry": [
            {
                "id": ACCOUNT,
                "time": 1741944413500,
                "messaging": [
                    {
                        "sender": {"id": CUSTOMER},
                        "recipient": {"id": ACCOUNT},
                        "timestamp": 1741944413500,
                        "message_edit": {
                            "mid": "mid-7",
                            "text": "to Madrid, not Spain",
                            "num_edit": 1,
                        },
                    }
                ],
            }
        ],
    }

    assert webhook.parse(json.dumps(body).encode()) == [
        InboundMessage(
            channel=ChannelKind.INSTAGRAM,
            provider_message_id="mid-7",
            sender=CUSTOMER,
            text="to Madrid, not Spain",
            account=ACCOUNT,
            sent_at=datetime(2025, 3, 14, 9, 26, 53, 500000, tzinfo=UTC),
            kind="edited",
        )
    ]


def test_reactions_postbacks_and_mentions_are_ignored() -> None:
    assert _parse("ignored.json") == []


def test_one_unreadable_entry_does_not_lose_the_other_entries_messages() -> None:
    # Given a batch of two entries, the first's message without its mid
    good = json.loads((FIXTURES / "dm_text.json").read_text())
    bad = json.loads(json.dumps(good["entry"][0]))
    del bad["messaging"][0]["message"]["mid"]
    good["entry"].insert(0, bad)

    with pytest.raises(PartlyMalformed) as raised:
        webhook.parse(json.dumps(good).encode())

    assert raised.value.problems == [
        "entry[0].messaging[0].message.mid is missing or not a non-empty string"
    ]
    assert raised.value.events == _parse("dm_text.json")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"{", "the body is not JSON", id="not_json_case"),
        pytest.param(
            b'{"object": "page", "entry": []}',
            "object is 'page', expected 'instagram'",
            id="messenger_payload_case",
        ),
        pytest.param(
            b'{"object": "instagram", "entry": [{"id": "1", "messaging": '
            b'[{"sender": {}, "recipient": {"id": "1"}, "message": {"mid": "m"}}]}]}',
            r"entry\[0\].messaging\[0\].sender.id is missing",
            id="message_without_sender_case",
        ),
        pytest.param(
            b'{"object": "instagram", "entry": [{"id": "1", "messaging": [{"sender": '
            b'{"id": "2"}, "recipient": {"id": "1"}, "message": {"text": "hi"}}]}]}',
            r"entry\[0\].messaging\[0\].message.mid is missing",
            id="message_without_mid_case",
        ),
        pytest.param(
            b'{"object": "instagram", "entry": [{"id": "1", "changes": '
            b'[{"field": "comments", "value": {"from": {"id": "2"}}}]}]}',
            r"entry\[0\].changes\[0\].value.id is missing",
            id="comment_without_id_case",
        ),
        pytest.param(
            b'{"object": "instagram", "entry": [{"id": "1", "messaging": [{"sender": '
            b'{"id": "2"}, "recipient": {"id": "1"}, "message": {"mid": "m", "attachments": '
            b'[{"payload": {"url": "u"}}]}}]}]}',
            r"entry\[0\].messaging\[0\].message.attachments\[0\].type is missing",
            id="attachment_without_type_case",
        ),
    ],
)
def test_malformed_bodies_raise_a_readable_reason(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedWebhook, match=reason):
        webhook.parse(body)
