"""Messaging: everything outbound.

The policy (``policy.py``) decides whether and where a message may go (consent, reachable
identities, channel windows, fallbacks); templates render it; the outbox (``models.py``:
one ``Message`` row per message, one ``DeliveryAttempt`` per try) makes every send durable,
keyed and explained; ``delivery.py`` hands it to a channel adapter and records the answer.
"""
