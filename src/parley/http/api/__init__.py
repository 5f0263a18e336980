"""The public JSON API (``/api/v1``), authenticated per workspace with an API key."""
