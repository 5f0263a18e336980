"""Email over SMTP against a real aiosmtpd server on loopback: MIME shape, headers, and
how SMTP reply codes become transient or permanent failures."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from tests.channels.conftest import email_adapter, start_smtp_server

from parley.channels.base import (
    AccountChannelError,
    OutboundMessage,
    PermanentChannelError,
    SendingAccount,
    TransientChannelError,
)
from parley.channels.email_smtp.adapter import EmailSmtp, message_id_for
from parley.settings import Settings

pytestmark = pytest.mark.anyio

# What the ``email_channel`` fixture (conftest.py) configures.
EMAIL_FROM = "Demo Store <orders@demo.parley.test>"

Channel = tuple[EmailSmtp, Any]


def email(**overrides: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "idempotency_key": "delivery:42",
        "to": "Ada Lovelace <ada@example.com>",
        "subject": "Your order #1001 has shipped",
        "text": "Hi Ada, your order is on its way.",
    }
    return OutboundMessage(**(fields | overrides))


def received(server: Any, index: int = 0) -> EmailMessage:
    wire = server.handler.received[index].content.replace(b"\r\n", b"\n")
    parsed = message_from_bytes(wire, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


async def test_envelope_and_headers(email_channel: Channel) -> None:
    adapter, server = email_channel

    result = await adapter.send(email())

    (envelope,) = server.handler.received
    assert envelope.mail_from == "orders@demo.parley.test"
    assert envelope.rcpt_tos == ["ada@example.com"]
    mail = received(server)
    assert mail["From"] == EMAIL_FROM
    assert mail["To"] == "Ada Lovelace <ada@example.com>"
    assert mail["Subject"] == "Your order #1001 has shipped"
    assert mail["Message-ID"] == "<delivery=3A42@demo.parley.test>"
    assert mail["Date"] is not None
    assert result.provider_message_id == "<delivery=3A42@demo.parley.test>"
    assert result.status == "accepted"
    assert result.raw == {"response": "2.0.0 Ok: queued as 4ABC", "refused": {}}


async def test_text_only_is_a_single_plain_part(email_channel: Channel) -> None:
    adapter, server = email_channel

    await adapter.send(email())

    mail = received(server)
    assert mail.get_content_type() == "text/plain"
    assert not mail.is_multipart()
    assert mail.get_content() == "Hi Ada, your order is on its way.\n"


async def test_html_becomes_an_alternative_to_the_text(email_channel: Channel) -> None:
    adapter, server = email_channel

    await adapter.send(email(html="<p>Hi Ada, your order is <b>on its way</b>.</p>"))

    mail = received(server)
    assert mail.get_content_type() == "multipart/alternative"
    plain, html = mail.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert plain.get_content() == "Hi Ada, your order is on its way.\n"
    assert html.get_content_type() == "text/html"
    assert html.get_content() == "<p>Hi Ada, your order is <b>on its way</b>.</p>\n"


async def test_list_unsubscribe_headers_are_sent(email_channel: Channel) -> None:
    adapter, server = email_channel
    headers = {
        "List-Unsubscribe": "<https://shop.test/u/abc123>, <mailto:unsub@demo.parley.test>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }

    await adapter.send(email(headers=headers))

    mail = received(server)
    # Over 78 characters, so folded after the colon; unfolding leaves the leading space.
    assert mail["List-Unsubscribe"].lstrip() == headers["List-Unsubscribe"]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_non_ascii_content_survives(email_channel: Channel) -> None:
    adapter, server = email_channel

    await adapter.send(email(subject="Ihre Bestellung ist unterwegs ✓", text="Grüße, Zoë"))

    mail = received(server)
    assert mail["Subject"] == "Ihre Bestellung ist unterwegs ✓"
    assert mail.get_content() == "Grüße, Zoë\n"


async def test_same_key_gives_same_message_id_on_retry(email_channel: Channel) -> None:
    adapter, server = email_channel

    first = await adapter.send(email())
    second = await adapter.send(email())

    assert first.provider_message_id == second.provider_message_id
    assert received(server, 0)["Message-ID"] == received(server, 1)["Message-ID"]


def test_message_id_escapes_unsafe_characters_without_collisions() -> None:
    assert message_id_for("send:run-7:step.2", "shop.test") == "<send=3Arun-7=3Astep=2E2@shop.test>"
    assert message_id_for("a:b", "shop.test") != message_id_for("a-b", "shop.test")
    assert message_id_for("a=3Ab", "shop.test") != message_id_for("a:b", "shop.test")
    assert message_id_for("é", "shop.test") == "<=C3=A9@shop.test>"


async def test_connection_is_reused_across_sends(email_channel: Channel) -> None:
    adapter, server = email_channel

    for _ in range(3):
        await adapter.send(email())

    assert len(server.handler.received) == 3
    assert len({envelope.peer for envelope in server.handler.received}) == 1


async def test_refused_recipient_550_is_permanent(email_channel: Channel) -> None:
    adapter, server = email_channel
    server.handler.rcpt_reply = "550 5.1.1 <ada@example.com>: Recipient address rejected"

    with pytest.raises(PermanentChannelError) as caught:
        await adapter.send(email())

    assert caught.value.provider_code == "550"
    assert caught.value.reason == (
        "the mail server refused the recipient (ada@example.com: 550 5.1.1 "
        "<ada@example.com>: Recipient address rejected)"
    )
    assert server.handler.received == []


async def test_greylisted_recipient_450_is_transient(email_channel: Channel) -> None:
    adapter, server = email_channel
    server.handler.rcpt_reply = "450 4.2.0 Greylisted, try again later"

    with pytest.raises(TransientChannelError) as caught:
        await adapter.send(email())

    assert caught.value.provider_code == "450"
    assert server.handler.received == []


@pytest.mark.parametrize(
    ("reply", "error", "code"),
    [
        pytest.param("451 4.3.0 Try again later", TransientChannelError, "451", id="451_case"),
        pytest.param("550 5.7.1 Message rejected", PermanentChannelError, "550", id="550_case"),
        pytest.param("552 5.3.4 Message too big", PermanentChannelError, "552", id="552_case"),
    ],
)
async def test_data_reply_code_decides_the_failure_class(
    email_channel: Channel, reply: str, error: type[Exception], code: str
) -> None:
    adapter, server = email_channel
    server.handler.data_reply = reply

    with pytest.raises(error) as caught:
        await adapter.send(email())

    assert type(caught.value) is error
    assert caught.value.provider_code == code  # type: ignore[attr-defined]
    assert caught.value.reason == f"the mail server answered {reply}"  # type: ignore[attr-defined]


# Loopback only: the relay asks for AUTH without TLS, which aiosmtpd warns about.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.filterwarnings("ignore:Session.login_data is deprecated")
async def test_a_refused_smtp_login_is_an_account_refusal_and_the_right_one_sends() -> None:
    server = start_smtp_server(login=("orders", "right-password"))
    wrong = email_adapter(server, username="orders", password="wrong-password")
    right = email_adapter(server, username="orders", password="right-password")
    try:
        with pytest.raises(AccountChannelError) as caught:
            await wrong.send(email())
        assert server.handler.received == []
        await right.send(email())
    finally:
        await wrong.aclose()
        await right.aclose()
        server.stop()

    assert caught.value.provider_code == "535"
    assert caught.value.reason == (
        "the mail server answered 535 5.7.8 Authentication credentials invalid"
        " (the SMTP login was refused)"
    )
    assert len(server.handler.received) == 1


@pytest.mark.parametrize(
    ("settings", "missing"),
    [
        ({"start_tls": True}, "SMTP STARTTLS extension not supported by server."),
        (
            {"username": "orders", "password": "pw"},
            "The SMTP AUTH extension is not supported by this server. Try connecting via TLS"
            " (or STARTTLS).",
        ),
    ],
    ids=["starttls_not_offered", "login_not_offered"],
)
async def test_settings_the_relay_cannot_take_are_an_account_refusal_not_an_outage(
    settings: dict[str, Any], missing: str
) -> None:
    """Port 587 without STARTTLS turned on (the default), or STARTTLS asked of a relay that
    has none: retrying cannot help, and another channel should take the message now."""
    server = start_smtp_server()  # plain loopback relay: no STARTTLS, no AUTH
    adapter = email_adapter(server, **settings)
    try:
        with pytest.raises(AccountChannelError) as sent:
            await adapter.send(email())
        with pytest.raises(AccountChannelError) as checked:
            await adapter.check()
    finally:
        await adapter.aclose()
        server.stop()

    expected = f"the mail server cannot take these settings: {missing}"
    assert (sent.value.reason, checked.value.reason) == (expected, expected)
    assert server.handler.received == []


async def test_connection_stays_usable_after_a_refusal(email_channel: Channel) -> None:
    adapter, server = email_channel
    server.handler.data_reply = "550 5.7.1 Message rejected"
    with pytest.raises(PermanentChannelError):
        await adapter.send(email())

    server.accept()
    await adapter.send(email())

    assert len(server.handler.received) == 1


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Message-ID": "<other@x>"}, id="message_id_case"),
        pytest.param({"content-type": "text/html"}, id="content_type_case"),
    ],
)
async def test_reserved_headers_are_refused(
    email_channel: Channel, headers: dict[str, str]
) -> None:
    adapter, server = email_channel

    with pytest.raises(PermanentChannelError) as caught:
        await adapter.send(email(headers=headers))

    assert caught.value.reason == f"header {next(iter(headers))!r} is set by the email adapter"
    assert server.handler.received == []


@pytest.mark.parametrize(
    "field",
    [
        pytest.param({"subject": "Hello\r\nBcc: victim@example.com"}, id="subject_case"),
        pytest.param({"to": "ada@example.com\nBcc: victim@example.com"}, id="to_case"),
        pytest.param({"sender_name": "Shop\r\nBcc: victim@example.com"}, id="sender_case"),
        pytest.param({"headers": {"X-Campaign": "a\nBcc: victim@example.com"}}, id="custom_case"),
    ],
)
async def test_header_injection_is_refused(email_channel: Channel, field: dict[str, Any]) -> None:
    adapter, server = email_channel

    with pytest.raises(PermanentChannelError) as caught:
        await adapter.send(email(**field))

    assert caught.value.reason.startswith("cannot build the email: the ")
    assert caught.value.reason.endswith(" header contains a line break")
    assert server.handler.received == []


async def test_a_recipient_without_an_address_is_refused(email_channel: Channel) -> None:
    adapter, server = email_channel

    with pytest.raises(PermanentChannelError) as caught:
        await adapter.send(email(to="Ada Lovelace"))

    assert caught.value.reason == "cannot build the email: no address in 'Ada Lovelace'"
    assert server.handler.received == []


async def test_non_ascii_names_travel_as_encoded_words_over_plain_smtp(
    email_channel: Channel,
) -> None:
    adapter, server = email_channel

    await adapter.send(email(to="Zoë Ünal <zoe@example.com>", sender_name="Café Crème"))

    (envelope,) = server.handler.received
    assert envelope.content.isascii()
    assert envelope.smtp_utf8 is False
    mail = received(server)
    assert mail["To"] == "Zoë Ünal <zoe@example.com>"
    assert mail["From"] == "Café Crème <orders@demo.parley.test>"


async def test_long_lines_are_wrapped_on_the_wire_and_restored_by_the_reader(
    email_channel: Channel,
) -> None:
    adapter, server = email_channel
    html = "<p>" + "<span>Grüße</span>" * 200 + "</p>"

    await adapter.send(email(html=html))

    wire = server.handler.received[0].content
    assert max(len(line) for line in wire.split(b"\r\n")) <= 78
    assert received(server).get_body(("html",)).get_content() == html + "\n"  # type: ignore[union-attr]


async def test_an_internationalised_address_goes_out_as_smtputf8() -> None:
    server = start_smtp_server(smtputf8=True)
    adapter = email_adapter(server)
    try:
        await adapter.send(email(to="Zoë <zoë@example.com>", text="Grüße, Zoë"))
    finally:
        await adapter.aclose()
        server.stop()

    (envelope,) = server.handler.received
    assert envelope.smtp_utf8 is True
    assert envelope.rcpt_tos == ["zoë@example.com"]
    assert "To: Zoë <zoë@example.com>" in envelope.content.decode()
    mail = received(server)
    assert mail["From"] == EMAIL_FROM
    assert mail.get_content() == "Grüße, Zoë\n"


async def test_an_internationalised_address_is_refused_by_a_relay_without_smtputf8(
    email_channel: Channel,
) -> None:
    adapter, server = email_channel

    with pytest.raises(PermanentChannelError) as caught:
        await adapter.send(email(to="zoë@example.com"))

    assert caught.value.reason.startswith("the mail server cannot do what we need:")
    assert server.handler.received == []


def test_from_address_without_domain_is_refused() -> None:
    with pytest.raises(ValueError, match="no domain"):
        EmailSmtp(host="127.0.0.1", port=25, from_address="orders")


async def test_from_settings_uses_smtp_settings(smtp_server: Any) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        email_from="Shop <hello@shop.test>",
    )
    adapter = EmailSmtp.from_settings(settings)
    try:
        result = await adapter.send(email())
    finally:
        await adapter.aclose()

    assert result.provider_message_id == "<delivery=3A42@shop.test>"
    assert smtp_server.handler.received[0].mail_from == "hello@shop.test"


async def test_a_stores_own_address_is_the_from_and_the_envelope_sender(
    email_channel: Channel,
) -> None:
    adapter, server = email_channel
    own = SendingAccount("smtp", "orders@north.example", (), "token")

    await adapter.send(
        email(sender_name="North Goods", account=own, reply_address="help@north.example")
    )

    (envelope,) = server.handler.received
    assert envelope.mail_from == "orders@north.example"
    mail = received(server)
    assert mail["From"] == "North Goods <orders@north.example>"
    assert mail["Reply-To"] == "North Goods <help@north.example>"
    # The Message-ID stays on the deployment's domain: it only has to be unique.
    assert mail["Message-ID"] == "<delivery=3A42@demo.parley.test>"


@pytest.mark.parametrize(
    ("reply_address", "reply_to"),
    [
        pytest.param("help@north.example", "North Goods <help@north.example>", id="own_inbound"),
        pytest.param("Orders@Shop.test", None, id="the_from_address_itself"),
        pytest.param(None, None, id="none_connected"),
    ],
)
def test_a_stores_own_inbound_address_is_the_reply_to_unless_it_is_the_from_address(
    reply_address, reply_to
):
    adapter = EmailSmtp(host="127.0.0.1", port=1, from_address="Parley <orders@shop.test>")
    email = adapter.build_message(
        OutboundMessage(
            idempotency_key="k",
            to="ada@example.com",
            text="Hi",
            sender_name="North Goods",
            reply_address=reply_address,
        )
    )
    assert email["Reply-To"] == reply_to
    assert email["From"] == "North Goods <orders@shop.test>"


def test_a_reply_to_header_of_the_message_is_refused_as_the_adapters_own():
    adapter = EmailSmtp(host="127.0.0.1", port=1, from_address="Parley <orders@shop.test>")
    with pytest.raises(PermanentChannelError, match="'Reply-To' is set by the email adapter"):
        adapter.build_message(
            OutboundMessage(
                idempotency_key="k",
                to="ada@example.com",
                text="Hi",
                headers={"Reply-To": "attacker@example.com"},
            )
        )


def test_sender_name_is_shown_before_the_configured_address():
    adapter = EmailSmtp(host="127.0.0.1", port=1, from_address="Parley <orders@shop.test>")
    email = adapter.build_message(
        OutboundMessage(
            idempotency_key="k", to="ada@example.com", text="Hi", sender_name="Juniper & Pine"
        )
    )
    assert email["From"] == "Juniper & Pine <orders@shop.test>"


def unfolded_header(wire: bytes, name: str) -> str:
    """A header's value exactly as it travels, folding undone (RFC 5322 2.2.3): no
    decoding, so an encoded word shows as one."""
    head = wire.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = head.replace("\r\n ", " ").replace("\r\n\t", "\t")
    (line,) = [line for line in unfolded.split("\r\n") if line.startswith(f"{name}:")]
    return line.removeprefix(f"{name}:").strip()


@pytest.mark.parametrize("to", ["zoe@example.com", "zoë@example.com"])
async def test_one_click_unsubscribe_headers_travel_as_written_to_any_address(to: str) -> None:
    # A marketing email's unsubscribe URL is over 78 characters, so it is longer than a
    # header line should be; encoded as an RFC 2047 word to be folded, it is no URL to a
    # mailbox provider and its one-click unsubscribe is gone (RFC 2369, RFC 8058).
    server = start_smtp_server(smtputf8=True)
    adapter = email_adapter(server)
    unsubscribe = (
        "<https://parley.example.com/unsubscribe/WzEsMjM0NSwiZW1haWwiXQ.3q2-7wQ4k1Zx9_aBcDeFgHiJ>"
    )
    try:
        await adapter.send(
            email(
                to=to,
                headers={
                    "List-Unsubscribe": unsubscribe,
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
            )
        )
    finally:
        await adapter.aclose()
        server.stop()

    wire = server.handler.received[0].content
    assert unfolded_header(wire, "List-Unsubscribe") == unsubscribe
    assert unfolded_header(wire, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"


@pytest.mark.parametrize("to", ["zoe@example.com", "zoë@example.com"])
async def test_a_reply_threads_under_a_long_message_id_to_any_address(to: str) -> None:
    # Outlook's Message-IDs run past 78 characters; encoded as RFC 2047 words they are no
    # message id, and the customer's mail app shows the answer as a new conversation.
    outlook_id = (
        "<DM6PR11MB4691B6E1C0E7D4E8F9A1B2C3D4E5F6A7B8@DM6PR11MB4691.namprd11.prod.outlook.com>"
    )
    server = start_smtp_server(smtputf8=True)
    adapter = email_adapter(server)
    try:
        await adapter.send(
            email(to=to, headers={"In-Reply-To": outlook_id, "References": outlook_id})
        )
    finally:
        await adapter.aclose()
        server.stop()

    wire = server.handler.received[0].content
    assert unfolded_header(wire, "In-Reply-To") == outlook_id
    assert unfolded_header(wire, "References") == outlook_id
    assert max(len(line) for line in wire.split(b"\r\n")) <= 998
