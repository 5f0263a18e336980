"""Imports every table so metadata (and Alembic) sees the whole schema."""

from parley.accounts.models import (
    AuditEntry,
    Invite,
    LoginFailure,
    LoginSession,
    Membership,
    User,
)
from parley.alerts.models import Alert
from parley.commerce.models import Checkout, Fulfillment, Order, Product, Refund
from parley.customers.models import ConsentRecord, Customer, CustomerIdentity, CustomerMerge
from parley.inbox.models import (
    AssistantTurn,
    CannedReply,
    Conversation,
    ConversationEvent,
    ConversationRead,
)
from parley.jobs.models import Job
from parley.journeys.models import Journey, JourneyRun
from parley.live.models import LiveEvent
from parley.messaging.models import DeliveryAttempt, Message, MessageTemplate, SenderPace
from parley.privacy.models import PrivacyRequest
from parley.store_events.models import StoreEvent, WebhookDelivery
from parley.workspaces.models import ChannelAccount, Workspace

__all__ = [
    "Alert",
    "AssistantTurn",
    "AuditEntry",
    "CannedReply",
    "ChannelAccount",
    "Checkout",
    "ConsentRecord",
    "Conversation",
    "ConversationEvent",
    "ConversationRead",
    "Customer",
    "CustomerIdentity",
    "CustomerMerge",
    "DeliveryAttempt",
    "Fulfillment",
    "Invite",
    "Job",
    "Journey",
    "JourneyRun",
    "LiveEvent",
    "LoginFailure",
    "LoginSession",
    "Membership",
    "Message",
    "MessageTemplate",
    "Order",
    "PrivacyRequest",
    "Product",
    "Refund",
    "SenderPace",
    "StoreEvent",
    "User",
    "WebhookDelivery",
    "Workspace",
]
