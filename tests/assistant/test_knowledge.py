"""The store-policy search: scikit-learn's TF-IDF scores, computed without importing it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

from parley.assistant.knowledge import KnowledgeBase, Passage, char_terms, passages_of
from parley.demo.seed import KNOWLEDGE

QUESTIONS = [
    "can I return my jumper?",
    "wat is ur retrun polcy",
    "how long does delivery take to Canada",
    "Do you take Apple Pay?",
    "I forgot my password",
    "does the Trail Runner 2 run small",
    "¿Dónde está mi pedido #1042?",
    "how do i wash merino",
    "!!!",
    "a",
]


def scikit_learn_scores(passages: list[Passage], query: str) -> list[float]:
    """What the index computed when it called scikit-learn (parley 0.1 to this change)."""
    union = FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5))),
        ]
    )
    matrix = union.fit_transform([f"{p.source}. {p.text}" for p in passages])
    return list((matrix @ union.transform([query]).T).toarray().ravel() / 2)


@pytest.mark.parametrize("question", QUESTIONS)
def test_scores_are_scikit_learns_on_the_demo_policies(question):
    passages = passages_of([dict(section) for section in KNOWLEDGE])

    assert KnowledgeBase(passages).scores(question) == pytest.approx(
        scikit_learn_scores(passages, question), abs=1e-12
    )


WORDY = st.text(
    alphabet=st.sampled_from("abcdeéfgh ijk  lmnoö0123\n\t.,'!-ß"), min_size=1, max_size=60
)


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(WORDY, min_size=1, max_size=6), query=WORDY)
def test_scores_are_scikit_learns_for_any_text(texts, query):
    passages = [Passage(source="Policy", text=text) for text in texts]

    assert KnowledgeBase(passages).scores(query) == pytest.approx(
        scikit_learn_scores(passages, query), abs=1e-12
    )


def test_a_word_shorter_than_an_n_gram_counts_once_whole():
    assert char_terms("I") == [" i "]
    assert char_terms("Go") == [" go", "go ", " go "]


def test_a_misspelt_question_still_finds_the_returns_policy():
    found = KnowledgeBase(passages_of([dict(section) for section in KNOWLEDGE])).search(
        "wat is ur retrun polcy"
    )

    assert found is not None
    assert found.passage.source == "Returns policy"


def test_a_question_no_policy_covers_finds_nothing():
    knowledge = KnowledgeBase(passages_of([dict(section) for section in KNOWLEDGE]))

    assert knowledge.search("zzz qqq") is None
    assert knowledge.search("   ") is None
    assert KnowledgeBase([]).search("returns") is None
