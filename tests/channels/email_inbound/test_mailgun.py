"""Mailgun inbound email: the signed timestamp (vector, forgery, staleness, skew) and the
threading fields that let a customer's reply join the conversation parley started."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import shared_data

from parley.channels.base import (
    Attachment,
    ChannelKind,
    InboundMessage,
    MalformedWebhook,
    SignatureError,
)
from parley.channels.email_inbound import mailgun
from parley.channels.email_smtp.adapter import message_id_for

FIXTURES = Path(__file__).parent / "fixtures"
KEY = "demo-mailgun-signing-key"
SIGNED_AT = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)  # reply_forward.json's timestamp


def _fixture(name: str) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return fields


@dataclass(frozen=True)
class FakeUpload:
    """What Starlette's UploadFile offers the parser."""

    filename: str | None
    content_type: str | None


def _verify(fields: dict[str, Any], *, now: datetime, key: str = KEY) -> None:
    mailgun.verify_signature(
        fields["timestamp"], fields["token"], fields["signature"], key, now=now
    )


def test_vendor_vector_verifies() -> None:
    vector = json.loads(
        shared_data("webhooks/mailgun/mailgun_signature_vector_derived.json").read_text()
    )
    signed_at = datetime.fromtimestamp(int(vector["timestamp"]), tz=UTC)

    assert (
        mailgun.sign(vector["timestamp"], vector["token"], vector["webhook_signing_key"])
        == (vector["signature"])
    )
    mailgun.verify_signature(
        vector["timestamp"],
        vector["token"],
        vector["signature"],
        vector["webhook_signing_key"],
        now=signed_at + timedelta(seconds=5),
    )


def test_fixture_signature_verifies_within_the_window() -> None:
    _verify(_fixture("reply_forward.json"), now=SIGNED_AT + timedelta(seconds=300))


@pytest.mark.parametrize(
    "field",
    ["timestamp", "token", "signature"],
)
def test_one_flipped_character_is_refused(field: str) -> None:
    fields = _fixture("reply_forward.json")
    value = fields[field]
    fields[field] = value[:-1] + ("0" if value[-1] != "0" else "1")

    with pytest.raises(SignatureError, match="does not match"):
        _verify(fields, now=SIGNED_AT)


def test_another_key_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        _verify(_fixture("reply_forward.json"), now=SIGNED_AT, key="another-key")


def test_stale_timestamp_is_refused_even_when_correctly_signed() -> None:
    with pytest.raises(SignatureError, match=r"is 301 s old \(stale\)"):
        _verify(_fixture("reply_forward.json"), now=SIGNED_AT + timedelta(seconds=301))


def test_future_timestamp_beyond_the_skew_is_refused() -> None:
    with pytest.raises(SignatureError, match="dated 301 s in the future"):
        _verify(_fixture("reply_forward.json"), now=SIGNED_AT - timedelta(seconds=301))


def test_future_timestamp_within_the_skew_is_accepted() -> None:
    _verify(_fixture("reply_forward.json"), now=SIGNED_AT - timedelta(seconds=300))


def test_tolerance_can_be_narrowed() -> None:
    fields = _fixture("reply_forward.json")

    with pytest.raises(SignatureError, match="stale"):
        mailgun.verify_signature(
            fields["timestamp"],
            fields["token"],
            fields["signature"],
            KEY,
            now=SIGNED_AT + timedelta(seconds=61),
            tolerance=timedelta(seconds=60),
        )


@pytest.mark.parametrize(
    ("timestamp", "token", "signature", "key", "reason"),
    [
        pytest.param("", "t", "s", KEY, "is missing", id="no_timestamp_case"),
        pytest.param("1", "", "s", KEY, "is missing", id="no_token_case"),
        pytest.param("1", "t", "", KEY, "is missing", id="no_signature_case"),
        pytest.param("1.5", "t", "s", KEY, "not a number of seconds", id="fraction_case"),
        pytest.param("1", "t", "s", "", "no Mailgun signing key", id="no_key_case"),
    ],
)
def test_incomplete_signature_blocks_are_refused(
    timestamp: str, token: str, signature: str, key: str, reason: str
) -> None:
    with pytest.raises(SignatureError, match=reason):
        mailgun.verify_signature(timestamp, token, signature, key, now=SIGNED_AT)


def test_naive_now_is_a_programming_error() -> None:
    fields = _fixture("reply_forward.json")

    with pytest.raises(ValueError, match="timezone-aware"):
        _verify(fields, now=SIGNED_AT.replace(tzinfo=None))


def test_reply_parses_with_its_threading_fields() -> None:
    fields = _fixture("reply_forward.json") | {
        "attachment-1": FakeUpload(filename="label.pdf", content_type="application/pdf")
    }

    message = mailgun.parse(fields)

    assert message == InboundMessage(
        channel=ChannelKind.EMAIL,
        provider_message_id="<CAF=alan.1741944413@mail.example.com>",
        sender="alan@example.com",
        text="Thanks! Can I change the delivery address?",
        account="orders@demo.parley.test",
        sent_at=SIGNED_AT,
        sender_name="Alan Turing",
        attachments=(Attachment(kind="file", mime_type="application/pdf", filename="label.pdf"),),
        reply_to="<delivery-42@demo.parley.test>",
        references=("<delivery-41@demo.parley.test>", "<delivery-42@demo.parley.test>"),
        subject="Re: Your order #1003 has shipped",
    )


def test_reply_to_equals_the_message_id_parley_wrote() -> None:
    # Given parley sent delivery-42 with the SMTP adapter's Message-ID
    sent_id = message_id_for("delivery-42", "demo.parley.test")

    # When the customer's reply comes back through Mailgun
    message = mailgun.parse(_fixture("reply_forward.json"))

    # Then its In-Reply-To and last Reference name that very id, in the same form
    assert message.reply_to == sent_id
    assert message.references[-1] == sent_id


def test_message_headers_stand_in_for_missing_fields() -> None:
    message = mailgun.parse(_fixture("new_thread_headers_only.json"))

    assert message == InboundMessage(
        channel=ChannelKind.EMAIL,
        provider_message_id="<ada-first-mail@example.com>",
        sender="ada@example.com",
        text="Hello, do you have the tote in green?",
        account="orders@demo.parley.test",
        sent_at=datetime(2025, 3, 14, 9, 28, 20, tzinfo=UTC),
        sender_name="Ada Lovelace",
        subject="Tote colours",
    )


def test_envelope_sender_is_used_when_from_has_no_address() -> None:
    fields = _fixture("new_thread_headers_only.json") | {"from": "undisclosed"}

    message = mailgun.parse(fields)

    assert message.sender == "bounces+srs=k3j2=ada@forwarder.example"
    assert message.sender_name is None


def test_a_single_reply_to_is_the_sender_a_form_mailers_from_is_not() -> None:
    fields = _fixture("new_thread_headers_only.json") | {
        "from": "North Goods <mailer@shopify.com>",
        "Reply-To": "Grace Hopper <Grace@Example.com>",
    }

    message = mailgun.parse(fields)

    assert (message.sender, message.sender_name) == ("grace@example.com", "Grace Hopper")


@pytest.mark.parametrize(
    "reply_to",
    [
        pytest.param("a@example.com, b@example.com", id="several_addresses_case"),
        pytest.param("undisclosed", id="no_address_case"),
        pytest.param("Support <{store}>", id="the_stores_own_address_case"),
    ],
)
def test_a_reply_to_naming_no_one_person_leaves_from_as_the_sender(reply_to: str) -> None:
    fields = _fixture("new_thread_headers_only.json")
    fields["Reply-To"] = reply_to.format(store=fields["recipient"].upper())

    message = mailgun.parse(fields)

    assert message.sender == mailgun.parse(_fixture("new_thread_headers_only.json")).sender


@pytest.mark.parametrize(
    ("header", "value"),
    [
        pytest.param("Auto-Submitted", "auto-replied", id="an_out_of_office"),
        pytest.param("auto-submitted", "Auto-Generated (ticket)", id="a_help_desks_receipt"),
        pytest.param("Precedence", "bulk", id="bulk_mail"),
        pytest.param("Precedence", "auto_reply", id="an_older_auto_reply"),
        pytest.param("X-Autoreply", "yes", id="a_vacation_responder"),
    ],
)
def test_mail_a_machine_sent_is_marked_automated(header: str, value: str) -> None:
    fields = _fixture("new_thread_headers_only.json") | {header: value}

    assert mailgun.parse(fields).is_automated is True


@pytest.mark.parametrize(
    ("header", "value"),
    [
        pytest.param("Auto-Submitted", "no", id="auto_submitted_no"),
        pytest.param("Precedence", "first-class", id="first_class"),
    ],
)
def test_mail_a_person_wrote_is_not_marked_automated(header: str, value: str) -> None:
    fields = _fixture("new_thread_headers_only.json") | {header: value}

    assert mailgun.parse(fields).is_automated is False
    assert mailgun.parse(_fixture("reply_forward.json")).is_automated is False


def test_body_plain_is_used_without_stripped_text() -> None:
    fields = _fixture("reply_forward.json")
    del fields["stripped-text"]

    assert mailgun.parse(fields).text == fields["body-plain"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("<a@x> <b@x>", ("<a@x>", "<b@x>"), id="spaces_case"),
        pytest.param("<a@x>\r\n\t<b@x>", ("<a@x>", "<b@x>"), id="folded_case"),
        pytest.param("<a@x>,<b@x>", ("<a@x>", "<b@x>"), id="commas_case"),
        pytest.param("<a@x> (comment) <b@x>", ("<a@x>", "<b@x>"), id="comment_case"),
        pytest.param("a@x b@x", ("<a@x>", "<b@x>"), id="bare_ids_case"),
        pytest.param("", (), id="empty_case"),
    ],
)
def test_references_are_kept_in_bracketed_form(header: str, expected: tuple[str, ...]) -> None:
    fields = _fixture("reply_forward.json") | {"References": header}

    assert mailgun.parse(fields).references == expected


def test_without_message_id_the_token_identifies_the_message() -> None:
    fields = _fixture("new_thread_headers_only.json")
    fields["message-headers"] = json.dumps([["From", "ada@example.com"]])

    assert mailgun.parse(fields).provider_message_id == (
        "<0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607182@mailgun.invalid>"
    )


def test_counted_attachments_without_uploads_are_still_listed() -> None:
    fields = _fixture("reply_forward.json") | {"attachment-count": "2"}

    assert mailgun.parse(fields).attachments == (Attachment(kind="file"), Attachment(kind="file"))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param({"from": "", "sender": ""}, "neither from nor sender", id="no_sender_case"),
        pytest.param({"recipient": ""}, "recipient is missing", id="no_recipient_case"),
        pytest.param({"message-headers": "not json"}, "message-headers is not JSON", id="bad_json"),
        pytest.param({"message-headers": "{}"}, "message-headers is not a list", id="not_a_list"),
        pytest.param(
            {"message-headers": '[["From"]]'}, "other than \\[name, value\\]", id="bad_pair_case"
        ),
        pytest.param({"attachment-count": "x"}, "attachment-count is not a number", id="count"),
        pytest.param(
            {"attachment-count": "101"}, "attachment-count 101 is over 100", id="too_many_case"
        ),
        pytest.param(
            {"attachment-count": "9" * 5000}, "attachment-count 9+ is over 100", id="absurd_case"
        ),
    ],
)
def test_malformed_fields_are_refused(change: dict[str, str], reason: str) -> None:
    fields = _fixture("new_thread_headers_only.json") | change

    with pytest.raises(MalformedWebhook, match=reason):
        mailgun.parse(fields)
