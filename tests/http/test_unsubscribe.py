"""``/unsubscribe/{token}``: one-click unsubscribe (RFC 8058).

GET only shows a form (link scanners prefetch); a cookie-less POST with
``List-Unsubscribe=One-Click`` records the revocation; a token not signed with this
deployment's key is a 404 that writes nothing.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from parley import events
from parley.customers import service as customers
from parley.customers.models import ConsentRecord, Customer, CustomerMerge
from parley.http.app import create_app
from parley.messaging.unsubscribe import make_token
from parley.runtime import Runtime
from parley.settings import get_settings
from support import rows, seed

SECRET_KEY = "unsubscribe-test-secret-key"
ONE_CLICK = {"content-type": "application/x-www-form-urlencoded"}
CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"


@pytest.fixture
def client(db, frozen_clock):
    seed(db)
    settings = get_settings(database_url=db.url, embedded_worker=False, secret_key=SECRET_KEY)
    app = create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={}))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def rotated_client(db, frozen_clock):
    """The deployment after a key rotation: the former key is listed as a previous one."""
    seed(db)
    settings = get_settings(
        database_url=db.url,
        embedded_worker=False,
        secret_key="the-key-after-rotation",
        credentials_previous_secret_keys=[SECRET_KEY],
    )
    app = create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={}))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def ada(db) -> Customer:
    [customer] = rows(db, Customer, Customer.first_name == "Ada")
    return customer


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token(customer: Customer, *, secret_key: str = SECRET_KEY, channel: str = "email") -> str:
    return make_token(
        secret_key=secret_key,
        workspace_id=customer.workspace_id,
        customer_id=customer.id,
        channel=channel,
    )


def _ledger(db) -> list[tuple]:
    return [
        (r.id, r.customer_id, r.channel, r.purpose, r.is_granted, r.source, r.recorded_at)
        for r in rows(db, ConsentRecord)
    ]


def test_get_shows_a_form_and_changes_nothing(client, db, ada):
    before = _ledger(db)
    token = _token(ada)

    response = client.get(f"/unsubscribe/{token}")

    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CSP
    assert f'<form method="post" action="{token}">' in response.text
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in response.text
    assert _ledger(db) == before


def test_one_click_post_records_a_marketing_revocation_for_email(client, db, ada):
    before = _ledger(db)
    client.cookies.clear()

    response = client.post(
        f"/unsubscribe/{_token(ada)}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK
    )

    assert response.status_code == 200
    assert "You are unsubscribed." in response.text
    [record] = rows(db, ConsentRecord, ConsentRecord.id > max(entry[0] for entry in before))
    assert (
        record.workspace_id,
        record.customer_id,
        record.channel,
        record.purpose,
        record.is_granted,
        record.source,
        record.recorded_at,
    ) == (
        ada.workspace_id,
        ada.id,
        "email",
        "marketing",
        False,
        "one-click unsubscribe",
        datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
    )


def test_a_second_one_click_post_adds_nothing(client, db, ada):
    token = _token(ada)
    client.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    after_first = _ledger(db)

    response = client.post(
        f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK
    )

    assert response.status_code == 200
    assert _ledger(db) == after_first


def _forged(customer: Customer) -> dict[str, str]:
    genuine = _token(customer)
    body, _, signature = genuine.partition(".")
    other_customer = _b64(f'[{customer.workspace_id},{customer.id + 1},"email"]'.encode())
    return {
        "other_secret_key": _token(customer, secret_key="not-this-deployments-key"),
        "signature_moved_to_another_customer": f"{other_customer}.{signature}",
        "signature_truncated": f"{body}.{signature[:-2]}",
        "no_signature": body,
        "garbled": "~~not~a~token~~",
        "not_base64": "!!!.???",
        "not_json": f"{_b64(b'not json')}.{signature}",
    }


FORGERIES = [
    "other_secret_key",
    "signature_moved_to_another_customer",
    "signature_truncated",
    "no_signature",
    "garbled",
    "not_base64",
    "not_json",
]


@pytest.mark.parametrize("forgery", FORGERIES)
def test_forged_or_garbled_token_is_404_and_writes_nothing(client, db, ada, forgery):
    before = _ledger(db)
    token = _forged(ada)[forgery]

    page = client.get(f"/unsubscribe/{token}")
    posted = client.post(
        f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK
    )

    assert page.status_code == 404
    assert "This link is not valid." in page.text
    assert "<form" not in page.text
    assert posted.status_code == 404
    assert posted.json() == {"error": "this unsubscribe link is not valid"}
    assert _ledger(db) == before


def test_genuine_token_for_a_customer_that_does_not_exist_is_404(client, db, ada):
    before = _ledger(db)
    token = make_token(
        secret_key=SECRET_KEY, workspace_id=ada.workspace_id, customer_id=999_999, channel="email"
    )

    response = client.post(
        f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK
    )

    assert response.status_code == 404
    assert response.json() == {"error": "customer 999999 not found"}
    assert _ledger(db) == before


def test_a_link_signed_before_a_key_rotation_still_unsubscribes(rotated_client, db, ada):
    # Given an email sent before the rotation, its link signed with the former key
    before = _ledger(db)
    token = _token(ada, secret_key=SECRET_KEY)

    # When the recipient opens it and confirms
    page = rotated_client.get(f"/unsubscribe/{token}")
    posted = rotated_client.post(
        f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK
    )

    # Then the link still works, and records the one revocation
    assert (page.status_code, posted.status_code) == (200, 200)
    assert f'<form method="post" action="{token}">' in page.text
    assert "You are unsubscribed." in posted.text
    [record] = rows(db, ConsentRecord, ConsentRecord.id > max(entry[0] for entry in before))
    assert (record.customer_id, record.channel, record.purpose, record.is_granted) == (
        ada.id,
        "email",
        "marketing",
        False,
    )


def _record(db, workspace_id: int, profile: events.Customer) -> int:
    with db.transaction() as session:
        customer_id = customers.resolve_customer_id(
            session,
            workspace_id=workspace_id,
            contact=customers.contact_from(profile),
            profile=profile,
            consent_source="events-api",
        )
    assert customer_id is not None
    return customer_id


def test_a_link_naming_a_merged_profile_unsubscribes_the_profile_it_was_merged_into(
    client, db, ada
):
    # Given a guest who signed up for marketing email, and was sent a link naming them
    signed_up = datetime(2026, 1, 5, tzinfo=UTC)
    guest = _record(
        db,
        ada.workspace_id,
        events.Customer(
            email="pat@example.org",
            email_marketing=events.ConsentState.GRANTED,
            email_marketing_since=signed_up,
        ),
    )
    token = make_token(
        secret_key=SECRET_KEY, workspace_id=ada.workspace_id, customer_id=guest, channel="email"
    )
    # ...then found to be the store's customer 9400, into whose profile the guest's is merged
    kept = _record(
        db,
        ada.workspace_id,
        events.Customer(external_id="9400", email="old-pat@example.org", updated_at=signed_up),
    )
    _record(
        db,
        ada.workspace_id,
        events.Customer(
            external_id="9400", email="pat@example.org", updated_at=datetime(2026, 2, 5, tzinfo=UTC)
        ),
    )
    assert [(m.kept_customer_id, m.merged_customer_id) for m in rows(db, CustomerMerge)] == [
        (kept, guest)
    ]
    before = _ledger(db)

    # When Pat follows the link
    response = client.post(
        f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK
    )

    # Then the "no" is on the profile that now holds pat@example.org, not the emptied one
    assert response.status_code == 200
    [record] = rows(db, ConsentRecord, ConsentRecord.id > max(entry[0] for entry in before))
    assert (record.customer_id, record.channel, record.purpose, record.is_granted) == (
        kept,
        "email",
        "marketing",
        False,
    )
    with db.transaction() as session:
        consent = customers.current_consent(
            session, workspace_id=ada.workspace_id, customer_id=kept
        )
    assert consent[("email", "marketing")].is_granted is False


def test_a_link_to_an_address_another_profile_holds_unsubscribes_that_profile_too(client, db, ada):
    # Given two store customers (never merged) sharing one email: mum's profile holds it
    signed_up = datetime(2026, 1, 5, tzinfo=UTC)
    mum, son = (
        _record(
            db,
            ada.workspace_id,
            events.Customer(
                external_id=external_id,
                email="family@example.com",
                email_marketing=events.ConsentState.GRANTED,
                email_marketing_since=signed_up,
            ),
        )
        for external_id in ("8101", "8102")
    )
    before = _ledger(db)

    # When the family address unsubscribes by the link in an email sent to the son
    token = make_token(
        secret_key=SECRET_KEY, workspace_id=ada.workspace_id, customer_id=son, channel="email"
    )
    response = client.post(
        f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK
    )

    # Then the "no" is on both: the son's, and mum's, who holds the address it came from
    assert response.status_code == 200
    added = rows(db, ConsentRecord, ConsentRecord.id > max(entry[0] for entry in before))
    assert [(r.customer_id, r.channel, r.purpose, r.is_granted, r.source) for r in added] == [
        (son, "email", "marketing", False, "one-click unsubscribe"),
        (mum, "email", "marketing", False, "one-click unsubscribe"),
    ]
