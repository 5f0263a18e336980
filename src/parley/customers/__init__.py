"""Customers: profiles, the identities that reach them, and the consent ledger.

An identity (an email, an E.164 phone, a Shopify id, a WhatsApp id) points to one profile;
consent is an append-only ledger per channel and purpose, so every decision can be traced
to the record that allowed or forbade it.
"""
