"""WhatsApp Cloud API webhooks: every recorded payload parses, and the representative ones
parse to exactly these events.

Recorded payloads come from ../shared/data/webhooks/whatsapp (pywa's fixtures); each file
holds several named payloads. ``fixtures/`` holds what was written for parley."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import shared_data

from parley.channels.base import (
    Attachment,
    ChannelKind,
    InboundMessage,
    MalformedWebhook,
    MarketingPreference,
    StatusUpdate,
    TemplateReview,
)
from parley.channels.whatsapp_cloud import webhook

FIXTURES = Path(__file__).parent / "fixtures"
PAYLOAD_FILES = (
    "account_update.json",
    "call_connect.json",
    "call_permission_update.json",
    "call_status.json",
    "call_terminate.json",
    "callback_button.json",
    "callback_selection.json",
    "deleted_message.json",
    "edited_message.json",
    "flow_completion.json",
    "message.json",
    "message_status.json",
    "outgoing_message.json",
    "system.json",
    "template_category_update.json",
    "template_components_update.json",
    "template_quality_update.json",
    "template_status_update.json",
    "user_marketing_preferences.json",
)
# The recorded payloads' business number and customer.
ACCOUNT = "1122334455667"
CUSTOMER = "+972987654321"


def _recorded(file: str) -> dict[str, Any]:
    payloads: dict[str, Any] = json.loads(
        shared_data(f"webhooks/whatsapp/payloads/{file}").read_text()
    )
    return payloads


def _parse_recorded(file: str, name: str) -> list[Any]:
    return list(webhook.parse(json.dumps(_recorded(file)[name]).encode()))


def _message(**fields: Any) -> InboundMessage:
    defaults: dict[str, Any] = {
        "channel": ChannelKind.WHATSAPP,
        "provider_message_id": "wamid.xyzxyz",
        "sender": CUSTOMER,
        "account": ACCOUNT,
        "sender_name": "Test Name",
    }
    return InboundMessage(**(defaults | fields))


def test_the_recorded_files_are_the_ones_listed() -> None:
    # A file added to the shared data must be added to PAYLOAD_FILES, not silently skipped.
    directory = shared_data("webhooks/whatsapp/payloads")
    assert sorted(path.name for path in directory.iterdir()) == list(PAYLOAD_FILES)


@pytest.mark.parametrize("file", PAYLOAD_FILES)
def test_every_recorded_payload_parses(file: str) -> None:
    for name, payload in _recorded(file).items():
        events = webhook.parse(json.dumps(payload).encode())

        assert all(
            isinstance(event, InboundMessage | StatusUpdate | TemplateReview | MarketingPreference)
            for event in events
        ), name
        assert all(event.channel is ChannelKind.WHATSAPP for event in events), name


def test_template_reviews_parse_to_status_and_category() -> None:
    approved = _parse_recorded("template_status_update.json", "approved")
    rejected = _parse_recorded("template_status_update.json", "rejected")
    reclassed = _parse_recorded("template_category_update.json", "marketing")

    assert approved == [
        TemplateReview(
            name="order_confirmation",
            language="en_US",
            status="APPROVED",
            category="UTILITY",
            meta_id="1689556908129832",
        )
    ]
    assert rejected == [
        TemplateReview(
            name="abandoned_cart",
            language="en",
            status="REJECTED",
            category="MARKETING",
            meta_id="1689556908129835",
            reason=(
                "Your template has parameters placed next to each other (like {{1}}{{2}}) "
                "without text or punctuation between them."
            ),
        )
    ]
    assert reclassed == [
        TemplateReview(
            name="my_message_template",
            language="he",
            category="MARKETING",
            meta_id="12345678",
        )
    ]


def test_marketing_preferences_parse_for_resume_and_signup() -> None:
    resume = _parse_recorded("user_marketing_preferences.json", "resume")
    signup = _parse_recorded("user_marketing_preferences.json", "signup")

    assert resume == [
        MarketingPreference(
            channel=ChannelKind.WHATSAPP,
            sender="+16505551234",
            wants_marketing=True,
            detail="User requested to resume marketing messages",
            account="106540352242922",
            occurred_at=datetime(2024, 11, 15, 21, 22, 1, tzinfo=UTC),
        )
    ]
    assert [(p.sender, p.wants_marketing) for p in signup] == [("+16505551234", True)]


def test_a_marketing_stop_parses_as_a_refusal_and_other_categories_are_left() -> None:
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "user_preferences",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": ACCOUNT},
                            "user_preferences": [
                                {
                                    "wa_id": "447911123456",
                                    "detail": "User requested to stop marketing messages",
                                    "category": "marketing_messages",
                                    "value": "stop",
                                    "timestamp": 1731705721,
                                },
                                {
                                    "wa_id": "447911123457",
                                    "category": "some_later_category",
                                    "value": "stop",
                                    "timestamp": 1731705721,
                                },
                            ],
                        },
                    }
                ],
            }
        ],
    }

    events = webhook.parse(json.dumps(body).encode())

    assert events == [
        MarketingPreference(
            channel=ChannelKind.WHATSAPP,
            sender="+447911123456",
            wants_marketing=False,
            detail="User requested to stop marketing messages",
            account=ACCOUNT,
            occurred_at=datetime(2024, 11, 15, 21, 22, 1, tzinfo=UTC),
        )
    ]


def test_a_template_review_without_its_name_is_malformed() -> None:
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "message_template_status_update",
                        "value": {"event": "PAUSED", "message_template_language": "en"},
                    }
                ],
            }
        ],
    }

    with pytest.raises(MalformedWebhook, match="message_template_name"):
        webhook.parse(json.dumps(body).encode())


def test_signature_vector_body_parses_to_its_text_message() -> None:
    vector = json.loads(shared_data("webhooks/whatsapp/signature_vector.json").read_text())

    events = webhook.parse(vector["raw_body"].encode())

    assert events == [
        InboundMessage(
            channel=ChannelKind.WHATSAPP,
            provider_message_id=(
                "wamid.HBgMOTcyNTQ0NDAxMjQzFQIAEhggM0RFQTNCMEEwRTY3QzUwODYzMDc4NjQ4QzM4ODAxM0YA"
            ),
            sender="+972544401243",
            text="Hey there! I am using PyWa.",
            account="277321005464405",
            sent_at=datetime(2024, 10, 29, 19, 58, 23, tzinfo=UTC),
            sender_name="PyWa Tests",
        )
    ]


@pytest.mark.parametrize(
    ("file", "name", "expected"),
    [
        pytest.param(
            "message.json",
            "text",
            _message(text="Body Text", sent_at=datetime(2023, 10, 11, 16, 53, 43, tzinfo=UTC)),
            id="text_case",
        ),
        pytest.param(
            "message.json",
            "reply",
            _message(
                text="replied text",
                reply_to="wamid.xyzxyz==",
                sent_at=datetime(2023, 10, 11, 17, 19, 6, tzinfo=UTC),
            ),
            id="reply_context_case",
        ),
        pytest.param(
            "message.json",
            "image",
            _message(
                text="",
                kind="image",
                attachments=(
                    Attachment(kind="image", provider_media_id="65463453", mime_type="image/jpeg"),
                ),
                sent_at=datetime(2023, 10, 11, 16, 56, 19, tzinfo=UTC),
            ),
            id="image_case",
        ),
        pytest.param(
            "message.json",
            "media_with_url",
            _message(
                text="",
                kind="image",
                attachments=(
                    Attachment(
                        kind="image",
                        provider_media_id="65463453",
                        url=(
                            "https://lookaside.fbsbx.com/whatsapp_business/attachments/"
                            "?mid=65463453&source=webhook&ext=487r9re&hash=heiwchueowbcew-dnedcw"
                        ),
                        mime_type="image/jpeg",
                    ),
                ),
                sent_at=datetime(2023, 10, 11, 16, 56, 19, tzinfo=UTC),
            ),
            id="media_with_url_case",
        ),
        pytest.param(
            "message.json",
            "document",
            _message(
                text="caption",
                kind="document",
                attachments=(
                    Attachment(
                        kind="document",
                        provider_media_id="1234567890987654321",
                        mime_type="application/pdf",
                        filename="filename.pdf",
                        caption="caption",
                    ),
                ),
                sent_at=datetime(2023, 10, 11, 17, 1, 6, tzinfo=UTC),
            ),
            id="document_with_caption_case",
        ),
        pytest.param(
            "message.json",
            "chosen_location",
            _message(
                text="Facebook HQ, 1 Hacker Way, Menlo Park, CA 94025",
                kind="location",
                attachments=(
                    Attachment(
                        kind="location",
                        url="https://maps.google.com/?cid=2000000000000000000",
                        caption="Facebook HQ, 1 Hacker Way, Menlo Park, CA 94025",
                    ),
                ),
                sent_at=datetime(2023, 10, 11, 17, 15, 57, tzinfo=UTC),
            ),
            id="chosen_location_case",
        ),
        pytest.param(
            "message.json",
            "current_location",
            _message(
                text="",
                kind="location",
                attachments=(Attachment(kind="location", url="geo:12.25089,43.90539"),),
                sent_at=datetime(2023, 10, 11, 17, 15, 57, tzinfo=UTC),
            ),
            id="current_location_as_geo_uri_case",
        ),
        pytest.param(
            "callback_button.json",
            "button",
            _message(
                text="title",
                kind="interactive",
                reply_to="wamid.xyzxyz",
                sent_at=datetime(2023, 10, 25, 20, 45, 30, tzinfo=UTC),
            ),
            id="interactive_button_reply_case",
        ),
        pytest.param(
            "callback_selection.json",
            "description",
            _message(
                provider_message_id="wamid.zyzxyz",
                text="title",
                kind="interactive",
                reply_to="wamid.xyzxyz",
                sent_at=datetime(2023, 10, 25, 20, 48, 25, tzinfo=UTC),
            ),
            id="interactive_list_reply_case",
        ),
        pytest.param(
            "callback_button.json",
            "quick_reply",
            _message(
                provider_message_id="wamid.xsidjw",
                text="title",
                kind="button",
                reply_to="wamid.xyzxyz==",
                sent_at=datetime(2023, 10, 25, 21, 23, 47, tzinfo=UTC),
            ),
            id="template_quick_reply_button_case",
        ),
        pytest.param(
            "message.json",
            "reaction",
            _message(
                text="", kind="reaction", sent_at=datetime(2023, 10, 11, 17, 14, 16, tzinfo=UTC)
            ),
            id="reaction_case",
        ),
        pytest.param(
            "message.json",
            "unsupported",
            _message(
                text="", kind="unsupported", sent_at=datetime(2023, 10, 11, 17, 18, 26, tzinfo=UTC)
            ),
            id="unsupported_case",
        ),
    ],
)
def test_representative_messages_parse_exactly(
    file: str, name: str, expected: InboundMessage
) -> None:
    assert _parse_recorded(file, name) == [expected]


@pytest.mark.parametrize(
    ("name", "status", "at"),
    [
        pytest.param("sent", "sent", datetime(2023, 10, 25, 20, 49, 5, tzinfo=UTC), id="sent_case"),
        pytest.param(
            "delivered", "delivered", datetime(2023, 10, 25, 20, 49, 5, tzinfo=UTC), id="delivered"
        ),
        pytest.param("read", "read", datetime(2023, 7, 15, 0, 20, 58, tzinfo=UTC), id="read_case"),
        pytest.param(
            "played", "read", datetime(2023, 7, 15, 0, 20, 58, tzinfo=UTC), id="played_is_read"
        ),
    ],
)
def test_statuses_parse_exactly(name: str, status: str, at: datetime) -> None:
    assert _parse_recorded("message_status.json", name) == [
        StatusUpdate(
            channel=ChannelKind.WHATSAPP,
            provider_message_id="wamid.xyzxyz",
            status=status,
            account=ACCOUNT,
            recipient=CUSTOMER,
            occurred_at=at,
        )
    ]


def test_failed_status_carries_the_error_code_and_reason() -> None:
    assert _parse_recorded("message_status.json", "failed") == [
        StatusUpdate(
            channel=ChannelKind.WHATSAPP,
            provider_message_id="wamid.xyzxyz",
            status="failed",
            account=ACCOUNT,
            recipient=CUSTOMER,
            occurred_at=datetime(2023, 7, 15, 0, 20, 58, tzinfo=UTC),
            error_code="130472",
            error_reason=(
                "User's number is part of an experiment - Failed to send message because "
                "this user's phone number is part of an experiment"
            ),
        )
    ]


def test_a_status_hands_back_the_callback_data_the_send_gave() -> None:
    """``biz_opaque_callback_data`` names the message even when its wamid was never
    recorded (a send interrupted after the hand-over)."""
    payload = _recorded("message_status.json")["sent"]
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["biz_opaque_callback_data"] = (
        "parley-1-42"
    )

    [update] = webhook.parse(json.dumps(payload).encode())

    assert isinstance(update, StatusUpdate)
    assert update.reference == "parley-1-42"


def test_group_recipient_is_not_turned_into_a_phone_number() -> None:
    [update] = _parse_recorded("message_status.json", "group")

    assert isinstance(update, StatusUpdate)
    assert update.recipient == "fowefinoewcnw"


@pytest.mark.parametrize(
    ("file", "name"),
    [
        pytest.param("template_quality_update.json", "yellow", id="template_quality_case"),
        pytest.param("account_update.json", "account_restriction", id="account_update_case"),
        pytest.param("call_connect.json", "user_initiated", id="call_case"),
        pytest.param("outgoing_message.json", "text", id="business_app_echo_case"),
    ],
)
def test_fields_parley_does_not_use_are_ignored(file: str, name: str) -> None:
    assert _parse_recorded(file, name) == []


def test_a_batch_keeps_payload_order_and_each_changes_account() -> None:
    # Given one delivery with a template review, two customers' messages and three
    # statuses for two phone numbers, one of them a status parley has no use for
    body = (FIXTURES / "batch.json").read_bytes()

    events = webhook.parse(body)

    assert events == [
        TemplateReview(
            name="order_dispatched",
            language="en",
            status="APPROVED",
            meta_id="1689556908129832",
        ),
        InboundMessage(
            channel=ChannelKind.WHATSAPP,
            provider_message_id="wamid.ADA1",
            sender="+447911123456",
            text="Where is my order #1001?",
            account="106540352242922",
            sent_at=datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC),
            sender_name="Ada Lovelace",
        ),
        InboundMessage(
            channel=ChannelKind.WHATSAPP,
            provider_message_id="wamid.FRIDA1",
            sender="+525512345678",
            text="¿Tienen la talla M?",
            account="106540352242922",
            sent_at=datetime(2025, 3, 14, 9, 26, 54, tzinfo=UTC),
            sender_name="Frida Kahlo",
        ),
        StatusUpdate(
            channel=ChannelKind.WHATSAPP,
            provider_message_id="wamid.SENT1",
            status="delivered",
            account="106540352242922",
            recipient="+447911123456",
            occurred_at=datetime(2025, 3, 14, 9, 26, 55, tzinfo=UTC),
        ),
        StatusUpdate(
            channel=ChannelKind.WHATSAPP,
            provider_message_id="wamid.SENT3",
            status="read",
            account="106540352242923",
            recipient="+447911123456",
            occurred_at=datetime(2025, 3, 14, 9, 26, 57, tzinfo=UTC),
        ),
    ]


def _with_first_message(**changes: Any) -> bytes:
    payload = json.loads((FIXTURES / "batch.json").read_text())
    message = payload["entry"][0]["changes"][1]["value"]["messages"][0]
    message.update(changes)
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"not json", "the body is not JSON", id="not_json_case"),
        pytest.param(b"\xff\xfe\x00", "the body is not JSON", id="not_utf8_case"),
        pytest.param(b"[]", "the body is not a JSON object", id="array_case"),
        pytest.param(
            b'{"object": "instagram", "entry": []}',
            "object is 'instagram', expected 'whatsapp_business_account'",
            id="wrong_object_case",
        ),
        pytest.param(
            b'{"object": "whatsapp_business_account", "entry": {}}',
            "entry is not a list",
            id="entry_not_a_list_case",
        ),
        pytest.param(
            b'{"object": "whatsapp_business_account", "entry": [{"changes": '
            b'[{"field": "messages", "value": []}]}]}',
            r"entry\[0\].changes\[0\].value is not an object",
            id="value_not_an_object_case",
        ),
        pytest.param(
            _with_first_message(id=None),
            r"entry\[0\].changes\[1\].value.messages\[0\].id is missing",
            id="message_without_id_case",
        ),
        pytest.param(
            _with_first_message(timestamp="yesterday"),
            r"entry\[0\].changes\[1\].value.messages\[0\].timestamp is not an epoch timestamp",
            id="unreadable_timestamp_case",
        ),
        pytest.param(
            _with_first_message(timestamp=10**30),
            r"entry\[0\].changes\[1\].value.messages\[0\].timestamp is out of range",
            id="timestamp_out_of_range_case",
        ),
        pytest.param(
            b"[" * 100_000 + b"]" * 100_000,
            "the body nests JSON too deeply",
            id="deep_nesting_case",
        ),
    ],
)
def test_malformed_bodies_raise_a_readable_reason(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedWebhook, match=reason):
        webhook.parse(body)


def test_malformed_webhook_is_a_value_error() -> None:
    assert issubclass(MalformedWebhook, ValueError)
