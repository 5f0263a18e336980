"""Settings read from PARLEY_* variables as an engineer would write them."""

from __future__ import annotations

import httpx2
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


@pytest.mark.parametrize(
    ("written", "level"),
    [
        ("info", "INFO"),
        ("DEBUG", "DEBUG"),
        (" Warning ", "WARNING"),
        ("warn", "WARNING"),
        ("fatal", "CRITICAL"),
    ],
)
def test_a_log_level_is_read_as_both_logging_and_the_web_server_know_it(
    monkeypatch, written, level
):
    monkeypatch.setenv("PARLEY_LOG_LEVEL", written)

    assert Settings(_env_file=None).log_level == level


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("127.0.0.1", "http://127.0.0.1:8123"),
        ("::1", "http://[::1]:8123"),
        ("::", "http://[::]:8123"),
        ("parley.internal", "http://parley.internal:8123"),
    ],
)
def test_the_default_public_url_and_the_sandbox_urls_are_valid_for_an_ipv6_host(host, base):
    settings = Settings(_env_file=None, host=host, port=8123, sandbox=True)

    sandboxed = settings.pointed_at_sandbox()

    assert settings.resolved_public_url() == base
    assert (
        sandboxed.twilio_base_url,
        sandboxed.whatsapp_base_url,
        sandboxed.instagram_base_url,
    ) == (f"{base}/sandbox/twilio", f"{base}/sandbox/whatsapp", f"{base}/sandbox/instagram")
    assert str(httpx2.URL(sandboxed.twilio_base_url)) == f"{base}/sandbox/twilio"


@pytest.mark.parametrize(
    ("written", "url"),
    [
        ("https://parley.example.com", "https://parley.example.com"),
        ("https://shop.example/parley/", "https://shop.example/parley"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("", "http://127.0.0.1:8000"),
    ],
)
def test_a_public_url_is_taken_as_written_with_or_without_a_path(monkeypatch, written, url):
    monkeypatch.setenv("PARLEY_PUBLIC_URL", written)

    assert Settings(_env_file=None).resolved_public_url() == url
