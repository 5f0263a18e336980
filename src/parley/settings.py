"""One typed Settings object, read from ``PARLEY_*`` environment variables and ``.env``.

Built by :func:`get_settings` on demand, never at import, so tests and the CLI can set the
environment first.
"""

from __future__ import annotations

import json
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SQLITE_PATH = Path("var") / "parley.db"
SANDBOX_DKIM_SELECTOR = "parley"
"""The selector the sandbox's DNS publishes the demo domain's DKIM key under."""
SANDBOX_WHATSAPP_BUSINESS_ACCOUNT_ID = "100000000000000"
_LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}


class Settings(BaseSettings):
    """Everything a deploying engineer can set."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_SQLITE_PATH}",
        description="SQLAlchemy URL; sqlite:///path (embedded) or postgresql+psycopg://...",
    )
    sqlite_synchronous: Literal["full", "normal"] = Field(
        default="full",
        description="full: acknowledged events survive power loss; normal: faster, survives "
        "process crashes only",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str | None = Field(
        default=None, description="Base URL providers sign against; default http://{host}:{port}"
    )
    migrate_on_start: bool = Field(
        default=True, description="`parley serve` brings a SQLite database up to date on start"
    )
    embedded_worker: bool = Field(default=True, description="`parley serve` also runs a worker")
    intake_max_in_flight: int = Field(
        default=256,
        ge=1,
        description="deliveries (webhooks, events API) a server process takes in at once; "
        "past it, 503 with Retry-After, so a retry storm is shed instead of timing out",
    )
    worker_concurrency: int = Field(
        default=64, ge=1, description="sends in flight per worker process"
    )
    worker_batch_size: int | None = Field(
        default=None,
        ge=1,
        description="jobs claimed per round, read together in bulk; default 200, or beside "
        "the web server 20 while webhooks arrive (a round's bursts of work and sends would "
        "keep them waiting) and 200 once none has for 2 s; setting it fixes the size",
    )
    worker_prepare_chunk: int | None = Field(
        default=None,
        ge=1,
        description="jobs of a round prepared to a transaction; default 20 on SQLite (a "
        "transaction holds the one writer) or beside the web server, the whole round "
        "otherwise",
    )
    worker_rounds_in_flight: int | None = Field(
        default=None,
        ge=1,
        description="rounds (claim, prepare, send, finish) a worker process runs at once, so "
        "one round's database work overlaps another's sends; default 2, or 1 beside the web "
        "server (webhooks come first there)",
    )
    worker_poll_seconds: float = 0.2
    job_lease_seconds: int = 60
    job_max_attempts: int = Field(
        default=12,
        ge=1,
        description="attempts before the dead letter; with the backoff's defaults (5 s "
        "doubling, capped at an hour) 12 ride out a provider outage of 1.2 to 2.4 hours",
    )
    job_backoff_base_seconds: float = 5.0
    job_backoff_cap_seconds: float = 3600.0
    webhook_retention_days: float = Field(
        default=14,
        ge=3,
        description="raw deliveries (webhook bodies, kept verbatim) are deleted this long "
        "after they arrived; each is also the dedupe key that stops a platform's late retry "
        "(up to 3 days, Meta's up to 7) being taken in again, so at least 3",
    )
    job_retention_days: float = Field(
        default=7,
        gt=0,
        description="done and cancelled jobs are deleted this long after they finished; "
        "failed and dead jobs (the dead letter) are kept",
    )
    log_level: str = Field(
        default="INFO",
        description="debug, info, warning, error or critical",
    )
    # Alerts (parley.alerts) and the monitoring endpoint (GET /metrics).
    alert_check_seconds: float = Field(
        default=30, ge=1, description="How often the alerts watch reads the backlog"
    )
    alert_late_seconds: float = Field(
        default=120,
        ge=0,
        description="Alert when the oldest due job of a lane has waited this long (0: off)",
    )
    alert_dead_letter_minutes: float = Field(
        default=15,
        ge=0,
        description="Alert when jobs reached the dead letter within this many minutes (0: off)",
    )
    alert_privacy_days: float = Field(
        default=25,
        ge=0,
        description="Alert when a customer's privacy request is not carried out this many "
        "days after it was received; the answer is owed within a month (0: off)",
    )
    alert_webhook_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+",
        description="Where each alert's start and end is posted as JSON (a Slack or "
        "Mattermost incoming webhook shows its text); alerts are logged either way",
    )
    metrics_token: str | None = Field(
        default=None,
        description="Bearer token a monitoring system sends to GET /metrics; unset, the "
        "endpoint is off",
    )

    secret_key: str = Field(
        default="change-me-parley-development-key",
        description="Signs unsubscribe links and sessions, encrypts stored channel "
        "credentials and keys the hashes of an erased customer's opt-outs; set a long random "
        "value in production",
    )
    credentials_previous_secret_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Former secret keys (comma-separated, or a JSON list) still read when "
        "opening stored credentials during a key rotation, when matching the opt-outs an "
        "erasure kept under them, and for the unsubscribe links of email sent before the "
        "rotation; keep each until every credential has been saved again, and for the "
        "opt-outs and links, keep it",
    )

    # Agents' sign-in.
    session_idle_minutes: int = Field(
        default=120, description="An agent's session ends after this long without a request"
    )
    session_absolute_hours: int = Field(
        default=12, description="An agent's session ends this long after sign-in, whatever happens"
    )
    session_cookie_secure: bool = Field(
        default=True,
        description="Mark session cookies Secure (browsers still send them to http://localhost)",
    )
    login_max_failures: int = Field(
        default=10, description="Refused sign-ins per email or address before login answers 429"
    )
    login_failure_window_minutes: int = 15
    invite_valid_days: int = 7
    demo_admin_email: str = "admin@demo.parley.test"
    demo_admin_password: str = Field(
        default="parley-demo-admin", description="The demo admin's password, printed by `demo`"
    )

    sandbox: bool = Field(default=False, description="Serve local stand-ins of provider APIs")
    sandbox_smtp_port: int = Field(default=8025, ge=1, le=65535)
    sandbox_dns_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="UDP port of the sandbox's DNS for the demo's sending domain "
        "(default: the SMTP port's number, on UDP)",
    )

    # Email over SMTP.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=8025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_use_tls: bool = False
    smtp_timeout_seconds: float = 10.0
    email_from: str = "parley <orders@demo.parley.test>"
    email_domain_check: bool = Field(
        default=True,
        description="Read the From domain's SPF, DKIM and DMARC hourly; marketing email "
        "waits while they fall short of Gmail's and Yahoo's bulk-sender rules",
    )
    email_dkim_selector: str = Field(
        default="",
        description="The DKIM selector your relay signs the From domain with (its key is "
        "at <selector>._domainkey.<domain>)",
    )
    dns_nameservers: str = Field(
        default="",
        description="Resolvers for that check, comma-separated host or host:port; "
        "empty: the system's",
    )

    # Twilio Programmable Messaging.
    twilio_base_url: str = "https://api.twilio.com"
    twilio_account_sid: str = "ACsandbox00000000000000000000000000"
    twilio_auth_token: str = "sandbox-twilio-auth-token"
    twilio_from_number: str = "+15005550006"

    # WhatsApp Cloud API.
    whatsapp_base_url: str = "https://graph.facebook.com"
    whatsapp_api_version: str = "v21.0"
    whatsapp_phone_number_id: str = "100000000000001"
    whatsapp_access_token: str = "sandbox-whatsapp-token"
    whatsapp_business_account_id: str = Field(
        default="",
        description="The WhatsApp Business Account (WABA) id the number belongs to: parley "
        "reads its templates' review status and category from Meta every hour, and passes "
        "over a paused one or a marketing one without marketing consent. Empty: not read, "
        "and Meta's answer to each send decides (the sandbox sets its own)",
    )

    # Instagram messaging (Instagram API with Instagram Login).
    instagram_base_url: str = "https://graph.instagram.com"
    instagram_api_version: str = "v21.0"
    instagram_account_id: str = "17841400000000001"
    instagram_access_token: str = "sandbox-instagram-token"

    provider_timeout_seconds: float = 10.0

    # Each sender's pace: what its provider takes from it a second, or 0 for no pacing.
    # Sends past it wait as jobs for their time, never in memory (parley.messaging.pace).
    whatsapp_messages_per_second: float = Field(
        default=80,
        ge=0,
        description="Messages a second the WhatsApp business number takes: 80 by default, "
        "1000 once Meta upgrades it, 20 for a number also used in the WhatsApp Business app",
    )
    twilio_segments_per_second: float = Field(
        default=1,
        ge=0,
        description="SMS segments a second the Twilio number takes: 1 for a US long code, "
        "more for a toll-free number, a short code or a registered 10DLC campaign",
    )
    instagram_messages_per_second: float = Field(
        default=300,
        ge=0,
        description="Text messages a second Instagram's Send API takes per account",
    )
    smtp_messages_per_second: float = Field(
        default=0,
        ge=0,
        description="Messages a second the SMTP relay takes (0: the relay queues for itself)",
    )
    send_burst_seconds: float = Field(
        default=1.0,
        gt=0,
        description="A rested sender may send this many seconds' worth at once",
    )

    # The inbox's image proxy (``/media/proxy``): remote media is fetched by parley, never
    # embedded, so a customer's image URL cannot track agents or reach internal hosts.
    media_proxy_max_bytes: int = Field(default=5_000_000, description="Largest image served")
    media_proxy_timeout_seconds: float = Field(default=5.0, description="Whole fetch deadline")
    media_proxy_allow_private: bool = Field(
        default=False,
        description="Tests only: let the proxy fetch loopback and private addresses",
    )

    # The assistant.
    assistant_model_dir: Path = Field(
        default=Path("var") / "assistant",
        description="Where the assistant keeps its intent models (shipped cache, store's own)",
    )
    assistant_confidence_floor: float = Field(
        default=0.5,
        description="Below this confidence the assistant asks again; twice, it hands off",
    )
    assistant_llm_url: str | None = Field(
        default=None,
        description="Optional OpenAI-compatible base URL (…/v1) that rephrases the "
        "assistant's facts; it may never add one",
    )
    assistant_llm_model: str = "gpt-4o-mini"
    assistant_llm_api_key: str | None = None
    assistant_llm_timeout_seconds: float = 5.0

    # The demo store.
    demo_shopify_secret: str = "demo-shopify-secret"
    demo_api_key: str = "demo-api-key"
    demo_meta_app_secret: str = Field(
        default="demo-meta-app-secret",
        description="The demo store's Meta app secret: signs WhatsApp and Instagram webhooks",
    )
    demo_meta_verify_token: str = Field(
        default="demo-meta-verify-token",
        description="The demo store's token for Meta's hub.challenge handshake",
    )
    demo_twilio_auth_token: str = Field(
        default="demo-twilio-auth-token",
        description="The demo store's Twilio auth token: signs SMS webhooks",
    )
    demo_mailgun_signing_key: str = Field(
        default="demo-mailgun-signing-key",
        description="The demo store's Mailgun webhook signing key: signs inbound email",
    )
    sandbox_workspace: str = Field(
        default="demo",
        description="The workspace whose webhooks the sandbox's customer phone posts to",
    )

    def local_url(self) -> str:
        """``http://{host}:{port}``, an IPv6 address in brackets as URLs write it (the
        bare ``::1:8000`` is no URL at all)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def resolved_public_url(self) -> str:
        """The base URL providers sign against."""
        return (self.public_url or self.local_url()).rstrip("/")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def pointed_at_sandbox(self) -> Settings:
        """The same settings with every provider pointed at this server's sandbox.

        The adapters do not know: they speak the same HTTP and SMTP to another address.
        """
        base = f"{self.local_url()}/sandbox"
        return self.model_copy(
            update={
                "twilio_base_url": f"{base}/twilio",
                "whatsapp_base_url": f"{base}/whatsapp",
                "whatsapp_business_account_id": self.whatsapp_business_account_id
                or SANDBOX_WHATSAPP_BUSINESS_ACCOUNT_ID,
                "instagram_base_url": f"{base}/instagram",
                "smtp_host": "127.0.0.1",
                "smtp_port": self.sandbox_smtp_port,
                "smtp_username": None,
                "smtp_password": None,
                "smtp_starttls": False,
                "smtp_use_tls": False,
                "dns_nameservers": f"127.0.0.1:{self.sandbox_dns_port or self.sandbox_smtp_port}",
                "email_dkim_selector": self.email_dkim_selector or SANDBOX_DKIM_SELECTOR,
            }
        )

    @field_validator("database_url")
    @classmethod
    def _runs_on(cls, value: str) -> str:
        """A URL parley cannot run on is refused with the other malformed settings, said
        without the URL (it may hold a password)."""
        from parley.db.engine import url_problem

        problem = url_problem(value)
        if problem is not None:
            raise PydanticCustomError("database_url", problem)
        return value

    @field_validator("public_url")
    @classmethod
    def _reachable_url(cls, value: str | None) -> str | None:
        """Twilio's signatures are checked against it and unsubscribe links are built on
        it: without a scheme and host, every Twilio webhook would be refused and every
        link broken, with nothing said at start. Left blank, it is unset."""
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                "an http(s) URL such as https://parley.example.com, the address providers "
                "and customers reach parley at"
            )
        return value.strip()

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        """A level both :mod:`logging` and the web server (uvicorn) know, upper case: read
        as written, ``warn`` would pass the worker and crash ``parley serve`` at start,
        ``trace`` the other way round, and a typo would crash both."""
        level = value.strip().upper()
        level = _LEVEL_ALIASES.get(level, level)
        if level not in _LOG_LEVELS:
            raise ValueError("one of debug, info, warning, error, critical (or warn, fatal)")
        return level

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        """A ``PARLEY_METRICS_TOKEN=`` line left blank is no token: the endpoint stays off
        rather than open to anyone sending an empty bearer."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("credentials_previous_secret_keys", mode="before")
    @classmethod
    def _keys_as_written(cls, value: Any) -> Any:
        """Comma-separated, as ``DNS_NAMESERVERS`` is written, or a JSON list."""
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            return json.loads(value)
        return [key.strip() for key in value.split(",") if key.strip()]

    def sending_domain(self) -> str | None:
        """The From address's domain when its set-up is checked (EMAIL_DOMAIN_CHECK)."""
        if not self.email_domain_check:
            return None
        return parseaddr(self.email_from)[1].rpartition("@")[2].lower() or None

    def nameservers(self) -> list[str]:
        return [entry.strip() for entry in self.dns_nameservers.split(",") if entry.strip()]


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
