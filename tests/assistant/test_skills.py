"""What each skill answers from the store's data, over lookups held in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from parley.assistant.entities import Entities
from parley.assistant.intents import Intent
from parley.assistant.knowledge import KnowledgeBase, knowledge_base
from parley.assistant.skills import Answer, Context, answer
from parley.commerce.models import Fulfillment, Order, Product, Refund
from parley.customers.models import Customer
from parley.inbox.models import TurnAction

PLACED = datetime(2026, 2, 20, 9, 0, tzinfo=UTC)


@dataclass
class Lookups:
    """One customer's orders, shipments and the store's catalogue, in memory."""

    orders: list[Order] = field(default_factory=list)
    shipments: list[Fulfillment] = field(default_factory=list)
    catalogue: list[Product] = field(default_factory=list)
    sections: list[dict[str, Any]] = field(default_factory=list)

    def customer_orders(self) -> list[Order]:
        return self.orders

    def order_by_number(self, number: str) -> Order | None:
        return next((o for o in self.orders if o.number.lstrip("#") == number), None)

    def fulfillments(self, order: Order) -> list[Fulfillment]:
        return [s for s in self.shipments if s.order_external_id == order.external_id]

    def refunds(self, order: Order) -> list[Refund]:
        return []

    def products(self) -> list[Product]:
        return self.catalogue

    def knowledge(self) -> KnowledgeBase:
        return knowledge_base(self.sections)


def _order(**fields: Any) -> Order:
    return Order(
        **{
            "id": 1,
            "customer_id": 1,
            "external_id": "501",
            "number": "#1501",
            "email": "ada@example.com",
            "currency": "GBP",
            "total_price": Decimal("40.00"),
            "line_items": [],
            "placed_at": PLACED,
            **fields,
        }
    )


def _ask(
    intent: Intent,
    lookups: Lookups,
    *,
    now: datetime,
    text: str = "",
    timezone: str | None = None,
    entities: Entities | None = None,
    return_window_days: int = 30,
) -> Answer:
    return answer(
        Context(
            store_name="Juniper & Pine",
            settings={"return_window_days": return_window_days},
            customer=Customer(id=1, first_name="Ada", timezone=timezone),
            text=text,
            intent=intent,
            entities=entities or Entities(),
            earlier=Entities(),
            lookups=lookups,
            now=now,
        )
    )


def _delivered(at: datetime) -> Fulfillment:
    return Fulfillment(
        id=1,
        external_id="f1",
        order_external_id="501",
        status="success",
        shipment_status="delivered",
        delivered_at=at,
        created_at=PLACED,
    )


def test_a_return_is_accepted_all_through_the_last_day_it_names():
    """Told "until 31 March", the customer who asks on 31 March in the evening may still."""
    lookups = Lookups([_order()], [_delivered(datetime(2026, 3, 1, 14, 0, tzinfo=UTC))])

    said = _ask(Intent.RETURN_ITEM, lookups, now=datetime(2026, 3, 31, 9, 0, tzinfo=UTC))
    later = _ask(Intent.RETURN_ITEM, lookups, now=datetime(2026, 3, 31, 20, 0, tzinfo=UTC))

    assert "until 31 March 2026" in said.text
    assert (later.action, later.text) == (said.action, said.text)
    assert later.action is TurnAction.ANSWERED
    after = _ask(Intent.RETURN_ITEM, lookups, now=datetime(2026, 4, 1, 0, 30, tzinfo=UTC))
    assert (after.action, after.reason) == (
        TurnAction.HANDED_OFF,
        "return requested outside the return window",
    )


def test_the_return_window_counts_from_the_day_the_customer_received_it():
    """Delivered at 07:00 on 2 March in Sydney (20:00 UTC on 1 March): 30 days from 2 March."""
    lookups = Lookups([_order()], [_delivered(datetime(2026, 3, 1, 20, 0, tzinfo=UTC))])
    said = _ask(
        Intent.RETURN_ITEM,
        lookups,
        now=datetime(2026, 3, 10, 0, 0, tzinfo=UTC),
        timezone="Australia/Sydney",
    )
    assert said.facts["delivered"] == "2 March 2026"
    assert said.facts["last_day"] == "1 April 2026"


def test_a_cancelled_order_is_not_promised_a_return_window():
    lookups = Lookups([_order(cancelled_at=datetime(2026, 2, 21, 9, 0, tzinfo=UTC))])
    said = _ask(Intent.RETURN_ITEM, lookups, now=datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    assert "hasn't been delivered" not in said.text
    assert "arrives" not in said.text
    assert said.text.startswith("Order #1501 was cancelled on 21 February 2026.")
    assert said.facts["cancelled"] == "21 February 2026"


def test_a_store_that_takes_no_returns_is_not_made_to_offer_thirty_days():
    """The store set its return window to 0 days (the admin allows it): no window is
    offered, before or after delivery; a person answers."""
    delivered = Lookups([_order()], [_delivered(datetime(2026, 3, 1, 14, 0, tzinfo=UTC))])
    not_yet = Lookups([_order()])
    for lookups in (delivered, not_yet):
        said = _ask(
            Intent.RETURN_ITEM,
            lookups,
            now=datetime(2026, 3, 1, 15, 0, tzinfo=UTC),
            return_window_days=0,
        )
        assert "30" not in said.text
        assert (said.action, said.reason) == (
            TurnAction.HANDED_OFF,
            "return requested; this store takes no returns",
        )
        assert said.facts["return_window_days"] == 0


def _shipment(id: int, status: str, shipment_status: str | None, **fields: Any) -> Fulfillment:
    return Fulfillment(
        id=id,
        external_id=f"f{id}",
        order_external_id="501",
        status=status,
        shipment_status=shipment_status,
        tracking_company="Royal Mail",
        tracking_number=f"RM{id}",
        created_at=PLACED,
        **fields,
    )


def test_a_cancelled_shipment_is_not_described_as_on_its_way():
    lookups = Lookups([_order()], [_shipment(1, "cancelled", "in_transit")])
    said = _ask(Intent.TRACK_ORDER, lookups, now=datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    assert said.text.startswith("Order #1501 had its shipment cancelled.")
    assert said.facts["status"] == "had its shipment cancelled"


def test_an_order_is_described_by_its_live_shipment_not_a_later_cancelled_one():
    delivered = _shipment(
        1, "success", "delivered", delivered_at=datetime(2026, 2, 25, 12, 0, tzinfo=UTC)
    )
    lookups = Lookups([_order()], [delivered, _shipment(2, "cancelled", "confirmed")])
    said = _ask(Intent.TRACK_ORDER, lookups, now=datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    assert said.text.startswith("Order #1501 was delivered on 25 February 2026.")
    assert said.facts["tracking_number"] == "RM1"


def _shirts() -> list[Product]:
    def product(id: int, title: str, stock: dict[str, int]) -> Product:
        return Product(
            id=id,
            external_id=str(id),
            title=title,
            variants=[
                {"title": size, "price": "45.00", "inventory_quantity": quantity}
                for size, quantity in stock.items()
            ],
        )

    return [
        product(1, "Linen Shirt Dress", {"S": 3, "M": 3}),
        product(2, "Linen Shirt", {"S": 4, "M": 0, "L": 2}),
    ]


def test_a_product_asked_about_is_the_one_the_message_names_best():
    said = _ask(
        Intent.PRODUCT_QUESTION,
        Lookups(catalogue=_shirts()),
        now=PLACED,
        text="is the linen shirt in stock?",
        entities=Entities(products=("Linen Shirt", "Linen Shirt Dress")),
    )
    assert said.facts["product"] == "Linen Shirt"


def test_a_size_asked_for_that_is_sold_out_is_not_said_to_be_in_stock():
    said = _ask(
        Intent.PRODUCT_QUESTION,
        Lookups(catalogue=_shirts()),
        now=PLACED,
        text="do you have the linen shirt in M?",
        entities=Entities(sizes=("M",), products=("Linen Shirt", "Linen Shirt Dress")),
    )
    assert "in stock" not in said.text.replace("out of stock", "")
    assert said.text.startswith("Linen Shirt in M: out of stock right now")
    assert said.facts["in_stock"] is False


def test_an_order_is_confirmed_by_its_phone_however_the_store_wrote_it():
    """A5: a guest order's phone as the store platform holds it ("+44 7911 123456")
    confirms the customer who gives that number (read as E.164) with the order number."""
    lookups = Lookups([_order(customer_id=None, phone="+44 7911 123456")])
    said = _ask(
        Intent.TRACK_ORDER,
        lookups,
        now=datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        entities=Entities(order_numbers=("1501",), phones=("+447911123456",)),
    )
    assert (said.action, said.text) == (
        TurnAction.ANSWERED,
        "Order #1501 was placed on 20 February 2026 and hasn't shipped yet. You'll get a "
        "message with tracking as soon as it does.",
    )


def test_a_different_phone_does_not_confirm_an_order():
    lookups = Lookups([_order(customer_id=None, phone="+44 7911 123456")])
    said = _ask(
        Intent.TRACK_ORDER,
        lookups,
        now=datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        entities=Entities(order_numbers=("1501",), phones=("+447911123457",)),
    )
    assert (said.action, said.reason, said.facts) == (
        TurnAction.CLARIFIED,
        "identity not confirmed for the order",
        {},
    )


_RETURNS = {
    "title": "Returns policy",
    "text": "You can return unworn items within 30 days of delivery for a full refund.",
}


def test_a_refund_exception_the_policy_does_not_mention_is_handed_to_a_person():
    """A2: the Air Canada case. The returns text matches "refund" well, but it says
    nothing about a bereavement: quoting it would answer a question it does not cover."""
    said = _ask(
        Intent.CHECK_REFUND_POLICY,
        Lookups(sections=[_RETURNS]),
        now=PLACED,
        text="Can I get a refund exception because of a bereavement?",
    )
    assert said.action is TurnAction.HANDED_OFF
    assert "30 days" not in said.text
    assert said.facts == {}
    assert said.reason == (
        "the customer asks about a bereavement and an exception, which the store's "
        "policy text does not cover"
    )
    assert said.lookups[-1]["not_covered"] == ["a bereavement", "an exception"]


def test_a_circumstance_the_policy_speaks_to_is_quoted():
    funerals = {
        "title": "Returns policy",
        "text": "After a bereavement we extend the return window to 90 days; write to us.",
    }
    said = _ask(
        Intent.CHECK_REFUND_POLICY,
        Lookups(sections=[_RETURNS, funerals]),
        now=PLACED,
        text="my father died, can I still return his order?",
    )
    assert said.action is TurnAction.ANSWERED
    assert said.facts["quote"] == funerals["text"]


def test_an_ordinary_policy_question_is_still_answered_from_the_store_text():
    said = _ask(
        Intent.CHECK_REFUND_POLICY,
        Lookups(sections=[_RETURNS]),
        now=PLACED,
        text="what is your refund policy?",
    )
    assert said.action is TurnAction.ANSWERED
    assert said.facts["quote"] == _RETURNS["text"]


def test_a_return_answer_quotes_no_policy_for_a_circumstance_it_lacks():
    """The window comes from the order; the quote would seem to grant the exception."""
    said = _ask(
        Intent.RETURN_ITEM,
        Lookups(orders=[_order()], shipments=[_delivered(PLACED)], sections=[_RETURNS]),
        now=PLACED,
        text="order 1501: can I have an extension on my return, I was in hospital abroad",
        entities=Entities(order_numbers=("1501",)),
    )
    assert "Our policy says" not in said.text
