"""How good and how fast a classifier is on labelled messages.

Latency is measured the way the assistant runs: one message at a time, on one thread, so
p99 is what a shopper waits on a bad message, not a batch average.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from parley.assistant.classifier import IntentClassifier


@dataclass(frozen=True)
class Confusion:
    """How often messages of one intent were taken for another."""

    expected: str
    predicted: str
    count: int


@dataclass(frozen=True)
class Evaluation:
    """Accuracy, macro-F1, the worst confusions and per-message latency on a labelled set."""

    total: int
    accuracy: float
    macro_f1: float
    confusions: tuple[Confusion, ...]
    latency_p50_ms: float
    latency_p99_ms: float


def evaluate(
    classifier: IntentClassifier, examples: Sequence[tuple[str, str]], *, worst: int = 10
) -> Evaluation:
    """Classify every (text, expected intent) pair and measure the result.

    Macro-F1 averages over the intents the set expects: an intent the set never contains
    has no recall to measure, and predicting it wrongly already costs the expected one.
    """
    if not examples:
        raise ValueError("nothing to evaluate: no labelled examples")
    predicted: list[str] = []
    latencies = []
    for text, _ in examples:
        started = time.perf_counter()
        prediction = classifier.predict(text)
        latencies.append(time.perf_counter() - started)
        predicted.append(prediction.intent.value)
    expected = [label for _, label in examples]
    pairs = Counter(zip(expected, predicted, strict=True))
    right = sum(count for (truth, guess), count in pairs.items() if truth == guess)
    confusions = sorted(
        (
            Confusion(truth, guess, count)
            for (truth, guess), count in pairs.items()
            if truth != guess
        ),
        key=lambda confusion: (-confusion.count, confusion.expected, confusion.predicted),
    )
    milliseconds = np.array(latencies) * 1000.0
    return Evaluation(
        total=len(examples),
        accuracy=right / len(examples),
        macro_f1=_macro_f1(expected, predicted),
        confusions=tuple(confusions[:worst]),
        latency_p50_ms=float(np.percentile(milliseconds, 50)),
        latency_p99_ms=float(np.percentile(milliseconds, 99)),
    )


def _macro_f1(expected: Sequence[str], predicted: Sequence[str]) -> float:
    actual = Counter(expected)
    guessed = Counter(predicted)
    hits = Counter(
        truth for truth, guess in zip(expected, predicted, strict=True) if truth == guess
    )
    return sum(2 * hits[label] / (actual[label] + guessed[label]) for label in actual) / len(actual)


def format_report(evaluation: Evaluation) -> str:
    """The evaluation as a few aligned lines for a terminal."""
    lines = [
        f"messages:    {evaluation.total}",
        f"accuracy:    {evaluation.accuracy:.2%}",
        f"macro-F1:    {evaluation.macro_f1:.4f}",
        f"latency p50: {evaluation.latency_p50_ms:.3f} ms",
        f"latency p99: {evaluation.latency_p99_ms:.3f} ms",
    ]
    if evaluation.confusions:
        width = max(len(confusion.expected) for confusion in evaluation.confusions)
        lines.append("worst confusions (expected -> predicted: count):")
        lines += [
            f"  {confusion.expected:<{width}} -> {confusion.predicted}: {confusion.count}"
            for confusion in evaluation.confusions
        ]
    else:
        lines.append("worst confusions: none")
    return "\n".join(lines)
