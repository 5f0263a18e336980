"""The store: bounded capture, received counts, fault queues, thread safety."""

from __future__ import annotations

import threading

import pytest

from parley.sandbox.store import CapturedMessage, Fault, SandboxStore


def _message(channel: str = "sms", to: str = "+447911123456", body: str = "hi") -> CapturedMessage:
    return CapturedMessage(channel=channel, to=to, sender="+15005550006", body=body)


def test_keeps_only_the_newest_but_counts_everything() -> None:
    store = SandboxStore(max_messages=3)

    for number in range(5):
        store.add(_message(body=str(number)))

    assert [message.body for message in store.list()] == ["2", "3", "4"]
    assert store.received_count("sms") == 5
    assert store.received_count("email") == 0


def test_customers_messages_are_kept_but_not_counted_as_sends() -> None:
    store = SandboxStore()
    inbound = CapturedMessage(
        channel="whatsapp",
        to="106540352242922",
        sender="447911123456",
        body="hi",
        direction="inbound",
    )

    store.add(inbound)
    store.add(_message(channel="whatsapp", to="447911123456"))

    assert [message.direction for message in store.list()] == ["inbound", "outbound"]
    assert store.received_count("whatsapp") == 1
    assert inbound.to_public()["direction"] == "inbound"


def test_instagram_is_a_channel_with_its_own_faults() -> None:
    store = SandboxStore()
    store.inject_fault("instagram", 429)

    assert store.take_fault("whatsapp") is None
    assert store.take_fault("instagram") == Fault("instagram", 429, 0, 0.0)


def test_captured_at_is_aware_utc() -> None:
    message = _message()

    assert message.captured_at.utcoffset() is not None
    assert message.captured_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_faults_apply_in_order_and_run_out() -> None:
    store = SandboxStore()
    store.inject_fault("sms", 503, count=2, delay_seconds=0.5)
    store.inject_fault("sms", 429)

    taken = [store.take_fault("sms") for _ in range(4)]

    assert taken == [
        Fault("sms", 503, 1, 0.5),
        Fault("sms", 503, 0, 0.5),
        Fault("sms", 429, 0, 0.0),
        None,
    ]
    assert store.take_fault("email") is None


def test_fault_until_cleared_never_runs_out() -> None:
    store = SandboxStore()
    store.inject_fault("email", 451, count=-1)

    statuses = [store.take_fault("email") for _ in range(50)]
    store.clear_faults()

    assert {fault.status for fault in statuses if fault is not None} == {451}
    assert None not in statuses
    assert store.take_fault("email") is None


def test_clear_keeps_faults() -> None:
    store = SandboxStore()
    store.inject_fault("whatsapp", 503)
    store.add(_message())

    store.clear()

    assert store.list() == []
    assert store.faults() == [Fault("whatsapp", 503, 1, 0.0)]


@pytest.mark.parametrize(
    ("channel", "status", "count", "delay_seconds"),
    [
        pytest.param("fax", 503, 1, 0.0, id="unknown_channel_case"),
        pytest.param("sms", 399, 1, 0.0, id="status_below_400_case"),
        pytest.param("sms", 600, 1, 0.0, id="status_above_599_case"),
        pytest.param("sms", True, 1, 0.0, id="bool_status_case"),
        pytest.param("sms", 503, 0, 0.0, id="zero_count_case"),
        pytest.param("sms", 503, -2, 0.0, id="negative_count_case"),
        pytest.param("sms", 503, 1, -0.1, id="negative_delay_case"),
    ],
)
def test_inject_fault_refuses_nonsense(
    channel: str, status: int, count: int, delay_seconds: float
) -> None:
    store = SandboxStore()

    with pytest.raises(ValueError):
        store.inject_fault(channel, status, count=count, delay_seconds=delay_seconds)

    assert store.faults() == []


def test_concurrent_adds_are_all_counted() -> None:
    store = SandboxStore(max_messages=100)

    def add_many() -> None:
        for _ in range(1000):
            store.add(_message())

    threads = [threading.Thread(target=add_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert store.received_count("sms") == 8000
    assert len(store.list()) == 100


def test_list_filters() -> None:
    store = SandboxStore()
    store.add(_message("sms", "+1"))
    store.add(_message("whatsapp", "1"))
    store.add(_message("sms", "+2"))

    assert [message.to for message in store.list(channel="sms")] == ["+1", "+2"]
    assert [message.to for message in store.list(to="1")] == ["1"]
    assert store.list(channel="email") == []
