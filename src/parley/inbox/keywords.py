"""Reading consent out of what customers write: STOP, START, HELP and plain-language "stop".

Carriers and the CTIA handbook define the keywords; the FCC's 2025 rule adds that a
customer may revoke "by any reasonable means", so plain-language revocations ("stop
texting me", "no más mensajes") count too. A keyword is the *whole* message, trimmed and in
any case, whatever punctuation, emoji or repetition surrounds it ("Stop.", " STOP ",
"Opt-out", "STOP STOP", "Stop 🛑"); "cancel my order" is a request, not an opt-out. A
revocation names what to stop, or says nothing else: "don't text me again" is one, "don't
text me the code, email it" asks for something.
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

# What may close a revocation: courtesy, then nothing but punctuation.
_ENDS = r"(\s+(please|pls|thanks|thank you|thx|now))*[\s.!]*$"
# What a revocation may name after "me": when, or the messages themselves.
_FOR_GOOD = r"(again|anymore|any more|ever again)\b"
_MESSAGES = (
    r"((any|all)\s+)?(more\s+)?(your\s+|these\s+|this\s+|those\s+)?"
    r"(texts|messages|sms|whatsapps?|emails|promotions|spam|marketing|offers)\b"
)
_REVOCATIONS = [
    re.compile(pattern)
    for pattern in (
        # English
        r"\b(stop|quit|cease)\s+(texting|messaging|contacting|emailing|calling|spamming|"
        r"bothering|writing to)\b",
        # "Stop sending me the wrong size" asks for the right one: what is not to be sent
        # must be the messages, or go unsaid.
        rf"\b(stop|quit|cease)\s+sending(\s+(me|us))?(\s+{_FOR_GOOD}|\s+{_MESSAGES}|"
        rf"\s+(these|this|those|them|that){_ENDS}|{_ENDS})",
        # "Don't call me, just text me" and "don't email me the receipt" ask for something:
        # the object must end the message, or be followed by "again" or the messages.
        rf"\b(do ?n[o']?t|do not|never)\s+(ever\s+)?(text|message|contact|send|email|call|"
        rf"write( to)?)\s+(me|us)(\s+{_FOR_GOOD}|\s+{_MESSAGES}|\s*,?{_ENDS})",
        r"\b(unsubscribe|opt)\s*(me)?\s*(out)?\s*(from|of)?\s*(this|these|your|the)?\s*"
        r"(list|messages|texts|sms|whatsapps?)\b",
        rf"\b(take|remove|delete)\s+(me|my (number|email))\s+(off|from)\s+(your\s+|the\s+|"
        rf"this\s+|all\s+)*(list|lists|mailing list|{_MESSAGES})",
        rf"^(please\s+)?(take|remove|delete)\s+(me|my (number|email))(\s+(off|out))?{_ENDS}",
        r"\bno more\s+(texts|messages|sms|whatsapps?|emails|spam)\b",
        r"\bleave me alone\b",
        r"\bopt me out\b",
        r"\bunsubscribe me\b",
        r"\bstop\s+(these|this|those|the|your|all|all the|all these)?\s*(messages|texts|sms|"
        r"whatsapps?|emails|promotions|spam)\b",
        r"\b(do ?n[o']?t|do not|no longer)\s+want\s+(to\s+(receive|get)\s+)?(these|this|those|"
        r"your|any|any more|anymore|more)?\s*(messages|texts|sms|whatsapps?|emails|promotions)\b",
        # "please stop", "I said stop", "unsubscribe please", "stop it", or a message that
        # ends by saying so after a reason.
        rf"(^|[,.;:!?]\s*)((please|pls|i said|just)\s+)*(stop|unsubscribe|opt ?-?out)"
        rf"(\s+(it|that|stop))?,?{_ENDS}",
        # Spanish / Portuguese
        r"^(por favor\s+)?no mas(,?\s+(por favor|gracias))*[\s.!]*$",
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
    """Lower-case, accents removed, emoji and other symbols made spaces, whitespace
    collapsed: "  Arrêt. 🛑" -> "arret."."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(
        " " if unicodedata.category(c).startswith("S") else c
        for c in decomposed
        # Accents, and what only shapes an emoji: variation selectors, joiners.
        if not unicodedata.combining(c) and unicodedata.category(c) not in ("Mn", "Me", "Cf")
    )
    # Phones type a curly apostrophe (U+2019) for "don't".
    return " ".join(plain.lower().replace("\u2019", "'").split())


def _words(text: str) -> str:
    """The message's words alone: hyphens joined ("Opt-out" -> "optout"), any other
    punctuation a space, a word repeated on its own said once ("STOP STOP" -> "stop")."""
    words = re.sub(r"[^\w\s]|_", " ", fold(text).replace("-", "")).split()
    if len(set(words)) == 1:
        return words[0]
    return " ".join(words)


def keyword_of(text: str, *, is_opted_out: bool = False) -> Keyword | None:
    """The keyword the whole message is, if any, whatever punctuation, emoji or
    repetition surround it. ``is_opted_out``: the customer has stopped the channel, so a
    plain "yes" answers nothing else and re-subscribes them."""
    word = _words(text)
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
