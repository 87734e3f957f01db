"""Running an example script from a test: ``run_example(name, epochs)``.

It imports ``examples/<name>.py`` (conftest.py puts ``examples/`` on the path), seeds every
generator rnnkit draws from, and returns what the script's ``main(epochs=...)`` returns.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from rnnkit.utils import set_random_seed

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SEED = 0


def run_example(name: str, epochs: int | None) -> dict:
    """``examples/<name>.py``'s ``main(epochs=epochs)``, after seeding Python, NumPy and torch."""
    module = importlib.import_module(name)
    set_random_seed(SEED)
    started = time.process_time()
    results = module.main(epochs=epochs)
    # Shown by pytest -rP; examples/README.md quotes these values and CPU times.
    print(f"{name} (epochs={epochs}, {time.process_time() - started:.1f} s CPU): {results}")
    return results
