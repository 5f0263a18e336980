"""Email customers send to the store, as an inbound-mail provider posts it to a webhook.

``mailgun.py`` reads Mailgun's routes ``forward()`` format (parsed form fields, signed
with the webhook signing key). To add another provider (SendGrid Inbound Parse, Postmark
inbound), add a module here with the same two functions: ``verify_signature`` (refusing
stale or forged posts) and ``parse`` returning an
:class:`~parley.channels.base.InboundMessage` whose ids use the ``<local@domain>`` form
that :func:`parley.channels.email_smtp.adapter.message_id_for` writes, so replies thread.
"""
