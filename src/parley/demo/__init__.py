"""The demo store: a seeded workspace, and ``parley simulate`` to feed it Shopify events."""
