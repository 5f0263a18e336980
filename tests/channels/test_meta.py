"""Meta's shared webhook rules: the X-Hub-Signature-256 HMAC and the hub.challenge handshake.

WhatsApp and Instagram both use these; the vendor vector is WhatsApp's (pywa's recorded
signature), and the same code checks Instagram."""

from __future__ import annotations

import json

import pytest
from tests.conftest import shared_data

from parley.channels.base import SignatureError
from parley.channels.meta import handshake, sign, verify_signature

SECRET = "demo-meta-app-secret"
BODY = b'{"object":"instagram","entry":[]}'


def _vector() -> dict[str, str]:
    return json.loads(shared_data("webhooks/whatsapp/signature_vector.json").read_text())


def test_vendor_vector_verifies() -> None:
    vector = _vector()

    verify_signature(
        vector["raw_body"].encode(), vector["x_hub_signature_256"], vector["app_secret"]
    )

    assert sign(vector["raw_body"].encode(), vector["app_secret"]) == vector["x_hub_signature_256"]


@pytest.mark.parametrize("position", [0, 100, -2], ids=["first_case", "middle_case", "last_case"])
def test_one_flipped_body_byte_is_refused(position: int) -> None:
    vector = _vector()
    body = bytearray(vector["raw_body"].encode())
    body[position] ^= 0x01

    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(bytes(body), vector["x_hub_signature_256"], vector["app_secret"])


def test_reserialised_json_is_refused() -> None:
    # Given the same JSON with Python's default separators instead of Meta's compact ones
    vector = _vector()
    reserialised = json.dumps(json.loads(vector["raw_body"])).encode()
    assert reserialised != vector["raw_body"].encode()

    # Then the signature no longer matches: only the raw body may be checked
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(reserialised, vector["x_hub_signature_256"], vector["app_secret"])


def test_signature_from_another_secret_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(BODY, sign(BODY, "someone-elses-secret"), SECRET)


def test_upper_case_hex_and_surrounding_space_are_accepted() -> None:
    header = sign(BODY, SECRET)

    verify_signature(BODY, f"  sha256={header.removeprefix('sha256=').upper()} ", SECRET)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        pytest.param(None, "missing", id="missing_case"),
        pytest.param("", "missing", id="empty_case"),
        pytest.param("sha1=abc", "not of the form", id="sha1_case"),
        pytest.param("abcdef", "not of the form", id="no_prefix_case"),
        pytest.param("sha256=", "does not match", id="no_digest_case"),
        pytest.param("sha256=ü", "does not match", id="non_ascii_case"),
    ],
)
def test_malformed_header_is_refused(header: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify_signature(BODY, header, SECRET)


def test_empty_app_secret_refuses_even_a_matching_signature() -> None:
    with pytest.raises(SignatureError, match="no Meta app secret"):
        verify_signature(BODY, sign(BODY, ""), "")


def test_handshake_echoes_the_challenge_for_the_right_token() -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": "demo-meta-verify-token",
        "hub.challenge": "1158201444",
    }

    assert handshake(params, "demo-meta-verify-token") == "1158201444"


@pytest.mark.parametrize(
    ("params", "configured"),
    [
        pytest.param(
            {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"},
            "demo-meta-verify-token",
            id="wrong_token_case",
        ),
        pytest.param(
            {"hub.mode": "unsubscribe", "hub.verify_token": "t", "hub.challenge": "1"},
            "t",
            id="wrong_mode_case",
        ),
        pytest.param({"hub.mode": "subscribe", "hub.challenge": "1"}, "t", id="no_token_case"),
        pytest.param(
            {"hub.mode": "subscribe", "hub.verify_token": "t"}, "t", id="no_challenge_case"
        ),
        pytest.param(
            {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"},
            "",
            id="nothing_configured_case",
        ),
    ],
)
def test_handshake_refuses(params: dict[str, str], configured: str) -> None:
    assert handshake(params, configured) is None
