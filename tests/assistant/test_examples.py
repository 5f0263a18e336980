"""The shipped training examples: complete, reproducible, and written by us."""

from __future__ import annotations

import csv
import random
from collections import Counter

import pytest
from tests.conftest import shared_data

from parley.assistant.classifier import shipped_examples
from parley.assistant.examples import gerund_phrase, make_noisy
from parley.assistant.features import normalize
from parley.assistant.intents import Intent


def test_every_intent_has_at_least_150_examples():
    counts = Counter(intent for _, intent in shipped_examples())

    assert set(counts) == {intent.value for intent in Intent}
    assert min(counts.values()) >= 150


def test_examples_are_the_same_on_every_build():
    assert shipped_examples() == shipped_examples()


def test_no_example_repeats_or_is_blank():
    examples = shipped_examples()

    assert len(set(examples)) == len(examples)
    assert all(text.strip() == text and text for text, _ in examples)
    assert not [text for text, _ in examples if "<" in text and ">" in text]


@pytest.mark.parametrize("split", ["train", "test"])
def test_no_example_is_a_bitext_sentence(split):
    path = shared_data(f"assistant/bitext/{split}.csv")
    with path.open(newline="") as file:
        bitext = {normalize(row["utterance"]) for row in csv.DictReader(file)}

    examples = shipped_examples()
    same = [text for text, _ in examples if normalize(text) in bitext]

    # Generic requests ("order status", "how to report a payment problem") are bound to
    # coincide now and then; a copied corpus would show up by the hundreds.
    assert len(same) < len(examples) / 1000, same


@pytest.mark.parametrize(
    ("action", "gerund"),
    [
        pytest.param("cancel my order", "cancelling my order", id="irregular_case"),
        pytest.param("set up an address", "setting up an address", id="doubled_case"),
        pytest.param("change my address", "changing my address", id="silent_e_case"),
        pytest.param("see my invoices", "seeing my invoices", id="double_e_case"),
        pytest.param("track my parcel", "tracking my parcel", id="plain_case"),
        pytest.param("register", "registering", id="single_word_case"),
    ],
)
def test_gerund_phrase(action, gerund):
    assert gerund_phrase(action) == gerund


def test_noise_keeps_the_message_recognisable_and_is_seeded():
    text = "please tell me where is my package, I haven't received it"

    first = make_noisy(random.Random(3), text)

    assert first == make_noisy(random.Random(3), text)
    assert first != text
    assert len(first.split()) >= len(text.split()) - 4
