"""The shipped training set: ``phrases`` expanded into sentences, then made to look typed.

Real shoppers write "wer is my parcel", "pls cancel ordr" and "refund??", so six in ten
clean sentences get a noisy twin: abbreviations, typos, dropped words and apostrophes,
stray punctuation and emojis. Casing is not varied because the features are lower-cased.
The generator is seeded, so every machine builds the same set and the model cache key (a
hash of the examples) is stable.
"""

from __future__ import annotations

import random
import re

from parley.assistant.intents import Intent
from parley.assistant.phrases import (
    ACTION_FRAMES,
    GERUND_FRAMES,
    GREETINGS,
    INTENT_PHRASES,
    MIXED_FRAMES,
    SIGN_OFFS,
    SLOTS,
    TOPIC_FRAMES,
    Phrases,
)

SEED = 20240517
# How many framed sentences each action and topic yields; sentences are filled this often.
ACTION_SAMPLES = 7
GERUND_SAMPLES = 2
TOPIC_SAMPLES = 4
SENTENCE_SAMPLES = 4
MIXED_SAMPLES = 3
# Share of clean sentences that also get a noisy twin, or a greeting or sign-off around them.
NOISY_SHARE = 0.6
FRAMED_SHARE = 0.12

MIXED_TOPIC_FRAMES: tuple[str, ...] = (
    "<t> batao",
    "<t> ke baare mein batao",
    "<t> chahiye",
    "<t> kya hai",
    "info sobre <t>",
    "ayuda con <t>",
    "<t> por favor",
)

_SLOT = re.compile(r"<(\w+)>")

# Verbs whose -ing form the simple rules below would get wrong.
_GERUNDS = {
    "be": "being",
    "get": "getting",
    "set": "setting",
    "put": "putting",
    "stop": "stopping",
    "swap": "swapping",
    "drop": "dropping",
    "ship": "shipping",
    "log": "logging",
    "chat": "chatting",
    "submit": "submitting",
    "cancel": "cancelling",
    "annul": "annulling",
    "see": "seeing",
}

# Shoppers' shorthand: a word and what it is typed as.
ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "please": ("pls", "plz", "plse", "pleas"),
    "you": ("u", "ya"),
    "your": ("ur", "yr"),
    "you're": ("ur", "youre"),
    "where": ("wer", "whr", "were", "wher"),
    "where's": ("wheres", "wer", "whr is"),
    "how": ("hw", "hoe"),
    "what": ("wat", "wht", "wt"),
    "what's": ("whats", "wats", "wat is"),
    "are": ("r",),
    "thanks": ("thx", "thnx", "tks"),
    "thank": ("thnk", "tnx"),
    "because": ("bc", "cuz"),
    "with": ("w/", "wth"),
    "want to": ("wanna",),
    "going to": ("gonna",),
    "I am": ("im", "i m"),
    "I'm": ("im", "i m"),
    "don't": ("dont", "dnt"),
    "can't": ("cant", "cnt"),
    "cannot": ("cant",),
    "I'd": ("id",),
    "isn't": ("isnt",),
    "hasn't": ("hasnt", "has not"),
    "haven't": ("havent",),
    "didn't": ("didnt",),
    "doesn't": ("doesnt",),
    "account": ("acc", "acct", "acount"),
    "address": ("addr", "adress", "add"),
    "number": ("no", "num", "nr"),
    "information": ("info",),
    "order": ("ordr", "oder", "orde"),
    "package": ("pkg", "pakage", "packge"),
    "received": ("recieved", "recvd"),
    "receive": ("recieve",),
    "password": ("pw", "pwd", "pasword", "passwrd"),
    "tracking": ("traking",),
    "delivery": ("delivry", "dlvry"),
    "refund": ("refnd", "refunf"),
    "cancel": ("cancle", "cansel", "cncl"),
    "message": ("msg",),
    "something": ("smth", "sth"),
    "about": ("abt",),
    "know": ("kno",),
    "the": ("da", "teh"),
    "and": ("n", "&"),
    "to": ("2",),
    "for": ("4", "fr"),
    "okay": ("ok", "k"),
    "really": ("rly",),
    "invoice": ("invoce", "inv"),
    "shipping": ("shiping",),
    "payment": ("paymnt", "pymt"),
    "tomorrow": ("tmrw",),
    "today": ("2day",),
    "still": ("stil",),
    "yet": ("yt",),
    "points": ("pts",),
}
_ABBREVIATION = re.compile(
    r"(?<![\w'])("
    + "|".join(re.escape(word) for word in sorted(ABBREVIATIONS, key=len, reverse=True))
    + r")(?![\w'])",
    re.IGNORECASE,
)
_DROPPABLE = re.compile(r"\b(my|the|a|an|to|I|is|me|of|for)\s", re.IGNORECASE)
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {
    key: row[max(index - 1, 0) : index] + row[index + 1 : index + 2]
    for row in _KEYBOARD_ROWS
    for index, key in enumerate(row)
}
_ENDINGS = ("", "", "", "?", "??", "???", "!", "!!", "...", " :(", " 😡", " 🙏", " 😊", " ❓")


def build_examples() -> list[tuple[str, str]]:
    """Every shipped (text, intent) pair, in a fixed order."""
    rng = random.Random(SEED)  # noqa: S311 - a fixed seed for a reproducible set, not secrecy
    seen: set[tuple[str, str]] = set()
    examples: list[tuple[str, str]] = []
    for intent, phrases in INTENT_PHRASES.items():
        for text in _clean_texts(rng, intent, phrases):
            variants = [text]
            if rng.random() < NOISY_SHARE:
                variants.append(make_noisy(rng, text))
            for variant in variants:
                pair = (" ".join(variant.split()), intent.value)
                if pair[0] and pair not in seen:
                    seen.add(pair)
                    examples.append(pair)
    return examples


def _clean_texts(rng: random.Random, intent: Intent, phrases: Phrases) -> list[str]:
    texts: list[str] = []
    for action in phrases.actions:
        texts += [_fill(rng, rng.choice(ACTION_FRAMES), a=action) for _ in range(ACTION_SAMPLES)]
        texts += [
            _fill(rng, rng.choice(GERUND_FRAMES), g=gerund_phrase(action))
            for _ in range(GERUND_SAMPLES)
        ]
    for topic in phrases.topics:
        texts += [_fill(rng, rng.choice(TOPIC_FRAMES), t=topic) for _ in range(TOPIC_SAMPLES)]
        texts.append(_fill(rng, rng.choice(MIXED_TOPIC_FRAMES), t=topic))
    repeats = SENTENCE_SAMPLES if phrases.actions else SENTENCE_SAMPLES * 3
    for sentence in phrases.sentences:
        texts += [_fill(rng, sentence) for _ in range(repeats)]
    for sentence in phrases.mixed:
        texts += [_fill(rng, sentence) for _ in range(MIXED_SAMPLES)]
    english = [text for text in texts[: len(texts) // 2] if "<" not in text]
    for text in rng.sample(english, min(len(english), 12)):
        texts.append(_fill(rng, rng.choice(MIXED_FRAMES), s=text))
    if intent not in (Intent.GREETING, Intent.THANKS):
        texts = [_frame_with_courtesy(rng, text) for text in texts]
    return texts


def _frame_with_courtesy(rng: random.Random, text: str) -> str:
    """Sometimes wrap a request in a greeting or a sign-off, which must not sway the intent."""
    roll = rng.random()
    if roll < FRAMED_SHARE / 2:
        return f"{rng.choice(GREETINGS)} {text}"
    if roll < FRAMED_SHARE:
        return f"{text} {rng.choice(SIGN_OFFS)}"
    return text


def _fill(rng: random.Random, template: str, **frame: str) -> str:
    """Put the frame's pieces in, then fill every slot, recursively and at random."""
    for name, value in frame.items():
        template = template.replace(f"<{name}>", value)

    def choose(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "digits":
            return "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 12)))
        return rng.choice(SLOTS[name])

    while _SLOT.search(template):
        template = _SLOT.sub(choose, template)
    return template


def gerund_phrase(action: str) -> str:
    """ "cancel my order" -> "cancelling my order", for the help-with frames."""
    verb, space, rest = action.partition(" ")
    if verb in _GERUNDS:
        ing = _GERUNDS[verb]
    elif verb.endswith("ie"):
        ing = verb[:-2] + "ying"
    elif verb.endswith("e") and not verb.endswith("ee"):
        ing = verb[:-1] + "ing"
    else:
        ing = verb + "ing"
    return ing + space + rest


def make_noisy(rng: random.Random, text: str) -> str:
    """The text as typed in a hurry on a phone."""
    text = _ABBREVIATION.sub(
        lambda match: (
            rng.choice(ABBREVIATIONS[_canonical(match.group(1))])
            if rng.random() < 0.5
            else match.group(1)
        ),
        text,
    )
    if rng.random() < 0.5:
        text = text.replace("'", "")
    text = _DROPPABLE.sub(lambda match: "" if rng.random() < 0.2 else match.group(0), text)
    words = [_typo(rng, word) if rng.random() < 0.1 else word for word in text.split()]
    text = " ".join(words).rstrip("?.!,")
    return text + rng.choice(_ENDINGS)


def _canonical(word: str) -> str:
    for key in ABBREVIATIONS:
        if key.lower() == word.lower():
            return key
    raise KeyError(word)


def _typo(rng: random.Random, word: str) -> str:
    """One slip of the thumb: a letter dropped, doubled, swapped or a neighbour key hit."""
    if len(word) < 4 or not word.isalpha():
        return word
    at = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return word[:at] + word[at + 1 :]
    if kind == 1:
        return word[:at] + word[at] + word[at:]
    if kind == 2:
        return word[: at - 1] + word[at] + word[at - 1] + word[at + 1 :]
    neighbours = _NEIGHBOURS.get(word[at].lower(), "")
    return word[:at] + rng.choice(neighbours) + word[at + 1 :] if neighbours else word
