"""WindowStream: make_windows' windows from CSV and Parquet files, sharded, in bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rnnkit.data import make_windows
from rnnkit.data.streaming import CSVRows, WindowStream

rng = np.random.default_rng(11)
SERIES = rng.normal(size=(301, 3))  # columns a, b, step (step = the row number)
SERIES[:, 2] = np.arange(len(SERIES))


@pytest.fixture(scope="module", params=["csv", "parquet"])
def table(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("streaming") / f"series.{request.param}"
    if request.param == "csv":
        path.write_text("a,b,step\n" + "\n".join(",".join(repr(float(v)) for v in row)
                                                 for row in SERIES) + "\n")
    else:
        pd = pytest.importorskip("pandas")
        pytest.importorskip("pyarrow")
        pd.DataFrame(SERIES, columns=["a", "b", "step"]).to_parquet(path, row_group_size=40)
    return path


def collect(stream) -> tuple[np.ndarray, np.ndarray]:
    pairs = list(stream)
    return (torch.stack([x for x, _ in pairs]).numpy(),
            torch.stack([y for _, y in pairs]).numpy())


@pytest.mark.parametrize("stride", [1, 4, 19])
@pytest.mark.parametrize("chunk_rows", [1, 23, 1000])
def test_windows_equal_make_windows(table, stride, chunk_rows):
    stream = WindowStream(table, ["a", "b"], window=12, horizon=3, stride=stride,
                          chunk_rows=chunk_rows, dtype=torch.float64)
    if table.suffix == ".csv":  # a sparse line index, so reads start between indexed rows
        stream.reader = CSVRows(table, stream.columns, index_every=7)
    x, y = collect(stream)
    expected_x, expected_y = make_windows(SERIES[:, :2], window=12, horizon=3, stride=stride)
    np.testing.assert_array_equal(x, expected_x)
    np.testing.assert_array_equal(y, expected_y)
    assert len(x) == stream.num_windows == len(stream)


def test_targets_choose_the_predicted_columns(table):
    one = WindowStream(table, ["a", "b"], window=5, horizon=2, targets=["b"],
                       dtype=torch.float64)
    x, y = next(iter(one))
    assert x.shape == (5, 2) and y.shape == (2,)
    np.testing.assert_array_equal(y.numpy(), SERIES[5:7, 1])
    both = WindowStream(table, "a", window=5, horizon=2, targets=["a", "step"])
    assert next(iter(both))[1].shape == (2, 2)
    assert next(iter(both))[0].dtype == torch.float32


@pytest.mark.parametrize("workers", [0, 2])
def test_ranks_and_workers_share_the_windows_without_overlap(table, workers):
    world, stride = 3, 2
    total = (len(SERIES) - 8) // stride + 1
    seen = []
    for rank in range(world):
        stream = WindowStream(table, ["step"], window=6, horizon=2, stride=stride,
                              chunk_rows=17, rank=rank, world_size=world)
        starts = [int(x[0, 0]) for x, _ in DataLoader(stream, batch_size=None,
                                                      num_workers=workers)]
        assert len(starts) == len(stream) == total // world  # the same count on every rank
        seen += starts
    assert sorted(seen) == [i * stride for i in range(total // world * world)]


def test_rank_comes_from_torchrun_environment(table, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    stream = WindowStream(table, ["step"], window=10, horizon=1)
    first = int(next(iter(stream))[0][0, 0])
    assert (first, len(stream)) == (len(stream), 145)  # rank 1 starts where rank 0's half ends


def test_shuffle_buffer_reorders_by_epoch_and_keeps_every_window(table):
    stream = WindowStream(table, ["step"], window=4, horizon=1, shuffle_buffer=32, seed=5)
    orders = []
    for epoch in (0, 0, 1):
        stream.set_epoch(epoch)
        orders.append([int(x[0, 0]) for x, _ in stream])
    assert orders[0] == orders[1] != orders[2]
    assert sorted(orders[0]) == sorted(orders[2]) == list(range(len(SERIES) - 4))
    assert orders[0] != sorted(orders[0])


def test_fit_on_a_stream_equals_fit_on_its_windows(table):
    from rnnkit.layers import LSTM, Dense
    from rnnkit.models import Sequential
    from rnnkit.utils import set_random_seed

    def trained(x, y=None):
        set_random_seed(0)
        model = Sequential([LSTM(3, dtype="float64"), Dense(2, dtype="float64")])
        model.build_from_batch(torch.zeros(1, 8, 2, dtype=torch.float64))  # before any loader
        model.compile("adam", "mse")
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        return np.concatenate([w.ravel() for w in model.get_weights()])

    stream = WindowStream(table, ["a", "b"], window=8, horizon=2, targets=["a"], chunk_rows=50,
                          dtype=torch.float64)
    x, y = make_windows(SERIES[:, :2], window=8, horizon=2)
    np.testing.assert_allclose(trained(stream), trained(x, y[:, :, 0]), rtol=0, atol=1e-12)


def test_bad_arguments_and_bad_values_are_named(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("a,b\n" + "1,2\n" * 10)
    with pytest.raises(ValueError, match=r"columns: \['c'\] not in .*columns are \['a', 'b'\]"):
        WindowStream(good, ["a", "c"], window=3)
    with pytest.raises(ValueError, match="path: no such file"):
        WindowStream(tmp_path / "missing.csv", ["a"], window=3)
    with pytest.raises(ValueError, match="has 10 rows, fewer than window \\+ horizon = 12"):
        WindowStream(good, ["a"], window=10, horizon=2)
    with pytest.raises(ValueError, match="file_format: expected 'csv' or 'parquet'"):
        WindowStream(tmp_path / "good.csv", ["a"], window=3, file_format="xlsx")
    with pytest.raises(ValueError, match="window: "):
        WindowStream(good, ["a"], window=0)
    with pytest.raises(ValueError, match="shuffle_buffer: "):
        WindowStream(good, ["a"], window=3, shuffle_buffer=-1)
    holes = tmp_path / "holes.csv"
    holes.write_text("a,b\n" + "1,2\n" * 6 + "nan,2\n" + "1,2\n" * 3)
    with pytest.raises(ValueError, match="data row 7 of .* column 'a'"):
        list(WindowStream(holes, ["a", "b"], window=3))
    words = tmp_path / "words.csv"
    words.write_text("a,b\n" + "1,2\n" * 4 + "x,2\n")
    with pytest.raises(ValueError, match="not a number"):
        list(WindowStream(words, ["a"], window=2))


MEMORY_PROBE = textwrap.dedent("""
    import json, resource, sys
    from rnnkit.data.streaming import WindowStream

    stream = WindowStream(sys.argv[1], ["value"], window=32, horizon=8, stride=997)
    windows = iter(stream)
    first = next(windows)  # pandas is imported and the first chunk read: the baseline
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    count, last = 1, first
    for last in windows:
        count += 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_mb": (peak - baseline) / 1024, "windows": count,
                      "rows": stream.reader.num_rows, "last_x": last[0][:, 0].tolist()}))
""")


@pytest.mark.slow
def test_a_file_larger_than_the_memory_cap_streams_in_bounded_memory(tmp_path):
    cap_mb = 100
    block_rows = 1 << 16
    steps = np.arange(block_rows)
    block = "".join(f"{i},{np.sin(i / 50):.6f}\n" for i in steps).encode()
    path = tmp_path / "large.csv"
    with open(path, "wb") as handle:
        handle.write(b"step,value\n")
        for _ in range((200 << 20) // len(block) + 1):
            handle.write(block)
    assert path.stat().st_size > 2 * cap_mb << 20
    result = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(path)], check=True,
                            capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["growth_mb"] < cap_mb
    assert report["windows"] == (report["rows"] - 40) // 997 + 1
    start = (report["windows"] - 1) * 997 % block_rows
    expected = np.round(np.sin(((start + np.arange(32)) % block_rows) / 50), 6)
    np.testing.assert_allclose(report["last_x"], expected, atol=1e-6)
