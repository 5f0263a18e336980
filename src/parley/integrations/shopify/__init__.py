"""Shopify: verify webhook deliveries and map them to canonical events.

- ``signature``: ``sign`` and ``verify`` the ``X-Shopify-Hmac-Sha256`` header (base64
  HMAC-SHA256 of the raw body, keyed with the app's client secret; old and new secret both
  accepted during a rotation).
- ``mapping``: ``map_delivery(topic, payload, received_at=...)`` turns one decoded delivery
  into ``Event`` objects (``orders/create`` -> ``order.created``, ``fulfillments/update`` ->
  ``fulfillment.delivered``, ...); ``TOPICS`` lists the topics it maps.
- ``payloads``: builders of realistic webhook bodies and headers for ``parley simulate`` and
  tests.

De-duplication happens at the edge, keyed on ``X-Shopify-Event-Id`` (one per event; several
subscriptions to one topic share it) or, for deliveries without it, ``X-Shopify-Webhook-Id``.
Stale retries are recognised by ``X-Shopify-Triggered-At`` or the payload's ``updated_at``,
which ``map_delivery`` returns as each event's ``occurred_at``.

To support one more topic, add a mapper to ``mapping._MAPPERS``, a sample to the mapping
tests and, if ``parley simulate`` should send it, a builder to ``payloads``.
"""
