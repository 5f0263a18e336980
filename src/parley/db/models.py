"""Imports every table so metadata (and Alembic) sees the whole schema."""

from parley.commerce.models import Checkout, Fulfillment, Order, Product, Refund
from parley.customers.models import ConsentRecord, Customer, CustomerIdentity, CustomerMerge
from parley.inbox.models import AssistantTurn, Conversation, ConversationEvent
from parley.jobs.models import Job
from parley.journeys.models import Journey, JourneyRun
from parley.messaging.models import DeliveryAttempt, Message, MessageTemplate
from parley.store_events.models import StoreEvent, WebhookDelivery
from parley.workspaces.models import ChannelAccount, Workspace

__all__ = [
    "AssistantTurn",
    "ChannelAccount",
    "Checkout",
    "ConsentRecord",
    "Conversation",
    "ConversationEvent",
    "Customer",
    "CustomerIdentity",
    "CustomerMerge",
    "DeliveryAttempt",
    "Fulfillment",
    "Job",
    "Journey",
    "JourneyRun",
    "Message",
    "MessageTemplate",
    "Order",
    "Product",
    "Refund",
    "StoreEvent",
    "WebhookDelivery",
    "Workspace",
]
