"""``parley simulate``: a stream of correctly signed Shopify deliveries for the demo store.

Each simulated order goes placed → dispatched → out for delivery → delivered, for the
demo shoppers in turn, so a newcomer sees each channel rule at work in the sandbox.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx2

from parley.clock import utc_now
from parley.demo.seed import PRODUCTS, SHOPPERS, DemoShopper
from parley.integrations.shopify import payloads

CARRIERS = (
    ("UPS", "1Z999AA1{n:08d}", "https://www.ups.com/track?tracknum=1Z999AA1{n:08d}"),
    ("DHL Express", "JD01460000{n:08d}", "https://www.dhl.com/track?id=JD01460000{n:08d}"),
    ("Royal Mail", "RM{n:09d}GB", "https://www.royalmail.com/track-your-item#/RM{n:09d}GB"),
)


REFUSED = frozenset({401, 403, 404})
"""What parley answers a delivery it will never take: the store, its secret or its shop
is not the one the simulation signs for."""


class SimulationStopped(Exception):
    """The simulation cannot go on; the message says why, in one line for the terminal."""


@dataclass(frozen=True)
class SignedDelivery:
    """One webhook exactly as Shopify would send it."""

    topic: str
    body: bytes
    headers: dict[str, str]
    label: str


def shopper_dict(shopper: DemoShopper) -> dict[str, object]:
    return {
        "id": int(shopper.shopify_id),
        "email": shopper.email,
        "phone": shopper.phone,
        "first_name": shopper.first_name,
        "last_name": shopper.last_name,
        "email_consent": False,
        "sms_consent": False,
    }


def _sign(
    topic: str, payload: dict[str, object], secret: str, at: datetime
) -> tuple[bytes, dict[str, str]]:
    body = payloads.encode(payload)
    headers = payloads.webhook_headers(
        topic,
        body,
        secret,
        shop_domain=payloads.DEMO_SHOP_DOMAIN,
        webhook_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        triggered_at=at,
    )
    return body, headers


def order_lifecycle(
    *, secret: str, order_id: int, number: int, shopper: DemoShopper, start: datetime
) -> Iterator[SignedDelivery]:
    """The four deliveries of one order, placed to delivered."""
    customer = shopper_dict(shopper)
    product = PRODUCTS[order_id % len(PRODUCTS)]
    items = [{"title": product[1], "quantity": 1, "price": product[3], "sku": f"SKU-{product[0]}"}]
    carrier, tracking, url = CARRIERS[order_id % len(CARRIERS)]
    tracking_number, tracking_url = tracking.format(n=number), url.format(n=number)
    fulfillment_id = order_id * 10 + 1
    body, headers = _sign(
        "orders/create",
        payloads.order_payload(
            order_id=order_id,
            number=number,
            customer=customer,
            line_items=items,
            created_at=start,
            updated_at=start,
        ),
        secret,
        start,
    )
    yield SignedDelivery(
        "orders/create", body, headers, f"order #{number} placed by {shopper.first_name}"
    )
    for step, (topic, status, label) in enumerate(
        (
            ("fulfillments/create", None, "dispatched"),
            ("fulfillments/update", "out_for_delivery", "out for delivery"),
            ("fulfillments/update", "delivered", "delivered"),
        ),
        start=1,
    ):
        at = start + timedelta(minutes=step)
        body, headers = _sign(
            topic,
            payloads.fulfillment_payload(
                fulfillment_id=fulfillment_id,
                order_id=order_id,
                customer=customer,
                tracking_company=carrier,
                tracking_number=tracking_number,
                tracking_url=tracking_url,
                shipment_status=status,
                created_at=start + timedelta(minutes=1),
                updated_at=at,
                line_items=items,
                order_number=number,
            ),
            secret,
            at,
        )
        yield SignedDelivery(topic, body, headers, f"order #{number} {label}")


def run_simulation(
    *,
    base_url: str,
    workspace: str,
    secret: str,
    orders: int,
    delay: float,
    duplicates: int,
    echo: Callable[[str], None],
) -> None:
    """Post each order's deliveries in turn, printing what parley answered.

    Raises :class:`SimulationStopped` when parley cannot be reached, or at the first
    delivery it refuses (an unknown workspace, another secret, another store's shop): every
    later one would be refused alike, and the run would only look like it worked.
    """
    seed = int(time.time())
    url = f"{base_url}/webhooks/shopify/{workspace}"
    with httpx2.Client(timeout=10.0) as client:
        for index in range(orders):
            shopper = SHOPPERS[index % len(SHOPPERS)]
            order_id = seed * 100 + index
            number = 1000 + (seed % 9000) + index
            for delivery in order_lifecycle(
                secret=secret, order_id=order_id, number=number, shopper=shopper, start=utc_now()
            ):
                for _ in range(max(duplicates, 1)):
                    response = _post(client, url, delivery, base_url=base_url)
                    echo(f"{delivery.label:<45} → {response.status_code} {response.text}")
                    if response.status_code in REFUSED:
                        raise SimulationStopped(
                            f"parley refused the delivery (HTTP {response.status_code}): check"
                            " --workspace and --secret (PARLEY_DEMO_SHOPIFY_SECRET) name a"
                            " store that has that Shopify secret"
                        )
                time.sleep(delay)
    echo(f"done: see {base_url}/sandbox/")


def _post(
    client: httpx2.Client, url: str, delivery: SignedDelivery, *, base_url: str
) -> httpx2.Response:
    try:
        return client.post(url, content=delivery.body, headers=delivery.headers)
    except httpx2.ConnectError as exc:
        raise SimulationStopped(
            f"cannot reach parley at {base_url}: is it running there? (start it with `parley demo`)"
        ) from exc
    except httpx2.TransportError as exc:
        raise SimulationStopped(f"no answer from parley at {base_url}: {exc!r}") from exc
