"""Store events: every delivery a store platform sends, stored raw, and the canonical events
mapped from it.

A delivery is unique per (workspace, source, delivery key), so a retried or duplicated
webhook is recognised by a unique constraint, not by a read-then-write. Canonical events
are the store's timeline: journeys start and exit on them.
"""
