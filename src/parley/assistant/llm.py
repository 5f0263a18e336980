"""An optional language model that rephrases the assistant's answer, never its facts.

Any OpenAI-compatible ``/chat/completions`` endpoint will do. The model gets the drafted
answer and the facts behind it and is told to change only the wording; what it returns is
then checked: every number, link and email address in it must appear in the draft, and it
may not promise anything the draft does not. Anything else (an error, a timeout, an
invented figure) and the draft goes out as written.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import httpx2

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "You rewrite a customer-support reply for an online store so it reads warmly and "
    "naturally, in the customer's language. Keep every fact exactly as given. Do not add "
    "any fact, number, date, price, link, policy, promise, discount or apology for "
    "something not in the draft. Answer with the rewritten reply only."
)
# Facts a reply can state: links, emails, numbers, and the words of a date (the draft
# writes months and days out, "3 March 2026"), so a changed month is a changed fact.
_TOKENS = re.compile(
    r"https?://\S+|[\w.+-]+@[\w-]+\.[\w.-]+|\d+(?:[.,:/-]\d+)*"
    r"|\b(?:January|February|March|April|May|June|July|August|September|October|November"
    r"|December|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b"
    r"|\b(?i:today|tonight|tomorrow|yesterday)\b"
)
# What commits the store: a refund, replacement or credit said as done or to come, money
# back, something free, a discount.
_COMMITMENTS = re.compile(
    r"\b(guarantee|promise|refund(ed)? (is|has been) approved|discount|free of charge|"
    r"compensat\w*|legally binding|deal|"
    r"(will|'ll|shall|going to)( \w+){0,3}? (refund|reimburse|replace|credit|compensate)\w*|"
    r"(be|been|get|getting) (refunded|reimbursed|replaced|credited)|"
    r"money back|full refund|replacement|for free|free (replacement|return|shipping|delivery)|"
    r"waive\w*)\b",
    re.IGNORECASE,
)


def is_grounded(candidate: str, draft: str) -> bool:
    """Whether ``candidate`` says nothing factual that ``draft`` does not."""
    allowed = set(_TOKENS.findall(draft))
    if any(
        token.rstrip(".,)") not in allowed and token not in allowed
        for token in _TOKENS.findall(candidate)
    ):
        return False
    return not (_COMMITMENTS.search(candidate) and not _COMMITMENTS.search(draft))


class Rephraser:
    """Calls the configured model; one pooled client per process."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 5.0,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/chat/completions"
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx2.AsyncClient(timeout=httpx2.Timeout(timeout), transport=transport)

    async def rephrase(self, draft: str, facts: dict[str, Any]) -> str:
        """The model's wording if it is grounded in the draft; the draft otherwise."""
        body = {
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": INSTRUCTIONS},
                {
                    "role": "user",
                    "content": json.dumps({"draft": draft, "facts": facts}, default=str),
                },
            ],
        }
        try:
            response = await self._client.post(self.url, json=body, headers=self._headers)
            response.raise_for_status()
            text = str(response.json()["choices"][0]["message"]["content"]).strip()
        except (httpx2.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            log.warning("rephrasing failed, sending the draft: %s", exc)
            return draft
        if not text or not is_grounded(text, draft):
            log.warning("rephrased reply added facts or promises; sending the draft")
            return draft
        return text

    async def aclose(self) -> None:
        await self._client.aclose()
