"""Store platforms: where a store's own events enter parley.

One package per platform (``shopify/``, ``generic/``, later ``woocommerce/``). Each turns a
platform's webhook delivery into canonical :class:`parley.events.Event` objects and knows
nothing else: no database, no journeys, no channels. The HTTP edge (``http/webhooks/``) calls
it and hands the events to the domain in one transaction.

To add a platform, create ``integrations/<platform>/`` with three small, pure pieces:

1. **Verify**: a ``signature`` module that checks the delivery's signature over the raw body
   bytes in constant time and accepts every secret of a rotation (RELIABILITY W1, W2).
2. **De-duplicate**: name the header or field that identifies one delivery (Shopify's
   ``X-Shopify-Event-Id``, falling back to ``X-Shopify-Webhook-Id``) and the timestamp that
   orders updates (W3, W5); the edge stores them under a unique constraint.
3. **Map**: a ``mapping`` module with the supported ``TOPICS`` and a ``map_delivery`` that
   returns canonical events, raising ``UnknownTopic`` for topics it does not map and
   ``MalformedPayload`` (naming the field) for bodies it cannot read.

Ship the platform's documented sample payloads as test fixtures read from ``../shared/data``
and assert exact mapped values, as ``tests/integrations/shopify/`` does.
"""
