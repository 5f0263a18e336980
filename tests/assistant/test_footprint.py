"""What a serving process keeps in memory for the assistant."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from parley.assistant.classifier import _SHIPPED_PREFIX


def test_serving_never_imports_scikit_learn_even_when_it_trains_the_shipped_model(
    tmp_path: Path,
):
    """scikit-learn and SciPy cost a process about 77 MB: only a training child loads them."""
    model_dir = tmp_path / "assistant"
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, pathlib, parley.http.app, parley.cli\n"
            "from parley.assistant.classifier import load_classifier\n"
            "model = load_classifier(pathlib.Path(sys.argv[1]))\n"
            "print(model.predict('where is my parcel').intent.value)\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}))",
            str(model_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
    )

    assert loaded.stdout.split("\n")[:2] == ["track_order", "[]"], loaded.stderr
    assert len(list(model_dir.glob(f"{_SHIPPED_PREFIX}*.npz"))) == 1
