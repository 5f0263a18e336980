"""Reading consent out of what customers write: STOP, START, HELP and plain-language "stop".

Carriers and the CTIA handbook define the keywords; the FCC's 2025 rule adds that a
customer may revoke "by any reasonable means", so plain-language revocations ("stop
texting me", "no más mensajes") count too. A keyword is the *whole* message, trimmed and in
any case ("Stop.", " STOP "); "cancel my order" is a request, not an opt-out.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum


class Keyword(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"


# English keywords from the CTIA handbook and carrier practice, then the common words for
# the same thing in Spanish, Portuguese, French, German and Italian.
STOP_WORDS = frozenset(
    {
        "stop",
        "stopall",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "revoke",
        "optout",
        "opt out",
        "stop all",
        "parar",
        "para",
        "alto",
        "baja",
        "detener",
        "cancelar",
        "pare",
        "sair",
        "arret",
        "arreter",
        "stopp",
        "abmelden",
        "basta",
        "ferma",
        "disiscrivi",
    }
)
START_WORDS = frozenset({"start", "unstop", "yes", "subscribe", "alta", "si", "sim", "oui", "ja"})
# Words that re-subscribe only someone who is opted out: otherwise they answer a question.
WEAK_START_WORDS = frozenset({"yes", "si", "sim", "oui", "ja"})
HELP_WORDS = frozenset({"help", "info", "ayuda", "ajuda", "aide", "hilfe", "aiuto"})

_REVOCATIONS = [
    re.compile(pattern)
    for pattern in (
        # English
        r"\b(stop|quit|cease)\s+(texting|messaging|sending|contacting|emailing|calling|"
        r"spamming|bothering|writing to)\b",
        r"\b(do ?n[o']?t|do not|never)\s+(text|message|contact|send|email|call|write)\b.*\bme\b",
        r"\b(unsubscribe|opt)\s*(me)?\s*(out)?\s*(from|of)?\s*(this|these|your|the)?\s*"
        r"(list|messages|texts|sms|whatsapps?)\b",
        r"\b(take|remove|delete)\s+(me|my (number|email))\s+(off|from)\b",
        r"\bno more\s+(texts|messages|sms|whatsapps?|emails|spam)\b",
        r"\bleave me alone\b",
        r"\bopt me out\b",
        r"\bunsubscribe me\b",
        r"\bstop\s+(these|this|those|the|your|all|all the|all these)?\s*(messages|texts|sms|"
        r"whatsapps?|emails|promotions|spam)\b",
        r"\b(do ?n[o']?t|do not|no longer)\s+want\s+(to\s+(receive|get)\s+)?(these|this|those|"
        r"your|any|any more|anymore|more)?\s*(messages|texts|sms|whatsapps?|emails|promotions)\b",
        # "please stop", "stop it", or a message that ends by saying so after a reason.
        r"(^|[,.;:!?]\s*)(please\s+)?stop(\s+(it|please|now|that))?[\s.!]*$",
        # Spanish / Portuguese
        r"\bno mas\s+(mensajes|textos|sms|whatsapps?)\b",
        r"\bno quiero\s+(recibir\s+)?(mas\s+)?(sus\s+|tus\s+)?(mensajes|textos|sms|whatsapps?)\b",
        r"\bya no me\s+(escriban|escribas|manden|mandes|envien|envies|contacten)\b",
        r"\b(dejen|deja) de\s+(escribirme|mandarme|enviarme|contactarme)\b",
        r"\bnao (me )?(mandem|enviem|escrevam)\b",
        r"\bparem de\s+(me )?(mandar|enviar)\b",
        # French / German
        r"\barretez de m'?\s*(envoyer|ecrire|contacter)\b",
        r"\bne (plus|pas) m'?\s*(envoyer|ecrire|contacter)\b",
        r"\bne veux plus\b.*\b(messages|sms|textos|whatsapps?|mails)\b",
        r"\bnicht mehr\s+(schreiben|kontaktieren|senden)\b",
    )
]


def fold(text: str) -> str:
    """Lower-case, accents removed, whitespace collapsed: "  Arrêt. " -> "arret."."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.lower().split())


def keyword_of(text: str, *, is_opted_out: bool = False) -> Keyword | None:
    """The keyword the whole message is, if any. Trailing punctuation is ignored."""
    word = fold(text).strip(" .!¡?¿,;:-_*'\"()[]")
    if word in STOP_WORDS:
        return Keyword.STOP
    if word in START_WORDS and (is_opted_out or word not in WEAK_START_WORDS):
        return Keyword.START
    if word in HELP_WORDS:
        return Keyword.HELP
    return None


def is_revocation(text: str) -> bool:
    """Whether a longer message plainly asks the store to stop messaging."""
    folded = fold(text)
    return any(pattern.search(folded) for pattern in _REVOCATIONS)
