"""The web-chat adapter rings the visitor's sockets in this process and never fails for
want of one; the hub wakes sockets from any thread."""

from __future__ import annotations

import threading

import pytest

from parley.channels.base import ChannelKind, OutboundMessage, PermanentChannelError
from parley.channels.registry import ADAPTERS, build_adapters
from parley.channels.webchat.adapter import PROCESS_HUB, ChatHub, WebChat
from parley.settings import Settings

pytestmark = pytest.mark.anyio


def reply(to: str) -> OutboundMessage:
    return OutboundMessage(idempotency_key="parley-1-42", to=to, text="Your order shipped.")


async def rung(doorbell, within: float = 0.5) -> bool:
    return await doorbell.wait(within)


async def test_send_rings_every_socket_of_the_visitor_and_no_other():
    hub = ChatHub()
    first, second, other = hub.subscribe("v_a"), hub.subscribe("v_a"), hub.subscribe("v_b")

    result = await WebChat(hub=hub).send(reply("v_a"))

    assert result.provider_message_id == "parley-1-42"
    assert await rung(first)
    assert await rung(second)
    assert not await rung(other, within=0.05)


async def test_send_succeeds_with_no_socket_open():
    hub = ChatHub()

    result = await WebChat(hub=hub).send(reply("v_nobody"))

    assert (result.provider_message_id, result.status) == ("parley-1-42", "sent")
    assert hub.listeners("v_nobody") == 0


async def test_send_without_a_visitor_is_permanent():
    hub = ChatHub()
    doorbell = hub.subscribe("v_a")

    with pytest.raises(PermanentChannelError, match="no web-chat visitor"):
        await WebChat(hub=hub).send(reply(""))

    assert not await rung(doorbell, within=0.05)


async def test_a_ring_from_another_thread_wakes_the_socket():
    hub = ChatHub()
    doorbell = hub.subscribe("v_a")

    thread = threading.Thread(target=hub.ring, args=("v_a",))
    thread.start()
    thread.join()

    assert await rung(doorbell)


async def test_an_unsubscribed_socket_is_not_rung():
    hub = ChatHub()
    doorbell = hub.subscribe("v_a")

    hub.unsubscribe(doorbell)

    assert hub.ring("v_a") == 0
    assert hub.listeners("v_a") == 0


async def test_a_doorbell_consumes_the_ring_it_waited_for():
    hub = ChatHub()
    doorbell = hub.subscribe("v_a")
    hub.ring("v_a")
    hub.ring("v_a")

    assert await doorbell.wait(1.0) is True
    assert await doorbell.wait(0.05) is False


def test_registry_builds_webchat_on_the_process_hub():
    adapters = build_adapters(Settings(_env_file=None))  # type: ignore[call-arg]

    webchat = adapters[ChannelKind.WEBCHAT]
    assert ADAPTERS[ChannelKind.WEBCHAT] is WebChat
    assert isinstance(webchat, WebChat)
    assert webchat.hub is PROCESS_HUB
    assert (WebChat.provider, WebChat.capabilities.max_text_len) == ("webchat", 4000)
