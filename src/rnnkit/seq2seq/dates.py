"""The default translation task: human-written dates to ISO 8601, character by character.

Dates are drawn uniformly from 1950-01-01 to 2049-12-31 and written in one of :data:`FORMATS`,
e.g. "3 March 2021", "Mar 3, 21", "03/03/2021", "Wednesday, March 3rd 2021"; the target is
"2021-03-03". Conventions that keep every source unambiguous: a slash means month/day/year (US),
a dot day.month.year; a two-digit year YY is 19YY from 50 and 20YY below. The same seed always
gives the same examples, and the vocabularies depend on nothing but the fixed alphabets.

Example:
    >>> data = make_dates(1000, seed=0)
    >>> data.pairs[0]                            # (source, target) strings
    >>> data.src.shape, data.tgt_in.shape        # (1000, S) and (1000, 11) int64 arrays
"""

from __future__ import annotations

import datetime
import random
import string
from collections.abc import Callable, Sequence

from rnnkit.data import Vocabulary
from rnnkit.seq2seq.vocab import Seq2SeqData, char_vocabulary, encode_pairs

FIRST_DATE = datetime.date(1950, 1, 1)
LAST_DATE = datetime.date(2049, 12, 31)
SOURCE_ALPHABET = string.ascii_letters + string.digits + " ,./-'"
TARGET_ALPHABET = string.digits + "-"


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


# Spelled out rather than taken from strftime, which follows the process locale.
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _month(d: datetime.date) -> str:
    return MONTHS[d.month - 1]


def _mon(d: datetime.date) -> str:
    return MONTHS[d.month - 1][:3]


def _weekday(d: datetime.date) -> str:
    return WEEKDAYS[d.weekday()]


def _yy(d: datetime.date) -> str:
    return f"{d.year % 100:02d}"


# Each format writes a date as people do; the comment shows 2021-03-03.
FORMATS: dict[str, Callable[[datetime.date], str]] = {
    "d Month yyyy": lambda d: f"{d.day} {_month(d)} {d.year}",  # 3 March 2021
    "dd Mon yyyy": lambda d: f"{d.day:02d} {_mon(d)} {d.year}",  # 03 Mar 2021
    "Mon d, yy": lambda d: f"{_mon(d)} {d.day}, {_yy(d)}",  # Mar 3, 21
    "Mon d, yyyy": lambda d: f"{_mon(d)} {d.day}, {d.year}",  # Mar 3, 2021
    "Month d, yyyy": lambda d: f"{_month(d)} {d.day}, {d.year}",  # March 3, 2021
    "MONTH d yyyy": lambda d: f"{_month(d).upper()} {d.day} {d.year}",  # MARCH 3 2021
    "month d yyyy": lambda d: f"{_month(d).lower()} {d.day} {d.year}",  # march 3 2021
    "mm/dd/yyyy": lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}",  # 03/03/2021
    "m/d/yy": lambda d: f"{d.month}/{d.day}/{_yy(d)}",  # 3/3/21
    "dd.mm.yyyy": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",  # 03.03.2021
    "d.m.yy": lambda d: f"{d.day}.{d.month}.{_yy(d)}",  # 3.3.21
    "Weekday, Month dth yyyy": lambda d: f"{_weekday(d)}, {_month(d)} {_ordinal(d.day)} "
                                         f"{d.year}",  # Wednesday, March 3rd 2021
    "Weekday d Month yyyy": lambda d: f"{_weekday(d)} {d.day} {_month(d)} {d.year}",
    "Wkd, d Mon yyyy": lambda d: f"{_weekday(d)[:3]}, {d.day} {_mon(d)} {d.year}",  # Wed, 3 Mar
    "dth of Month yyyy": lambda d: f"{_ordinal(d.day)} of {_month(d)} {d.year}",  # 3rd of March
    "the dth of Month, yyyy": lambda d: f"the {_ordinal(d.day)} of {_month(d)}, {d.year}",
    "Mon dth, 'yy": lambda d: f"{_mon(d)} {_ordinal(d.day)}, '{_yy(d)}",  # Mar 3rd, '21
    "d-Mon-yyyy": lambda d: f"{d.day}-{_mon(d)}-{d.year}",  # 3-Mar-2021
    "yyyy/mm/dd": lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}",  # 2021/03/03
    "yyyymmdd": lambda d: f"{d.year}{d.month:02d}{d.day:02d}",  # 20210303
    "yyyy-m-d": lambda d: f"{d.year}-{d.month}-{d.day}",  # 2021-3-3
}


def source_vocab() -> Vocabulary:
    """Characters of every format: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, then the alphabet."""
    return char_vocabulary(SOURCE_ALPHABET)


def target_vocab() -> Vocabulary:
    """Digits and "-", after the same specials."""
    return char_vocabulary(TARGET_ALPHABET)


def random_dates(count: int, seed: int = 0,
                 formats: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """``count`` pairs ``(human-written date, ISO date)``, the same for the same seed."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count: expected a positive integer, got {count!r}")
    names = list(FORMATS) if formats is None else list(formats)
    unknown = [name for name in names if name not in FORMATS]
    if unknown or not names:
        raise ValueError(f"formats: expected names from {list(FORMATS)}, got {unknown or names}")
    rng = random.Random(seed)
    span = (LAST_DATE - FIRST_DATE).days
    pairs = []
    for _ in range(count):
        date = FIRST_DATE + datetime.timedelta(days=rng.randint(0, span))
        pairs.append((FORMATS[rng.choice(names)](date), date.isoformat()))
    return pairs


def make_dates(count: int, seed: int = 0, formats: Sequence[str] | None = None) -> Seq2SeqData:
    """The dates task as arrays. Use different seeds for training and validation sets."""
    return encode_pairs(random_dates(count, seed, formats), source_vocab(), target_vocab())
