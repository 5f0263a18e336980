"""The outbox: prepare a message (decide, render, record ``sending``), then record the answer.

The provider is called between the two, outside any transaction. The message row is keyed
(``idempotency_key``, unique per workspace), so a retried job finds the row it made:

- ``sent`` / ``skipped`` / ``failed`` / ``held``: already decided, nothing to do;
- ``queued``: a transient failure earlier, so send again (a new attempt);
- ``sending``: a worker died after handing it over and before recording the answer. The
  provider may have accepted it, so it is *held* for review, never blindly re-sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from parley.channels.base import (
    ChannelKind,
    OutboundMessage,
    PermanentChannelError,
    SendResult,
    TemplateRef,
    TransientChannelError,
)
from parley.clock import utc_now
from parley.commerce.models import Fulfillment, Order
from parley.customers import service as customers
from parley.customers.models import Customer
from parley.messaging import catalog, unsubscribe
from parley.messaging.context import template_context
from parley.messaging.models import AttemptOutcome, DeliveryAttempt, Message, MessageStatus
from parley.messaging.policy import Reach, decide
from parley.messaging.templates import RenderedContent, TemplateRenderer
from parley.messaging.types import DEFAULT_CHANNEL_PREFERENCES, MessageType, Purpose
from parley.workspaces.models import Workspace

FINISHED = {
    MessageStatus.SKIPPED,
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.READ,
    MessageStatus.FAILED,
    MessageStatus.HELD,
}
OPTED_OUT_CODES = {("sms", "21610")}


@dataclass(frozen=True)
class OutboxSettings:
    """Deployment facts the outbox needs (from ``Settings``)."""

    public_url: str
    secret_key: str


@dataclass(frozen=True)
class PreparedSend:
    """A message handed to the worker to send, outside the transaction."""

    message_id: int
    workspace_id: int
    customer_id: int | None
    channel: ChannelKind
    attempt_number: int
    outbound: OutboundMessage


class Result(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class Recorded:
    """What :func:`record_result` concluded, for the job to act on."""

    result: Result
    reason: str = ""
    retry_after: float | None = None
    channel: ChannelKind | None = None


def find_message(session: Session, *, workspace_id: int, idempotency_key: str) -> Message | None:
    return session.scalar(
        select(Message).where(
            Message.workspace_id == workspace_id, Message.idempotency_key == idempotency_key
        )
    )


def prepare_message(
    session: Session,
    *,
    workspace: Workspace,
    customer: Customer,
    message_type: MessageType,
    purpose: Purpose,
    idempotency_key: str,
    order: Order | None,
    fulfillment: Fulfillment | None,
    renderer: TemplateRenderer,
    outbox: OutboxSettings,
    journey_run_id: int | None = None,
    step_index: int | None = None,
    exclude_channels: tuple[str, ...] = (),
) -> tuple[Message, PreparedSend | None]:
    """Decide and render a message and mark it ``sending``; or explain why it is not sent."""
    now = utc_now()
    existing = find_message(session, workspace_id=workspace.id, idempotency_key=idempotency_key)
    if existing is not None:
        return existing, _resume(session, existing, now=now)
    message = Message(
        workspace_id=workspace.id,
        customer_id=customer.id,
        journey_run_id=journey_run_id,
        step_index=step_index,
        idempotency_key=idempotency_key,
        message_type=message_type,
        purpose=purpose,
        status=MessageStatus.QUEUED,
        attempts=0,
        headers={},
        created_at=now,
        status_updated_at=now,
    )
    if not workspace.is_active:
        return _skip(session, message, "the store has uninstalled parley"), None
    templates = catalog.templates_for(session, workspace_id=workspace.id, message_type=message_type)
    reach = Reach(
        customer=customer,
        identities=customers.identities_of(
            session, workspace_id=workspace.id, customer_id=customer.id
        ),
        consent=customers.current_consent(
            session, workspace_id=workspace.id, customer_id=customer.id
        ),
    )
    preferences = _preferences(workspace, message_type)
    decision = decide(
        reach,
        message_type=message_type,
        purpose=purpose,
        now=now,
        templates=templates,
        exclude=exclude_channels,
        preferences=preferences,
    )
    message.decision = decision.trail
    if decision.channel is None:
        return _skip(session, message, decision.skip_reason), None
    context = template_context(
        workspace=workspace,
        customer=customer,
        order=order,
        fulfillment=fulfillment,
        extra=_links(outbox, workspace=workspace, customer=customer, purpose=purpose),
    )
    rendered = renderer.render(templates[decision.channel], context)
    message.channel = decision.channel
    message.recipient = decision.recipient
    _fill_content(message, rendered, use_template=decision.use_template)
    if decision.channel is ChannelKind.EMAIL and purpose is Purpose.MARKETING:
        url = context["unsubscribe_url"]
        message.headers = {
            "List-Unsubscribe": f"<{url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
    session.add(message)
    session.flush()
    return message, _start_attempt(session, message, now=now)


def _preferences(
    workspace: Workspace, message_type: MessageType
) -> dict[MessageType, tuple[ChannelKind, ...]]:
    """The channel-matching table with the store's own changes on top."""
    custom = (workspace.settings or {}).get("channel_preferences", {}).get(message_type)
    if not custom:
        return DEFAULT_CHANNEL_PREFERENCES
    return {**DEFAULT_CHANNEL_PREFERENCES, message_type: tuple(ChannelKind(c) for c in custom)}


def _links(
    outbox: OutboxSettings, *, workspace: Workspace, customer: Customer, purpose: Purpose
) -> dict[str, str]:
    if purpose is not Purpose.MARKETING:
        return {}
    token = unsubscribe.make_token(
        secret_key=outbox.secret_key,
        workspace_id=workspace.id,
        customer_id=customer.id,
        channel=ChannelKind.EMAIL,
    )
    return {"unsubscribe_url": f"{outbox.public_url}/unsubscribe/{token}"}


def _fill_content(message: Message, rendered: RenderedContent, *, use_template: bool) -> None:
    message.subject = rendered.subject
    message.body = rendered.text
    message.html = rendered.html
    if use_template and rendered.template is not None:
        message.template = {
            "name": rendered.template.name,
            "language": rendered.template.language,
            "parameters": list(rendered.template.body_parameters),
        }


def _skip(session: Session, message: Message, reason: str) -> Message:
    message.status = MessageStatus.SKIPPED
    message.status_reason = reason
    session.add(message)
    session.flush()
    return message


def _resume(session: Session, message: Message, *, now: datetime) -> PreparedSend | None:
    if message.status == MessageStatus.QUEUED:
        return _start_attempt(session, message, now=now)
    if message.status == MessageStatus.SENDING:
        _hold_interrupted(session, message, now=now)
    return None


def _hold_interrupted(session: Session, message: Message, *, now: datetime) -> None:
    session.execute(
        update(DeliveryAttempt)
        .where(
            DeliveryAttempt.message_id == message.id,
            DeliveryAttempt.outcome == AttemptOutcome.STARTED,
        )
        .values(
            outcome=AttemptOutcome.INTERRUPTED,
            finished_at=now,
            error="worker stopped before the provider's answer was recorded",
        )
    )
    message.status = MessageStatus.HELD
    message.status_reason = (
        "held for review: the send was interrupted after it was handed to the provider, "
        "so it may have been delivered; not re-sent automatically"
    )
    message.status_updated_at = now


def _start_attempt(session: Session, message: Message, *, now: datetime) -> PreparedSend:
    message.attempts += 1
    message.status = MessageStatus.SENDING
    message.status_updated_at = now
    session.add(
        DeliveryAttempt(
            workspace_id=message.workspace_id,
            message_id=message.id,
            number=message.attempts,
            channel=message.channel,
            outcome=AttemptOutcome.STARTED,
            started_at=now,
        )
    )
    session.flush()
    return PreparedSend(
        message_id=message.id,
        workspace_id=message.workspace_id,
        customer_id=message.customer_id,
        channel=ChannelKind(message.channel),
        attempt_number=message.attempts,
        outbound=_outbound(message),
    )


def _outbound(message: Message) -> OutboundMessage:
    template = None
    if message.template:
        template = TemplateRef(
            name=message.template["name"],
            language=message.template["language"],
            body_parameters=tuple(message.template["parameters"]),
        )
    return OutboundMessage(
        idempotency_key=f"parley-{message.workspace_id}-{message.id}",
        to=message.recipient or "",
        text=message.body or "",
        subject=message.subject,
        html=message.html,
        template=template,
        headers=dict(message.headers or {}),
    )


def record_result(
    session: Session,
    send: PreparedSend,
    result: SendResult | BaseException,
    *,
    is_last_attempt: bool,
) -> Recorded:
    """Store what the provider said; tell the job whether to retry."""
    now = utc_now()
    message = session.get(Message, send.message_id)
    assert message is not None
    attempt = session.scalar(
        select(DeliveryAttempt).where(
            DeliveryAttempt.message_id == message.id,
            DeliveryAttempt.number == send.attempt_number,
        )
    )
    assert attempt is not None
    attempt.finished_at = now
    message.status_updated_at = now
    if isinstance(result, SendResult):
        attempt.outcome = AttemptOutcome.SENT
        message.status = MessageStatus.SENT
        message.status_reason = None
        message.provider = send.channel
        message.provider_message_id = result.provider_message_id
        message.sent_at = now
        return Recorded(Result.SENT, channel=send.channel)
    if isinstance(result, PermanentChannelError):
        attempt.outcome = AttemptOutcome.PERMANENT_ERROR
        attempt.error = result.reason
        attempt.provider_code = result.provider_code
        message.status = MessageStatus.FAILED
        message.status_reason = result.reason
        _suppress_if_opted_out(session, message, result)
        return Recorded(Result.FAILED, reason=result.reason, channel=send.channel)
    reason = result.reason if isinstance(result, TransientChannelError) else repr(result)
    attempt.outcome = AttemptOutcome.TRANSIENT_ERROR
    attempt.error = reason
    attempt.provider_code = getattr(result, "provider_code", None)
    if is_last_attempt:
        message.status = MessageStatus.FAILED
        message.status_reason = f"dead letter after {message.attempts} attempts: {reason}"
        return Recorded(Result.FAILED, reason=reason, channel=send.channel)
    message.status = MessageStatus.QUEUED
    message.status_reason = f"retrying after attempt {message.attempts}: {reason}"
    retry_after = result.retry_after if isinstance(result, TransientChannelError) else None
    return Recorded(Result.RETRY, reason=reason, retry_after=retry_after, channel=send.channel)


def _suppress_if_opted_out(
    session: Session, message: Message, error: PermanentChannelError
) -> None:
    """A provider saying the recipient opted out (Twilio 21610) is a revocation to record."""
    if message.customer_id is None or (message.channel, error.provider_code) not in OPTED_OUT_CODES:
        return
    for purpose in Purpose:
        customers.record_consent(
            session,
            workspace_id=message.workspace_id,
            customer_id=message.customer_id,
            channel=str(message.channel),
            purpose=purpose,
            is_granted=False,
            source=f"provider error {error.provider_code}",
            only_if_changed=True,
        )
