"""Local stand-ins of the providers' APIs, for the demo and the tests.

parley's real channel adapters talk to whatever base URL the settings name; with
``PARLEY_SANDBOX=1`` that is this package, mounted at ``/sandbox`` inside parley's own
server, plus an SMTP server on ``sandbox_smtp_port``. Each stand-in speaks its provider's
real wire format, validates requests the way the provider would and captures every
accepted message in one :class:`~parley.sandbox.store.SandboxStore`, which also injects
faults so tests and operators can rehearse outages.

It also plays the customer and the providers' callbacks: the page's composer posts a
customer's message as the provider's real, signed webhook to parley's own
``/webhooks/...`` routes, and the WhatsApp and Twilio stand-ins report ``sent`` and
``delivered`` back the same way, so inbound paths run end to end with no accounts.

- ``store.py``: :class:`CapturedMessage` (outbound, or inbound from the composer),
  :class:`SandboxStore` (capture + fault injection)
- ``accounts.py``: :class:`SandboxAccounts`, the Twilio accounts and WhatsApp numbers the
  stand-ins serve (the deployment's from the settings, and any a test or store adds)
- ``api.py``: the sandbox's JSON API: captures (``/api/messages``), faults (``/api/faults``)
  and a provider console's sign-up (``POST /api/accounts/twilio``, ``POST
  /api/accounts/whatsapp``, ``GET /api/accounts``), which issues credentials the stand-ins
  accept, for a store to connect as its own sender
- ``twilio.py``: Twilio's Messages API (``POST .../Accounts/{sid}/Messages.json``)
- ``whatsapp.py``: the WhatsApp Cloud API (``POST /{version}/{phone_number_id}/messages``)
- ``instagram.py``: the Instagram Send API (``POST /{version}/{account_id}/messages``)
- ``smtp.py``: :class:`SandboxSmtpServer`, an aiosmtpd server capturing email
- ``webhooks.py``: provider → parley webhooks, built and signed (``ProviderWebhooks``),
  posted (``WebhookPoster``), and the status reports of the stand-ins (``StatusReporter``)
- ``composer.py``: ``POST /api/inbound``, a customer writing to the store
- ``app.py``: :func:`create_sandbox_app`, the Starlette app (provider routes, the JSON
  API under ``/api`` and the phone-and-mailbox page at ``/``, from ``page.html``)

To add one more provider: write its route handler in a new module (validate like the
provider, answer in its error format, ``store.take_fault(channel)`` first, then
``store.add(...)``), add its channel name to ``store.CHANNELS`` and its routes in
``app.py``.
"""

from parley.sandbox.accounts import SandboxAccounts
from parley.sandbox.app import create_sandbox_app
from parley.sandbox.smtp import SandboxSmtpServer
from parley.sandbox.store import CapturedMessage, Fault, SandboxStore

__all__ = [
    "CapturedMessage",
    "Fault",
    "SandboxAccounts",
    "SandboxSmtpServer",
    "SandboxStore",
    "create_sandbox_app",
]
