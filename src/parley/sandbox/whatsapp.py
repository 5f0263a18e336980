"""The WhatsApp Cloud API: ``POST /{version}/{phone_number_id}/messages``, and Graph's
nodes for a phone number and for a customer's media.

Checks the bearer token against the business phone number the path names (one of the
:class:`~parley.sandbox.accounts.SandboxAccounts`) and the message JSON the way the Graph
API does, answers errors in Graph's ``{"error": {...}}`` shape, and supports the two
message types parley sends: ``text`` (inside the 24-hour window) and ``template``. This
runs on the benchmark's hot path: the body is parsed once with ``json``, nothing else.

A photo a sandbox customer sent (kept in the store by the composer) is read as Meta's is:
``GET /{version}/{media_id}`` answers its ``url``, and ``GET /media/{media_id}`` (this
sandbox's stand-in for Meta's file host) serves the bytes, both only to the token of the
number the photo was sent to.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import re
import secrets
from typing import TYPE_CHECKING, Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from parley.sandbox.store import CapturedMessage, Fault, SandboxStore, StoredMedia
from parley.sandbox.webhooks import SANDBOX_DISPLAY_PHONE_NUMBER

if TYPE_CHECKING:
    from parley.sandbox.accounts import SandboxAccounts, WhatsAppNumber
    from parley.sandbox.webhooks import StatusReporter
    from parley.sandbox.whatsapp_templates import TemplateCatalogue

MAX_TEXT_CHARS: Final = 4096
MAX_CALLBACK_DATA: Final = 512
"""The Cloud API's limit on ``biz_opaque_callback_data``."""
WA_ID: Final = re.compile(r"^[1-9]\d{6,14}$")
API_VERSION: Final = re.compile(r"^v\d{1,3}\.\d{1,2}$")
COMPONENT_TYPES: Final = frozenset({"header", "body", "button"})


class InvalidParameterError(ValueError):
    """The request breaks one of the Cloud API's rules; the message says which."""


def bearer_matches(request: Request, token: bytes) -> bool:
    """Whether the request carries ``Authorization: Bearer <token>`` (constant-time), as
    every Graph API call must."""
    given = bearer_token(request)
    return given is not None and hmac.compare_digest(given.encode(), token)


def bearer_token(request: Request) -> str | None:
    """The token of the request's ``Authorization: Bearer <token>`` header, if it has one."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else None


def invalid_token() -> JSONResponse:
    """Graph's answer to a token it does not know: HTTP 401, code 190."""
    return graph_error(401, 190, "Invalid OAuth access token.")


def unreachable_object(object_id: str, method: str) -> JSONResponse:
    """Graph's answer to a known token used on an object that does not exist or that the
    token may not reach: HTTP 400, code 100, subcode 33."""
    return graph_error(
        400,
        100,
        f"Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot "
        "be loaded due to missing permissions, or does not support this operation.",
        error_type="GraphMethodException",
        subcode=33,
    )


def graph_error(
    status: int,
    code: int,
    message: str,
    *,
    error_type: str = "OAuthException",
    details: str | None = None,
    subcode: int | None = None,
) -> JSONResponse:
    """An error in the Graph API's JSON shape."""
    error: dict[str, Any] = {"message": message, "type": error_type, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    error["fbtrace_id"] = secrets.token_urlsafe(18)
    return JSONResponse({"error": error}, status_code=status)


def invalid_parameter(details: str) -> JSONResponse:
    """Graph's answer to a malformed message: HTTP 400, code 100."""
    return graph_error(400, 100, f"(#100) {details}", details=details)


async def fault_response(fault: Fault) -> JSONResponse:
    """Answer an injected fault the way the Cloud API answers throttling or an outage."""
    if fault.delay_seconds:
        await asyncio.sleep(fault.delay_seconds)
    status = fault.status
    if status == 429:
        return graph_error(
            429,
            130429,
            "(#130429) Rate limit hit",
            details="Cloud API message throughput has been reached.",
        )
    if status >= 500:
        return graph_error(
            status,
            131016,
            "(#131016) Service unavailable",
            details="A service is temporarily unavailable.",
        )
    if status == 401:
        return graph_error(401, 190, "Invalid OAuth access token.")
    return graph_error(
        status, 131000, "(#131000) Something went wrong", details="Sandbox: simulated failure."
    )


def _require_text(value: object, name: str) -> str:
    if value is None or value == "":
        raise InvalidParameterError(f"The parameter {name} is required.")
    if not isinstance(value, str):
        raise InvalidParameterError(f"Param {name} must be a string.")
    return value


def _parse_text(payload: dict[str, Any]) -> str:
    text = payload.get("text")
    if not isinstance(text, dict):
        raise InvalidParameterError("The parameter text is required.")
    body = _require_text(text.get("body"), "text['body']")
    if len(body) > MAX_TEXT_CHARS:
        raise InvalidParameterError(
            f"Param text['body'] must be at most {MAX_TEXT_CHARS} characters."
        )
    preview_url = text.get("preview_url", False)
    if not isinstance(preview_url, bool):
        raise InvalidParameterError("Param text['preview_url'] must be a boolean.")
    return body


def _body_parameters(component: dict[str, Any], index: int) -> list[str]:
    parameters = component.get("parameters", [])
    if not isinstance(parameters, list):
        raise InvalidParameterError(
            f"Param template['components'][{index}]['parameters'] must be a list."
        )
    texts: list[str] = []
    for position, parameter in enumerate(parameters):
        where = f"template['components'][{index}]['parameters'][{position}]"
        if not isinstance(parameter, dict) or parameter.get("type") != "text":
            raise InvalidParameterError(
                f"Param {where}['type'] must be 'text' in a body component."
            )
        texts.append(_require_text(parameter.get("text"), f"{where}['text']"))
    return texts


def _parse_template(payload: dict[str, Any]) -> dict[str, Any]:
    template = payload.get("template")
    if not isinstance(template, dict):
        raise InvalidParameterError("The parameter template is required.")
    name = _require_text(template.get("name"), "template['name']")
    language = template.get("language")
    if not isinstance(language, dict):
        raise InvalidParameterError("The parameter template['language'] is required.")
    code = _require_text(language.get("code"), "template['language']['code']")
    components = template.get("components", [])
    if not isinstance(components, list):
        raise InvalidParameterError("Param template['components'] must be a list.")
    parameters: list[str] = []
    for index, component in enumerate(components):
        kind = component.get("type") if isinstance(component, dict) else None
        if kind not in COMPONENT_TYPES:
            raise InvalidParameterError(
                f"Param template['components'][{index}]['type'] must be one of "
                "header, body, button."
            )
        if kind == "body":
            parameters.extend(_body_parameters(component, index))
        elif not isinstance(component.get("parameters", []), list):
            raise InvalidParameterError(
                f"Param template['components'][{index}]['parameters'] must be a list."
            )
    return {"name": name, "language": code, "parameters": parameters}


def render_template(template: dict[str, Any]) -> str:
    """A readable line for a template message: ``[template name (lang)] p1 · p2``."""
    head = f"[template {template['name']} ({template['language']})]"
    parameters = template["parameters"]
    return f"{head} {' · '.join(parameters)}" if parameters else head


def parse_message(payload: object) -> tuple[str, str, dict[str, Any] | None]:
    """Validate a send-message request body; return (wa_id, body, template or None)."""
    if not isinstance(payload, dict):
        raise InvalidParameterError("The request body must be a JSON object.")
    product = payload.get("messaging_product")
    if product != "whatsapp":
        if product is None:
            raise InvalidParameterError("The parameter messaging_product is required.")
        raise InvalidParameterError("Param messaging_product must be 'whatsapp'.")
    recipient_type = payload.get("recipient_type", "individual")
    if recipient_type != "individual":
        raise InvalidParameterError("Param recipient_type must be 'individual'.")
    to = _require_text(payload.get("to"), "to")
    if not WA_ID.match(to):
        raise InvalidParameterError(
            f"Param to must be a WhatsApp ID: the number with its country code, "
            f"digits only, no '+' or spaces (got {to!r})."
        )
    kind = payload.get("type", "text")
    if kind == "text":
        return to, _parse_text(payload), None
    if kind == "template":
        template = _parse_template(payload)
        return to, render_template(template), template
    raise InvalidParameterError(
        f"Param type must be 'text' or 'template' (the sandbox sends no {kind!r} messages)."
    )


def new_wamid() -> str:
    """A message id shaped like the Cloud API's (``wamid.`` and base64)."""
    return "wamid." + base64.urlsafe_b64encode(secrets.token_bytes(36)).decode("ascii")


class WhatsAppMessages:
    """The phone number node and messages edge of every sandbox WhatsApp business number,
    and the media nodes (and files) of what customers sent to them.

    As Graph does, a token no number holds is refused as invalid (401, code 190) whatever
    the path, and a valid token on a number that is not its own, or on no number at all,
    is refused as an object it cannot reach (400, code 100, subcode 33).
    """

    def __init__(
        self,
        store: SandboxStore,
        *,
        accounts: SandboxAccounts,
        statuses: StatusReporter | None = None,
        templates: TemplateCatalogue | None = None,
    ) -> None:
        """``statuses``, when given, posts ``sent`` and ``delivered`` to parley's webhook
        for every accepted message, as the Cloud API does; ``None`` keeps the stand-in
        silent (unit tests with no parley server behind them). ``templates``, when given,
        refuses a template it does not hold approved, as Meta does."""
        self._store = store
        self._templates = templates
        self._accounts = accounts
        self._statuses = statuses

    def _reachable_number(self, phone_number_id: str, token: str) -> WhatsAppNumber | None:
        """The path's number, when ``token`` is its own; else ``None``."""
        number = self._accounts.find_whatsapp(phone_number_id)
        # A number that does not exist costs the same comparison as a wrong token.
        expected = number.access_token.encode() if number is not None else b"\xff"
        matches = hmac.compare_digest(token.encode(), expected)
        return number if number is not None and matches else None

    async def node(self, request: Request) -> Response:
        """``GET /{version}/{id}``: a media node when the sandbox holds media under ``id``
        (Graph reads any node by its id), else the business phone number node."""
        fault = self._store.take_fault("whatsapp")
        if fault is not None:
            return await fault_response(fault)
        token = bearer_token(request)
        if token is None or not self._accounts.is_whatsapp_token(token):
            return invalid_token()
        node_id = request.path_params["phone_number_id"]
        media = self._store.find_media(node_id)
        if media is not None:
            return self._media_node(request, media, token)
        if self._reachable_number(node_id, token) is None:
            return unreachable_object(node_id, "get")
        return JSONResponse(
            {
                "display_phone_number": f"+{SANDBOX_DISPLAY_PHONE_NUMBER}",
                "verified_name": "parley sandbox",
                "id": node_id,
            }
        )

    def _media_node(self, request: Request, media: StoredMedia, token: str) -> Response:
        """Where the file is, for the token of the number it was sent to; the
        ``phone_number_id`` query, when given, must name that number too."""
        asked_for = request.query_params.get("phone_number_id", media.phone_number_id)
        if (
            asked_for != media.phone_number_id
            or self._reachable_number(media.phone_number_id, token) is None
        ):
            return unreachable_object(media.media_id, "get")
        # Absolute, on whatever host and mount point the request came through, as Meta's
        # URL is; the mount's root_path is what puts "/sandbox" in front.
        root_path = request.scope.get("root_path", "")
        url = request.url.replace(path=f"{root_path}/whatsapp/media/{media.media_id}", query="")
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "url": str(url),
                "mime_type": media.mime_type,
                "sha256": media.sha256,
                "file_size": len(media.content),
                "id": media.media_id,
            }
        )

    async def media_file(self, request: Request) -> Response:
        """``GET /media/{media_id}``: the file itself, only to the token of the number it
        was sent to, as Meta's media URL asks for."""
        token = bearer_token(request)
        if token is None or not self._accounts.is_whatsapp_token(token):
            return invalid_token()
        media = self._store.find_media(request.path_params["media_id"])
        if media is None:
            return Response(status_code=404)
        if self._reachable_number(media.phone_number_id, token) is None:
            return invalid_token()
        return Response(
            media.content, media_type=media.mime_type, headers={"X-Content-Type-Options": "nosniff"}
        )

    async def create(self, request: Request) -> Response:
        """``POST /{version}/{phone_number_id}/messages``."""
        fault = self._store.take_fault("whatsapp")
        if fault is not None:
            return await fault_response(fault)
        token = bearer_token(request)
        if token is None or not self._accounts.is_whatsapp_token(token):
            return invalid_token()
        version = request.path_params["version"]
        if not API_VERSION.match(version):
            return invalid_parameter(f"Unknown API version {version!r}; expected e.g. 'v21.0'.")
        phone_number_id = request.path_params["phone_number_id"]
        number = self._reachable_number(phone_number_id, token)
        if number is None:
            return unreachable_object(phone_number_id, "post")
        try:
            payload = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return invalid_parameter("The request body must be valid JSON.")
        try:
            to, body, template = parse_message(payload)
        except InvalidParameterError as error:
            return invalid_parameter(str(error))
        if template is not None and self._templates is not None:
            refused = self._templates.refusal(template["name"], template["language"])
            if refused is not None:
                code, said = refused
                return graph_error(404 if code == 132001 else 400, code, said)
        reference = payload.get("biz_opaque_callback_data")
        if reference is not None and (
            not isinstance(reference, str) or len(reference) > MAX_CALLBACK_DATA
        ):
            return invalid_parameter(
                f"biz_opaque_callback_data must be a string of at most {MAX_CALLBACK_DATA}"
                " characters."
            )
        wamid = new_wamid()
        self._store.add(
            CapturedMessage(
                channel="whatsapp",
                to=to,
                sender=phone_number_id,
                body=body,
                template=template,
                provider_message_id=wamid,
            )
        )
        if self._statuses is not None:
            self._statuses.whatsapp_accepted(
                message_id=wamid,
                wa_id=to,
                phone_number_id=number.phone_number_id,
                app_secret=number.app_secret,
                reference=reference,
            )
        sent = {"id": wamid}
        if template is not None:
            sent["message_status"] = "accepted"
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [sent],
            }
        )
