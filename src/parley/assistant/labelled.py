"""Labelled messages from a CSV file: what ``parley assistant eval`` and ``train`` read.

The file has a header with at least ``utterance`` and ``intent``; other columns (such as
Bitext's ``category``) are ignored, so a store can export its conversations as they are.
"""

from __future__ import annotations

import csv
from pathlib import Path

from parley.assistant.intents import Intent
from parley.errors import Invalid

REQUIRED_COLUMNS = ("utterance", "intent")


def read_labelled_csv(path: Path) -> list[tuple[str, str]]:
    """Every (utterance, intent) row; blank utterances are skipped.

    Raises ``Invalid`` naming every label that is not an :class:`Intent`, so a typo in a
    store's export is fixed once instead of one failed run at a time.
    """
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        missing = [name for name in REQUIRED_COLUMNS if name not in (reader.fieldnames or ())]
        if missing:
            raise Invalid(f"{path}: missing column(s) {', '.join(missing)}")
        rows = [
            (row["utterance"].strip(), row["intent"].strip())
            for row in reader
            if (row["utterance"] or "").strip()
        ]
    known = {intent.value for intent in Intent}
    unknown = sorted({label for _, label in rows} - known)
    if unknown:
        raise Invalid(f"{path}: unknown intent label(s): {', '.join(unknown)}")
    return rows
