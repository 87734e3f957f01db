"""rnnkit.data: windows, scalers, splits, tokenizers and offline data sets for the apps.

Everything here works on NumPy arrays and Python lists; ``datasets`` returns pandas objects
and needs the package that ships each data set (see ``docs/datasets.md``).
"""

from rnnkit.data.datasets import (
    DATASETS,
    DatasetInfo,
    DatasetNotInstalledError,
    TaggedSentences,
    dataset_info,
    list_datasets,
    load_corpus,
    load_parallel,
    load_series,
    load_tagging,
    load_text_classification,
)
from rnnkit.data.scalers import MinMaxScaler, StandardScaler, get_scaler, scaler_from_config
from rnnkit.data.splits import TimeSplit, time_split
from rnnkit.data.streaming import WindowStream
from rnnkit.data.text import Tokenizer, pad_sequences
from rnnkit.data.vocabulary import Vocabulary
from rnnkit.data.windows import make_windows

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetNotInstalledError",
    "MinMaxScaler",
    "StandardScaler",
    "TaggedSentences",
    "TimeSplit",
    "Tokenizer",
    "Vocabulary",
    "WindowStream",
    "dataset_info",
    "get_scaler",
    "list_datasets",
    "load_corpus",
    "load_parallel",
    "load_series",
    "load_tagging",
    "load_text_classification",
    "make_windows",
    "pad_sequences",
    "scaler_from_config",
    "time_split",
]
