"""The templates a store starts with, one per (message type, channel); all editable.

They use only the context contract in ``templates.py`` and render sensibly when a value
is missing (no first name, no tracking link, no review page). SMS texts stay in the GSM
alphabet (no emoji or typographic quotes, which would halve the segment size) and name
the store, since an SMS sender number says nothing about who wrote. WhatsApp entries
name the template Meta must approve for use outside the 24-hour window; its body
parameters are listed in order and never render empty (WhatsApp rejects empty ones).

Email HTML is inline-styled, without tables, images or web fonts, so it reads the same
with images blocked and in dark-mode clients that recolour only the background.
"""

from __future__ import annotations

from parley.channels.base import ChannelKind
from parley.messaging.templates import TemplateContent
from parley.messaging.types import MessageType

EMAIL, SMS, WHATSAPP = ChannelKind.EMAIL, ChannelKind.SMS, ChannelKind.WHATSAPP

_FIRST_NAME = '{{ customer.first_name or "there" }}'
# The link a WhatsApp template points to. A store selling through the events API may have
# no site, no order page and no tracking link, and Meta refuses an empty parameter: the
# tracking number, then the store's name, say where to look instead.
_TRACKING_LINK = (
    "{{ fulfillment.tracking_url or order.status_url or store.url"
    " or fulfillment.tracking_number or store.name }}"
)
_CARRIER = (
    "{% if fulfillment.tracking_company %} with {{ fulfillment.tracking_company }}{% endif %}"
)
# ", Maya" when the first name is known, nothing otherwise: for headings and subjects.
_COMMA_NAME = '{{ ", " ~ customer.first_name if customer.first_name }}'
_LINE_TOTAL_EXPR = "(item.price|float * ((item.quantity or 1)|int))|money(order.currency)"
_LINE_TOTAL = "{{ " + _LINE_TOTAL_EXPR + " }}"
# Each line of the confirmation email costs about 300 characters of HTML, and a field is
# cut at 64 KB (templates.py): a wholesale order of a few hundred lines would fail to
# render and its confirmation never go. The first hundred are listed, the rest counted
# by a loop: a filter (``|length``) is refused a list larger than the cap itself.
_SHOWN_LINES = 100
_LINES = "order.items[:" + str(_SHOWN_LINES) + "]"


def _more_lines(line: str) -> str:
    """``line`` (Jinja source naming ``more``) once, when the order has lines not shown."""
    return (
        "{% for _ in order.items[" + str(_SHOWN_LINES) + ":] %}\n"
        "{% if loop.last %}\n"
        "{% set more = loop.index %}\n" + line + "{% endif %}\n"
        "{% endfor %}\n"
    )


_ACCENT = "#1f5f4a"
_MUTED = "#6b6b6b"
_RULE = "#ebe7e0"
_FONT = "-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"


def _button(label: str, url: str) -> str:
    """A call-to-action link styled as a button, shown only when ``url`` renders."""
    return (
        "{% if " + url + " %}\n"
        '<p style="margin:28px 0 0;">'
        '<a href="{{ ' + url + ' }}" style="display:inline-block;background-color:' + _ACCENT
        + ";color:#ffffff;text-decoration:none;font-weight:600;padding:12px 24px;"
        'border-radius:8px;">' + label + "</a></p>\n"
        "{% endif %}\n"
    )  # fmt: skip


def _email_html(*, title: str, preview: str, heading: str, body: str) -> str:
    """Wrap ``body`` (Jinja HTML source) in the shared layout: store name, card, footer."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>" + title + "</title>\n</head>\n"
        '<body style="margin:0;padding:0;background-color:#f5f3ef;">\n'
        # Inbox preview text, hidden in the message itself.
        '<div style="display:none;max-height:0;overflow:hidden;opacity:0;">'
        + preview + "</div>\n"
        '<div style="max-width:560px;margin:0 auto;padding:32px 16px;font-family:' + _FONT
        + ';font-size:16px;line-height:1.55;color:#222222;">\n'
        '<div style="background-color:#ffffff;border-radius:12px;padding:32px 28px;">\n'
        '<p style="margin:0 0 20px;font-size:13px;font-weight:600;letter-spacing:0.08em;'
        "text-transform:uppercase;color:" + _MUTED + ';">{{ store.name }}</p>\n'
        '<h1 style="margin:0 0 16px;font-size:24px;line-height:1.3;color:#1a1a1a;">'
        + heading + "</h1>\n"
        + body
        + '<p style="margin:28px 0 0;">Questions? Just reply to this email'
        "{% if store.support_email %} or write to "
        '<a href="mailto:{{ store.support_email }}" style="color:' + _ACCENT + ';">'
        "{{ store.support_email }}</a>{% endif %}.</p>\n"
        "</div>\n"
        '<p style="margin:20px 0 0;text-align:center;font-size:13px;color:#8a8a8a;">'
        "{{ store.name }}{% if store.url %} &middot; "
        '<a href="{{ store.url }}" style="color:#8a8a8a;">{{ store.url }}</a>{% endif %}</p>\n'
        "</div>\n</body>\n</html>\n"
    )  # fmt: skip


def _paragraph(source: str) -> str:
    return '<p style="margin:0 0 16px;">' + source + "</p>\n"


# With trim_blocks a block tag swallows the newline after it, so block tags sit on lines
# of their own. Text bodies are tidied after rendering (runs of blank lines collapse to
# one), so the pieces below separate themselves generously.
_EMAIL_SIGNATURE = (
    "\n\nQuestions? Just reply to this email"
    "{% if store.support_email %} or write to {{ store.support_email }}{% endif %}.\n\n"
    "{{ store.name }}\n{{ store.url }}"
)

_TRACKING_TEXT = (
    "{% if fulfillment.tracking_url %}\n"
    "Track your parcel: {{ fulfillment.tracking_url }}\n"
    "{% elif fulfillment.tracking_number %}\n"
    "Tracking number: {{ fulfillment.tracking_number }}\n"
    "{% endif %}\n"
)

_TRACKING_HTML = (
    "{% if fulfillment.tracking_number %}\n"
    + _paragraph(
        '<span style="color:' + _MUTED + ';">Tracking number:</span> '
        "{{ fulfillment.tracking_number }}"
    )
    + "{% endif %}\n"
    + _button("Track your parcel", "fulfillment.tracking_url")
)

# Order confirmation ----------------------------------------------------------------------

_CONFIRMATION_EMAIL = TemplateContent(
    subject="Your {{ store.name }} order {{ order.number }} is confirmed",
    text=(
        "Hi " + _FIRST_NAME + ",\n\n"
        "Thank you for your order! We've received order {{ order.number }} and we're getting "
        "it ready. We'll let you know as soon as it's on its way.\n\n"
        "{% for item in " + _LINES + " %}\n"
        '- {{ item.title }}{{ " (" ~ item.variant_title ~ ")" if item.variant_title }}'
        ' x {{ item.quantity or 1 }}{{ ": " ~ ' + _LINE_TOTAL_EXPR + " if item.price }}\n"
        "{% endfor %}\n"
        + _more_lines("- and {{ more }} more items\n")
        + "{% if order.total %}\n\nTotal: {{ order.total|money(order.currency) }}\n{% endif %}\n"
        "{% if order.status_url %}\n\nView your order: {{ order.status_url }}\n{% endif %}\n"
        + _EMAIL_SIGNATURE
    ),
    html=_email_html(
        title="Order {{ order.number }} confirmed",
        preview="We've received your order and we're getting it ready.",
        heading="Thank you for your order" + _COMMA_NAME + "!",
        body=(
            _paragraph(
                "We've received order <strong>{{ order.number }}</strong> and we're getting "
                "it ready. We'll let you know as soon as it's on its way."
            )
            + '<div style="margin:24px 0 0;border-top:1px solid ' + _RULE + ';">\n'
            "{% for item in " + _LINES + " %}\n"
            '<div style="padding:14px 0;border-bottom:1px solid ' + _RULE
            + ';overflow:hidden;">\n'
            "{% if item.price %}\n"
            '<div style="float:right;margin-left:16px;font-weight:600;">'
            + _LINE_TOTAL + "</div>\n"
            "{% endif %}\n"
            '<div style="font-weight:600;">{{ item.title }}</div>\n'
            '<div style="font-size:14px;color:' + _MUTED + ';">'
            "{% if item.variant_title %}{{ item.variant_title }} &middot; {% endif %}"
            "Qty {{ item.quantity or 1 }}</div>\n"
            "</div>\n"
            "{% endfor %}\n"
            + _more_lines(
                '<div style="padding:14px 0;border-bottom:1px solid ' + _RULE + ";color:"
                + _MUTED + ';">and {{ more }} more items</div>\n'
            )
            + "</div>\n"
            "{% if order.total %}\n"
            '<p style="margin:16px 0 0;text-align:right;font-size:18px;font-weight:700;">'
            "Total {{ order.total|money(order.currency) }}</p>\n"
            "{% endif %}\n"
            + _button("View your order", "order.status_url")
        ),
    ),
)  # fmt: skip

# Dispatch ---------------------------------------------------------------------------------

_DISPATCH_WHATSAPP = TemplateContent(
    text=(
        "Hi " + _FIRST_NAME + "! Good news: your {{ store.name }} order *{{ order.number }}* "
        "is on its way" + _CARRIER + ". \U0001f4e6\n\n"
        "{% if fulfillment.tracking_url %}\n"
        "Track it here: {{ fulfillment.tracking_url }}\n"
        "{% elif fulfillment.tracking_number %}\n"
        "Tracking number: {{ fulfillment.tracking_number }}\n"
        "{% endif %}"
    ),
    whatsapp_template="order_dispatched",
    whatsapp_parameters=(
        _FIRST_NAME,
        "{{ order.number }}",
        '{{ fulfillment.tracking_company or "our delivery partner" }}',
        _TRACKING_LINK,
    ),
)  # fmt: skip

_DISPATCH_SMS = TemplateContent(
    text=(
        "{{ store.name }}: Hi " + _FIRST_NAME + ", your order {{ order.number }} is on its way"
        + _CARRIER + "!"
        "{% if fulfillment.tracking_url %} Track it: {{ fulfillment.tracking_url }}"
        "{% elif fulfillment.tracking_number %} Tracking number: {{ fulfillment.tracking_number }}"
        "{% endif %}"
    ),
)  # fmt: skip

_DISPATCH_EMAIL = TemplateContent(
    subject="Your order {{ order.number }} is on its way",
    text=(
        "Hi " + _FIRST_NAME + ",\n\n"
        "Good news: your order {{ order.number }} has left us and is on its way" + _CARRIER
        + ".\n\n" + _TRACKING_TEXT + _EMAIL_SIGNATURE
    ),
    html=_email_html(
        title="Order {{ order.number }} is on its way",
        preview="Your order has shipped.",
        heading="Your order is on its way",
        body=(
            _paragraph(
                "Hi " + _FIRST_NAME + ", good news: order <strong>{{ order.number }}</strong> "
                "has left us and is on its way" + _CARRIER + "."
            )
            + _TRACKING_HTML
        ),
    ),
)  # fmt: skip

# Out for delivery -------------------------------------------------------------------------

_OUT_FOR_DELIVERY_WHATSAPP = TemplateContent(
    text=(
        "Hi " + _FIRST_NAME + "! Your {{ store.name }} order *{{ order.number }}* is out for "
        "delivery and should reach you today. \U0001f69a\n\n"
        "{% if fulfillment.tracking_url %}\n"
        "Follow it here: {{ fulfillment.tracking_url }}\n"
        "{% endif %}"
    ),
    whatsapp_template="order_out_for_delivery",
    whatsapp_parameters=(
        _FIRST_NAME,
        "{{ order.number }}",
        _TRACKING_LINK,
    ),
)  # fmt: skip

_OUT_FOR_DELIVERY_SMS = TemplateContent(
    text=(
        "{{ store.name }}: Hi " + _FIRST_NAME + ", your order {{ order.number }} is out for "
        "delivery and should arrive today."
        "{% if fulfillment.tracking_url %} Track it: {{ fulfillment.tracking_url }}{% endif %}"
    ),
)  # fmt: skip

_OUT_FOR_DELIVERY_EMAIL = TemplateContent(
    subject="Your order {{ order.number }} is out for delivery",
    text=(
        "Hi " + _FIRST_NAME + ",\n\n"
        "Your order {{ order.number }} is out for delivery" + _CARRIER
        + " and should reach you today.\n\n" + _TRACKING_TEXT + _EMAIL_SIGNATURE
    ),
    html=_email_html(
        title="Order {{ order.number }} is out for delivery",
        preview="Your order should arrive today.",
        heading="Arriving today",
        body=(
            _paragraph(
                "Hi " + _FIRST_NAME + ", your order <strong>{{ order.number }}</strong> is out "
                "for delivery" + _CARRIER + " and should reach you today."
            )
            + _TRACKING_HTML
        ),
    ),
)  # fmt: skip

# Delivered --------------------------------------------------------------------------------

_DELIVERED_WHATSAPP = TemplateContent(
    text=(
        "Hi " + _FIRST_NAME + "! Your {{ store.name }} order *{{ order.number }}* has been "
        "delivered. We hope you love it! \U0001f49a\n\n"
        "If anything isn't right, just reply here and we'll sort it out."
    ),
    whatsapp_template="order_delivered",
    whatsapp_parameters=(_FIRST_NAME, "{{ order.number }}"),
)  # fmt: skip

_DELIVERED_SMS = TemplateContent(
    text=(
        "{{ store.name }}: Hi " + _FIRST_NAME + ", your order {{ order.number }} has been "
        "delivered. We hope you love it! If anything isn't right, just reply to this message."
    ),
)  # fmt: skip

_DELIVERED_EMAIL = TemplateContent(
    subject="Your order {{ order.number }} has been delivered",
    text=(
        "Hi " + _FIRST_NAME + ",\n\n"
        "Your order {{ order.number }} has been delivered. We hope you love it!\n\n"
        "If anything isn't right, or the parcel isn't where you expected, just reply to this "
        "email and we'll sort it out.\n"
        "{% if order.status_url %}\n\nView your order: {{ order.status_url }}\n{% endif %}\n"
        + _EMAIL_SIGNATURE
    ),
    html=_email_html(
        title="Order {{ order.number }} delivered",
        preview="Your order has arrived. We hope you love it!",
        heading="Your order has arrived",
        body=(
            _paragraph(
                "Hi " + _FIRST_NAME + ", your order <strong>{{ order.number }}</strong> has "
                "been delivered. We hope you love it!"
            )
            + _paragraph(
                "If anything isn't right, or the parcel isn't where you expected, just reply "
                "to this email and we'll sort it out."
            )
            + _button("View your order", "order.status_url")
        ),
    ),
)  # fmt: skip

# Satisfaction check -----------------------------------------------------------------------

_SATISFACTION_EMAIL = TemplateContent(
    subject="How did we do" + _COMMA_NAME + "?",
    text=(
        "Hi " + _FIRST_NAME + ",\n\n"
        "We hope you're enjoying your order {{ order.number }}. We'd love to know how "
        "everything went, from ordering to unboxing.\n\n"
        "{% if review_url %}\n"
        "It only takes a minute: {{ review_url }}\n\n"
        "And if something wasn't right, just reply to this email and we'll make it right.\n"
        "{% else %}\n"
        "Just reply to this email and tell us: we read every message, and if something wasn't "
        "right, we'll make it right.\n"
        "{% endif %}\n"
        "\nThank you for shopping with us,\n{{ store.name }}\n{{ store.url }}"
    ),
    html=_email_html(
        title="How did we do?",
        preview="We'd love to hear how everything went.",
        heading="How did we do" + _COMMA_NAME + "?",
        body=(
            _paragraph(
                "We hope you're enjoying your order <strong>{{ order.number }}</strong>. We'd "
                "love to know how everything went, from ordering to unboxing."
            )
            + "{% if review_url %}\n"
            + _paragraph(
                "It only takes a minute, and it helps other shoppers and our small team alike."
            )
            + _button("Share your thoughts", "review_url")
            + "{% else %}\n"
            + _paragraph(
                "Just reply to this email and tell us: we read every message, and if "
                "something wasn't right, we'll make it right."
            )
            + "{% endif %}\n"
        ),
    ),
)  # fmt: skip

_SATISFACTION_WHATSAPP = TemplateContent(
    text=(
        "Hi " + _FIRST_NAME + ", we hope you're enjoying your {{ store.name }} order "
        "*{{ order.number }}*! How did we do?\n\n"
        "{% if review_url %}\n"
        "We'd love a quick review: {{ review_url }}\n\n"
        "{% endif %}\n"
        "Or just reply here: we read every message."
    ),
    whatsapp_template="order_feedback",
    whatsapp_parameters=(
        _FIRST_NAME,
        "{{ order.number }}",
        "{{ review_url or store.url or store.support_email or store.name }}",
    ),
)  # fmt: skip

_REPLY = TemplateContent(text="{{ body }}")

DEFAULT_TEMPLATES: dict[tuple[MessageType, ChannelKind], TemplateContent] = {
    (MessageType.ORDER_CONFIRMATION, EMAIL): _CONFIRMATION_EMAIL,
    (MessageType.DISPATCH, WHATSAPP): _DISPATCH_WHATSAPP,
    (MessageType.DISPATCH, SMS): _DISPATCH_SMS,
    (MessageType.DISPATCH, EMAIL): _DISPATCH_EMAIL,
    (MessageType.OUT_FOR_DELIVERY, WHATSAPP): _OUT_FOR_DELIVERY_WHATSAPP,
    (MessageType.OUT_FOR_DELIVERY, SMS): _OUT_FOR_DELIVERY_SMS,
    (MessageType.OUT_FOR_DELIVERY, EMAIL): _OUT_FOR_DELIVERY_EMAIL,
    (MessageType.DELIVERED, WHATSAPP): _DELIVERED_WHATSAPP,
    (MessageType.DELIVERED, SMS): _DELIVERED_SMS,
    (MessageType.DELIVERED, EMAIL): _DELIVERED_EMAIL,
    (MessageType.SATISFACTION_CHECK, EMAIL): _SATISFACTION_EMAIL,
    (MessageType.SATISFACTION_CHECK, WHATSAPP): _SATISFACTION_WHATSAPP,
    # A reply goes back on whichever channel the customer wrote from.
    **{(MessageType.REPLY, channel): _REPLY for channel in ChannelKind},
}


def default_template(message_type: MessageType, channel: ChannelKind) -> TemplateContent | None:
    """Return the built-in template for ``message_type`` on ``channel``, if there is one."""
    return DEFAULT_TEMPLATES.get((message_type, channel))
