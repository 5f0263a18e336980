"""``parley assistant``: classify messages, measure a model, train a store's own model."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from parley.assistant.classifier import (
    STORE_MODEL_FILE,
    IntentClassifier,
    load_classifier,
    load_shipped_classifier,
    shipped_examples,
)
from parley.assistant.evaluation import evaluate, format_report
from parley.assistant.labelled import read_labelled_csv
from parley.errors import Invalid
from parley.preflight import migrated_database, settings_or_exit

assistant_app = typer.Typer(help="The assistant's intent classifier.", no_args_is_help=True)

ModelDirOption = Annotated[
    Path | None, typer.Option(help="Default: PARLEY_ASSISTANT_MODEL_DIR (var/assistant)")
]
CsvOption = Annotated[
    Path,
    typer.Option(
        "--csv", exists=True, dir_okay=False, help="Columns utterance,intent (others ignored)"
    ),
]


def _model_dir(option: Path | None) -> Path:
    return option if option is not None else settings_or_exit().assistant_model_dir


def _read_csv(path: Path) -> list[tuple[str, str]]:
    """The CSV's rows, or exit 2 with the reason (unknown labels, missing columns)."""
    try:
        return read_labelled_csv(path)
    except Invalid as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc


@assistant_app.command()
def classify(model_dir: ModelDirOption = None) -> None:
    """Classify stdin, one message a line, into JSON lines: text, intent, confidence."""
    classifier = load_classifier(_model_dir(model_dir))
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        prediction = classifier.predict(text)
        record = {
            "text": text,
            "intent": prediction.intent.value,
            "confidence": round(prediction.confidence, 4),
        }
        typer.echo(json.dumps(record, ensure_ascii=False))


@assistant_app.command("eval")
def evaluate_command(
    csv: CsvOption,
    model_dir: ModelDirOption = None,
    shipped: Annotated[
        bool, typer.Option(help="Measure the shipped model, even if the store has its own")
    ] = False,
) -> None:
    """Print accuracy, macro-F1, the worst confusions and latency on a labelled CSV."""
    examples = _read_csv(csv)
    directory = _model_dir(model_dir)
    classifier = load_shipped_classifier(directory) if shipped else load_classifier(directory)
    typer.echo(format_report(evaluate(classifier, examples)))


@assistant_app.command()
def train(
    csv: Annotated[
        Path | None,
        typer.Option(
            "--csv", exists=True, dir_okay=False, help="Columns utterance,intent (others ignored)"
        ),
    ] = None,
    workspace: Annotated[
        str | None,
        typer.Option(help="Also learn from this store's conversations, as agents labelled them"),
    ] = None,
    model_dir: ModelDirOption = None,
    replace: Annotated[
        bool, typer.Option(help="Train on the given examples alone, without the shipped ones")
    ] = False,
) -> None:
    """Train the store's own model on labelled examples (plus the shipped examples)."""
    if csv is None and workspace is None:
        typer.echo("error: give --csv FILE, --workspace SLUG, or both", err=True)
        raise typer.Exit(2)
    labelled = _read_csv(csv) if csv is not None else []
    if workspace is not None:
        labelled += _conversation_labels(workspace)
    examples = labelled if replace else shipped_examples() + labelled
    try:
        classifier = IntentClassifier.train(examples)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    path = _model_dir(model_dir) / STORE_MODEL_FILE
    classifier.save(path)
    sources = " and ".join(
        str(source) for source in (csv, workspace and f"workspace {workspace}") if source
    )
    typer.echo(
        f"trained on {len(examples)} examples ({len(labelled)} from {sources}), "
        f"{len(classifier.classes)} intents: {path}"
    )


def _conversation_labels(slug: str) -> list[tuple[str, str]]:
    """The customer messages agents labelled in this workspace's conversations."""
    from parley.inbox import service as inbox
    from parley.workspaces import service as workspaces

    db = migrated_database(settings_or_exit())
    try:
        with db.transaction() as session:
            found = workspaces.find_workspace(session, slug=slug)
            if found is None:
                typer.echo(f"error: no workspace {slug!r}", err=True)
                raise typer.Exit(2)
            return inbox.labelled_messages(session, workspace_id=found.id)
    finally:
        db.dispose()
