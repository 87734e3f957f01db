"""The synthetic dates task: determinism, correctness of every format, and its encoding."""

from __future__ import annotations

import datetime
import re

import numpy as np
import pytest

from rnnkit.seq2seq import decode_ids, make_dates, random_dates, special_ids
from rnnkit.seq2seq.dates import FORMATS, MONTHS, SOURCE_ALPHABET


def _parse(source: str) -> datetime.date:
    """An independent reading of the formats: numbers, month names, and the stated conventions."""
    text = source.lower()
    month = next((i + 1 for i, name in enumerate(MONTHS) if name[:3].lower() in text), None)
    numbers = [int(n) for n in re.findall(r"\d+", re.sub(r"(\d)(st|nd|rd|th)", r"\1", text))]
    if month is None:
        if len(numbers) == 1:  # yyyymmdd
            value = str(numbers[0])
            return datetime.date(int(value[:4]), int(value[4:6]), int(value[6:]))
        if "/" in text and numbers[0] > 31:
            year, month, day = numbers
        elif "/" in text:
            month, day, year = numbers
        elif "." in text:
            day, month, year = numbers
        else:
            year, month, day = numbers
    else:
        day, year = numbers
    if year < 100:
        year += 1900 if year >= 50 else 2000
    return datetime.date(year, month, day)


def test_every_format_writes_the_date_its_target_names():
    pairs = random_dates(3000, seed=7)
    for source, target in pairs:
        assert _parse(source).isoformat() == target, source
        assert set(source) <= set(SOURCE_ALPHABET)
    weekday = datetime.date(2021, 3, 3)
    assert FORMATS["Weekday, Month dth yyyy"](weekday) == "Wednesday, March 3rd 2021"
    assert FORMATS["Mon d, yy"](weekday) == "Mar 3, 21"


def test_the_same_seed_gives_the_same_data_and_another_seed_other_data():
    first, again, other = make_dates(200, seed=3), make_dates(200, seed=3), make_dates(200, seed=4)
    assert first.pairs == again.pairs
    np.testing.assert_array_equal(first.src, again.src)
    assert first.pairs != other.pairs
    assert first.source_vocab.tokens == other.source_vocab.tokens  # fixed alphabets


def test_all_formats_and_the_whole_date_range_are_used():
    pairs = random_dates(4000, seed=0)
    years = [int(target[:4]) for _, target in pairs]
    assert min(years) < 1955 and max(years) > 2045
    some_per_format = random_dates(60, seed=0, formats=["yyyymmdd"])
    assert all(re.fullmatch(r"\d{8}", source) for source, _ in some_per_format)
    with pytest.raises(ValueError, match="formats: expected names from"):
        random_dates(5, formats=["dd/mm/yyyy"])


def test_arrays_encode_the_text_with_the_model_s_special_ids():
    data = make_dates(50, seed=1)
    assert special_ids(data.target_vocab) == {"pad_id": 0, "bos_id": 1, "eos_id": 2}
    assert special_ids(data.source_vocab) == {"pad_id": 0, "bos_id": 1, "eos_id": 2}
    assert data.tgt_in.shape == data.tgt_out.shape == (50, 11)
    assert np.all(data.tgt_in[:, 0] == 1) and np.all(data.tgt_out[:, -1] == 2)
    np.testing.assert_array_equal(data.tgt_in[:, 1:], data.tgt_out[:, :-1])
    for row, (source, target) in enumerate(data.pairs):
        assert decode_ids(data.source_vocab, data.src[row]) == source
        assert decode_ids(data.target_vocab, data.tgt_out[row]) == target
    lengths = (data.src != 0).sum(1)
    assert lengths.max() == data.src.shape[1] and lengths.min() < lengths.max()
