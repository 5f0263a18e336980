"""``POST /webhooks/shopify/{workspace}`` over HTTP: signatures, duplicates, bad input."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import event, update
from sqlalchemy.exc import DataError, OperationalError
from starlette.testclient import TestClient

from parley.clock import utc_now
from parley.commerce.models import Fulfillment, Order
from parley.customers.models import Customer, CustomerIdentity
from parley.db import Database
from parley.demo.simulate import shopper_dict
from parley.http.app import create_app
from parley.http.webhooks.shopify import store
from parley.integrations.shopify import payloads
from parley.integrations.shopify.signature import sign
from parley.jobs.models import Job
from parley.journeys import service as journeys
from parley.journeys.models import JourneyRun
from parley.runtime import Runtime
from parley.settings import get_settings
from parley.store_events import service as store_events
from parley.store_events.models import StoreEvent, WebhookDelivery
from parley.workspaces import service as workspaces
from parley.workspaces.models import Workspace
from support import SECRET, count, deliveries, rows, seed, shopper, signed, verified


@pytest.fixture
def client(db):
    seed(db)
    settings = get_settings(database_url=db.url, embedded_worker=False)
    app = create_app(settings, runtime=Runtime(settings=settings, db=db, adapters={}))
    with TestClient(app) as test_client:
        yield test_client


def _post(client, body: bytes, headers: dict[str, str], slug: str = "demo"):
    return client.post(f"/webhooks/shopify/{slug}", content=body, headers=headers)


def _nothing_written(db) -> bool:
    return (
        count(db, WebhookDelivery),
        count(db, StoreEvent),
        count(db, Job),
        count(db, JourneyRun),
    ) == (0, 0, 0, 0)


def test_signed_order_is_accepted_and_plans_the_confirmation(client, db):
    placed = deliveries("Ada")[0]
    response = _post(client, placed.body, placed.headers)
    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "events": 1, "journeys_started": 1}
    [run] = rows(db, JourneyRun)
    assert run.run_key.startswith("order:")
    assert count(db, Job) == 1


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda b, h: (b[:-2] + b"x}", h), id="flipped_body_byte"),
        pytest.param(
            lambda b, h: (json.dumps(json.loads(b), indent=2).encode(), h), id="reserialised_json"
        ),
        pytest.param(
            lambda b, h: (b, {**h, "X-Shopify-Hmac-Sha256": sign(b, "wrong-secret")}),
            id="wrong_secret",
        ),
        pytest.param(
            lambda b, h: (b, {k: v for k, v in h.items() if k != "X-Shopify-Hmac-Sha256"}),
            id="missing_header",
        ),
        pytest.param(lambda b, h: (b, {**h, "X-Shopify-Hmac-Sha256": "%%%"}), id="garbage_header"),
    ],
)
def test_bad_signature_is_401_and_writes_nothing(client, db, tamper, caplog):
    placed = deliveries("Ada")[0]
    body, headers = tamper(placed.body, placed.headers)
    response = _post(client, body, headers)
    assert response.status_code == 401
    assert response.json() == {"error": "HMAC signature does not match"}
    assert _nothing_written(db)
    refusal = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusal) == 1
    assert "Ada" not in refusal[0]


def test_a_delivery_signed_with_another_stores_secret_is_401_and_writes_nothing(client, db):
    with db.transaction() as session:
        workspaces.create_workspace(
            session, slug="other", name="Other Store", shopify_secret="other-store-secret"
        )
    placed = deliveries("Ada")[0]
    forged = {**placed.headers, "X-Shopify-Hmac-Sha256": sign(placed.body, "other-store-secret")}

    response = _post(client, placed.body, forged)

    assert response.status_code == 401
    assert _nothing_written(db)


def test_old_secret_is_accepted_during_rotation_and_refused_after(client, db, frozen_clock):
    with db.transaction() as session:
        workspace = workspaces.get_workspace(session, slug="demo")
        workspaces.rotate_shopify_secret(
            session, workspace=workspace, new_secret="new-secret", grace=timedelta(hours=1)
        )
    old = deliveries("Ada", order_id=1)[0]
    assert _post(client, old.body, old.headers).status_code == 200
    body = old.body
    headers = {
        **old.headers,
        "X-Shopify-Hmac-Sha256": sign(body, "new-secret"),
        "X-Shopify-Webhook-Id": "other",
        "X-Shopify-Event-Id": "other",
    }
    assert _post(client, body, headers).status_code == 200

    frozen_clock.advance(timedelta(hours=1, seconds=1))
    late = deliveries("Ada", order_id=2)[0]
    assert _post(client, late.body, late.headers).status_code == 401
    assert count(db, WebhookDelivery) == 2


def test_a_secret_rotated_by_another_process_is_accepted_on_its_first_delivery(client, db):
    """This process remembers the workspace's secrets; a delivery signed with a secret set
    since is checked again against the database before it is refused."""
    first = deliveries("Ada", order_id=1)[0]
    assert _post(client, first.body, first.headers).status_code == 200
    with db.transaction() as session:
        session.execute(
            update(Workspace).where(Workspace.slug == "demo").values(shopify_secret="rotated")
        )
    body = deliveries("Ada", order_id=2)[0].body
    headers = {**first.headers, "X-Shopify-Hmac-Sha256": sign(body, "rotated")}
    headers |= {"X-Shopify-Webhook-Id": "rotated-1", "X-Shopify-Event-Id": "rotated-1"}
    assert _post(client, body, headers).status_code == 200
    assert count(db, WebhookDelivery) == 2


def test_malformed_json_is_a_400_with_a_reason(client, db):
    body = b'{"id": 1, '
    headers = {
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": "w1",
        "X-Shopify-Hmac-Sha256": sign(body, SECRET),
    }
    response = _post(client, body, headers)
    assert response.status_code == 422
    assert response.json()["error"].startswith("body is not valid JSON")
    assert _nothing_written(db)


def test_payload_missing_a_required_field_is_refused_with_the_field_named(client, db):
    body, headers = signed("orders/create", {"name": "#1"}, webhook_id="w2")
    response = _post(client, body, headers)
    assert response.status_code == 422
    assert "'id'" in response.json()["error"]
    assert _nothing_written(db)


def test_unknown_topic_is_stored_and_acknowledged(client, db):
    body, headers = signed("inventory_levels/update", {"inventory_item_id": 1}, webhook_id="w3")
    response = _post(client, body, headers)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    [delivery] = rows(db, WebhookDelivery)
    assert (delivery.topic, delivery.status) == ("inventory_levels/update", "ignored")
    assert count(db, StoreEvent) == 0


def test_unknown_workspace_is_404(client, db):
    placed = deliveries("Ada")[0]
    assert _post(client, placed.body, placed.headers, slug="nope").status_code == 404


def test_ten_concurrent_identical_deliveries_have_one_effect(client, db):
    placed = deliveries("Ada")[0]
    statuses: list[int] = []
    barrier = threading.Barrier(10)

    def deliver() -> None:
        barrier.wait()
        statuses.append(_post(client, placed.body, placed.headers).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 10
    assert (
        count(db, WebhookDelivery),
        count(db, StoreEvent),
        count(db, JourneyRun),
        count(db, Job),
    ) == (1, 1, 1, 1)


def test_a_new_shoppers_concurrent_orders_make_one_customer(client, db):
    """Ten orders from a shopper parley has never seen, at once: the first to claim the
    Shopify id makes the profile; every other delivery finds it and adds its order."""
    newcomer = {
        "id": 88001,
        "email": "nia@example.net",
        "phone": "+12025550177",
        "first_name": "Nia",
        "last_name": "Okafor",
    }
    placed = [
        signed(
            "orders/create",
            payloads.order_payload(
                order_id=7700 + n,
                number=7700 + n,
                customer=newcomer,
                line_items=[{"title": "Trail Runner 2", "quantity": 1, "price": "98.00"}],
                created_at=utc_now(),
            ),
            webhook_id=f"nia-{n}",
        )
        for n in range(10)
    ]
    statuses: list[int] = []
    barrier = threading.Barrier(10)

    def deliver(body: bytes, headers: dict[str, str]) -> None:
        barrier.wait()
        statuses.append(_post(client, body, headers).status_code)

    threads = [threading.Thread(target=deliver, args=delivery) for delivery in placed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 10
    [nia] = rows(db, Customer, Customer.email == "nia@example.net")
    assert (nia.first_name, nia.last_name, nia.phone) == ("Nia", "Okafor", "+12025550177")
    held = rows(db, CustomerIdentity, CustomerIdentity.customer_id == nia.id)
    assert sorted((i.kind, i.value) for i in held) == [
        ("email", "nia@example.net"),
        ("phone", "+12025550177"),
        ("shopify", "88001"),
    ]
    assert {o.customer_id for o in rows(db, Order, Order.external_id.like("77%"))} == {nia.id}
    assert count(db, Order, Order.external_id.like("77%")) == 10


def test_older_update_never_overwrites_newer_state(client, db):
    now = utc_now()
    customer = shopper_dict(shopper("Ada"))
    items = [{"title": "Tee", "quantity": 1, "price": "24.00", "sku": "T"}]
    newer = payloads.order_payload(
        order_id=9,
        number=1009,
        customer=customer,
        line_items=items,
        created_at=now,
        updated_at=now + timedelta(minutes=5),
        financial_status="refunded",
    )
    older = payloads.order_payload(
        order_id=9,
        number=1009,
        customer=customer,
        line_items=items,
        created_at=now,
        updated_at=now + timedelta(minutes=1),
        financial_status="paid",
    )
    for webhook_id, payload in (("v2", newer), ("v1", older)):
        body, headers = signed("orders/updated", payload, webhook_id=webhook_id)
        assert _post(client, body, headers).status_code == 200
    [order] = rows(db, Order)
    assert order.financial_status == "refunded"
    assert order.source_updated_at == now.replace(microsecond=0) + timedelta(minutes=5)


def test_database_outage_answers_503_so_shopify_retries():
    """Never 2xx before the event is stored: with no database the sender is told to retry."""
    settings = get_settings(embedded_worker=False)
    unreachable = Database(
        "postgresql+psycopg://127.0.0.1:1/parley", connect_args={"connect_timeout": 1}
    )
    app = create_app(settings, runtime=Runtime(settings=settings, db=unreachable, adapters={}))
    placed = deliveries("Ada")[0]
    with TestClient(app) as test_client:
        response = _post(test_client, placed.body, placed.headers)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json() == {"error": "storage unavailable, retry later"}


def test_malformed_body_with_a_bad_signature_is_401_not_422(client, db):
    body = b'{"id": 1, '
    headers = {
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": "w9",
        "X-Shopify-Hmac-Sha256": sign(body, "not-the-secret"),
    }
    response = _post(client, body, headers)
    assert response.status_code == 401
    assert _nothing_written(db)


def test_deliveries_right_after_app_uninstalled_are_stored_but_start_nothing(client, db):
    """The uninstall is applied by this process, which forgets what it remembered of the
    workspace: the very next order is kept as a delivery and starts no journey."""
    first = deliveries("Ada", order_id=1)[0]
    assert _post(client, first.body, first.headers).status_code == 200
    runs = count(db, JourneyRun)
    body, headers = signed("app/uninstalled", {"id": 1, "name": "parley demo"}, webhook_id="bye")
    assert _post(client, body, headers).status_code == 200
    late = deliveries("Ada", order_id=2)[0]
    assert _post(client, late.body, late.headers).json() == {
        "status": "accepted",
        "events": 0,
        "journeys_started": 0,
    }
    assert count(db, WebhookDelivery) == 3
    assert count(db, JourneyRun) == runs
    assert rows(db, Order, Order.external_id == "2") == []


def test_orders_sharing_a_transaction_read_their_stores_journeys_once(db):
    seed(db)
    orders = [
        verified(db, late.body, late.headers)
        for late in (deliveries("Ada", order_id=n, number=1500 + n)[0] for n in (1, 2, 3))
    ]
    journey_reads: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        # The enabled-journeys list (a definition is read once per revision per process).
        if "FROM journeys" in statement and "is_enabled" in statement:
            journey_reads.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        with db.transaction() as session:
            answers = [store(session, order) for order in orders]
    finally:
        event.remove(db.engine, "before_cursor_execute", note)

    assert [answer.body["journeys_started"] for answer in answers] == [1, 1, 1]
    assert len(journey_reads) == 1
    assert count(db, JourneyRun) == 3


def test_a_journey_switched_off_earlier_in_the_same_transaction_starts_nothing(db):
    workspace_id = seed(db)
    first, second = (
        verified(db, late.body, late.headers)
        for late in (deliveries("Ada", order_id=n, number=1500 + n)[0] for n in (1, 2))
    )

    with db.transaction() as session:
        before = store(session, first)
        journeys.update_journey(
            session, workspace_id=workspace_id, key="order_confirmation", is_enabled=False
        )
        after = store(session, second)

    assert (before.body["journeys_started"], after.body["journeys_started"]) == (1, 0)
    assert count(db, JourneyRun) == 1


def test_an_order_sharing_a_transaction_with_the_uninstall_before_it_starts_nothing(db):
    """Under load the route writes waiting deliveries in one transaction (group commit):
    both were verified while the store was still installed, and the order, written after
    the uninstall, must still start no journey."""
    seed(db)
    body, headers = signed("app/uninstalled", {"id": 1, "name": "parley demo"}, webhook_id="bye")
    uninstall = verified(db, body, headers)
    late = deliveries("Ada", order_id=2)[0]
    order = verified(db, late.body, late.headers)

    with db.transaction() as session:
        store(session, uninstall)
        answer = store(session, order)

    assert answer.body == {"status": "accepted", "events": 0, "journeys_started": 0}
    assert count(db, WebhookDelivery) == 2
    assert (count(db, JourneyRun), count(db, Job)) == (0, 0)
    assert rows(db, Order) == []


def test_a_commit_lost_mid_request_is_503_and_shopifys_retry_has_one_effect(client, db):
    """The connection drops as the delivery commits (RELIABILITY W11): Shopify is told to
    retry, nothing of the delivery stays, and its retry is taken once."""
    placed = deliveries("Ada")[0]
    before = _counts(db)
    lost = []

    def drop_connection(connection) -> None:
        if not lost:
            lost.append(True)
            raise OperationalError("COMMIT", {}, ConnectionError("server closed the connection"))

    event.listen(db.engine, "commit", drop_connection)
    try:
        refused = _post(client, placed.body, placed.headers)
    finally:
        event.remove(db.engine, "commit", drop_connection)

    assert (refused.status_code, refused.headers["retry-after"]) == (503, "5")
    assert _counts(db) == before
    retried = _post(client, placed.body, placed.headers)
    again = _post(client, placed.body, placed.headers)

    assert (retried.json()["status"], again.json()) == ("accepted", {"status": "duplicate"})
    assert _counts(db) == {
        "deliveries": before["deliveries"] + 1,
        "orders": before["orders"] + 1,
        "runs": before["runs"] + 1,
        "jobs": before["jobs"] + 1,
    }


def _counts(db) -> dict[str, int]:
    return {
        "deliveries": count(db, WebhookDelivery),
        "orders": count(db, Order),
        "runs": count(db, JourneyRun),
        "jobs": count(db, Job),
    }


# Signature before parsing (RELIABILITY W1) -------------------------------------------------

UNPARSEABLE = {
    "nested_too_deep": (
        b'{"id": 1, "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
        "body nests JSON too deeply",
    ),
    "integer_over_4300_digits": (
        b'{"id": ' + b"1" * 5000 + b', "name": "#1"}',
        "body is not valid JSON: Exceeds the limit (4300 digits)",
    ),
}


@pytest.mark.parametrize("case", sorted(UNPARSEABLE))
def test_an_unsigned_body_too_deep_or_too_long_to_parse_is_401_not_500(client, db, case, caplog):
    body, _ = UNPARSEABLE[case]
    headers = {
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": f"forged-{case}",
        "X-Shopify-Hmac-Sha256": sign(body, "not-the-secret"),
    }

    response = _post(client, body, headers)

    assert response.status_code == 401
    assert response.json() == {"error": "HMAC signature does not match"}
    assert _nothing_written(db)
    [refusal] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert "[[[" not in refusal
    assert "1111" not in refusal


@pytest.mark.parametrize("case", sorted(UNPARSEABLE))
def test_a_signed_body_too_deep_or_too_long_to_parse_is_422_with_the_reason(client, db, case):
    body, reason = UNPARSEABLE[case]
    headers = {
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": f"signed-{case}",
        "X-Shopify-Hmac-Sha256": sign(body, SECRET),
    }

    response = _post(client, body, headers)

    assert response.status_code == 422
    assert response.json()["error"].startswith(reason)
    assert _nothing_written(db)


# Delivery keys and text longer than their columns ------------------------------------------


def test_a_webhook_id_longer_than_255_characters_is_422_and_writes_nothing(client, db):
    placed = deliveries("Ada")[0]
    headers = {**placed.headers, "X-Shopify-Webhook-Id": "w" * 256}
    del headers["X-Shopify-Event-Id"]

    response = _post(client, placed.body, headers)

    assert response.status_code == 422
    assert response.json() == {"error": "X-Shopify-Webhook-Id header is longer than 255 characters"}
    assert _nothing_written(db)


def test_a_delivery_key_too_long_for_its_column_is_never_cut_and_taken_for_a_duplicate(db):
    """The batch insert sends its keys as arrays: cast to ``varchar(255)[]`` PostgreSQL cut
    them short, the key returned no longer matched the one sent, and the delivery was
    answered as a duplicate and lost. Now PostgreSQL refuses it as a one-row insert does."""
    workspace_id = seed(db)
    key = "k" * 256
    delivery = store_events.Delivery(
        source="shopify", delivery_key=key, topic="orders/create", headers={}, body="{}"
    )

    def record() -> int | None:
        with db.transaction() as session:
            workspace = session.get_one(Workspace, workspace_id)
            return store_events.record_delivery(
                session, workspace=workspace, delivery=delivery, status="processed", reason=None
            )

    if db.engine.dialect.name == "postgresql":
        with pytest.raises(DataError, match="value too long"):
            record()
        assert count(db, WebhookDelivery) == 0
    else:
        assert record() is not None
        assert [d.delivery_key for d in rows(db, WebhookDelivery)] == [key]


def _order(**changes: object) -> dict[str, object]:
    payload = payloads.order_payload(
        order_id=9100,
        number=9100,
        customer=shopper_dict(shopper("Ada")),
        line_items=[{"title": "Tee", "quantity": 1, "price": "24.00", "sku": "T"}],
        created_at=utc_now(),
    )
    return {**payload, **changes}


def test_over_long_display_text_is_cut_to_its_column_and_the_delivery_taken(client, db):
    """Shopify acknowledged-or-retried: refusing a delivery for a long cancel reason would
    fail it on every retry. Display text is cut to what its column holds (the raw body
    keeps it whole); a phone that does not fit is not kept, as a cut one is another number."""
    name, reason = "#" + "A" * 70, "x" * 100
    phone = "+44 (0) 20 7946 0958 / mobile +44 7700 900123"
    body, headers = signed(
        "orders/cancelled",
        _order(name=name, cancel_reason=reason, phone=phone, cancelled_at=utc_now().isoformat()),
        webhook_id="long-text",
    )

    response = _post(client, body, headers)

    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    [order] = rows(db, Order)
    assert (order.number, order.cancel_reason, order.phone) == (name[:64], reason[:64], None)
    [delivery] = rows(db, WebhookDelivery)
    assert delivery.body == body.decode()


def test_an_over_long_tracking_company_and_shopper_name_are_cut_to_their_columns(client, db):
    customer = {"id": 88002, "email": "zoe@example.net", "first_name": "Zo" + "e" * 300}
    body, headers = signed(
        "fulfillments/create",
        payloads.fulfillment_payload(
            fulfillment_id=91001,
            order_id=9100,
            customer=customer,
            tracking_company="X" * 250,
            tracking_number="1Z999AA100009100",
            tracking_url=None,
            shipment_status=None,
            created_at=utc_now(),
        ),
        webhook_id="long-carrier",
    )

    response = _post(client, body, headers)

    assert response.status_code == 200
    [fulfillment] = rows(db, Fulfillment)
    assert fulfillment.tracking_company == "X" * 200
    [zoe] = rows(db, Customer, Customer.email == customer["email"])
    assert zoe.first_name == customer["first_name"][:200]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        pytest.param(
            "orders/create",
            _order(currency="USDT"),
            "orders/create: 'currency' string should match pattern '^[A-Za-z]{3}$'",
            id="currency_of_4_letters",
        ),
        pytest.param(
            "orders/create",
            _order(total_price="123456789012345.67"),
            "orders/create: 'total_price' input should be less than or equal to 999999999999.999",
            id="total_over_the_money_column",
        ),
        pytest.param(
            "orders/updated",
            _order(financial_status="x" * 33),
            "orders/updated: 'financial_status' string should have at most 32 characters",
            id="status_over_32",
        ),
    ],
)
def test_an_impossible_value_is_422_naming_the_field_and_writes_nothing(
    client, db, topic, payload, reason
):
    """Values Shopify never sends (a currency is ISO 4217, a status one of its own words)
    are refused with the reason, as any other malformed field is."""
    body, headers = signed(topic, payload, webhook_id="impossible")

    response = _post(client, body, headers)

    assert response.status_code == 422
    assert response.json() == {"error": reason}
    assert _nothing_written(db)


# The shop a delivery names (RELIABILITY T2) ------------------------------------------------


def test_a_delivery_for_another_shop_is_403_and_writes_nothing(client, db, caplog):
    """Two stores installed from one Shopify app share its secret: a delivery for one,
    posted to the other's route, must not act on it (here: stop all its sends)."""
    with db.transaction() as session:
        other = workspaces.create_workspace(
            session, slug="other", name="Other", shopify_secret=SECRET
        )
        other.shopify_shop_domain = "other-store.myshopify.com"
    body, headers = signed(
        "app/uninstalled",
        {"id": 1, "myshopify_domain": payloads.DEMO_SHOP_DOMAIN},
        webhook_id="bye-demo",
    )

    response = _post(client, body, headers, slug="other")

    assert response.status_code == 403
    assert response.json() == {
        "error": "this delivery is for parley-demo.myshopify.com, not this store's shop"
    }
    assert _nothing_written(db)
    [workspace] = rows(db, Workspace, Workspace.slug == "other")
    assert workspace.is_active
    [refusal] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert "parley-demo.myshopify.com" in refusal
    assert "other-store.myshopify.com" in refusal


def test_a_store_with_no_shop_recorded_takes_its_signed_deliveries(client, db):
    with db.transaction() as session:
        workspaces.create_workspace(session, slug="other", name="Other", shopify_secret=SECRET)
    placed = deliveries("Ada")[0]

    response = _post(client, placed.body, placed.headers, slug="other")

    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
