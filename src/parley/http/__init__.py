"""The HTTP edge: webhooks, the public API, and (with the sandbox) provider stand-ins.

Handlers are thin: parse, authenticate, call one domain function inside one transaction,
serialise. Domain errors map to statuses in ``responses.py``.
"""
