"""The intent classifier: training, predicting, saving without pickle, and the model cache."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from parley.assistant import classifier as classifier_module
from parley.assistant.classifier import (
    STORE_MODEL_FILE,
    SVM_C,
    IntentClassifier,
    Prediction,
    load_classifier,
    load_shipped_classifier,
)
from parley.assistant.features import char_ngrams, word_ngrams
from parley.assistant.intents import Intent

DATA = Path(__file__).parent / "data"

SMALL = [
    ("where is my parcel", "track_order"),
    ("track my package", "track_order"),
    ("has my order shipped", "track_order"),
    ("cancel my order", "cancel_order"),
    ("please cancel the purchase", "cancel_order"),
    ("I want to cancel", "cancel_order"),
    ("hello", "greeting"),
    ("hi there", "greeting"),
]


def _shopper_texts() -> list[str]:
    with (DATA / "shopper_messages.csv").open(newline="") as file:
        return [row["utterance"] for row in csv.DictReader(file)]


def test_saved_and_loaded_model_predicts_exactly_like_the_trained_one(shipped, tmp_path):
    texts = _shopper_texts()
    path = tmp_path / "model.npz"

    shipped.save(path)
    loaded = IntentClassifier.load(path)

    assert loaded.classes == shipped.classes
    assert loaded.predict_many(texts) == shipped.predict_many(texts)
    assert [loaded.scores(text).tolist() for text in texts[:20]] == [
        shipped.scores(text).tolist() for text in texts[:20]
    ]


def test_saved_model_holds_no_pickled_objects(tmp_path):
    path = tmp_path / "model.npz"

    IntentClassifier.train(SMALL).save(path)

    with np.load(path, allow_pickle=False) as data:
        dtypes = {name: data[name].dtype for name in data.files}
    assert all(dtype != np.dtype(object) for dtype in dtypes.values())
    assert set(dtypes) == {
        "meta",
        "coefficients",
        "intercepts",
        "char_terms",
        "char_idf",
        "word_terms",
        "word_idf",
    }


def _saved_terms(path: Path) -> dict[str, list[str]]:
    with np.load(path, allow_pickle=False) as data:
        return {
            name.removesuffix("_terms"): data[name].tobytes().decode().split("\n")
            for name in data.files
            if name.endswith("_terms")
        }


def test_a_word_only_one_labelled_message_holds_is_not_kept_in_the_saved_model(tmp_path):
    """A store's model learns from its customers' messages as agents labelled them, and
    an erasure cannot reach the file: what one message alone says (a name, an address)
    never becomes one of its terms. A word two messages share is learnt."""
    labelled = [
        ("Ada Lovelace here: where is my parcel, ada@example.com", "track_order"),
        ("zingwhistle points balance please", "loyalty_balance"),
        ("how many zingwhistle points", "loyalty_balance"),
    ]
    path = tmp_path / STORE_MODEL_FILE

    IntentClassifier.train(classifier_module.shipped_examples() + labelled).save(path)

    terms = _saved_terms(path)
    assert "lovelace" not in terms["word"]
    assert not [term for term in terms["char"] if "@exa" in term or "ovela" in term]
    assert "zingwhistle" in terms["word"]
    assert "zingwhistle points" in terms["word"]


def test_load_refuses_a_file_that_needs_unpickling(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, meta=np.array([{"format": 1}], dtype=object))

    with pytest.raises(ValueError, match="allow_pickle"):
        IntentClassifier.load(path)


def test_load_refuses_another_model_format(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    IntentClassifier.train(SMALL).save(path)
    monkeypatch.setattr(classifier_module, "MODEL_FORMAT", 999)

    with pytest.raises(ValueError, match="model format 1, expected 999"):
        IntentClassifier.load(path)


def test_scores_equal_the_scikit_learn_pipeline_it_was_fitted_with():
    settings = classifier_module.TRAINING_SETTINGS
    texts = [text for text, _ in SMALL]
    labels = [label for _, label in SMALL]
    vectorizers = [
        TfidfVectorizer(
            analyzer=functools.partial(analyzer, settings=settings),
            sublinear_tf=True,
            min_df=settings.min_df,
        )
        for analyzer in (char_ngrams, word_ngrams)
    ]
    matrix = hstack([vectorizer.fit_transform(texts) for vectorizer in vectorizers]).tocsr()
    svm = LinearSVC(C=SVM_C, random_state=0).fit(matrix, labels)
    probes = ["wer is my parcle", "cancel it pls", "hey", "zzz", "my order 123 where"]

    expected = svm.decision_function(
        hstack([vectorizer.transform(probes) for vectorizer in vectorizers]).tocsr()
    )
    trained = IntentClassifier.train(SMALL)

    assert np.allclose([trained.scores(text) for text in probes], expected, rtol=0, atol=1e-9)


def test_two_intents_each_get_their_own_score():
    trained = IntentClassifier.train(SMALL[:6])

    assert trained.classes == (Intent.CANCEL_ORDER, Intent.TRACK_ORDER)
    assert trained.predict("where is my package").intent is Intent.TRACK_ORDER
    assert trained.predict("cancel the order").intent is Intent.CANCEL_ORDER


def test_training_rejects_a_label_that_is_not_an_intent():
    with pytest.raises(ValueError, match="'where_is_it' is not a valid Intent"):
        IntentClassifier.train([*SMALL, ("where is it", "where_is_it")])


def test_training_needs_two_intents():
    with pytest.raises(ValueError, match="at least two intents"):
        IntentClassifier.train(SMALL[:3])


def test_a_message_with_no_known_feature_still_gets_a_prediction():
    trained = IntentClassifier.train(SMALL)

    prediction = trained.predict("")

    assert prediction.intent in trained.classes
    assert 0.0 < prediction.confidence < 1.0


def test_load_classifier_prefers_the_store_model(shipped_model_dir, tmp_path):
    for cached in shipped_model_dir.glob("shipped-*.npz"):
        (tmp_path / cached.name).write_bytes(cached.read_bytes())
    IntentClassifier.train(SMALL).save(tmp_path / STORE_MODEL_FILE)

    assert load_classifier(tmp_path).classes == (
        Intent.CANCEL_ORDER,
        Intent.GREETING,
        Intent.TRACK_ORDER,
    )
    assert len(load_shipped_classifier(tmp_path).classes) == len(Intent)


def test_shipped_model_is_cached_and_stale_caches_are_removed(shipped_model_dir, monkeypatch):
    def refuse_to_train(*args, **kwargs):
        raise AssertionError("the cached model should have been loaded")

    monkeypatch.setattr(IntentClassifier, "train", refuse_to_train)

    classifier = load_classifier(shipped_model_dir)

    assert len(classifier.classes) == len(Intent)
    assert len(list(shipped_model_dir.glob("shipped-*.npz"))) == 1
    assert not (shipped_model_dir / "shipped-0000000000000000.npz").exists()


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        pytest.param("wer is my parcel", Intent.TRACK_ORDER, id="abbreviated_case"),
        pytest.param("refund??", Intent.GET_REFUND, id="one_word_case"),
        pytest.param("pls cancel my order", Intent.CANCEL_ORDER, id="pls_case"),
        pytest.param("WHERE IS MY ORDER", Intent.TRACK_ORDER, id="all_caps_case"),
        pytest.param("donde esta mi pedido", Intent.TRACK_ORDER, id="spanish_case"),
        pytest.param("mera order kahan hai", Intent.TRACK_ORDER, id="hinglish_case"),
        pytest.param("cancle my oder 12345", Intent.CANCEL_ORDER, id="typos_case"),
        pytest.param("hw do i get my money back", Intent.GET_REFUND, id="hw_case"),
        pytest.param("is this jacket waterproof", Intent.PRODUCT_QUESTION, id="product_case"),
        pytest.param("what size should I get, I'm 5'8 170lbs", Intent.SIZING, id="sizing_case"),
        pytest.param("can I return this", Intent.RETURN_ITEM, id="return_case"),
        pytest.param("exchange for a bigger size", Intent.RETURN_ITEM, id="exchange_case"),
        pytest.param("how many points do I have", Intent.LOYALTY_BALANCE, id="loyalty_case"),
        pytest.param("talk to a human pls", Intent.CONTACT_HUMAN_AGENT, id="human_case"),
        pytest.param("hiii", Intent.GREETING, id="greeting_case"),
        pytest.param("thx 🙏", Intent.THANKS, id="thanks_case"),
        pytest.param("hi, where is my refund?", Intent.TRACK_REFUND, id="greeting_first_case"),
        pytest.param("tell me a joke", Intent.OUT_OF_SCOPE, id="joke_case"),
        pytest.param("asdfgh", Intent.OUT_OF_SCOPE, id="gibberish_case"),
    ],
)
def test_noisy_shopper_messages_are_understood(shipped, text, intent):
    prediction = shipped.predict(text)

    assert prediction.intent is intent
    assert 0.0 < prediction.confidence <= 1.0


def test_a_clear_message_is_confident_and_a_vague_one_is_not(shipped):
    assert shipped.predict("where is my order").confidence > 0.9
    assert shipped.predict("need help").confidence < 0.5


def test_predict_many_keeps_the_order(shipped):
    texts = ["cancel my order", "hello", "where is my parcel"]

    assert shipped.predict_many(texts) == [shipped.predict(text) for text in texts]
    assert [prediction.intent for prediction in shipped.predict_many(texts)] == [
        Intent.CANCEL_ORDER,
        Intent.GREETING,
        Intent.TRACK_ORDER,
    ]
    assert isinstance(shipped.predict_many(texts)[0], Prediction)
