"""Commerce: the store's own data (orders, fulfilments, checkouts, products, refunds).

Rows are upserted from canonical events; an older ``updated_at`` never overwrites newer
state, whatever order the platform's deliveries arrive in.
"""
