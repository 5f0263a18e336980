"""What a journey is, as data a store owner can read and edit, and the built-in journeys.

A definition names its trigger event, what makes a run unique (``run_key``: one run per
order, per fulfilment...), the events that end a run (re-checked right before every
send), its lane, and its steps: ``wait``, ``condition`` and ``send``. A send names a
message type, never a channel: the messaging policy picks the channel.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from parley.events import EventType
from parley.messaging.types import DEFAULT_EXPIRY_HOURS, MessageType, Purpose


class RunKey(StrEnum):
    """What one run is about; a retried webhook for the same thing never starts another."""

    ORDER = "order"
    FULFILLMENT = "fulfillment"
    CHECKOUT = "checkout"
    CUSTOMER = "customer"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Strict):
    event: EventType


class ExitRule(_Strict):
    """End the run when this event happens to the same order (or customer).

    ``since_run_start`` counts only events that happened after the one that started the
    run, whenever parley heard of either (a cart run should not end because of an order
    placed last month, and does end for one placed after the checkout whose delivery came
    first); without it, any such event counts (a cancellation ends every later message
    about that order).
    """

    event: EventType
    match: Literal["order", "customer"] = "order"
    since_run_start: bool = False


NAME_LENGTH = 200
"""The longest journey name the journeys table keeps."""
MAX_WAIT = timedelta(days=366)
"""The longest wait an edit may give a journey (a year, leap day included). A longer one
can reach past the calendar a due time can hold and crash its run's step every time it
is tried; none is meant (:func:`check_edit`)."""


class WaitStep(_Strict):
    type: Literal["wait"]
    days: float = 0
    hours: float = 0
    minutes: float = 0
    seconds: float = 0

    @property
    def duration(self) -> timedelta:
        return timedelta(
            days=self.days, hours=self.hours, minutes=self.minutes, seconds=self.seconds
        )

    @model_validator(mode="after")
    def _positive(self) -> WaitStep:
        try:
            duration = self.duration
        except OverflowError:  # past any duration Python counts: never a stored wait
            raise ValueError(f"a wait lasts at most {MAX_WAIT.days} days") from None
        if duration <= timedelta(0):
            raise ValueError("a wait must last longer than zero")
        return self


class Condition(_Strict):
    """A test on the run's facts, e.g. ``{"path": "order.financial_status", "op": "eq",
    "value": "paid"}``."""

    path: str = Field(pattern=r"^(order|fulfillment|customer)\.[a-z_]+$")
    op: Literal["eq", "ne", "in", "not_in", "exists", "missing"]
    value: Any = None


class ConditionStep(_Strict):
    """Go on when the condition holds; otherwise end the run, or skip the next step.
    ``reason`` is what the run records when the condition ends it (the store owner's own
    words; by default the condition itself)."""

    type: Literal["condition"]
    condition: Condition = Field(alias="if")
    otherwise: Literal["exit", "skip_next"] = "exit"
    reason: str | None = Field(default=None, min_length=1, max_length=200)


class SendStep(_Strict):
    """Send a message of this type; past ``expires_after_hours`` after it was due (the
    message type's default when unset) it is skipped, not sent late."""

    type: Literal["send"]
    message: MessageType
    expires_after_hours: float | None = Field(default=None, gt=0, le=24 * 90)

    @property
    def expires_after(self) -> timedelta | None:
        hours = self.expires_after_hours or DEFAULT_EXPIRY_HOURS.get(self.message)
        return timedelta(hours=hours) if hours else None

    @model_serializer(mode="wrap")
    def _unset_expiry_left_out(self, handler: SerializerFunctionWrapHandler) -> Any:
        """A step that keeps its type's default is stored as it always was."""
        data = handler(self)
        if self.expires_after_hours is None and isinstance(data, dict):
            data.pop("expires_after_hours", None)
        return data


Step = Annotated[WaitStep | ConditionStep | SendStep, Field(discriminator="type")]


class JourneyDefinition(_Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")
    name: str
    description: str = ""
    lane: Purpose = Purpose.TRANSACTIONAL
    trigger: Trigger
    run_key: RunKey
    exit: tuple[ExitRule, ...] = ()
    steps: tuple[Step, ...] = Field(min_length=1)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> JourneyDefinition:
        return cls.model_validate(data)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


ORDER_CANCELLED_EXIT = {"event": "order.cancelled"}


PAST_OUT_FOR_DELIVERY = ["attempted_delivery", "ready_for_pickup", "failed", "delivered"]
"""Where a parcel can be after its courier set out: tried at the door, left at a pickup
point (a parcel sent to one may skip "out for delivery" altogether), failed, delivered."""


def _not_yet(later: list[str], words: str) -> dict[str, Any]:
    """A parcel update goes out only while it is news: when the worker gets to it after the
    parcel has moved on (a backlog after an outage, or updates that arrived together),
    the later update's message tells the customer, and this one would only confuse
    ("out for delivery today" after the courier already tried and failed)."""
    return {
        "type": "condition",
        "if": {"path": "fulfillment.shipment_status", "op": "not_in", "value": later},
        "reason": f"superseded: the parcel is already {words}",
    }


BUILT_IN: tuple[dict[str, Any], ...] = (
    {
        "key": "order_confirmation",
        "name": "Order confirmation",
        "description": "Thank the customer and list what they bought, by email.",
        "trigger": {"event": "order.created"},
        "run_key": "order",
        "exit": [ORDER_CANCELLED_EXIT],
        "steps": [{"type": "send", "message": "order_confirmation"}],
    },
    {
        "key": "dispatch",
        "name": "Dispatch",
        "description": "Tell the customer their parcel left, with carrier and tracking link.",
        "trigger": {"event": "fulfillment.created"},
        "run_key": "fulfillment",
        "exit": [ORDER_CANCELLED_EXIT],
        "steps": [
            _not_yet(["out_for_delivery", *PAST_OUT_FOR_DELIVERY], "out for delivery or further"),
            {"type": "send", "message": "dispatch"},
        ],
    },
    {
        "key": "out_for_delivery",
        "name": "Out for delivery",
        "description": "The parcel is with the courier today.",
        "trigger": {"event": "fulfillment.out_for_delivery"},
        "run_key": "fulfillment",
        "exit": [ORDER_CANCELLED_EXIT],
        "steps": [
            _not_yet(
                PAST_OUT_FOR_DELIVERY,
                "past out for delivery (delivered, tried at the door, at a pickup point or failed)",
            ),
            {"type": "send", "message": "out_for_delivery"},
        ],
    },
    {
        "key": "delivered",
        "name": "Delivered",
        "description": "Confirm the parcel arrived.",
        "trigger": {"event": "fulfillment.delivered"},
        "run_key": "fulfillment",
        "exit": [ORDER_CANCELLED_EXIT],
        "steps": [{"type": "send", "message": "delivered"}],
    },
    {
        "key": "satisfaction_check",
        "name": "Satisfaction check",
        "description": "A day after delivery (24-48 h), ask how it went.",
        "trigger": {"event": "fulfillment.delivered"},
        "run_key": "order",
        "exit": [ORDER_CANCELLED_EXIT, {"event": "refund.created"}],
        "steps": [
            {"type": "wait", "hours": 24},
            {"type": "send", "message": "satisfaction_check"},
        ],
    },
)

BUILT_IN_DEFINITIONS: tuple[JourneyDefinition, ...] = tuple(
    JourneyDefinition.parse(data) for data in BUILT_IN
)

# How far a store may move a built-in journey's waits (hours, inclusive): the playbook asks
# for the satisfaction check between one and two days after delivery.
WAIT_BOUNDS_HOURS: dict[str, tuple[float, float]] = {"satisfaction_check": (24, 48)}


def check_edit(definition: JourneyDefinition) -> None:
    """Refuse an edit that cannot be kept whole (a name past :data:`NAME_LENGTH`) or
    would fail its runs: a wait past :data:`MAX_WAIT` or outside the bounds its built-in
    journey allows, an ``in`` / ``not_in`` condition whose value is not a list (a number
    crashes every run reaching it, a string tests for a substring). Checked on an edit,
    not on every parse: a definition stored before a rule existed must still be read."""
    if len(definition.name) > NAME_LENGTH:
        raise ValueError(f"name: a journey's name is at most {NAME_LENGTH} characters")
    for index, step in enumerate(definition.steps):
        if isinstance(step, WaitStep) and step.duration > MAX_WAIT:
            raise ValueError(f"steps.{index}: a wait lasts at most {MAX_WAIT.days} days")
        if isinstance(step, ConditionStep):
            condition = step.condition
            if condition.op in ("in", "not_in") and not isinstance(condition.value, list):
                raise ValueError(
                    f"steps.{index}: {condition.op!r} tests against a list of values, "
                    f"not {condition.value!r}"
                )
    bounds = WAIT_BOUNDS_HOURS.get(definition.key)
    if bounds is None:
        return
    low, high = bounds
    for index, step in enumerate(definition.steps):
        if isinstance(step, WaitStep):
            hours = step.duration.total_seconds() / 3600
            if not low <= hours <= high:
                raise ValueError(
                    f"steps.{index}: a {definition.name.lower()} waits between {low:g} and "
                    f"{high:g} hours after delivery, not {hours:g}"
                )
