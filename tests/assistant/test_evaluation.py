"""Measuring a classifier: accuracy, macro-F1, confusions, latency, and the report."""

from __future__ import annotations

import pytest

from parley.assistant.classifier import Prediction
from parley.assistant.evaluation import Confusion, Evaluation, evaluate, format_report
from parley.assistant.intents import Intent


class ScriptedClassifier:
    """Answers from a table, so every figure of the evaluation is known in advance."""

    def __init__(self, answers: dict[str, Intent]) -> None:
        self.answers = answers

    def predict(self, text: str) -> Prediction:
        return Prediction(intent=self.answers[text], confidence=1.0)


def test_evaluate_counts_hits_confusions_and_macro_f1():
    classifier = ScriptedClassifier(
        {
            "a": Intent.TRACK_ORDER,
            "b": Intent.TRACK_ORDER,
            "c": Intent.TRACK_ORDER,
            "d": Intent.CANCEL_ORDER,
            "e": Intent.GREETING,
        }
    )
    examples = [
        ("a", "track_order"),
        ("b", "track_order"),
        ("c", "cancel_order"),
        ("d", "cancel_order"),
        ("e", "cancel_order"),
    ]

    result = evaluate(classifier, examples)  # type: ignore[arg-type]

    assert result.total == 5
    assert result.accuracy == pytest.approx(3 / 5)
    # track_order: P 2/3, R 1 -> F1 0.8; cancel_order: P 1, R 1/3 -> F1 0.5.
    assert result.macro_f1 == pytest.approx((0.8 + 0.5) / 2)
    assert result.confusions == (
        Confusion("cancel_order", "greeting", 1),
        Confusion("cancel_order", "track_order", 1),
    )
    assert 0.0 <= result.latency_p50_ms <= result.latency_p99_ms


def test_evaluate_refuses_an_empty_set():
    with pytest.raises(ValueError, match="no labelled examples"):
        evaluate(ScriptedClassifier({}), [])  # type: ignore[arg-type]


def test_report_shows_every_figure_and_the_confusions():
    evaluation = Evaluation(
        total=902,
        accuracy=0.95898,
        macro_f1=0.962,
        confusions=(Confusion("track_refund", "get_refund", 17),),
        latency_p50_ms=0.094,
        latency_p99_ms=0.177,
    )

    assert format_report(evaluation).splitlines() == [
        "messages:    902",
        "accuracy:    95.90%",
        "macro-F1:    0.9620",
        "latency p50: 0.094 ms",
        "latency p99: 0.177 ms",
        "worst confusions (expected -> predicted: count):",
        "  track_refund -> get_refund: 17",
    ]
