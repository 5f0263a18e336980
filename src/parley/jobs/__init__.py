"""Jobs: one durable table that is both the queue and the scheduler.

``queue.py`` enqueues in the caller's transaction (so a job exists exactly when the rows it
refers to do), claims due jobs under a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
one short ``BEGIN IMMEDIATE`` transaction on SQLite) and settles them; ``worker.py`` runs
tasks in batches; a task is registered by its stable kind string.
"""
