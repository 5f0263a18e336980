"""``/webhooks/{whatsapp,instagram,twilio,email}/{workspace}`` over HTTP: a valid signature
is applied once, a bad one is 401 with nothing written, payloads never pick the store."""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import urlencode

import pytest
from sqlalchemy import event, select, update
from starlette.testclient import TestClient

from parley.channels import meta
from parley.channels.email_inbound import mailgun
from parley.channels.twilio_sms import webhook as twilio
from parley.clock import utc_now
from parley.customers.models import ConsentRecord
from parley.http.app import create_app
from parley.inbox import service as inbox_service
from parley.inbox.models import Conversation
from parley.jobs.models import Job
from parley.messaging import service as outbox
from parley.messaging.models import Direction, Message, WhatsAppTemplate
from parley.runtime import Runtime
from parley.settings import Settings, get_settings
from parley.store_events.models import WebhookDelivery
from parley.workspaces.models import ChannelAccount, Workspace
from support import count, rows, seed

DEMO = Settings()
PUBLIC_URL = "https://parley.example.com"
ADA_WA_ID = "447911123456"
XSS = [
    '"><img src=x onerror=alert(1)>',
    "<script>alert('x')</script>",
    "[click](javascript:alert(1))",
    "' onmouseover='alert(1)",
]


@pytest.fixture
def client(db):
    seed(db)
    settings = get_settings(database_url=db.url, embedded_worker=False, public_url=PUBLIC_URL)
    app = create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={}))
    with TestClient(app, base_url="http://internal:8000") as test_client:
        yield test_client


def whatsapp_body(text: str, *, message_id: str = "wamid.IN1", phone_number_id: str | None = None):
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550783881",
                                    "phone_number_id": phone_number_id
                                    or DEMO.whatsapp_phone_number_id,
                                },
                                "contacts": [{"profile": {"name": "Ada"}, "wa_id": ADA_WA_ID}],
                                "messages": [
                                    {
                                        "from": ADA_WA_ID,
                                        "id": message_id,
                                        "timestamp": str(int(time.time())),
                                        "type": "text",
                                        "text": {"body": text},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()


def post_whatsapp(client, body: bytes, *, secret: str = DEMO.demo_meta_app_secret):
    return client.post(
        "/webhooks/whatsapp/demo",
        content=body,
        headers={
            "X-Hub-Signature-256": meta.sign(body, secret),
            "Content-Type": "application/json",
        },
    )


def inbound(db) -> list[Message]:
    return rows(db, Message, Message.direction == Direction.INBOUND)


def test_whatsapp_handshake_echoes_the_challenge_only_for_the_right_token(client):
    ok = client.get(
        "/webhooks/whatsapp/demo",
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": DEMO.demo_meta_verify_token,
            "hub.challenge": "1158201444",
        },
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    wrong = client.get(
        "/webhooks/whatsapp/demo",
        params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
    )
    assert wrong.status_code == 403
    assert "1" not in wrong.text.replace("verification", "")


def test_a_signed_whatsapp_message_is_stored_once_and_scheduled_for_the_assistant(client, db):
    body = whatsapp_body("where is my order?")
    first = post_whatsapp(client, body)
    again = post_whatsapp(client, body)
    assert first.status_code == again.status_code == 200
    assert first.json()["messages"] == 1
    assert again.json() == {"status": "duplicate"}
    (message,) = inbound(db)
    assert (message.channel, message.sender, message.body) == (
        "whatsapp",
        "+447911123456",
        "where is my order?",
    )
    assert count(db, Job, Job.kind == "assistant.respond") == 1


def test_ten_identical_whatsapp_deliveries_at_once_are_one_message_and_one_reply_job(client, db):
    """Provider webhooks share commits under load (group commit), so identical deliveries
    race inside one transaction as well as across several: the unique key decides."""
    body = whatsapp_body("where is my order?")
    answers: list[tuple[int, str]] = []
    barrier = threading.Barrier(10)

    def deliver() -> None:
        barrier.wait()
        response = post_whatsapp(client, body)
        answers.append((response.status_code, response.json()["status"]))

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answers) == [(200, "accepted")] + [(200, "duplicate")] * 9
    assert (count(db, WebhookDelivery), len(inbound(db))) == (1, 1)
    assert count(db, Job, Job.kind == "assistant.respond") == 1


@pytest.mark.parametrize(
    "header_case",
    ["missing", "wrong_secret", "flipped_byte"],
)
def test_a_whatsapp_delivery_that_does_not_verify_is_401_and_writes_nothing(
    client, db, header_case
):
    body = whatsapp_body("hello")
    headers = {"Content-Type": "application/json"}
    if header_case == "wrong_secret":
        headers["X-Hub-Signature-256"] = meta.sign(body, "not-the-secret")
    elif header_case == "flipped_byte":
        headers["X-Hub-Signature-256"] = meta.sign(body, DEMO.demo_meta_app_secret)
        body = body.replace(b"hello", b"hellp")
    response = client.post("/webhooks/whatsapp/demo", content=body, headers=headers)
    assert response.status_code == 401
    assert (count(db, WebhookDelivery), count(db, Message), count(db, Job)) == (0, 0, 0)


def _account_reads(db) -> list[str]:
    seen: list[str] = []

    def note(_conn, _cursor, statement, *_args):
        if "FROM channel_accounts" in statement:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    return seen


def test_deliveries_in_the_same_second_read_the_stores_accounts_once(client, db):
    reads = _account_reads(db)
    for n in range(3):
        response = post_whatsapp(client, whatsapp_body(f"hello {n}", message_id=f"wamid.R{n}"))
        assert response.status_code == 200
    assert len(reads) == 1
    assert len(inbound(db)) == 3


def test_an_app_secret_changed_elsewhere_works_on_its_first_delivery_and_the_old_one_stops(
    client, db
):
    assert post_whatsapp(client, whatsapp_body("before", message_id="wamid.B")).status_code == 200
    with db.transaction() as session:
        account = session.scalars(
            select(ChannelAccount).where(ChannelAccount.provider == "whatsapp_cloud")
        ).one()
        account.secrets = {**account.secrets, "app_secret": "rotated-app-secret"}
    reads = _account_reads(db)
    after = post_whatsapp(
        client, whatsapp_body("after", message_id="wamid.A"), secret="rotated-app-secret"
    )
    assert after.status_code == 200
    assert len(reads) == 1  # the remembered secret did not match: read again, then accepted
    stale = post_whatsapp(client, whatsapp_body("stale", message_id="wamid.S"))
    assert stale.status_code == 401
    assert len(reads) == 2  # a forged or stale signature costs one read, as before
    assert sorted(m.body for m in inbound(db)) == ["after", "before"]


@pytest.mark.parametrize(
    ("escaped", "stored"),
    [
        pytest.param("\\u0000", "\ufffd", id="nul_case"),
        pytest.param("\\ud83d", "\ufffd", id="half_an_emoji_case"),
    ],
)
def test_text_no_database_can_hold_is_stored_replaced_not_a_500(client, db, escaped, stored):
    # Given a batch whose first message's text holds what JSON can spell but no database
    # can store (PostgreSQL refuses NUL; no engine encodes half a surrogate pair as UTF-8)
    payload = json.loads(whatsapp_body("PLACEHOLDER", message_id="wamid.ODD"))
    good = json.loads(whatsapp_body("thanks", message_id="wamid.NEXT"))
    payload["entry"].extend(good["entry"])
    body = json.dumps(payload).replace("PLACEHOLDER", f"size {escaped}M").encode()

    response = post_whatsapp(client, body)

    assert response.status_code == 200, response.text
    assert response.json()["messages"] == 2
    assert sorted((m.provider_message_id, m.body) for m in inbound(db)) == [
        ("wamid.NEXT", "thanks"),
        ("wamid.ODD", f"size {stored}M"),
    ]


def test_an_sms_holding_a_nul_is_stored_replaced_not_a_500(client, db):
    response = _twilio_post(client, _sms("size\x00M", sid="SMNUL"))

    assert response.status_code == 200, response.text
    assert [m.body for m in inbound(db)] == ["size\ufffdM"]
    (delivery,) = rows(db, WebhookDelivery, WebhookDelivery.source == "twilio")
    assert "\x00" not in delivery.body


def test_a_malformed_but_signed_whatsapp_body_is_a_4xx_with_a_reason(client, db):
    body = b'{"object": "whatsapp_business_account", "entry": "nope"}'
    response = post_whatsapp(client, body)
    assert response.status_code == 422
    assert response.json()["error"]
    assert count(db, Message) == 0


def test_one_unreadable_message_in_a_meta_batch_does_not_lose_the_others(client, db):
    # Given one delivery whose first change holds a message without its id, and whose
    # second change holds a readable message: Meta would resend the same bytes forever
    payload = json.loads(whatsapp_body("where is my order?", message_id="wamid.GOOD"))
    bad_change = json.loads(json.dumps(payload["entry"][0]["changes"][0]))
    del bad_change["value"]["messages"][0]["id"]
    payload["entry"][0]["changes"].insert(0, bad_change)
    body = json.dumps(payload).encode()

    response = post_whatsapp(client, body)

    assert response.status_code == 200, response.text
    assert (response.json()["messages"], response.json()["malformed"]) == (1, 1)
    assert [m.provider_message_id for m in inbound(db)] == ["wamid.GOOD"]
    (delivery,) = rows(db, WebhookDelivery, WebhookDelivery.source == "whatsapp_cloud")
    assert delivery.body == body.decode()
    assert (
        delivery.status_reason
        == "entry[0].changes[0].value.messages[0].id is missing or not a non-empty string"
    )


def test_a_payload_naming_another_stores_number_reaches_no_conversation(client, db):
    response = post_whatsapp(client, whatsapp_body("hi", phone_number_id="999999999999999"))
    assert response.status_code == 200
    assert response.json()["ignored"] == 1
    assert (count(db, Message), count(db, Conversation)) == (0, 0)


def test_whatsapp_statuses_update_the_message_we_sent(client, db):
    post_whatsapp(client, whatsapp_body("hello"))

    with db.transaction() as session:
        outbox.insert_message(
            session,
            {
                **outbox.blank_row(workspace_id=inbound(db)[0].workspace_id, now=utc_now()),
                "idempotency_key": "sent-1",
                "message_type": "reply",
                "channel": "whatsapp",
                "status": "sent",
                "provider": "whatsapp",
                "provider_message_id": "wamid.OUT1",
            },
        )
    for status in ("read", "delivered"):
        body = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "1",
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "messaging_product": "whatsapp",
                                    "metadata": {
                                        "display_phone_number": "15550783881",
                                        "phone_number_id": DEMO.whatsapp_phone_number_id,
                                    },
                                    "statuses": [
                                        {
                                            "id": "wamid.OUT1",
                                            "status": status,
                                            "timestamp": str(int(time.time())),
                                            "recipient_id": ADA_WA_ID,
                                        }
                                    ],
                                },
                            }
                        ],
                    }
                ],
            }
        ).encode()
        assert post_whatsapp(client, body).status_code == 200
    (sent,) = rows(db, Message, Message.idempotency_key == "sent-1")
    assert sent.status == "read"


def _business_account(field: str, value: dict) -> bytes:
    entry = {
        "id": "102290129340398",
        "time": 1751247548,
        "changes": [{"field": field, "value": value}],
    }
    return json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()


def test_metas_review_of_a_template_updates_this_stores_registry(client, db):
    approved = _business_account(
        "message_template_status_update",
        {
            "event": "APPROVED",
            "message_template_id": 1689556908129832,
            "message_template_name": "order_dispatched",
            "message_template_language": "en",
            "reason": "NONE",
            "message_template_category": "UTILITY",
        },
    )
    reclassed = _business_account(
        "template_category_update",
        {
            "message_template_id": 1689556908129832,
            "message_template_name": "order_dispatched",
            "message_template_language": "en",
            "previous_category": "UTILITY",
            "new_category": "MARKETING",
        },
    )

    first = post_whatsapp(client, approved)
    second = post_whatsapp(client, reclassed)

    assert (first.status_code, first.json()["templates"]) == (200, 1)
    assert (second.status_code, second.json()["templates"]) == (200, 1)
    [template] = rows(db, WhatsAppTemplate)
    assert (template.name, template.status, template.category, template.meta_id) == (
        "order_dispatched",
        "APPROVED",
        "MARKETING",
        "1689556908129832",
    )


def test_a_template_review_that_does_not_verify_is_401_and_changes_nothing(client, db):
    body = _business_account(
        "message_template_status_update",
        {
            "event": "PAUSED",
            "message_template_name": "order_dispatched",
            "message_template_language": "en",
            "message_template_category": "UTILITY",
        },
    )

    response = post_whatsapp(client, body, secret="not-the-app-secret")

    assert response.status_code == 401
    assert (count(db, WhatsAppTemplate), count(db, WebhookDelivery)) == (0, 0)


def _preference(value: str, detail: str) -> bytes:
    return _business_account(
        "user_preferences",
        {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": "15550783881",
                "phone_number_id": DEMO.whatsapp_phone_number_id,
            },
            "user_preferences": [
                {
                    "wa_id": ADA_WA_ID,
                    "detail": detail,
                    "category": "marketing_messages",
                    "value": value,
                    "timestamp": int(time.time()),
                }
            ],
        },
    )


def test_stopping_whatsapp_marketing_in_the_app_refuses_marketing_only(client, db):
    resumed = post_whatsapp(
        client, _preference("resume", "User requested to resume marketing messages")
    )
    stopped = post_whatsapp(
        client, _preference("stop", "User requested to stop marketing messages")
    )
    again = post_whatsapp(
        client, _preference("stop", "User requested to stop marketing messages again")
    )

    assert [r.json()["preferences"] for r in (resumed, stopped, again)] == [1, 1, 1]
    whatsapp = rows(db, ConsentRecord, ConsentRecord.channel == "whatsapp")
    ada = [c for c in whatsapp if c.customer_id == whatsapp[-1].customer_id]
    assert [(c.purpose, c.is_granted, c.source) for c in ada][-2:] == [
        ("marketing", True, "whatsapp: User requested to resume marketing messages"),
        ("marketing", False, "whatsapp: User requested to stop marketing messages"),
    ]
    assert [(c.purpose, c.is_granted) for c in ada if c.purpose == "transactional"] == [
        ("transactional", True)
    ]


def _twilio_post(client, params: dict[str, str], *, token: str = DEMO.demo_twilio_auth_token):
    url = twilio.public_url(PUBLIC_URL, "/webhooks/twilio/demo", "")
    signature = twilio.compute_signature(url, params, token)
    return client.post(
        "/webhooks/twilio/demo",
        content=urlencode(params),
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )


def _sms(body: str, sid: str = "SM0001") -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC123",
        "From": "+12025550143",
        "To": DEMO.twilio_from_number,
        "Body": body,
        "NumMedia": "0",
    }


def test_twilio_is_verified_against_the_public_url_not_the_proxys(client, db):
    response = _twilio_post(client, _sms("hello"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert [m.body for m in inbound(db)] == ["hello"]


def test_twilio_signed_for_the_internal_url_is_refused(client, db):
    params = _sms("hello")
    signature = twilio.compute_signature(
        "http://internal:8000/webhooks/twilio/demo", params, DEMO.demo_twilio_auth_token
    )
    response = client.post(
        "/webhooks/twilio/demo",
        content=urlencode(params),
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert response.status_code == 401
    assert count(db, Message) == 0


def test_a_replayed_inbound_sms_is_one_message_and_one_reply_job(client, db):
    for _ in range(3):
        assert _twilio_post(client, _sms("hello", sid="SMREPLAY")).status_code == 200
    assert len(inbound(db)) == 1
    assert count(db, Job, Job.kind == "assistant.respond") == 1


def test_stop_by_sms_webhook_is_recorded_before_the_answer(client, db):
    assert _twilio_post(client, _sms("STOP", sid="SMSTOP")).status_code == 200
    revoked = rows(db, ConsentRecord, ConsentRecord.is_granted.is_(False))
    assert {(c.channel, c.purpose) for c in revoked} == {
        ("sms", "transactional"),
        ("sms", "marketing"),
    }
    assert count(db, Job, Job.kind == "messaging.deliver") == 1
    assert count(db, Job, Job.kind == "assistant.respond") == 0


# The demo store's Twilio sender as a Messaging Service, and the number of its pool Twilio
# sends from (and customers write to); another store's service and number.
SERVICE = "MG0123456789abcdef0123456789abcdef"
POOL_NUMBER = "+15005550123"
OTHER_SERVICE = "MGfedcba9876543210fedcba9876543210"
OTHER_NUMBER = "+15005550999"
IGNORED = "twilio webhook for demo names another account; ignored"


def _sends_through_a_messaging_service(db) -> None:
    with db.transaction() as session:
        session.execute(
            update(ChannelAccount)
            .where(ChannelAccount.provider == "twilio")
            .values(address=SERVICE)
        )


def _sent_sms(db, sid: str) -> Message:
    [workspace] = rows(db, Workspace, Workspace.slug == "demo")
    with db.transaction() as session:
        outbox.insert_message(
            session,
            {
                **outbox.blank_row(workspace_id=workspace.id, now=utc_now()),
                "idempotency_key": f"sent-{sid}",
                "message_type": "reply",
                "channel": "sms",
                "status": "sent",
                "provider": "sms",
                "provider_message_id": sid,
            },
        )
    [sent] = rows(db, Message, Message.provider_message_id == sid)
    return sent


def _delivered(sid: str, *, sender: str, service: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": "delivered",
        "SmsStatus": "delivered",
        "AccountSid": "AC123",
        "From": sender,
        "To": "+12025550143",
        "MessagingServiceSid": service,
    }


def test_a_receipt_through_the_stores_messaging_service_updates_the_message_it_sent(
    client, db, caplog
):
    """Given a store sending through a Messaging Service, when Twilio reports a message
    delivered from the pool's number, then the message is delivered."""
    _sends_through_a_messaging_service(db)
    sent = _sent_sms(db, "SMPOOL1")

    response = _twilio_post(client, _delivered("SMPOOL1", sender=POOL_NUMBER, service=SERVICE))

    assert response.status_code == 200
    assert IGNORED not in caplog.text
    [after] = rows(db, Message, Message.id == sent.id)
    assert after.status == "delivered"
    assert count(db, Job, Job.kind == inbox_service.RETRY_STATUS) == 0


def test_a_receipt_naming_the_stores_number_and_a_service_is_matched_by_the_number(
    client, db, caplog
):
    """A store whose address is its number keeps owning receipts that also name a service."""
    sent = _sent_sms(db, "SMNUMBER1")

    response = _twilio_post(
        client, _delivered("SMNUMBER1", sender=DEMO.twilio_from_number, service=OTHER_SERVICE)
    )

    assert response.status_code == 200
    assert IGNORED not in caplog.text
    [after] = rows(db, Message, Message.id == sent.id)
    assert after.status == "delivered"


def test_stop_to_the_stores_messaging_service_is_recorded_before_the_answer(client, db):
    """Given a store sending through a Messaging Service, when a customer texts STOP to the
    pool's number, then both SMS consents are revoked and the message keeps the service
    as the store's address (its reply goes out through the service)."""
    _sends_through_a_messaging_service(db)
    stop = {**_sms("STOP", sid="SMSTOPPOOL"), "To": POOL_NUMBER, "MessagingServiceSid": SERVICE}

    response = _twilio_post(client, stop)

    assert response.status_code == 200
    revoked = rows(db, ConsentRecord, ConsentRecord.is_granted.is_(False))
    assert {(c.channel, c.purpose) for c in revoked} == {
        ("sms", "transactional"),
        ("sms", "marketing"),
    }
    assert [(m.body, m.store_address) for m in inbound(db)] == [("STOP", SERVICE)]
    assert count(db, Job, Job.kind == "messaging.deliver") == 1


@pytest.mark.parametrize(
    "params",
    [
        pytest.param(
            _delivered("SMPOOL2", sender=OTHER_NUMBER, service=OTHER_SERVICE), id="receipt_case"
        ),
        pytest.param(
            {
                **_sms("STOP", sid="SMSTOPOTHER"),
                "To": OTHER_NUMBER,
                "MessagingServiceSid": OTHER_SERVICE,
            },
            id="inbound_case",
        ),
    ],
)
def test_a_webhook_naming_another_stores_messaging_service_changes_nothing(
    client, db, caplog, params
):
    _sends_through_a_messaging_service(db)
    sent = _sent_sms(db, "SMPOOL2")

    response = _twilio_post(client, params)

    assert response.status_code == 200
    assert caplog.text.count(IGNORED) == 1
    [after] = rows(db, Message, Message.id == sent.id)
    assert after.status == "sent"
    assert (len(inbound(db)), count(db, ConsentRecord, ConsentRecord.is_granted.is_(False))) == (
        0,
        0,
    )
    assert count(db, Job, Job.kind.in_(["messaging.deliver", inbox_service.RETRY_STATUS])) == 0


def _mailgun(
    client, fields: dict[str, str], *, key: str = DEMO.demo_mailgun_signing_key, files=None
):
    timestamp, token = str(int(time.time())), f"token-{fields.get('Message-Id', 'x')}"
    signed = {**fields, "timestamp": timestamp, "token": token}
    signed["signature"] = mailgun.sign(timestamp, token, key)
    return client.post("/webhooks/email/demo", data=signed, files=files)


def test_an_auto_reply_is_kept_in_the_inbox_but_never_answered_by_the_assistant(client, db):
    # Given another company's help desk acknowledges an email with one of its own
    answer = _mailgun(
        client,
        {
            "sender": "support@othershop.example",
            "recipient": "orders@demo.parley.test",
            "subject": "Re: Your order",
            "body-plain": "We received your request #4411 and will answer within 2 days.",
            "Message-Id": "<ack-4411@othershop.example>",
            "Auto-Submitted": "auto-replied",
        },
    )

    # Then it is in the inbox, and the assistant does not answer it (two bots would
    # answer each other)
    assert answer.status_code == 200, answer.text
    (message,) = inbound(db)
    assert message.body.startswith("We received your request #4411")
    assert count(db, Job, Job.kind == "assistant.respond") == 0


def test_an_email_reply_threads_into_the_conversation_of_the_message_it_answers(client, db):

    first = _mailgun(
        client,
        {
            "sender": "grace@example.com",
            "recipient": "orders@demo.parley.test",
            "subject": "My order",
            "body-plain": "Hi, a question about my order",
            "Message-Id": "<first@mail.example.com>",
        },
    )
    assert first.status_code == 200, first.text
    (message,) = inbound(db)
    with db.transaction() as session:
        session.execute(update(Conversation).values(status="resolved"))
        session.execute(
            update(Message)
            .where(Message.id == message.id)
            .values(provider_message_id="<answer@demo.parley.test>")
        )
    _mailgun(
        client,
        {
            "sender": "grace@example.com",
            "recipient": "orders@demo.parley.test",
            "subject": "Re: My order",
            "body-plain": "Thanks!",
            "Message-Id": "<second@mail.example.com>",
            "In-Reply-To": "<answer@demo.parley.test>",
            "References": "<first@mail.example.com> <answer@demo.parley.test>",
        },
    )
    conversations = rows(db, Conversation)
    assert len(conversations) == 1
    assert conversations[0].status == "open"
    assert {m.conversation_id for m in inbound(db)} == {conversations[0].id}


def test_contact_form_emails_are_filed_under_the_reply_to_of_each_shopper(client, db):
    # Given the store's contact form forwarding two shoppers' questions, both From the
    # form's mailer and each with the shopper's own address as Reply-To
    for shopper, message_id in (
        ("ada@example.com", "<f1@shopify.com>"),
        ("grace@example.com", "<f2@shopify.com>"),
    ):
        response = _mailgun(
            client,
            {
                "sender": "bounces@shopify.com",
                "from": "North Goods <mailer@shopify.com>",
                "recipient": "orders@demo.parley.test",
                "subject": "New customer message",
                "body-plain": f"Where is my order? - {shopper}",
                "Message-Id": message_id,
                "message-headers": json.dumps([["Reply-To", f"Shopper <{shopper}>"]]),
            },
        )
        assert response.status_code == 200, response.text

    messages = sorted(inbound(db), key=lambda m: m.provider_message_id)
    assert [m.sender for m in messages] == ["ada@example.com", "grace@example.com"]
    assert len({m.conversation_id for m in messages}) == 2
    assert len({m.customer_id for m in messages}) == 2


def test_an_email_with_a_stale_signature_is_refused(client, db):
    fields = {
        "sender": "grace@example.com",
        "recipient": "orders@demo.parley.test",
        "body-plain": "hello",
        "timestamp": str(int(time.time()) - 301),
        "token": "old-token",
    }
    fields["signature"] = mailgun.sign(
        fields["timestamp"], fields["token"], DEMO.demo_mailgun_signing_key
    )
    response = client.post("/webhooks/email/demo", data=fields)
    assert response.status_code == 401
    assert count(db, Message) == 0


def test_an_email_whose_html_part_is_over_a_megabyte_is_stored_not_refused(client, db):
    # Given a customer's email with a pasted screenshot inlined in its HTML (a data: URI),
    # posted by Mailgun as multipart form data like every forward() with an attachment
    html = '<p>My parcel arrived like this</p><img src="data:image/png;base64,%s">' % (
        "A" * 1_500_000
    )

    response = _mailgun(
        client,
        {
            "sender": "grace@example.com",
            "recipient": "orders@demo.parley.test",
            "subject": "Damaged parcel",
            "body-plain": "My parcel arrived like this",
            "body-html": html,
            "Message-Id": "<big@mail.example.com>",
            "attachment-count": "1",
        },
        files={"attachment-1": ("label.txt", b"tracking label", "text/plain")},
    )

    assert response.status_code == 200, response.text
    (message,) = inbound(db)
    assert (message.provider_message_id, message.body) == (
        "<big@mail.example.com>",
        "My parcel arrived like this",
    )


def _instagram_dm(text: str, mid: str) -> bytes:
    return json.dumps(
        {
            "object": "instagram",
            "entry": [
                {
                    "id": DEMO.instagram_account_id,
                    "time": int(time.time() * 1000),
                    "messaging": [
                        {
                            "sender": {"id": "IGSID-42"},
                            "recipient": {"id": DEMO.instagram_account_id},
                            "timestamp": int(time.time() * 1000),
                            "message": {"mid": mid, "text": text},
                        }
                    ],
                }
            ],
        }
    ).encode()


@pytest.mark.parametrize("payload", XSS)
def test_xss_payloads_from_every_channel_are_stored_verbatim(client, db, payload):
    post_whatsapp(client, whatsapp_body(payload, message_id="wamid.XSS"))
    _twilio_post(client, _sms(payload, sid="SMXSS"))
    _mailgun(
        client,
        {
            "sender": "alan@example.com",
            "recipient": "orders@demo.parley.test",
            "subject": payload,
            "body-plain": payload,
            "Message-Id": "<xss@mail.example.com>",
        },
    )
    body = _instagram_dm(payload, "mid.XSS")
    client.post(
        "/webhooks/instagram/demo",
        content=body,
        headers={"X-Hub-Signature-256": meta.sign(body, DEMO.demo_meta_app_secret)},
    )
    stored = {m.channel: m.body for m in inbound(db)}
    assert stored == {
        "whatsapp": payload,
        "sms": payload,
        "email": payload,
        "instagram": payload,
    }


def test_a_delivery_that_loses_a_race_for_one_of_its_messages_asks_to_be_resent(
    client, db, monkeypatch
):
    def lose_the_race(*args, **kwargs):
        raise inbox_service.DuplicateMessage("inbound:whatsapp:wamid.IN1")

    monkeypatch.setattr(inbox_service, "record_inbound", lose_the_race)
    response = post_whatsapp(client, whatsapp_body("hello"))
    assert response.status_code == 503
    assert (count(db, WebhookDelivery), count(db, Message)) == (0, 0)
