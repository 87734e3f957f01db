"""rnnkit.tasks: end-to-end pipelines on real data, one per ``rnnkit`` command.

Each pipeline is a library function taking data and a config dataclass (whose fields are the
command's flags) and returning a result with metrics, the trained model and its history. The
commands in :mod:`rnnkit.apps` only load data, call these and write artifacts.

- :mod:`~rnnkit.tasks.text_classification`: ``run_classification`` (``rnnkit classify``)
- :mod:`~rnnkit.tasks.tagging`: ``run_tagging`` (``rnnkit tag``)
- :mod:`~rnnkit.tasks.generation`: ``run_generation``, ``sample_text`` (``rnnkit generate``)
- :mod:`~rnnkit.tasks.comparison`: ``run_comparison`` (``rnnkit compare``)
"""

from rnnkit.tasks._common import CELLS, IndexSplit, random_split, recurrent_layer, subsample
from rnnkit.tasks.comparison import TASKS, CompareConfig, ComparisonResult, run_comparison
from rnnkit.tasks.generation import (
    GenerationResult,
    GeneratorConfig,
    load_generator,
    run_generation,
    sample_text,
    save_generator,
)
from rnnkit.tasks.tagging import TaggerConfig, TaggingResult, read_conll, run_tagging
from rnnkit.tasks.text_classification import (
    ClassificationResult,
    ClassifierConfig,
    read_csv_texts,
    run_classification,
)

__all__ = [
    "CELLS",
    "TASKS",
    "ClassificationResult",
    "ClassifierConfig",
    "CompareConfig",
    "ComparisonResult",
    "GenerationResult",
    "GeneratorConfig",
    "IndexSplit",
    "TaggerConfig",
    "TaggingResult",
    "load_generator",
    "random_split",
    "read_conll",
    "read_csv_texts",
    "recurrent_layer",
    "run_classification",
    "run_comparison",
    "run_generation",
    "run_tagging",
    "sample_text",
    "save_generator",
    "subsample",
]
