"""The store's postal address on every marketing email (RELIABILITY S13, CAN-SPAM).

US law (15 U.S.C. 7704(a)(5)) wants a commercial email to carry the sender's valid
physical postal address. A store sets it on Settings → General
(``workspace.settings["postal_address"]``); templates quote it as
``{{ store.postal_address }}``. Three guards, each for a way the address could go
missing:

- saving an email template for a marketing message type that does not name
  ``store.postal_address`` is refused (:func:`lint`), so the store sees it while writing;
- a marketing email is not sent while the store has no address: the policy passes over
  email with the reason and the message goes on the next channel (:func:`refusal`);
- a marketing email whose wording does not show the address (a journey moved to the
  marketing lane keeps its order-update wording) gets it appended, in its text and its
  HTML (:func:`with_address`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from jinja2 import Environment, nodes
from jinja2 import exceptions as jinja_errors
from markupsafe import escape

from parley.channels.base import ChannelKind
from parley.messaging.templates import RenderedContent, TemplateContent, TemplateError
from parley.messaging.types import DEFAULT_PURPOSES, MessageType, Purpose

MAX_CHARS = 500
_PARSER = Environment(autoescape=True)
"""Only parses templates, to find what they name; nothing is rendered with it."""


def of(settings: Mapping[str, Any] | None) -> str:
    """The store's postal address, or an empty string when it set none."""
    found = (settings or {}).get("postal_address")
    return found.strip() if isinstance(found, str) else ""


def check(address: str) -> str:
    """The address as it will be stored; raise ValueError when it cannot be."""
    lines = [" ".join(line.split()) for line in address.strip().splitlines()]
    cleaned = "\n".join(line for line in lines if line)
    if len(cleaned) > MAX_CHARS:
        raise ValueError(f"the postal address is longer than {MAX_CHARS} characters")
    return cleaned


def refusal(settings: Mapping[str, Any] | None, purpose: str) -> str | None:
    """Why this message may not go by email now, or None."""
    if purpose != Purpose.MARKETING or of(settings):
        return None
    return "marketing email needs the store's postal address (CAN-SPAM): set it on Settings"


def names_address(source: str | None) -> bool:
    """Whether a template's source quotes ``store.postal_address`` (or
    ``store["postal_address"]``) anywhere."""
    if not source:
        return False
    try:
        tree = _PARSER.parse(source)
    except jinja_errors.TemplateSyntaxError:
        return False
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        key: object
        if isinstance(node, nodes.Getattr):
            key, target = node.attr, node.node
        elif isinstance(node, nodes.Getitem):
            key, target = _constant(node.arg), node.node
        else:
            continue
        if key == "postal_address" and isinstance(target, nodes.Name) and target.name == "store":
            return True
    return False


def _constant(node: nodes.Node) -> object:
    return node.value if isinstance(node, nodes.Const) else None


def lint(message_type: MessageType, channel: ChannelKind, content: TemplateContent) -> None:
    """Refuse a marketing email template that does not show the store's postal address."""
    if channel is not ChannelKind.EMAIL:
        return
    if DEFAULT_PURPOSES.get(message_type) is not Purpose.MARKETING:
        return
    for field, label, source in (
        ("text", "plain-text body", content.text),
        ("html", "HTML body", content.html),
    ):
        if source is not None and not names_address(source):
            raise TemplateError(
                "a marketing email must show the store's postal address (CAN-SPAM): "
                f"add {{{{ store.postal_address }}}} to its {label}",
                field=field,
            )


def with_address(rendered: RenderedContent, address: str) -> RenderedContent:
    """The email with the address appended where its wording does not show it. The HTML
    is searched for the address as Jinja's autoescape writes it (MarkupSafe's ``&#39;``
    for a quote, where Python's ``html.escape`` writes ``&#x27;``)."""
    if not address:
        return rendered
    text = rendered.text
    if address not in text:
        text = f"{text}\n\n--\n{address}"
    html = rendered.html
    escaped = str(escape(address))
    shown = escaped.replace("\n", "<br>")
    if html is not None and escaped not in html and shown not in html:
        footer = f'<p style="color:#666;font-size:12px">{shown}</p>'
        closing = html.lower().rfind("</body>")
        html = html[:closing] + footer + html[closing:] if closing >= 0 else html + footer
    return replace(rendered, text=text, html=html)
