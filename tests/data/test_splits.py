"""time_split: chronological, covering, sized as documented, and loud about empty parts."""

import numpy as np
import pytest

from rnnkit.data import TimeSplit, time_split


def test_documented_example():
    assert time_split(10, 0.2, 0.1) == TimeSplit(range(0, 7), range(7, 9), range(9, 10))


@pytest.mark.parametrize(("n", "val", "test"), [(100, 0.1, 0.2), (526, 0.15, 0.15), (7, 0.3, 0.3)])
def test_parts_are_consecutive_and_cover_every_step(n, val, test):
    split = time_split(n, val, test)
    assert list(split.train) + list(split.val) + list(split.test) == list(range(n))
    assert len(split.test) == int(np.floor(n * test + 0.5))
    assert len(split.val) == int(np.floor(n * val + 0.5))


def test_halves_round_up():
    assert len(time_split(10, 0.0, 0.25).test) == 3  # 2.5 -> 3


def test_zero_fraction_gives_a_deliberately_empty_part():
    split = time_split(10, 0.0, 0.2)
    assert len(split.val) == 0 and split.train == range(0, 8) and split.test == range(8, 10)


def test_ranges_index_arrays_in_time_order():
    series = np.arange(20.0) * 2
    split = time_split(len(series), 0.25, 0.25)
    np.testing.assert_array_equal(series[split.test], [30, 32, 34, 36, 38])
    assert series[split.train].max() < series[split.val].min()


def test_a_part_that_rounds_to_nothing_is_an_error():
    with pytest.raises(ValueError, match=r"val_fraction: .*n = 5.*got 0.05"):
        time_split(5, 0.05, 0.2)
    with pytest.raises(ValueError, match="test_fraction: "):
        time_split(5, 0.2, 0.05)


def test_no_training_steps_left_is_an_error():
    with pytest.raises(ValueError, match=r"at least one training step, got 6 validation \+ 4"):
        time_split(10, 0.6, 0.4)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((0, 0.1, 0.1), ValueError, "n: expected an int >= 1, got 0"),
        ((10.0, 0.1, 0.1), TypeError, "n: expected an int"),
        ((10, 1.0, 0.1), ValueError, r"val_fraction: expected a float in \[0, 1\), got 1.0"),
        ((10, 0.1, -0.1), ValueError, "test_fraction: expected a float in"),
        ((10, "0.1", 0.1), TypeError, "val_fraction: expected a float"),
    ],
)
def test_bad_arguments_name_themselves(args, error, message):
    with pytest.raises(error, match=message):
        time_split(*args)
