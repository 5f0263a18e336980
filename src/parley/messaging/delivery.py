"""The ``messaging.deliver`` task: send one queued message (a reply) through its channel.

Journey messages are decided and sent by the journey engine; a reply is decided when it is
queued (:mod:`parley.messaging.replies`) and this task only delivers it, re-checking at
send time what may have changed since: the store uninstalled, or the customer opted out.
Retries, the ``sending`` in-flight state and its reconciliation are the outbox's, shared
with journey sends. A reply whose job was re-driven out of the dead letter is tried again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parley.channels.adapters import ChannelAdapters
from parley.channels.base import AccountChannelError, ChannelAdapter, ChannelKind, SendResult
from parley.clock import utc_now
from parley.inbox.models import Conversation
from parley.jobs.queue import REDRIVE, ClaimedJob
from parley.jobs.worker import Done, Later, Outcome, Retry, RetryLater
from parley.messaging import service as outbox
from parley.messaging.models import Author, Message, MessageStatus
from parley.messaging.pace import Pacer
from parley.messaging.replies import DELIVER, is_human_agent_reply, reply_refusal
from parley.messaging.senders import (
    StoreAccounts,
    StoreSenders,
    reply_addresses,
    sending_accounts,
)
from parley.messaging.service import OutboxSettings, PreparedSend, QueuedSend, Result
from parley.messaging.windows import SendingLine
from parley.workspaces.models import Workspace

SEND_TIMEOUT_MARGIN_SECONDS = 5.0
RACED_RETRY_SECONDS = 5.0
"""A job whose reply was settled as its attempt started waits this long to look again."""


@dataclass(frozen=True)
class Replies:
    """A batch's messages, read at once, and their stores' own sending accounts and
    inbound addresses."""

    messages: dict[int, Message]
    accounts: StoreAccounts
    reply_addresses: dict[int, str]


class DeliverMessage:
    """The ``messaging.deliver`` task."""

    kind = DELIVER

    def __init__(
        self,
        *,
        adapters: Mapping[ChannelKind, ChannelAdapter],
        outbox_settings: OutboxSettings,
        send_timeout_seconds: float = 10.0,
        pacer: Pacer | None = None,
    ) -> None:
        self.adapters = ChannelAdapters.of(adapters)
        self.outbox_settings = outbox_settings
        self.pacer = pacer
        self.send_timeout = send_timeout_seconds + SEND_TIMEOUT_MARGIN_SECONDS

    def preload(self, session: Session, jobs: list[ClaimedJob]) -> Replies:
        ids = [int(job.payload["message_id"]) for job in jobs]
        messages = {m.id: m for m in session.scalars(select(Message).where(Message.id.in_(ids)))}
        stores = {job.workspace_id for job in jobs if job.workspace_id is not None}
        return Replies(
            messages, sending_accounts(session, stores), reply_addresses(session, stores)
        )

    def prepare(
        self, session: Session, job: ClaimedJob, batch: Replies | None
    ) -> QueuedSend | None:
        message_id = int(job.payload["message_id"])
        message = (batch.messages if batch else {}).get(message_id) or session.get(
            Message, message_id
        )
        if message is None or message.workspace_id != job.workspace_id:
            return None
        now = utc_now()
        if message.status == MessageStatus.SENDING:
            outbox.hold_interrupted(session, message, now=now)
            return None
        if message.status == MessageStatus.FAILED and job.payload.get(REDRIVE):
            # Re-driven out of the dead letter. A failed reply has settled (every attempt
            # ended in an error), so trying it again cannot deliver it twice; the same
            # message goes out, as the agent wrote it, and its attempts go on counting.
            message.status = MessageStatus.QUEUED
            message.status_reason = None
        if message.status != MessageStatus.QUEUED:
            return None
        workspace = session.get(Workspace, message.workspace_id)
        assert workspace is not None
        conversation = (
            session.get(Conversation, message.conversation_id) if message.conversation_id else None
        )
        replies = batch or Replies(
            {},
            sending_accounts(session, [workspace.id]),
            reply_addresses(session, [workspace.id]),
        )
        channel = ChannelKind(str(message.channel))
        senders = replies.accounts.get(workspace.id)
        if senders is None:
            senders = StoreSenders()
        line = SendingLine(senders.for_reply(channel, message.store_address), senders)
        is_human_agent = False
        if conversation is not None:
            refusal = reply_refusal(
                session,
                workspace=workspace,
                conversation=conversation,
                channel=channel,
                recipient=message.recipient,
                author=Author(message.author),
                now=now,
                line=line,
                is_template=message.template is not None,
            )
            if refusal is not None:
                message.status = MessageStatus.SKIPPED
                message.status_reason = f"not sent: {refusal}"
                message.status_updated_at = now
                outbox.announce_status(session, message)
                return None
            is_human_agent = is_human_agent_reply(
                session,
                conversation=conversation,
                channel=channel,
                recipient=message.recipient,
                author=Author(message.author),
                now=now,
                line=line,
            )
        return QueuedSend(
            message,
            sender_name=workspace.name,
            status_callback_url=outbox.status_callback_url(
                self.outbox_settings, workspace, message.channel
            ),
            is_human_agent=is_human_agent,
            account=line.account,
            reply_address=(
                replies.reply_addresses.get(workspace.id) if channel is ChannelKind.EMAIL else None
            ),
        )

    def record_batch(
        self, session: Session, items: list[tuple[ClaimedJob, QueuedSend]]
    ) -> list[PreparedSend | Later]:
        """Start the batch's attempts together, each where its sender has room; a reply
        whose sender has none waits for it.

        A reply no longer ``queued`` when its attempt starts (a receipt settled it since it
        was read) stops the batch here: each job is prepared again on its own, and that
        one then finds its message settled.
        """
        recorded = outbox.record_sends(session, [send for _, send in items], pacer=self.pacer)
        sends: list[PreparedSend | Later] = []
        for (job, _), result in zip(items, recorded, strict=True):
            if result is None:
                raise RetryLater(
                    f"job {job.id}: its message was settled as its attempt started",
                    retry_after=RACED_RETRY_SECONDS,
                )
            sends.append(result)
        return sends

    async def perform(self, work: PreparedSend) -> SendResult:
        adapter = self.adapters.for_message(work.channel, work.outbound)
        async with asyncio.timeout(self.send_timeout):
            return await adapter.send(work.outbound)

    def finish_batch(
        self, session: Session, items: list[tuple[ClaimedJob, PreparedSend, Any]]
    ) -> list[Outcome]:
        """Record the answers; a transient failure retries, a refusal of the message is
        final and shown, a refusal of the store's account is retried."""
        answers = [
            (work, _no_fallback(result), job.attempts >= job.max_attempts)
            for job, work, result in items
        ]
        outcomes: list[Outcome] = []
        for answer in outbox.record_results(session, answers):
            if answer.result is Result.RETRY:
                outcomes.append(Retry(answer.reason, answer.retry_after))
            elif answer.is_exhausted:
                outcomes.append(Retry(answer.reason))
            else:
                outcomes.append(Done())
        return outcomes


def _no_fallback(result: Any) -> Any:
    """A reply goes on its one channel: a provider refusing the store's account is waited
    out like an outage (then the dead letter), for the reply to go once it is fixed."""
    return result.as_outage() if isinstance(result, AccountChannelError) else result
