"""Customers' and stores' privacy requests: erasure and access, as Shopify's mandatory
compliance webhooks ask for them (``customers/redact``, ``customers/data_request``,
``shop/redact``)."""
