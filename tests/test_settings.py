"""Settings read from PARLEY_* variables as an engineer would write them."""

from __future__ import annotations

import pytest

from parley.settings import Settings


@pytest.mark.parametrize(
    ("written", "keys"),
    [
        ("old-long-key", ["old-long-key"]),
        ("old-long-key, older-long-key", ["old-long-key", "older-long-key"]),
        ('["old-long-key", "older-long-key"]', ["old-long-key", "older-long-key"]),
        ("", []),
    ],
)
def test_previous_secret_keys_are_read_comma_separated_or_as_a_json_list(
    monkeypatch, written, keys
):
    monkeypatch.setenv("PARLEY_CREDENTIALS_PREVIOUS_SECRET_KEYS", written)

    assert Settings(_env_file=None).credentials_previous_secret_keys == keys


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_metrics_token_is_no_token(monkeypatch, blank):
    monkeypatch.setenv("PARLEY_METRICS_TOKEN", blank)

    assert Settings(_env_file=None).metrics_token is None
