"""What the assistant says for each intent, from the store's data for *this* customer.

Every fact in an answer (a status, a date, a carrier, a tracking link, an amount, a
policy) comes from a lookup made here, through :class:`StoreLookups`, whose arguments the
server binds (the workspace and the customer come from the conversation, never from the
message). Order details are shown only once the customer is confirmed: the order belongs
to the profile the channel identity resolved to, or the customer gave the order's email or
phone. A lookup that fails is said plainly and handed to a person; nothing is guessed. The
assistant cannot commit the store: cancellations, changes, refunds and payments go to a
person.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from parley.assistant.entities import Entities
from parley.assistant.intents import Intent
from parley.assistant.knowledge import KnowledgeBase, circumstances
from parley.commerce.models import Fulfillment, Order, Product, Refund
from parley.customers.identity import normalise_phone
from parley.customers.models import Customer
from parley.inbox.models import TurnAction

log = logging.getLogger(__name__)

DEFAULT_RETURN_WINDOW_DAYS = 30


class LookupFailed(Exception):
    """The store's data could not be read: say so and hand off."""


class StoreLookups(Protocol):
    """The lookups the assistant may make, already bound to one workspace and customer."""

    def customer_orders(self) -> list[Order]: ...

    def order_by_number(self, number: str) -> Order | None: ...

    def fulfillments(self, order: Order) -> list[Fulfillment]: ...

    def refunds(self, order: Order) -> list[Refund]: ...

    def products(self) -> list[Product]: ...

    def knowledge(self) -> KnowledgeBase: ...


@dataclass(frozen=True)
class Context:
    """Everything one answer may use."""

    store_name: str
    settings: dict[str, Any]
    customer: Customer
    text: str
    intent: Intent
    entities: Entities
    earlier: Entities
    """Entities from the asker's own earlier messages in this conversation: a web-chat
    visitor's from that visitor's messages only, never from what someone else wrote."""
    lookups: StoreLookups
    now: datetime
    identity_is_proven: bool = True
    """The channel proves who is writing (a phone number, an email sender, an Instagram
    account). A web-chat visitor only asserts an email, so their orders are shown only for
    an order number given together with that order's email or phone."""


@dataclass
class Answer:
    """A reply, what the assistant did, and the lookups behind it."""

    action: TurnAction
    text: str
    reason: str | None = None
    lookups: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    is_unsure: bool = False
    """The assistant could not place the message: a second time in a row hands off."""


def answer(context: Context) -> Answer:
    """The answer for the context's intent; a failed lookup becomes a hand-off."""
    skill = SKILLS.get(context.intent, _policy)
    trail: list[dict[str, Any]] = []
    try:
        result = skill(context, trail)
    except LookupFailed as exc:
        log.warning("assistant lookup failed: %s", exc)
        trail.append({"lookup": "store", "ok": False, "error": str(exc)})
        return Answer(
            TurnAction.HANDED_OFF,
            "I'm sorry, I can't look that up right now. I've passed your message to a "
            "colleague, who will get back to you here.",
            reason=f"a store lookup failed ({exc})",
            lookups=trail,
        )
    result.lookups = trail + result.lookups
    return result


# --- orders -------------------------------------------------------------------------


@dataclass(frozen=True)
class _OrderAccess:
    order: Order | None = None
    answer: Answer | None = None


def _confirmed_order(context: Context, trail: list[dict[str, Any]]) -> _OrderAccess:
    """The order the customer asks about, once they are confirmed as its owner.

    The number they give (now or earlier in the conversation), else their latest order.
    """
    numbers = context.entities.order_numbers or context.earlier.order_numbers
    lookups = context.lookups
    if numbers:
        number = numbers[0]
        order = _call(lookups.order_by_number, number)
        trail.append({"lookup": "order_by_number", "number": number, "found": order is not None})
        if order is None:
            return _OrderAccess(
                answer=Answer(
                    TurnAction.CLARIFIED,
                    "I can't find an order with that number. Could you check it and send it "
                    "again, as it appears in your confirmation email?",
                    reason="order number not found",
                )
            )
        if not _owns(context, order):
            return _OrderAccess(
                answer=Answer(
                    TurnAction.CLARIFIED,
                    "For your security, please send the email address or phone number you "
                    "used for that order, and I'll look it up.",
                    reason="identity not confirmed for the order",
                )
            )
        return _OrderAccess(order=order)
    if not context.identity_is_proven:
        return _OrderAccess(
            answer=Answer(
                TurnAction.CLARIFIED,
                "Could you send your order number and the email address you used for it?",
                reason="order number and email needed to confirm who is asking",
            )
        )
    orders = _call(lookups.customer_orders)
    trail.append({"lookup": "customer_orders", "count": len(orders)})
    if not orders:
        return _OrderAccess(
            answer=Answer(
                TurnAction.CLARIFIED,
                "I can't find an order linked to this conversation. Could you send your order "
                "number and the email address you used?",
                reason="no order for this customer",
            )
        )
    return _OrderAccess(order=orders[0])


def _owns(context: Context, order: Order) -> bool:
    is_theirs = order.customer_id is not None and order.customer_id == context.customer.id
    if is_theirs and context.identity_is_proven:
        return True
    emails = set(context.entities.emails) | set(context.earlier.emails)
    phones = set(context.entities.phones) | set(context.earlier.phones)
    # The platform keeps the phone as typed ("+44 7911 123456"); the message's are E.164.
    phone = normalise_phone(order.phone, country_code=context.customer.country_code)
    return bool((order.email and order.email.lower() in emails) or (phone and phone in phones))


def _call(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except LookupFailed:
        raise
    except Exception as exc:  # any failure to read is a failed lookup
        raise LookupFailed(f"{getattr(function, '__name__', 'lookup')}: {exc}") from exc


def _date(value: date | None) -> str | None:
    return f"{value:%d %B %Y}".lstrip("0") if value else None


def _local_day(value: datetime, zone: str | None) -> date:
    """The calendar day ``value`` falls on where the customer is (UTC when unknown): a
    parcel handed over at 07:00 in Sydney arrived that day, not the UTC day before."""
    try:
        where = ZoneInfo(zone) if zone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        where = UTC
    return value.astimezone(where).date()


def _money(amount: Decimal | None, currency: str | None) -> str | None:
    return f"{amount:.2f} {currency or ''}".strip() if amount is not None else None


def _latest_shipment(
    context: Context, order: Order, trail: list[dict[str, Any]]
) -> Fulfillment | None:
    """The newest shipment still going; a cancelled one only when no other is (a
    shipment cancelled after another was sent says nothing of the parcel on its way)."""
    shipments = _call(context.lookups.fulfillments, order)
    trail.append({"lookup": "fulfillments", "order": order.number, "count": len(shipments)})
    live = [shipment for shipment in shipments if shipment.status != "cancelled"]
    return (live or shipments)[-1] if shipments else None


def _track_order(context: Context, trail: list[dict[str, Any]]) -> Answer:
    access = _confirmed_order(context, trail)
    if access.answer is not None:
        return access.answer
    order = access.order
    assert order is not None
    facts: dict[str, Any] = {"order": order.number, "placed": _date(order.placed_at)}
    if order.cancelled_at is not None:
        facts["cancelled"] = _date(order.cancelled_at)
        return Answer(
            TurnAction.ANSWERED,
            f"Order {order.number} was cancelled on {facts['cancelled']}.",
            facts=facts,
        )
    shipment = _latest_shipment(context, order, trail)
    if shipment is None:
        return Answer(
            TurnAction.ANSWERED,
            f"Order {order.number} was placed on {facts['placed']} and hasn't shipped yet. "
            "You'll get a message with tracking as soon as it does.",
            facts=facts,
        )
    status = _shipment_words(shipment)
    facts.update(
        status=status,
        carrier=shipment.tracking_company,
        tracking_number=shipment.tracking_number,
        tracking_url=shipment.tracking_url,
    )
    lines = [f"Order {order.number} {status}."]
    if shipment.status == "cancelled":
        return Answer(TurnAction.ANSWERED, lines[0], facts=facts)
    if shipment.tracking_company or shipment.tracking_number:
        carrier = shipment.tracking_company or "the carrier"
        number = (
            f" (tracking number {shipment.tracking_number})" if shipment.tracking_number else ""
        )
        lines.append(f"It's with {carrier}{number}.")
    if shipment.tracking_url:
        lines.append(f"Track it here: {shipment.tracking_url}")
    return Answer(TurnAction.ANSWERED, " ".join(lines), facts=facts)


_SHIPMENT_WORDS = {
    "label_printed": "is packed and waiting for the carrier",
    "label_purchased": "is packed and waiting for the carrier",
    "confirmed": "has shipped",
    "in_transit": "is on its way",
    "out_for_delivery": "is out for delivery today",
    "attempted_delivery": "had a delivery attempt; the carrier will try again",
    "ready_for_pickup": "is ready for pickup",
    "delivered": "has been delivered",
    "failure": "ran into a delivery problem",
}


def _shipment_words(shipment: Fulfillment) -> str:
    # A cancelled shipment keeps the carrier's last word ("in_transit"): it is not news.
    if shipment.status == "cancelled":
        return "had its shipment cancelled"
    if shipment.shipment_status == "delivered" and shipment.delivered_at:
        return f"was delivered on {_date(shipment.delivered_at)}"
    words = _SHIPMENT_WORDS.get(shipment.shipment_status or "")
    if words:
        return words
    return f"has shipped (shipped {_date(shipment.created_at)})"


def _return_item(context: Context, trail: list[dict[str, Any]]) -> Answer:
    access = _confirmed_order(context, trail)
    if access.answer is not None:
        return access.answer
    order = access.order
    assert order is not None
    if order.cancelled_at is not None:
        # A cancelled order never arrives: no window to promise; a person sorts out
        # anything that was sent before the cancellation.
        cancelled = _date(order.cancelled_at)
        return Answer(
            TurnAction.HANDED_OFF,
            f"Order {order.number} was cancelled on {cancelled}. I've asked a colleague to "
            "look at your request; they'll reply here.",
            reason="return asked for a cancelled order",
            facts={"order": order.number, "cancelled": cancelled},
        )
    # 0 is a store's "no returns" (the admin allows it), not "unset".
    configured = context.settings.get("return_window_days")
    days = DEFAULT_RETURN_WINDOW_DAYS if configured is None else int(configured)
    facts: dict[str, Any] = {"order": order.number, "return_window_days": days}
    if days == 0:
        return Answer(
            TurnAction.HANDED_OFF,
            f"I've asked a colleague to look at your return request for order {order.number}; "
            "they'll reply here.",
            reason="return requested; this store takes no returns",
            facts=facts,
        )
    policy = _search(context, "return policy returns exchange days refund", trail)
    quote = f' Our policy says: "{policy.text}" ({policy.source})' if policy else ""
    shipment = _latest_shipment(context, order, trail)
    delivered_at = shipment.delivered_at if shipment else None
    if delivered_at is None:
        return Answer(
            TurnAction.ANSWERED,
            f"Order {order.number} hasn't been delivered yet. Once it arrives you'll have "
            f"{days} days to return it.{quote}",
            facts=facts,
        )
    # Whole days where the customer is: the last day named is honoured until it ends.
    zone = context.customer.timezone
    delivered = _local_day(delivered_at, zone)
    last_day = delivered + timedelta(days=days)
    facts.update(delivered=_date(delivered), last_day=_date(last_day))
    if _local_day(context.now, zone) <= last_day:
        return Answer(
            TurnAction.ANSWERED,
            f"Yes: order {order.number} was delivered on {facts['delivered']}, and returns are "
            f"accepted for {days} days, so you can return it until {facts['last_day']}.{quote}",
            facts=facts,
        )
    return Answer(
        TurnAction.HANDED_OFF,
        f"Order {order.number} was delivered on {facts['delivered']}, and our {days}-day "
        f"return window ended on {facts['last_day']}. I've asked a colleague to look at your "
        "request; they'll reply here.",
        reason="return requested outside the return window",
        facts=facts,
    )


def _refund(context: Context, trail: list[dict[str, Any]]) -> Answer:
    access = _confirmed_order(context, trail)
    if access.answer is not None:
        return access.answer
    order = access.order
    assert order is not None
    refunds = _call(context.lookups.refunds, order)
    trail.append({"lookup": "refunds", "order": order.number, "count": len(refunds)})
    if refunds:
        latest = refunds[-1]
        amount = _money(latest.amount, latest.currency or order.currency)
        when = _date(latest.refunded_at or latest.created_at)
        facts = {"order": order.number, "refund_amount": amount, "refunded": when}
        return Answer(
            TurnAction.ANSWERED,
            f"A refund of {amount} for order {order.number} was issued on {when}. Banks "
            "usually take a few working days to show it.",
            facts=facts,
        )
    if context.intent is Intent.TRACK_REFUND:
        return Answer(
            TurnAction.HANDED_OFF,
            f"I can't see a refund on order {order.number} yet. I've asked a colleague to "
            "check on it; they'll reply here.",
            reason="refund asked about but none recorded",
            facts={"order": order.number},
        )
    return Answer(
        TurnAction.HANDED_OFF,
        f"I've passed your refund request for order {order.number} to a colleague, who will "
        "reply here.",
        reason="customer asks for a refund (the assistant cannot issue one)",
        facts={"order": order.number},
    )


def _invoice(context: Context, trail: list[dict[str, Any]]) -> Answer:
    access = _confirmed_order(context, trail)
    if access.answer is not None:
        return access.answer
    order = access.order
    assert order is not None
    items = ", ".join(
        f"{item.get('quantity', 1)} x {item.get('title', 'item')}" for item in order.line_items
    )
    total = _money(order.total_price, order.currency)
    facts = {"order": order.number, "items": items, "total": total, "paid": order.financial_status}
    summary = f"Order {order.number}: {items or 'no items listed'}; total {total}"
    if order.financial_status:
        summary += f", payment {order.financial_status.replace('_', ' ')}"
    if context.intent is Intent.GET_INVOICE:
        return Answer(
            TurnAction.HANDED_OFF,
            f"{summary}. I've asked a colleague to send you the invoice document.",
            reason="customer asks for an invoice document",
            facts=facts,
        )
    return Answer(TurnAction.ANSWERED, f"{summary}.", facts=facts)


_PERSON_NEEDED = {
    Intent.CANCEL_ORDER: "cancel an order",
    Intent.CHANGE_ORDER: "change an order",
    Intent.CHANGE_SHIPPING_ADDRESS: "change a shipping address",
    Intent.PAYMENT_ISSUE: "sort out a payment problem",
}


def _needs_person(context: Context, trail: list[dict[str, Any]]) -> Answer:
    """Requests only a person may grant: acknowledged, never promised."""
    what = _PERSON_NEEDED[context.intent]
    return Answer(
        TurnAction.HANDED_OFF,
        f"I can't {what} myself, so I've passed this to a colleague with the details. "
        "They'll reply here as soon as they can.",
        reason=f"customer asks to {what}",
    )


# --- people -------------------------------------------------------------------------


def _human(context: Context, trail: list[dict[str, Any]]) -> Answer:
    return Answer(
        TurnAction.HANDED_OFF,
        "Of course, I've asked a colleague to take over. They'll reply here.",
        reason="customer asked for a person",
    )


def _complaint(context: Context, trail: list[dict[str, Any]]) -> Answer:
    return Answer(
        TurnAction.HANDED_OFF,
        "I'm really sorry about this; that's not the experience we want you to have. I've "
        "passed your message to a colleague, who will look into it and reply here.",
        reason="complaint",
    )


def _greeting(context: Context, trail: list[dict[str, Any]]) -> Answer:
    # A web-chat visitor who typed an email is not known to be its customer: greeting
    # them by that customer's name would tell a stranger whose email it is.
    first_name = context.customer.first_name if context.identity_is_proven else None
    name = f" {first_name}" if first_name else ""
    return Answer(
        TurnAction.ANSWERED,
        f"Hi{name}! I can help with your order status, returns, refunds, sizes and "
        "products. What can I do for you?",
    )


def _thanks(context: Context, trail: list[dict[str, Any]]) -> Answer:
    return Answer(TurnAction.ANSWERED, "You're welcome! Anything else I can help with?")


def _loyalty(context: Context, trail: list[dict[str, Any]]) -> Answer:
    trail.append({"lookup": "loyalty_balance", "ok": False, "error": "no points ledger"})
    return Answer(
        TurnAction.HANDED_OFF,
        "I can't see points balances yet, so I've asked a colleague to check yours. "
        "They'll reply here.",
        reason="loyalty balance asked; this store has no points ledger in parley",
    )


# --- catalogue and policy -------------------------------------------------------------

# Words that steer a policy question to the right passage.
_POLICY_QUERIES: dict[Intent, str] = {
    Intent.CHECK_REFUND_POLICY: "refund policy money back returns",
    Intent.CHECK_CANCELLATION_FEE: "cancellation fee cancel charge",
    Intent.DELIVERY_OPTIONS: "delivery options shipping methods express standard countries",
    Intent.DELIVERY_PERIOD: "delivery time how long shipping days arrive",
    Intent.CHECK_PAYMENT_METHODS: "payment methods pay card paypal",
    Intent.NEWSLETTER_SUBSCRIPTION: "newsletter subscribe email updates",
    Intent.CREATE_ACCOUNT: "create account sign up register",
    Intent.DELETE_ACCOUNT: "delete account close remove data",
    Intent.EDIT_ACCOUNT: "edit account update details profile",
    Intent.RECOVER_PASSWORD: "password reset forgot login",
    Intent.REGISTRATION_PROBLEMS: "registration problem sign up error account",
    Intent.SWITCH_ACCOUNT: "switch account change account type",
    Intent.SET_UP_SHIPPING_ADDRESS: "shipping address add set up address book",
    Intent.PLACE_ORDER: "place order how to buy checkout",
    Intent.REVIEW: "review feedback rate product",
    Intent.PRODUCT_QUESTION: "product material care",
    Intent.SIZING: "size guide fit sizing chart",
}


def _search(context: Context, query: str, trail: list[dict[str, Any]]) -> Any:
    """The store's passage that answers the question, speaking to every circumstance it
    names (:data:`knowledge.CIRCUMSTANCES`), or None."""
    knowledge = _call(context.lookups.knowledge)
    asked = circumstances(context.text)
    found = knowledge.search(f"{context.text} {query}", covering=asked)
    lookup: dict[str, Any] = {
        "lookup": "store_policies",
        "found": found.passage.source if found else None,
        "score": round(found.score, 3) if found else None,
    }
    if found is None and asked:
        lookup["not_covered"] = asked
    trail.append(lookup)
    return found.passage if found else None


def _policy(context: Context, trail: list[dict[str, Any]]) -> Answer:
    """Quote the store's own text, or hand off: a policy is never made up."""
    passage = _search(context, _POLICY_QUERIES.get(context.intent, ""), trail)
    if passage is None:
        asked = circumstances(context.text)
        return Answer(
            TurnAction.HANDED_OFF,
            "That's a good question for our team: I've passed it to a colleague, who will "
            "reply here.",
            reason=(
                f"the customer asks about {' and '.join(asked)}, which the store's policy "
                "text does not cover"
                if asked
                else f"no store policy covers this ({context.intent})"
            ),
        )
    return Answer(
        TurnAction.ANSWERED,
        f'From our {passage.source.lower()}: "{passage.text}"',
        facts={"source": passage.source, "quote": passage.text},
    )


def _product(context: Context, trail: list[dict[str, Any]]) -> Answer:
    """A named product's facts from the catalogue, then the store's size and product text."""
    products = _call(context.lookups.products)
    trail.append({"lookup": "products", "count": len(products)})
    # The entities list the titles best named first.
    by_title = {p.title: p for p in products}
    named = [by_title[title] for title in context.entities.products if title in by_title]
    lines: list[str] = []
    facts: dict[str, Any] = {}
    if named:
        product = named[0]
        sizes = [
            v.get("title") for v in product.variants if v.get("title") not in (None, "Default")
        ]
        # A size asked for is in stock only if that size is, whatever the others hold.
        asked = context.entities.sizes if sizes else ()
        variants = _variants_in(product, asked) if asked else product.variants
        in_stock = [v for v in variants if (v.get("inventory_quantity") or 0) > 0]
        price = product.variants[0].get("price") if product.variants else None
        facts = {"product": product.title, "in_stock": bool(in_stock), "price": price}
        name = f"{product.title} in {', '.join(asked)}" if asked else product.title
        if asked:
            facts["size"] = list(asked)
        line = f"{name}: {'in stock' if in_stock else 'out of stock right now'}"
        if price:
            line += f", {price}"
        if sizes:
            line += f", sizes {', '.join(str(s) for s in sizes)}"
            facts["sizes"] = sizes
        lines.append(line + ".")
    passage = _search(context, _POLICY_QUERIES[context.intent], trail)
    if passage is not None:
        lines.append(f'From our {passage.source.lower()}: "{passage.text}"')
        facts.update(source=passage.source, quote=passage.text)
    if not lines:
        return Answer(
            TurnAction.HANDED_OFF,
            "I don't have that detail to hand, so I've asked a colleague who knows our "
            "products. They'll reply here.",
            reason=f"no catalogue or store text answers this ({context.intent})",
        )
    return Answer(TurnAction.ANSWERED, " ".join(lines), facts=facts)


def _variants_in(product: Product, sizes: tuple[str, ...]) -> list[dict[str, Any]]:
    """The product's variants of any of ``sizes``; a variant title may join options
    ("M / Blue")."""
    wanted = {size.lower() for size in sizes}
    return [
        variant
        for variant in product.variants
        if wanted & {part.strip().lower() for part in str(variant.get("title") or "").split("/")}
    ]


Skill = Callable[[Context, list[dict[str, Any]]], Answer]

ORDER_INTENTS = frozenset(
    {
        Intent.TRACK_ORDER,
        Intent.RETURN_ITEM,
        Intent.TRACK_REFUND,
        Intent.GET_REFUND,
        Intent.CHECK_INVOICE,
        Intent.GET_INVOICE,
    }
)
"""The intents answered about one confirmed order (:func:`_confirmed_order`)."""

SKILLS: dict[Intent, Skill] = {
    Intent.TRACK_ORDER: _track_order,
    Intent.RETURN_ITEM: _return_item,
    Intent.TRACK_REFUND: _refund,
    Intent.GET_REFUND: _refund,
    Intent.CHECK_INVOICE: _invoice,
    Intent.GET_INVOICE: _invoice,
    Intent.CANCEL_ORDER: _needs_person,
    Intent.CHANGE_ORDER: _needs_person,
    Intent.CHANGE_SHIPPING_ADDRESS: _needs_person,
    Intent.PAYMENT_ISSUE: _needs_person,
    Intent.CONTACT_HUMAN_AGENT: _human,
    Intent.CONTACT_CUSTOMER_SERVICE: _human,
    Intent.COMPLAINT: _complaint,
    Intent.GREETING: _greeting,
    Intent.THANKS: _thanks,
    Intent.LOYALTY_BALANCE: _loyalty,
    Intent.PRODUCT_QUESTION: _product,
    Intent.SIZING: _product,
}
