"""Local stand-ins of the providers' APIs, for the demo and the tests.

parley's real channel adapters talk to whatever base URL the settings name; with
``PARLEY_SANDBOX=1`` that is this package, mounted at ``/sandbox`` inside parley's own
server, plus an SMTP server on ``sandbox_smtp_port``. Each stand-in speaks its provider's
real wire format, validates requests the way the provider would and captures every
accepted message in one :class:`~parley.sandbox.store.SandboxStore`, which also injects
faults so tests and operators can rehearse outages.

- ``store.py``: :class:`CapturedMessage`, :class:`SandboxStore` (capture + fault injection)
- ``twilio.py``: Twilio's Messages API (``POST .../Accounts/{sid}/Messages.json``)
- ``whatsapp.py``: the WhatsApp Cloud API (``POST /{version}/{phone_number_id}/messages``)
- ``smtp.py``: :class:`SandboxSmtpServer`, an aiosmtpd server capturing email
- ``app.py``: :func:`create_sandbox_app`, the Starlette app (provider routes, the JSON
  API under ``/api`` and the phone-and-mailbox page at ``/``, from ``page.html``)

To add one more provider: write its route handler in a new module (validate like the
provider, answer in its error format, ``store.take_fault(channel)`` first, then
``store.add(...)``), add its channel name to ``store.CHANNELS`` and its routes in
``app.py``.
"""

from parley.sandbox.app import create_sandbox_app
from parley.sandbox.smtp import SandboxSmtpServer
from parley.sandbox.store import CapturedMessage, Fault, SandboxStore

__all__ = [
    "CapturedMessage",
    "Fault",
    "SandboxSmtpServer",
    "SandboxStore",
    "create_sandbox_app",
]
