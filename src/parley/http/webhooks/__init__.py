"""Inbound webhooks: verify the signature on the raw body, store, enqueue, acknowledge.

One module per platform or provider; each answers 2xx only after its transaction commits.
"""
