"""X-Shopify-Hmac-Sha256: golden vectors, tampering, rotation (RELIABILITY W1, W2)."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from parley.integrations.shopify.payloads import webhook_headers
from parley.integrations.shopify.signature import HEADER, sign, verify

# Third-party data lives beside the repository, never inside it (../shared/data).
SHOPIFY_DATA = (
    Path(__file__).resolve().parents[3].parent / "shared" / "data" / "webhooks" / "shopify"
)
VECTORS_FILE = SHOPIFY_DATA / "hmac_vectors.json"

BODY = b'{"id":5001,"name":"#1001","email":"ana@example.com","total_price":"79.00"}'
SECRET = "parley-test-client-secret"


def _require(path: Path) -> None:
    """Fail in CI, skip elsewhere, when the shared data is not checked out."""
    if path.exists():
        return
    message = f"shared test data missing: {path}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _vector_params() -> list[Any]:
    if not VECTORS_FILE.exists():
        return [pytest.param(None, id="hmac_vectors.json-missing")]
    vectors = json.loads(VECTORS_FILE.read_text())["vectors"]
    return [pytest.param(vector, id=vector["name"]) for vector in vectors]


@pytest.mark.parametrize("vector", _vector_params())
def test_golden_vector_signs_and_verifies(vector: dict[str, Any] | None) -> None:
    _require(VECTORS_FILE)
    assert vector is not None
    body = vector["raw_body"].encode("utf-8")
    expected = vector["expected_x_shopify_hmac_sha256"]

    assert sign(body, vector["secret"]) == expected
    assert verify(body, expected, [vector["secret"]]) is True


@pytest.mark.parametrize("position", [0, 1, len(BODY) // 2, len(BODY) - 1])
def test_flipped_body_byte_fails(position: int) -> None:
    header = sign(BODY, SECRET)
    tampered = bytearray(BODY)
    tampered[position] ^= 0x01

    assert verify(bytes(tampered), header, [SECRET]) is False


@pytest.mark.parametrize(
    "reserialise",
    [
        pytest.param(lambda data: json.dumps(data), id="spaces_case"),
        pytest.param(lambda data: json.dumps(data, indent=2), id="indented_case"),
        pytest.param(lambda data: json.dumps(data, sort_keys=True), id="sorted_keys_case"),
        pytest.param(
            lambda data: json.dumps(dict(reversed(list(data.items()))), separators=(",", ":")),
            id="reversed_keys_case",
        ),
    ],
)
def test_reserialised_json_fails(reserialise: Any) -> None:
    # Given the same JSON document, serialised differently from the signed bytes
    header = sign(BODY, SECRET)
    reserialised = reserialise(json.loads(BODY)).encode()
    assert reserialised != BODY
    assert json.loads(reserialised) == json.loads(BODY)

    # Then the signature no longer matches: verification is over raw bytes, never parsed JSON
    assert verify(reserialised, header, [SECRET]) is False


def test_wrong_secret_fails() -> None:
    assert verify(BODY, sign(BODY, SECRET), ["another-secret"]) is False


@pytest.mark.parametrize("header", [None, ""], ids=["absent_case", "empty_case"])
def test_missing_header_fails(header: str | None) -> None:
    assert verify(BODY, header, [SECRET]) is False


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("not base64!!", id="not_base64_case"),
        pytest.param("====", id="padding_only_case"),
        pytest.param("é" * 44, id="non_ascii_case"),
        pytest.param(base64.b64encode(b"x" * 31).decode(), id="short_digest_case"),
        pytest.param(base64.b64encode(b"x" * 33).decode(), id="long_digest_case"),
    ],
)
def test_garbage_header_fails(header: str) -> None:
    assert verify(BODY, header, [SECRET]) is False


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda header: header.rstrip("="), id="missing_padding_case"),
        pytest.param(lambda header: f" {header}", id="leading_space_case"),
        pytest.param(lambda header: f"{header[:20]}\n{header[20:]}", id="newline_case"),
        pytest.param(lambda header: header.replace("=", "=="), id="extra_padding_case"),
    ],
)
def test_mangled_valid_header_fails(mangle: Any) -> None:
    header = sign(BODY, SECRET)
    assert verify(BODY, header, [SECRET]) is True

    assert verify(BODY, mangle(header), [SECRET]) is False


def test_hex_digest_instead_of_base64_fails() -> None:
    hex_digest = base64.b64decode(sign(BODY, SECRET)).hex()

    assert verify(BODY, hex_digest, [SECRET]) is False


def test_one_changed_digest_character_fails() -> None:
    header = sign(BODY, SECRET)
    changed = ("A" if header[0] != "A" else "B") + header[1:]

    assert verify(BODY, changed, [SECRET]) is False


def test_rotation_accepts_old_and_new_secret() -> None:
    # Given a rotation in progress: Shopify may still sign with the old secret for an hour
    old, new = "old-client-secret", "new-client-secret"
    during_rotation = [new, old]

    # Then deliveries signed with either are accepted
    assert verify(BODY, sign(BODY, old), during_rotation) is True
    assert verify(BODY, sign(BODY, new), during_rotation) is True
    # And once the old secret is dropped, its signatures are rejected
    assert verify(BODY, sign(BODY, old), [new]) is False
    assert verify(BODY, sign(BODY, new), [new]) is True


def test_no_secrets_accepts_nothing() -> None:
    assert verify(BODY, sign(BODY, SECRET), []) is False


def test_empty_secret_is_never_a_key() -> None:
    assert verify(BODY, sign(BODY, ""), [""]) is False


def test_bare_string_of_secrets_is_refused() -> None:
    with pytest.raises(TypeError, match="sequence of secrets"):
        verify(BODY, sign(BODY, SECRET), SECRET)


def test_webhook_headers_are_shopifys_set_and_verify() -> None:
    # Given a delivery built for the simulator
    triggered_at = datetime(2025, 4, 2, 10, 15, 30, 123456, tzinfo=UTC)
    headers = webhook_headers(
        "orders/create",
        BODY,
        SECRET,
        shop_domain="parley-demo.myshopify.com",
        webhook_id="b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        event_id="98880550-7158-44d4-b7cd-2c97c8a091b5",
        triggered_at=triggered_at,
    )

    # Then it carries exactly Shopify's headers, and the signature verifies over the body
    assert headers == {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": sign(BODY, SECRET),
        "X-Shopify-Shop-Domain": "parley-demo.myshopify.com",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "X-Shopify-Triggered-At": "2025-04-02T10:15:30.123456Z",
        "X-Shopify-API-Version": "2025-04",
    }
    assert HEADER == "X-Shopify-Hmac-Sha256"
    assert verify(BODY, headers[HEADER], [SECRET]) is True


def test_webhook_headers_derive_a_stable_event_id() -> None:
    triggered_at = datetime(2025, 4, 2, 6, 15, 30, tzinfo=UTC)

    def headers(webhook_id: str) -> dict[str, str]:
        return webhook_headers(
            "orders/paid",
            BODY,
            SECRET,
            shop_domain="parley-demo.myshopify.com",
            webhook_id=webhook_id,
            triggered_at=triggered_at,
            api_version="2024-10",
        )

    first, again, other = headers("w-1"), headers("w-1"), headers("w-2")
    assert first["X-Shopify-Event-Id"] == again["X-Shopify-Event-Id"]
    assert first["X-Shopify-Event-Id"] != other["X-Shopify-Event-Id"]
    assert first["X-Shopify-Triggered-At"] == "2025-04-02T06:15:30.000000Z"
    assert first["X-Shopify-API-Version"] == "2024-10"


def test_webhook_headers_refuse_a_naive_trigger_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        webhook_headers(
            "orders/paid",
            BODY,
            SECRET,
            shop_domain="parley-demo.myshopify.com",
            webhook_id="w-1",
            triggered_at=datetime(2025, 4, 2, 6, 15, 30),  # noqa: DTZ001 - the point of the test
        )
