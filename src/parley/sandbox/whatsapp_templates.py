"""The sandbox business account's WhatsApp templates, as Meta keeps and reviews them.

``GET /{version}/{waba_id}/message_templates`` lists them the way the Graph API does (a
page of ``limit`` at a time, an ``after`` cursor and a ``next`` link while more remain).
The demo store's default templates start approved as utility; ``POST
/api/whatsapp-templates`` plays Meta's review (approve, pause, re-class as marketing...)
and posts the webhook Meta would, signed, to parley, so a newcomer can watch parley pass
over a paused template or keep a re-classed one from customers without marketing consent.
The messages stand-in asks :meth:`TemplateCatalogue.refusal` before taking a template, as
Meta refuses one it does not hold approved.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from parley.channels.base import ChannelKind
from parley.messaging.default_templates import default_template
from parley.messaging.types import MessageType
from parley.sandbox.whatsapp import bearer_matches, graph_error, invalid_parameter

if TYPE_CHECKING:
    from parley.sandbox.webhooks import ProviderWebhooks, WebhookPoster

STATUSES: Final = frozenset({"APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "FLAGGED"})
CATEGORIES: Final = frozenset({"MARKETING", "UTILITY", "AUTHENTICATION"})
SENDABLE: Final = frozenset({"APPROVED", "FLAGGED"})
MAX_LIMIT: Final = 1000
FIRST_ID: Final = 1_689_556_908_129_832


@dataclass
class CatalogueTemplate:
    id: str
    name: str
    language: str
    status: str
    category: str

    def to_graph(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "language": self.language,
            "status": self.status,
            "category": self.category,
        }


class TemplateCatalogue:
    """The business account's templates, in the order they were created."""

    def __init__(self) -> None:
        self._templates: dict[tuple[str, str], CatalogueTemplate] = {}
        for message_type in MessageType:
            content = default_template(message_type, ChannelKind.WHATSAPP)
            if content is not None and content.whatsapp_template:
                self.put(content.whatsapp_template, content.whatsapp_language)

    def put(
        self,
        name: str,
        language: str,
        *,
        status: str = "APPROVED",
        category: str = "UTILITY",
    ) -> tuple[CatalogueTemplate, str | None, bool]:
        """Create or change one template; returns it, its category before (None when new
        or unchanged) and whether its status changed."""
        key = (name, language)
        template = self._templates.get(key)
        if template is None:
            template = CatalogueTemplate(
                str(FIRST_ID + len(self._templates)), name, language, status, category
            )
            self._templates[key] = template
            return template, None, True
        before_category, before_status = template.category, template.status
        template.status, template.category = status, category
        moved = before_category if before_category != category else None
        return template, moved, before_status != status

    def all(self) -> list[CatalogueTemplate]:
        return list(self._templates.values())

    def refusal(self, name: str, language: str) -> tuple[int, str] | None:
        """Meta's error code and message for sending this template, or None."""
        template = self._templates.get((name, language))
        if template is None:
            return 132001, f"(#132001) Template name does not exist in the translation: {name}"
        if template.status == "PAUSED":
            return 132015, "(#132015) Template is Paused"
        if template.status not in SENDABLE:
            return 132016, "(#132016) Template is disabled"
        return None


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def _offset(cursor: str) -> int | None:
    try:
        value = int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        return None
    return value if value >= 0 else None


class WhatsAppTemplates:
    """The Graph edge that lists the templates, and the sandbox's review control."""

    def __init__(
        self,
        catalogue: TemplateCatalogue,
        *,
        access_token: str,
        business_account_id: str,
        webhooks: ProviderWebhooks | None = None,
        poster: WebhookPoster | None = None,
    ) -> None:
        """``webhooks`` and ``poster``, when given, tell parley of each review as Meta's
        webhook does; without them (unit tests) the catalogue changes silently."""
        self.catalogue = catalogue
        self._token = access_token.encode()
        self._business_account_id = business_account_id
        self._webhooks = webhooks
        self._poster = poster

    async def list(self, request: Request) -> Response:
        """``GET /{version}/{waba_id}/message_templates?limit=&after=``."""
        if not bearer_matches(request, self._token):
            return graph_error(401, 190, "Invalid OAuth access token.")
        waba_id = request.path_params["waba_id"]
        if waba_id != self._business_account_id:
            return graph_error(
                400,
                100,
                f"Unsupported get request. Object with ID '{waba_id}' does not exist, cannot "
                "be loaded due to missing permissions, or does not support this operation.",
                error_type="GraphMethodException",
                subcode=33,
            )
        limit_param = request.query_params.get("limit", "25")
        if not limit_param.isdigit() or not 1 <= int(limit_param) <= MAX_LIMIT:
            return invalid_parameter(f"Param limit must be an integer from 1 to {MAX_LIMIT}.")
        limit = int(limit_param)
        after = request.query_params.get("after")
        start = 0 if after is None else _offset(after)
        if start is None:
            return invalid_parameter("Param after is not a valid cursor.")
        templates = self.catalogue.all()
        page = templates[start : start + limit]
        body: dict[str, Any] = {"data": [template.to_graph() for template in page]}
        if page:
            body["paging"] = {
                "cursors": {"before": _cursor(start), "after": _cursor(start + len(page))}
            }
            if start + len(page) < len(templates):
                next_url = request.url.include_query_params(after=_cursor(start + len(page)))
                body["paging"]["next"] = str(next_url)
        return JSONResponse(body)

    async def review(self, request: Request) -> Response:
        """``POST /api/whatsapp-templates`` with ``{name, language, status, category}``:
        Meta's review of one template, told to parley by webhook."""
        try:
            payload: Any = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
        if not isinstance(payload, dict):
            return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
        name, language = payload.get("name"), payload.get("language", "en")
        status, category = payload.get("status", "APPROVED"), payload.get("category", "UTILITY")
        problem = None
        if not isinstance(name, str) or not name or not isinstance(language, str):
            problem = "'name' and 'language' must be strings"
        elif status not in STATUSES:
            problem = f"status must be one of {', '.join(sorted(STATUSES))}"
        elif category not in CATEGORIES:
            problem = f"category must be one of {', '.join(sorted(CATEGORIES))}"
        if problem is not None or not isinstance(name, str) or not isinstance(language, str):
            return JSONResponse({"error": problem}, status_code=400)
        template, moved_from, status_changed = self.catalogue.put(
            name, language, status=status, category=category
        )
        if self._webhooks is not None and self._poster is not None:
            builds = []
            if status_changed:
                builds.append(
                    partial(
                        self._webhooks.whatsapp_template_review,
                        template=template.to_graph(),
                        category_changed_from=None,
                    )
                )
            if moved_from is not None:
                builds.append(
                    partial(
                        self._webhooks.whatsapp_template_review,
                        template=template.to_graph(),
                        category_changed_from=moved_from,
                    )
                )
            self._poster.post_later(builds)
        return JSONResponse({"template": template.to_graph()})

    async def show(self, request: Request) -> Response:
        """``GET /api/whatsapp-templates``: the catalogue as the sandbox holds it."""
        return JSONResponse({"templates": [t.to_graph() for t in self.catalogue.all()]})
