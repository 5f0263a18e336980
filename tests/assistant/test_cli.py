"""``parley assistant classify | eval | train``, run in-process through Typer's runner."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from parley.assistant.classifier import STORE_MODEL_FILE, IntentClassifier
from parley.assistant.intents import Intent
from parley.cli import app


@pytest.fixture
def model_dir(shipped_model_dir, tmp_path):
    """A model directory of this test's own, with the shipped model already cached."""
    directory = tmp_path / "models"
    shutil.copytree(shipped_model_dir, directory)
    return directory


@pytest.fixture
def invoke(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None):
        return runner.invoke(app, ["assistant", *args], input=stdin)

    return run


def _write_csv(path, rows):
    path.write_text(
        "utterance,intent,category\n" + "".join(f"{text},{intent},X\n" for text, intent in rows)
    )
    return path


def test_classify_writes_one_json_line_per_message_and_skips_blank_lines(invoke, model_dir):
    result = invoke(
        "classify", "--model-dir", str(model_dir), stdin="wer is my parcel\n\n  \nrefund??\n"
    )

    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(record["text"], record["intent"]) for record in records] == [
        ("wer is my parcel", "track_order"),
        ("refund??", "get_refund"),
    ]
    assert all(set(record) == {"text", "intent", "confidence"} for record in records)
    assert all(0.0 < record["confidence"] <= 1.0 for record in records)
    assert all(round(record["confidence"], 4) == record["confidence"] for record in records)


def test_classify_reads_the_model_dir_from_the_settings(invoke, tmp_path, monkeypatch):
    store_dir = tmp_path / "from-env"
    IntentClassifier.train(
        [("hello", "greeting"), ("hi", "greeting"), ("bye", "thanks"), ("thanks", "thanks")]
    ).save(store_dir / STORE_MODEL_FILE)
    monkeypatch.setenv("PARLEY_ASSISTANT_MODEL_DIR", str(store_dir))

    result = invoke("classify", stdin="where is my parcel\n")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["intent"] in {"greeting", "thanks"}
    assert sorted(path.name for path in store_dir.iterdir()) == [STORE_MODEL_FILE]


def test_eval_prints_accuracy_macro_f1_confusions_and_latency(invoke, model_dir, tmp_path):
    csv_path = _write_csv(
        tmp_path / "labelled.csv",
        [
            ("where is my parcel", "track_order"),
            ("cancel my order", "cancel_order"),
            ("hello", "track_order"),
        ],
    )

    result = invoke("eval", "--csv", str(csv_path), "--model-dir", str(model_dir))

    assert result.exit_code == 0, result.output
    assert "messages:    3" in result.stdout
    assert "accuracy:    66.67%" in result.stdout
    assert re.search(r"^macro-F1:    0\.\d{4}$", result.stdout, re.MULTILINE)
    assert re.search(r"^latency p50: \d+\.\d{3} ms$", result.stdout, re.MULTILINE)
    assert re.search(r"^latency p99: \d+\.\d{3} ms$", result.stdout, re.MULTILINE)
    assert "  track_order -> greeting: 1" in result.stdout


def test_train_makes_the_store_model_the_one_used(invoke, model_dir, tmp_path):
    phrase = "blorptastic zingwhistle"
    csv_path = _write_csv(
        tmp_path / "store.csv",
        [(f"{phrase} {n}", "loyalty_balance") for n in range(5)]
        + [(f"{phrase} bonanza {n}", "loyalty_balance") for n in range(5)],
    )
    before = invoke("classify", "--model-dir", str(model_dir), stdin=f"{phrase}\n")

    trained = invoke("train", "--csv", str(csv_path), "--model-dir", str(model_dir))
    after = invoke("classify", "--model-dir", str(model_dir), stdin=f"{phrase}\n")
    shipped = invoke("eval", "--csv", str(csv_path), "--model-dir", str(model_dir), "--shipped")

    assert json.loads(before.stdout)["intent"] == "out_of_scope"
    assert trained.exit_code == 0, trained.output
    assert f"10 from {csv_path}), {len(Intent)} intents" in trained.stdout
    assert json.loads(after.stdout)["intent"] == "loyalty_balance"
    assert "accuracy:    0.00%" in shipped.stdout


def test_train_with_replace_learns_the_csv_alone(invoke, model_dir, tmp_path):
    csv_path = _write_csv(
        tmp_path / "store.csv",
        [("where is my parcel", "track_order"), ("cancel it", "cancel_order")],
    )

    result = invoke("train", "--csv", str(csv_path), "--model-dir", str(model_dir), "--replace")

    assert result.exit_code == 0, result.output
    assert "trained on 2 examples" in result.stdout
    assert IntentClassifier.load(model_dir / STORE_MODEL_FILE).classes == (
        Intent.CANCEL_ORDER,
        Intent.TRACK_ORDER,
    )


def test_train_names_unknown_labels_and_writes_nothing(invoke, model_dir, tmp_path):
    csv_path = _write_csv(
        tmp_path / "store.csv",
        [("where is my parcel", "wismo"), ("cancel it", "cancel_order"), ("hm", "Greeting")],
    )

    result = invoke("train", "--csv", str(csv_path), "--model-dir", str(model_dir))

    assert result.exit_code == 2
    assert "unknown intent label(s): Greeting, wismo" in result.stderr
    assert not (model_dir / STORE_MODEL_FILE).exists()


def test_eval_refuses_a_csv_without_the_intent_column(invoke, model_dir, tmp_path):
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("utterance,label\nhello,greeting\n")

    result = invoke("eval", "--csv", str(csv_path), "--model-dir", str(model_dir))

    assert result.exit_code == 2
    assert "missing column(s) intent" in result.stderr
