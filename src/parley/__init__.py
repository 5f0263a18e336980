"""parley: self-hosted customer communication for ecommerce stores.

The domain packages (customers, commerce, journeys, messaging, jobs) hold the rules; the
edge (http, integrations, channels, sandbox) talks to the outside world and calls inward.
"""

__version__ = "0.1.0"
