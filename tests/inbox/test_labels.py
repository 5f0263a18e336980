"""Agents correct what the assistant understood; the store's model learns from it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from parley.assistant.classifier import STORE_MODEL_FILE, IntentClassifier
from parley.channels.base import ChannelKind
from parley.cli import app
from parley.errors import Invalid
from parley.inbox import service as inbox
from parley.inbox.models import AssistantTurn
from support import all_adapters, customer_writes, drain, inbox_worker, rows, seed

ADA = "+447911123456"


def _labelled(db, tmp_path) -> int:
    workspace_id = seed(db)
    worker = inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path)
    customer_writes(db, channel=ChannelKind.WHATSAPP, sender=ADA, text="hello")
    drain(worker)
    (turn,) = rows(db, AssistantTurn)
    with db.transaction() as session:
        inbox.label_turn(session, workspace_id=workspace_id, turn_id=turn.id, intent="greeting")
    return workspace_id


def test_a_labelled_turn_becomes_a_training_example(db, tmp_path):
    workspace_id = _labelled(db, tmp_path)
    with db.transaction() as session:
        assert inbox.labelled_messages(session, workspace_id=workspace_id) == [
            ("hello", "greeting")
        ]


def test_an_unknown_label_is_refused(db, tmp_path):
    workspace_id = _labelled(db, tmp_path)
    (turn,) = rows(db, AssistantTurn)
    with db.transaction() as session, pytest.raises(Invalid, match="unknown intent"):
        inbox.label_turn(session, workspace_id=workspace_id, turn_id=turn.id, intent="weather")
    assert rows(db, AssistantTurn)[0].label == "greeting"


def test_assistant_train_learns_from_a_workspaces_labelled_conversations(db, tmp_path, monkeypatch):
    _labelled(db, tmp_path)
    monkeypatch.setenv("PARLEY_DATABASE_URL", db.url)
    model_dir = tmp_path / "model"
    result = CliRunner().invoke(
        app, ["assistant", "train", "--workspace", "demo", "--model-dir", str(model_dir)]
    )
    assert result.exit_code == 0, result.output
    assert "1 from workspace demo" in result.output
    model = IntentClassifier.load(model_dir / STORE_MODEL_FILE)
    assert model.predict("hello").intent == "greeting"


def test_assistant_train_needs_something_to_learn_from(tmp_path):
    result = CliRunner().invoke(app, ["assistant", "train", "--model-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--csv FILE, --workspace SLUG" in result.output
