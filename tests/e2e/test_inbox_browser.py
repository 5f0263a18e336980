"""The agents' inbox in a real browser (Debian's chromium under Playwright) against the
real ``parley demo``: sign in, answer a WhatsApp customer, watch messages and new
conversations arrive live, drive it from the keyboard, meet a closed WhatsApp window, and
see customer-written markup stay text; send again a reply an outage stopped, and as an
admin a failed SMS from Settings."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select, update

from e2e.inbox_browser import sign_in
from parley.accounts.models import User
from parley.clock import utc_now
from parley.customers.models import CustomerIdentity, IdentityKind
from parley.demo.seed import DEMO_AGENT_EMAIL
from parley.inbox.models import Conversation
from parley.messaging.models import Direction, Message
from parley.settings import Settings
from support import deliveries

DEMO = Settings()
ADA_PHONE = "+447911123456"
GRACE_PHONE = "+12025550143"
ADMIN_NAME = "Avery Admin"


def customer_writes(demo, channel: str, sender: str, text: str) -> None:
    """The sandbox phone sends a message: the provider's real webhook, signed, to parley."""
    answer = demo.http.post(
        "/sandbox/api/inbound", json={"channel": channel, "from": sender, "text": text}
    )
    assert answer.status_code == 200, answer.text


def outbound(demo, channel: str) -> list[dict]:
    return [m for m in demo.captured(channel=channel) if m.get("direction") != "inbound"]


def open_conversation_with(page, name: str, text: str) -> None:
    """Open ``name``'s conversation from the list and wait until it shows ``text``."""
    page.locator('[data-test="conversation-row"]', has_text=name).first.click()
    page.locator('[data-test="message-body"]', has_text=text).first.wait_for()


def test_an_agent_answers_a_whatsapp_customer_and_the_reply_reaches_the_phone(demo, chromium):
    customer_writes(demo, "whatsapp", ADA_PHONE, "Could I speak to a person about my parcel?")
    page = chromium.new_page()
    try:
        sign_in(page, demo.base_url, DEMO.demo_admin_email, DEMO.demo_admin_password)
        row = page.locator('[data-test="conversation-row"]', has_text="Ada")
        row.first.wait_for(timeout=10_000)
        row.first.click()
        page.locator('[data-test="message-body"]', has_text="speak to a person").first.wait_for()
        page.fill('[data-test="reply-body"]', "Hi Ada, this is Avery: your parcel left today.")
        page.click('[data-test="send-reply"]')
        [reply] = demo.wait_for(
            lambda: [m for m in outbound(demo, "whatsapp") if "this is Avery" in m["body"]],
            timeout=10.0,
            what="the agent's reply on the sandbox phone",
        )
        assert reply["to"].lstrip("+") == ADA_PHONE.lstrip("+")
        assert reply["template"] is None
        # The reply shows in the conversation, without a reload.
        page.locator('[data-test="message-body"]', has_text="this is Avery").first.wait_for()
    finally:
        page.close()


def test_a_new_inbound_message_appears_live_in_another_agents_browser(demo, chromium):
    customer_writes(demo, "sms", GRACE_PHONE, "hello, first message")
    first = chromium.new_context().new_page()
    second = chromium.new_context().new_page()
    try:
        sign_in(first, demo.base_url, DEMO.demo_admin_email, DEMO.demo_admin_password)
        sign_in(second, demo.base_url, "agent@demo.parley.test", DEMO.demo_admin_password)
        open_conversation_with(second, "Grace", "first message")
        second.locator('[data-test="live-status"][data-state="live"]').wait_for()
        first.locator('[data-test="live-status"][data-state="live"]').wait_for()
        loads = []
        second.on("load", lambda _page: loads.append(1))

        customer_writes(demo, "sms", GRACE_PHONE, "are you there? second message")
        # How fast is bench/live_latency.py's figure; this pins that it shows, live.
        second.locator('[data-test="message-body"]', has_text="second message").first.wait_for(
            timeout=5_000
        )
        first.locator('[data-test="conversation-row"]', has_text="Grace").first.wait_for()

        assert loads == []  # it arrived without a reload
    finally:
        first.context.close()
        second.context.close()


def test_a_new_customers_conversation_appears_live_in_the_open_list(demo, chromium):
    customer_writes(demo, "whatsapp", ADA_PHONE, "Could I speak to a person about my parcel?")
    page = chromium.new_page()
    try:
        sign_in(page, demo.base_url, DEMO.demo_admin_email, DEMO.demo_admin_password)
        rows = page.locator('[data-test="conversation-row"]')
        rows.filter(has_text="Ada").first.wait_for(timeout=10_000)
        page.locator('[data-test="live-status"][data-state="live"]').wait_for(timeout=10_000)
        assert rows.filter(has_text="Grace").count() == 0
        # A reload would drop this property and fire "load" again.
        page.evaluate("window.__sameDocument = true")
        loads = []
        page.on("load", lambda _page: loads.append(1))

        customer_writes(demo, "sms", GRACE_PHONE, "hello, is my order on its way?")

        grace = rows.filter(has_text="Grace")
        grace.first.wait_for(timeout=10_000)
        with demo.db.transaction() as session:
            conversations = set(session.scalars(select(Conversation.id)))
        shown = {int(row.get_attribute("data-conversation-id")) for row in rows.all()}
        assert (grace.count(), rows.count(), shown) == (1, 2, conversations)
        assert page.evaluate("window.__sameDocument") is True
        assert loads == []
    finally:
        page.close()


def _opened(base_url: str, conversation_id: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(base_url)}/inbox/{conversation_id}(\?.*)?$")


def test_keyboard_shortcuts_search_move_write_a_note_and_assign(demo, chromium):
    customer_writes(demo, "whatsapp", ADA_PHONE, "Could I speak to a person about my parcel?")
    customer_writes(demo, "sms", GRACE_PHONE, "hello, first message")
    # The assistant's answers reorder the list; j and k are checked against a settled one.
    demo.wait_until_idle()
    page = chromium.new_page()
    try:
        sign_in(page, demo.base_url, DEMO_AGENT_EMAIL, DEMO.demo_admin_password)
        rows = page.locator('[data-test="conversation-row"]')
        rows.nth(1).wait_for(timeout=10_000)
        first, second = (row.get_attribute("data-conversation-id") for row in rows.all())

        page.keyboard.press("/")
        search = page.locator('[data-test="search"]')
        assert page.evaluate("document.activeElement.dataset.test") == "search"
        assert search.input_value() == ""  # the slash opened the search, it was not typed
        search.blur()

        page.keyboard.press("j")
        page.wait_for_url(_opened(demo.base_url, first), timeout=10_000)
        page.keyboard.press("j")
        page.wait_for_url(_opened(demo.base_url, second), timeout=10_000)
        page.keyboard.press("k")
        page.wait_for_url(_opened(demo.base_url, first), timeout=10_000)

        composer = page.locator('[data-test="composer"]')
        page.keyboard.press("n")
        assert composer.get_attribute("data-mode") == "note"
        assert page.locator('[data-test="mode-note"]').get_attribute("aria-selected") == "true"
        assert page.evaluate("document.activeElement.dataset.test") == "reply-body"
        page.keyboard.type("Checked the carrier: parcel is at the depot.")
        page.keyboard.press("Control+Enter")
        page.locator('[data-test="note-body"]', has_text="parcel is at the depot").wait_for(
            timeout=10_000
        )
        assert page.locator('[data-test="reply-body"]').input_value() == ""
        assert not [m for m in demo.captured() if "at the depot" in (m.get("body") or "")]

        page.locator('[data-test="reply-body"]').blur()
        page.keyboard.press("a")
        page.locator('[data-test="assign-me"]').wait_for(state="detached", timeout=10_000)
        selected = page.locator('[data-test="assignee-select"] option:checked')
        assert selected.inner_text() == "Sam Agent (me)"
        with demo.db.transaction() as session:
            agent_id = session.scalar(select(User.id).where(User.email == DEMO_AGENT_EMAIL))
            assignees = dict(
                session.execute(select(Conversation.id, Conversation.assignee_id)).all()
            )
        assert assignees == {int(first): agent_id, int(second): None}
    finally:
        page.close()


def test_a_closed_whatsapp_window_switches_the_composer_to_templates(demo, chromium):
    customer_writes(demo, "whatsapp", ADA_PHONE, "thanks, talk tomorrow")
    page = chromium.new_page()
    try:
        sign_in(page, demo.base_url, DEMO.demo_admin_email, DEMO.demo_admin_password)
        open_conversation_with(page, "Ada", "talk tomorrow")
        page.locator('[data-test="reply-body"]').wait_for()
        assert page.locator('[data-test="template-picker"]').count() == 0

        # A day and more passes without a word from Ada on WhatsApp.
        a_day_ago = utc_now() - timedelta(hours=25)
        with demo.db.transaction() as session:
            session.execute(
                update(CustomerIdentity)
                .where(CustomerIdentity.kind == IdentityKind.WHATSAPP)
                .values(last_inbound_at=a_day_ago)
            )
            session.execute(
                update(Message)
                .where(Message.channel == "whatsapp", Message.direction == Direction.INBOUND)
                .values(created_at=a_day_ago)
            )
        page.reload()
        picker = page.locator('[data-test="template-picker"]')
        picker.wait_for()
        assert "24-hour" in page.locator('[data-test="composer"]').inner_text()
        assert page.locator('textarea[data-test="reply-body"]:visible').count() == 0
    finally:
        page.close()


XSS = '<img src=x onerror="window.__pwned=1">"><script>window.__pwned=2</script>'


def test_markup_in_a_customer_message_renders_as_text(demo, chromium):
    customer_writes(demo, "whatsapp", ADA_PHONE, XSS)
    page = chromium.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        sign_in(page, demo.base_url, DEMO.demo_admin_email, DEMO.demo_admin_password)
        page.locator('[data-test="conversation-row"]', has_text="Ada").first.click()
        body = page.locator('[data-test="message-body"]', has_text="window.__pwned").first
        body.wait_for()
        assert body.inner_text().strip() == XSS
        assert body.locator("img, script").count() == 0
        assert page.evaluate("window.__pwned") is None
        assert dialogs == []
    finally:
        page.close()


def test_an_admin_sends_a_failed_sms_again_from_settings(start_demo, chromium):
    demo = start_demo(PARLEY_JOB_BACKOFF_BASE_SECONDS="0.01", PARLEY_JOB_MAX_ATTEMPTS="3")
    demo.inject_fault(channel="sms", status=503, count=-1)
    placed, dispatched, *_ = deliveries("Grace")
    demo.post_webhook(placed)
    demo.post_webhook(dispatched)
    demo.wait_for(
        lambda: [m for m in demo.messages() if m["status"] == "failed"],
        what="the dispatch SMS to give up",
    )
    assert demo.http.delete("/sandbox/api/faults").status_code == 204
    page = chromium.new_page()
    try:
        sign_in(page, demo.base_url, DEMO.demo_admin_email, DEMO.demo_admin_password)
        page.goto(f"{demo.base_url}/admin/failed")
        row = page.locator('[data-test="failed-send"]')
        assert row.count() == 1
        assert "Dispatch" in row.inner_text()
        assert GRACE_PHONE in row.inner_text()
        row.locator('[data-test="retry"]').click()
        page.locator('[data-test="notice"]', has_text="Sent back to the queue").wait_for()
        [sms] = demo.wait_for(
            lambda: outbound(demo, "sms"), timeout=10.0, what="the SMS sent again"
        )
        assert sms["to"] == GRACE_PHONE
        page.reload()
        page.locator('[data-test="no-failed-sends"]').wait_for()
    finally:
        page.close()


def test_an_admin_sends_again_an_sms_held_after_the_server_died_mid_send(start_demo, chromium):
    """RELIABILITY S2 on a live server: killed while the provider had the SMS, the next
    server holds it rather than re-send it; the admin, having checked the provider's
    log, sends it again from Settings."""
    demo = start_demo(PARLEY_JOB_LEASE_SECONDS="2")
    placed, dispatched, *_ = deliveries("Grace")
    demo.post_webhook(placed)
    demo.wait_for(lambda: outbound(demo, "email"), what="the confirmation")
    demo.wait_until_idle()
    demo.inject_fault(channel="sms", status=503, delay_seconds=30)  # the SMS hangs in flight
    demo.post_webhook(dispatched)
    demo.wait_for(
        lambda: [m for m in demo.messages() if m["status"] == "sending"],
        what="the dispatch SMS in flight",
    )
    demo.process.kill()
    demo.process.wait(5)

    revived = start_demo(PARLEY_JOB_LEASE_SECONDS="2")
    [held] = revived.wait_for(
        lambda: [m for m in revived.messages() if m["status"] == "held"],
        what="the next server to hold the SMS",
    )
    assert outbound(revived, "sms") == []
    page = chromium.new_page()
    try:
        sign_in(page, revived.base_url, DEMO.demo_admin_email, DEMO.demo_admin_password)
        page.goto(f"{revived.base_url}/admin/failed")
        row = page.locator('[data-test="held-message"]')
        assert row.count() == 1
        assert "Dispatch" in row.inner_text()
        assert GRACE_PHONE in row.inner_text()
        row.locator('[data-test="held-send-again"]').click()
        page.locator('[data-test="notice"]', has_text="Sent back to the queue").wait_for()
        [sms] = revived.wait_for(
            lambda: outbound(revived, "sms"), timeout=10.0, what="the SMS sent again"
        )
        assert sms["to"] == GRACE_PHONE
        page.reload()
        assert page.locator('[data-test="held-message"]').count() == 0
    finally:
        page.close()
    statuses = sorted(
        (m["status"], m["reason"] or "") for m in revived.messages() if m["type"] == "dispatch"
    )
    assert statuses == [
        ("failed", f"held for review, then found not delivered by {ADMIN_NAME}: sent again"),
        ("sent", ""),
    ]
    assert held["reason"].startswith("held for review")


def test_an_agent_sends_a_reply_again_after_the_outage_that_stopped_it(start_demo, chromium):
    demo = start_demo(PARLEY_JOB_BACKOFF_BASE_SECONDS="0.01", PARLEY_JOB_MAX_ATTEMPTS="3")
    customer_writes(demo, "whatsapp", ADA_PHONE, "Could I speak to a person about my parcel?")
    page = chromium.new_page()
    try:
        sign_in(page, demo.base_url, DEMO.demo_admin_email, DEMO.demo_admin_password)
        open_conversation_with(page, "Ada", "speak to a person")
        demo.inject_fault(channel="whatsapp", status=503, count=-1)
        page.fill('[data-test="reply-body"]', "Hi Ada, Avery here: it left today.")
        page.click('[data-test="send-reply"]')
        demo.wait_for(
            lambda: [m for m in demo.messages() if m["status"] == "failed"],
            what="the reply to give up",
        )
        assert demo.http.delete("/sandbox/api/faults").status_code == 204
        page.reload()
        page.locator('[data-test="send-again"]').click()
        [reply] = demo.wait_for(
            lambda: [m for m in outbound(demo, "whatsapp") if "Avery here" in m["body"]],
            timeout=10.0,
            what="the reply sent again",
        )
        assert reply["to"].lstrip("+") == ADA_PHONE.lstrip("+")
        page.locator('[data-test="send-again"]').wait_for(state="detached")
        [agent_reply] = [m for m in demo.messages() if "Avery here" in (m.get("body") or "")]
        assert (agent_reply["attempts"], agent_reply["status"] != "failed") == (4, True)
    finally:
        page.close()
