"""WhatsApp through Meta's WhatsApp Cloud API (Graph API)."""
