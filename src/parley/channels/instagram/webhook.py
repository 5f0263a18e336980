"""Read Instagram webhooks (Instagram API with Instagram Login): signature and events.

Meta posts ``{"object": "instagram", "entry": [...]}`` where ``entry.id`` is the store's
Instagram professional account. Two shapes matter to parley:

- ``entry[].messaging[]``: direct messages (``message``), including **echoes** of what
  the store itself sent (``message.is_echo``) and messages the customer took back
  (``message.is_deleted``), their edits (``message_edit``, the ``message_edits`` field),
  and read receipts (``read.mid``, the ``messaging_seen`` field);
- ``entry[].changes[]`` with ``field: "comments"`` (or ``"live_comments"``): a comment on
  one of the store's posts, which the store may answer once with a private reply.

Anything else (reactions, postbacks, referrals, mentions, story insights) is ignored so
that a field Meta adds never fails a delivery. Reactions in particular carry no id of
their own, so they could not be deduplicated as messages.

Signature checking and the ``hub.challenge`` handshake are the same as WhatsApp's and
live in :mod:`parley.channels.meta`; they are re-exported here.
"""

from __future__ import annotations

from parley.channels.base import (
    DELETED,
    EDITED,
    Attachment,
    ChannelKind,
    InboundEvent,
    InboundMessage,
    StatusUpdate,
)
from parley.channels.meta import (
    Batch,
    Located,
    handshake,
    load_payload,
    sign,
    verify_signature,
)

__all__ = ["handshake", "parse", "sign", "verify_signature"]

COMMENT_FIELDS = frozenset({"comments", "live_comments"})


def parse(body: bytes) -> list[InboundEvent]:
    """Every message, echo, read receipt and comment in one webhook body, in order.

    Raises :class:`~parley.channels.base.MalformedWebhook` when the body is not JSON or
    not shaped like an Instagram notification, and
    :class:`~parley.channels.meta.PartlyMalformed` (carrying every other event) when only
    some entries, messages or comments are not.
    """
    payload = load_payload(body, "instagram")
    batch = Batch()
    for entry in payload.children("entry"):
        with batch.part():
            for item in entry.children("messaging"):
                with batch.part():
                    event = _messaging(item)
                    if event is not None:
                        batch.events.append(event)
            for change in entry.children("changes"):
                with batch.part():
                    if change.data.get("field") in COMMENT_FIELDS:
                        account = entry.text("id")
                        batch.events.append(_comment(change.child("value"), account=account))
    return batch.read()


def _messaging(item: Located) -> InboundEvent | None:
    if "message" in item.data:
        return _message(item)
    if "message_edit" in item.data:
        # The customer changed the words of a message they sent (``message_edits``):
        # the same mid, the text as it now reads.
        edit = item.child("message_edit")
        return InboundMessage(
            channel=ChannelKind.INSTAGRAM,
            provider_message_id=edit.text("mid"),
            sender=item.child("sender").text("id"),
            text=edit.optional_text("text") or "",
            account=item.child("recipient").text("id"),
            sent_at=item.time("timestamp"),
            kind=EDITED,
        )
    if "read" in item.data:
        # The customer read what the store sent: they are the sender of the receipt.
        return StatusUpdate(
            channel=ChannelKind.INSTAGRAM,
            provider_message_id=item.child("read").text("mid"),
            status="read",
            account=item.child("recipient").text("id"),
            recipient=item.child("sender").text("id"),
            occurred_at=item.time("timestamp"),
        )
    return None


def _message(item: Located) -> InboundMessage:
    message = item.child("message")
    sender = item.child("sender").text("id")
    recipient = item.child("recipient").text("id")
    is_echo = message.data.get("is_echo") is True
    # An echo travels from the store to the customer. The conversation it belongs to is
    # still the customer's, and ``account`` must stay the store's so the route's
    # workspace check holds, so the two ids swap.
    customer, account = (recipient, sender) if is_echo else (sender, recipient)
    attachments = tuple(
        Attachment(
            kind=attachment.text("type"), url=attachment.child("payload").optional_text("url")
        )
        for attachment in message.children("attachments")
    )
    text = message.optional_text("text") or ""
    if message.data.get("is_deleted") is True:
        kind = DELETED
    elif message.data.get("is_unsupported") is True:
        kind = "unsupported"
    elif attachments and not text:
        kind = attachments[0].kind
    else:
        kind = "text"
    return InboundMessage(
        channel=ChannelKind.INSTAGRAM,
        provider_message_id=message.text("mid"),
        sender=customer,
        text=text,
        account=account,
        sent_at=item.time("timestamp"),
        kind=kind,
        attachments=attachments,
        reply_to=message.child("reply_to").optional_text("mid"),
        is_echo=is_echo,
    )


def _comment(value: Located, *, account: str) -> InboundMessage:
    """A comment as a message: the commenter is the sender, the comment id its address.

    Comment notifications carry no creation time; the receiving side's clock is the
    closest thing (they arrive within seconds). A comment the store's own account wrote
    (a public answer in the thread) is flagged as an echo.
    """
    author = value.child("from")
    comment_id = value.text("id")
    sender = author.text("id")
    return InboundMessage(
        channel=ChannelKind.INSTAGRAM,
        provider_message_id=comment_id,
        sender=sender,
        text=value.optional_text("text") or "",
        account=account,
        sender_name=author.optional_text("username"),
        kind="comment",
        reply_to=value.optional_text("parent_id"),
        comment_id=comment_id,
        post_id=value.child("media").optional_text("id"),
        is_echo=sender == account,
    )
