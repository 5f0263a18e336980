"""The shipped model, trained once per test session into a temporary model directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.assistant.classifier import IntentClassifier, load_shipped_classifier

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def shipped_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory holding the cached shipped model and nothing else.

    A stale cache file from an older set of examples is planted first, so the tests can
    check that building the current model removes it.
    """
    directory = tmp_path_factory.mktemp("assistant-model")
    (directory / "shipped-0000000000000000.npz").write_bytes(b"stale")
    load_shipped_classifier(directory)
    return directory


@pytest.fixture(scope="session")
def shipped(shipped_model_dir: Path) -> IntentClassifier:
    return load_shipped_classifier(shipped_model_dir)
