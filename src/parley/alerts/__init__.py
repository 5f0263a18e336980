"""Alerts: the deployment tells its engineer when its work falls behind or dies.

A periodic job (:mod:`parley.alerts.watch`) reads the job table's backlog, decides which
alerts fire (:mod:`parley.alerts.rules`), keeps their state in one row each, and on every
change logs it and queues a notification to the engineer's webhook
(:mod:`parley.alerts.notify`). ``GET /metrics`` shows the same figures to a monitoring
system of the engineer's own (:mod:`parley.http.metrics`).
"""
