"""Twilio messaging webhooks: X-Twilio-Signature against the official vectors, the public
URL behind a proxy, and inbound messages vs status callbacks."""

from __future__ import annotations

import json
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
    StatusUpdate,
)
from parley.channels.twilio_sms import webhook

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "demo-twilio-auth-token"
URL = "https://shop.example.com/webhooks/twilio/demo"
VECTOR_NAMES = (
    "form_params",
    "https_port_443_added",
    "http_port_80_added",
    "http_port_1234",
    "duplicate_params_sorted_deduped",
    "json_body_with_bodySHA256",
)


def _vectors() -> dict[str, dict[str, Any]]:
    document = json.loads(shared_data("webhooks/twilio/signature_vectors.json").read_text())
    return {vector["name"]: vector for vector in document["vectors"]}


def _params(vector: dict[str, Any]) -> webhook.Params:
    params = vector["params"]
    if params is None:
        return {}
    if isinstance(params, list):
        return [(name, value) for name, value in params]
    return dict(params)


def _fixture(name: str) -> dict[str, str]:
    params: dict[str, str] = json.loads((FIXTURES / name).read_text())
    return params


def test_the_vector_file_holds_the_six_listed_vectors() -> None:
    assert tuple(_vectors()) == VECTOR_NAMES


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_official_vectors_verify(name: str) -> None:
    vector = _vectors()[name]
    body = vector["raw_body"].encode() if vector["raw_body"] is not None else None

    webhook.verify_signature(
        vector["url"],
        _params(vector),
        vector["expected_x_twilio_signature"],
        vector["auth_token"],
        body=body,
    )


@pytest.mark.parametrize(
    "name", ["form_params", "http_port_1234", "duplicate_params_sorted_deduped"]
)
def test_compute_signature_reproduces_the_vectors_with_the_url_as_signed(name: str) -> None:
    vector = _vectors()[name]

    signature = webhook.compute_signature(vector["url"], _params(vector), vector["auth_token"])

    assert signature == vector["expected_x_twilio_signature"]


@pytest.mark.parametrize(
    ("url", "header"),
    [
        # The vector's own signature, for the URL with :443 and for the one without.
        pytest.param(
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            id="no_port_case",
        ),
        pytest.param(
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            id="default_port_added_case",
        ),
    ],
)
def test_default_port_is_tried_both_ways(url: str, header: str) -> None:
    vector = _vectors()["form_params"]

    webhook.verify_signature(url, _params(vector), header, vector["auth_token"])


def _refused(
    url: str, params: webhook.Params, header: str | None, *, body: bytes | None = None
) -> str:
    with pytest.raises(SignatureError) as caught:
        webhook.verify_signature(url, params, header, "12345", body=body)
    return str(caught.value)


def test_http_instead_of_https_is_refused() -> None:
    vector = _vectors()["form_params"]
    http_url = vector["url"].replace("https://", "http://", 1)

    reason = _refused(http_url, _params(vector), vector["expected_x_twilio_signature"])

    assert reason == "the X-Twilio-Signature signature does not match this request"


def test_a_non_default_port_is_not_dropped() -> None:
    vector = _vectors()["http_port_1234"]

    _refused(
        "http://mycompany.com/myapp.php?foo=1&bar=2",
        _params(vector),
        vector["expected_x_twilio_signature"],
    )


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"Digits": "1235"}, id="changed_param_case"),
        pytest.param({"Extra": "1"}, id="extra_param_case"),
        pytest.param({"Digits": "1234 "}, id="trailing_space_case"),
    ],
)
def test_changed_or_extra_param_is_refused(change: dict[str, str]) -> None:
    vector = _vectors()["form_params"]
    params = dict(vector["params"]) | change

    _refused(vector["url"], params, vector["expected_x_twilio_signature"])


def test_a_missing_param_is_refused() -> None:
    vector = _vectors()["form_params"]
    params = {name: value for name, value in vector["params"].items() if name != "Caller"}

    _refused(vector["url"], params, vector["expected_x_twilio_signature"])


@pytest.mark.parametrize(
    ("url", "header", "reason"),
    [
        pytest.param(URL, None, "the X-Twilio-Signature header is missing", id="missing_case"),
        pytest.param(URL, "", "the X-Twilio-Signature header is missing", id="empty_case"),
        pytest.param(
            URL + "?x=1",
            "bm90IGEgc2lnbmF0dXJl",
            "the X-Twilio-Signature signature does not match this request",
            id="wrong_case",
        ),
        pytest.param(
            "https://shop.example.com:notaport/x",
            "bm90IGEgc2lnbmF0dXJl",
            "the X-Twilio-Signature signature does not match this request",
            id="unreadable_port_case",
        ),
    ],
)
def test_missing_or_wrong_header_is_refused(url: str, header: str | None, reason: str) -> None:
    assert _refused(url, {"Body": "hi"}, header) == reason


def test_json_body_must_match_its_bodysha256() -> None:
    vector = _vectors()["json_body_with_bodySHA256"]
    tampered = vector["raw_body"].replace("value", "valuE").encode()

    reason = _refused(vector["url"], {}, vector["expected_x_twilio_signature"], body=tampered)

    assert reason == "the body does not match the bodySHA256 Twilio signed"


def test_bodysha256_url_without_a_body_is_refused() -> None:
    vector = _vectors()["json_body_with_bodySHA256"]

    reason = _refused(vector["url"], {}, vector["expected_x_twilio_signature"])

    assert reason == "the URL carries bodySHA256 but no body was given to check"


def test_a_raw_body_without_bodysha256_is_refused() -> None:
    vector = _vectors()["form_params"]

    reason = _refused(vector["url"], {}, vector["expected_x_twilio_signature"], body=b"{}")

    assert reason == "a raw body is only signed through a bodySHA256 URL parameter"


def test_empty_auth_token_refuses_even_a_matching_signature() -> None:
    signature = webhook.compute_signature(URL, {"Body": "hi"}, "")

    with pytest.raises(SignatureError, match="no Twilio auth token"):
        webhook.verify_signature(URL, {"Body": "hi"}, signature, "")


def test_a_sandbox_style_round_trip_verifies() -> None:
    params = _fixture("inbound_sms.json")
    signature = webhook.compute_signature(URL, params, TOKEN)

    webhook.verify_signature(URL, params, signature, TOKEN)


# --- the public URL ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "path", "query", "expected"),
    [
        pytest.param(
            "https://shop.example.com",
            "/webhooks/twilio/demo",
            "",
            "https://shop.example.com/webhooks/twilio/demo",
            id="no_query_case",
        ),
        pytest.param(
            "https://shop.example.com/",
            "/webhooks/twilio/demo",
            "source=sms&x=%20a",
            "https://shop.example.com/webhooks/twilio/demo?source=sms&x=%20a",
            id="raw_query_kept_case",
        ),
        pytest.param(
            "https://shop.example.com/parley",
            "/webhooks/twilio/demo",
            "",
            "https://shop.example.com/parley/webhooks/twilio/demo",
            id="proxy_path_prefix_case",
        ),
        pytest.param(
            "http://127.0.0.1:8000",
            "/webhooks/twilio/demo",
            "",
            "http://127.0.0.1:8000/webhooks/twilio/demo",
            id="local_port_case",
        ),
    ],
)
def test_public_url_is_built_from_the_configured_base(
    base_url: str, path: str, query: str, expected: str
) -> None:
    assert webhook.public_url(base_url, path, query) == expected


def test_public_url_behind_a_proxy_verifies_what_twilio_signed() -> None:
    # Given Twilio signed the public https URL, while the app behind the TLS proxy sees
    # http://10.0.0.5:8000 (its own Host header never enters the computation)
    params = _fixture("inbound_sms.json")
    signature = webhook.compute_signature(URL, params, TOKEN)

    rebuilt = webhook.public_url("https://shop.example.com", "/webhooks/twilio/demo", "")

    webhook.verify_signature(rebuilt, params, signature, TOKEN)
    with pytest.raises(SignatureError):
        webhook.verify_signature(
            "http://10.0.0.5:8000/webhooks/twilio/demo", params, signature, TOKEN
        )


def test_public_url_needs_an_absolute_path() -> None:
    with pytest.raises(ValueError, match="path must start with '/'"):
        webhook.public_url("https://shop.example.com", "webhooks/twilio/demo", "")


# --- parsing ---------------------------------------------------------------------------


def test_inbound_sms_parses_exactly() -> None:
    assert webhook.parse(_fixture("inbound_sms.json")) == [
        InboundMessage(
            channel=ChannelKind.SMS,
            provider_message_id="SM1f0e8ae6ade43cb3c0ce4525424e404f",
            sender="+12025550143",
            text="Has my order #1002 shipped yet?",
            account="+15005550006",
        )
    ]


def test_inbound_mms_lists_its_media() -> None:
    base = (
        "https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef"
        "/Messages/MM5e8ae6ade43cb3c0ce4525424e404f1a/Media/"
    )

    assert webhook.parse(_fixture("inbound_mms.json")) == [
        InboundMessage(
            channel=ChannelKind.SMS,
            provider_message_id="MM5e8ae6ade43cb3c0ce4525424e404f1a",
            sender="+12025550143",
            text="The parcel arrived like this",
            account="+15005550006",
            kind="image",
            attachments=(
                Attachment(
                    kind="image",
                    provider_media_id="ME0f7c3d1e2b4a5968778695a4b3c2d1e0",
                    url=base + "ME0f7c3d1e2b4a5968778695a4b3c2d1e0",
                    mime_type="image/jpeg",
                ),
                Attachment(
                    kind="file",
                    provider_media_id="ME1a2b3c4d5e6f708192a3b4c5d6e7f809",
                    url=base + "ME1a2b3c4d5e6f708192a3b4c5d6e7f809",
                    mime_type="application/pdf",
                ),
            ),
        )
    ]


def test_profile_name_becomes_the_sender_name() -> None:
    params = _fixture("inbound_sms.json") | {"ProfileName": "Grace"}

    [message] = webhook.parse(params)

    assert isinstance(message, InboundMessage)
    assert message.sender_name == "Grace"


def test_inbound_mms_without_text_keeps_an_empty_body() -> None:
    params = _fixture("inbound_mms.json") | {"Body": ""}

    [message] = webhook.parse(params)

    assert isinstance(message, InboundMessage)
    assert message.text == ""
    assert len(message.attachments) == 2


def test_delivered_callback_is_a_status_update() -> None:
    assert webhook.parse(_fixture("status_delivered.json")) == [
        StatusUpdate(
            channel=ChannelKind.SMS,
            provider_message_id="SM0123456789abcdef0123456789abcdef",
            status="delivered",
            account="+15005550006",
            recipient="+12025550143",
        )
    ]


def test_a_callback_through_a_messaging_service_names_the_pool_number_and_the_service() -> None:
    assert webhook.parse(_fixture("status_delivered_messaging_service.json")) == [
        StatusUpdate(
            channel=ChannelKind.SMS,
            provider_message_id="SM89abcdef0123456789abcdef01234567",
            status="delivered",
            account="+15005550123",
            messaging_service="MG0123456789abcdef0123456789abcdef",
            recipient="+12025550143",
        )
    ]


def test_an_inbound_sms_to_a_messaging_service_names_the_pool_number_and_the_service() -> None:
    assert webhook.parse(_fixture("inbound_sms_messaging_service.json")) == [
        InboundMessage(
            channel=ChannelKind.SMS,
            provider_message_id="SM2a0e8ae6ade43cb3c0ce4525424e404f",
            sender="+12025550143",
            text="STOP",
            account="+15005550123",
            messaging_service="MG0123456789abcdef0123456789abcdef",
        )
    ]


def test_undelivered_callback_is_failed_with_a_readable_reason() -> None:
    assert webhook.parse(_fixture("status_undelivered.json")) == [
        StatusUpdate(
            channel=ChannelKind.SMS,
            provider_message_id="SM0123456789abcdef0123456789abcdef",
            status="failed",
            account="+15005550006",
            recipient="+12025550143",
            error_code="30003",
            error_reason="the handset is unreachable (switched off or out of coverage)",
        )
    ]


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        pytest.param(
            "failed",
            "30008",
            "Unknown error",
            "delivery failed for a reason the carrier did not give - Unknown error",
            id="explained_and_message_case",
        ),
        pytest.param("failed", "12345", None, "Twilio error 12345", id="unexplained_code_case"),
        pytest.param("failed", "", None, None, id="no_code_case"),
    ],
)
def test_failure_reasons(status: str, code: str, message: str | None, expected: str | None) -> None:
    params = _fixture("status_delivered.json") | {"MessageStatus": status, "ErrorCode": code}
    if message is not None:
        params["ErrorMessage"] = message

    [update] = webhook.parse(params)

    assert isinstance(update, StatusUpdate)
    assert update.status == "failed"
    assert update.error_reason == expected


@pytest.mark.parametrize(
    ("twilio_status", "expected"),
    [
        pytest.param("sent", "sent", id="sent_case"),
        pytest.param("delivered", "delivered", id="delivered_case"),
        pytest.param("read", "read", id="read_case"),
        pytest.param("undelivered", "failed", id="undelivered_case"),
        pytest.param("failed", "failed", id="failed_case"),
    ],
)
def test_final_statuses_map_onto_parleys(twilio_status: str, expected: str) -> None:
    params = _fixture("status_delivered.json") | {
        "MessageStatus": twilio_status,
        "SmsStatus": twilio_status,
    }

    [update] = webhook.parse(params)

    assert isinstance(update, StatusUpdate)
    assert update.status == expected


@pytest.mark.parametrize(
    "twilio_status", ["queued", "accepted", "sending", "scheduled", "canceled"]
)
def test_intermediate_statuses_produce_no_event(twilio_status: str) -> None:
    params = _fixture("status_delivered.json") | {
        "MessageStatus": twilio_status,
        "SmsStatus": twilio_status,
    }

    assert webhook.parse(params) == []


def test_older_callbacks_with_only_smssid_and_smsstatus_parse() -> None:
    params = {
        "SmsSid": "SM0123456789abcdef0123456789abcdef",
        "SmsStatus": "sent",
        "From": "+15005550006",
        "To": "+12025550143",
    }

    assert webhook.parse(params) == [
        StatusUpdate(
            channel=ChannelKind.SMS,
            provider_message_id="SM0123456789abcdef0123456789abcdef",
            status="sent",
            account="+15005550006",
            recipient="+12025550143",
        )
    ]


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        pytest.param({"Body": "hi", "From": "+12025550143"}, "MessageSid", id="no_sid_case"),
        pytest.param({"MessageSid": "SM1", "Body": "hi"}, "From is missing", id="no_from_case"),
        pytest.param(
            {"MessageSid": "SM1", "Body": "", "From": "+1", "NumMedia": "two"},
            "NumMedia is not a number",
            id="unreadable_num_media_case",
        ),
        pytest.param(
            {"MessageSid": "SM1", "Body": "", "From": "+1", "NumMedia": "1"},
            "MediaUrl0 is missing",
            id="missing_media_url_case",
        ),
        pytest.param(
            {"MessageSid": "SM1", "Body": "", "From": "+1", "NumMedia": "9" * 5000},
            "NumMedia 9+ is over Twilio's limit of 10",
            id="absurd_num_media_case",
        ),
    ],
)
def test_malformed_posts_are_refused(params: dict[str, str], reason: str) -> None:
    with pytest.raises(MalformedWebhook, match=reason):
        webhook.parse(params)
