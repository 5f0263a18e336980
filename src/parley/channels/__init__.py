"""Channels: how a message leaves parley, and how customers' messages come back in.

Each provider lives in its own folder (``email_smtp/``, ``twilio_sms/``,
``whatsapp_cloud/``, ``instagram/``, ``email_inbound/``) and knows only that provider's
wire format: no database, no journeys, no consent rules. Outbound, an adapter ``send``s;
inbound, a folder's ``webhook.py`` verifies the provider's signature and parses its
payloads into ``InboundMessage`` / ``StatusUpdate`` events (``meta.py`` holds what
WhatsApp and Instagram share). ``base.py`` holds the contract every adapter meets (``kind``,
``provider``, ``capabilities``, ``from_settings``, ``send``, ``check``, ``aclose``) and the two
failure classes delivery acts on: ``TransientChannelError`` (retry later) and
``PermanentChannelError`` (fail now, show the reason), with ``AccountChannelError`` for a
provider refusing the store's own credentials or account (fall back, else keep retrying).
``http.py`` is the pooled client and status classification shared by HTTP providers;
``registry.py`` maps kind to class.

To add a channel:

1. create ``channels/<provider>/__init__.py`` and ``adapter.py`` with a class that satisfies
   ``ChannelAdapter`` (reuse ``http.make_client`` and ``http.error_for_status`` for HTTP APIs);
2. add the class to the tuple in ``registry.py``;
3. give the contract suite in ``tests/channels/test_contract.py`` a fixture for it and add
   provider tests for its exact wire format.
"""
