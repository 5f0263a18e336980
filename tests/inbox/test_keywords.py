"""Reading consent out of what customers write (RELIABILITY S5, S6, S7): the carriers'
opt-out keywords in any case and spacing, START and HELP, and plain-language revocations,
while requests that merely contain such a word are left for the assistant."""

from __future__ import annotations

import csv

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.conftest import shared_data

from parley.inbox.keywords import Keyword, is_revocation, keyword_of

# RELIABILITY S5's list, as the CTIA handbook and Twilio's Advanced Opt-Out name them.
OPT_OUT = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT")
SPACES = st.text(alphabet=" \t\n\r\u00a0", max_size=4)
ENDINGS = st.sampled_from(["", ".", "!", "!!", "?", " .", ","])


@pytest.mark.parametrize("word", OPT_OUT)
def test_each_carrier_opt_out_keyword_is_a_stop(word):
    assert keyword_of(word) is Keyword.STOP
    assert keyword_of(word.lower()) is Keyword.STOP


@given(
    word=st.sampled_from(OPT_OUT),
    cases=st.lists(st.booleans(), min_size=11, max_size=11),
    before=SPACES,
    after=SPACES,
    ending=ENDINGS,
)
def test_an_opt_out_keyword_is_a_stop_in_any_case_and_spacing(word, cases, before, after, ending):
    mixed = "".join(c.upper() if up else c.lower() for c, up in zip(word, cases, strict=False))

    assert keyword_of(f"{before}{mixed}{ending}{after}") is Keyword.STOP


@pytest.mark.parametrize(
    "text",
    [
        "cancel my order",
        "Can I cancel order #1042?",
        "stop by the shop tomorrow?",
        "end of the month is fine",
        "quite nice, thanks",
        "stopped by yesterday",
        "I want to unsubscribe my sister",
        "",
        "   ",
    ],
)
def test_a_message_that_only_contains_a_keyword_is_not_one(text):
    assert keyword_of(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "Opt-out",  # S5's OPTOUT as most people spell it
        "opt-out.",
        "Opt out!",
        "STOP STOP",
        "stop stop stop",
        "Stop 🛑",
        "🛑 STOP 🛑",
        "STOP\ufe0f",
        "Stop-all",
    ],
)
def test_an_opt_out_keyword_spelled_with_hyphens_emoji_or_repeated_is_a_stop(text):
    assert keyword_of(text) is Keyword.STOP


@pytest.mark.parametrize("text", ["HELP 🙏", "help help", "START 👍", "Un-stop"])
def test_help_and_start_spelled_with_emoji_or_repeated_keep_their_meaning(text):
    expected = Keyword.HELP if "help" in text.lower() else Keyword.START
    assert keyword_of(text) is expected


@pytest.mark.parametrize("word", ["START", "unstop", "Start.", " start "])
def test_start_and_unstop_resubscribe(word):
    assert keyword_of(word) is Keyword.START
    assert keyword_of(word, is_opted_out=True) is Keyword.START


def test_yes_resubscribes_only_someone_opted_out():
    assert keyword_of("YES", is_opted_out=True) is Keyword.START
    assert keyword_of("yes") is None


@pytest.mark.parametrize("word", ["HELP", "info", "Help?", " INFO. "])
def test_help_and_info_ask_for_help(word):
    assert keyword_of(word) is Keyword.HELP


# Revocation "by any reasonable means" (FCC, from 11 April 2025): what customers write.
REVOCATIONS = (
    "please stop texting me",
    "Stop messaging me!!",
    "STOP SENDING ME THESE",
    "don't text me again",
    "Do not contact me anymore",
    "never message me again please",
    "unsubscribe me from this list",
    "take me off your list",
    "remove my number from your list",
    "no more texts please",
    "leave me alone",
    "opt me out",
    "No más mensajes",
    "ya no me escriban por favor",
    "dejen de enviarme mensajes",
    "não me mandem mais mensagens",
    "parem de me mandar mensagens",
    "Arrêtez de m'envoyer des messages",
    "bitte nicht mehr schreiben",
    "I don't want these messages anymore",
    "I do not want to receive any more messages",
    "please stop",
    "Stop it.",
    "stop these messages",
    "I never signed up for this, stop",
    "wrong number, please stop",
    "no quiero recibir mas mensajes",
    "ne plus m'envoyer de messages",
    "je ne veux plus recevoir vos messages",
    "No más",  # S6's own example
    "no mas!",
    "No más, gracias",
    "please unsubscribe",
    "Unsubscribe please",
    "unsubscribe me please",
    "remove me",
    "Remove me please",
    "take me off",
    "I said stop",
    "Stop thanks",
    "stop, thank you",
    "please stop 🛑",
    "Please opt-out",
    "Stop texting me, I never signed up",
    "Do not text me.",
    "don't message us anymore, thanks",
    "Never send me texts again",
    "don't email me",
    "Don\u2019t text me again",  # a phone's curly apostrophe
)
NOT_REVOCATIONS = (
    "where is my order?",
    "can you text me when it ships?",
    "please stop the order, I ordered the wrong size",
    "I want to cancel my order",
    "don't cancel my order",
    "stop by and pick it up?",
    "no more stock of the blue one?",
    "send me the tracking link",
    "How do I stop the order?",
    "Can you stop the delivery?",
    "stop the order please",
    "I don't want to miss messages about my order",
    "I don't want the blue one",
    "Please don't call me, just text me",
    "Do not send me the blue one, send me the red one",
    "Stop sending me the wrong size",
    "don't send it to me before Friday",
    "Don't email me the receipt, text it",
    "don't text me the code, email it",
    "no mas de dos por pedido?",
    "can you remove me from the gift note?",
)


@pytest.mark.parametrize("text", REVOCATIONS)
def test_a_plain_language_revocation_is_read_as_one(text):
    assert is_revocation(text) is True


@pytest.mark.parametrize("text", NOT_REVOCATIONS)
def test_a_request_about_an_order_is_not_a_revocation(text):
    assert is_revocation(text) is False


def test_no_customer_support_request_in_the_bitext_corpus_reads_as_a_revocation():
    # 4,514 utterances across 27 intents (cancel_order, track_order, complaint...): an
    # opt-out read into any of them would silence a customer who asked for help.
    utterances = [
        row["utterance"]
        for split in ("train.csv", "test.csv")
        for row in csv.DictReader(shared_data(f"assistant/bitext/{split}").open())
    ]

    assert len(utterances) == 4_514
    assert [text for text in utterances if is_revocation(text)] == []
