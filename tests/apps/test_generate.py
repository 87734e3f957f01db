"""``rnnkit generate`` end to end on a tiny budget, and its pipeline's pieces."""

import json
import math

import numpy as np
import pytest

from rnnkit.apps._common import tomllib
from rnnkit.cli import main
from rnnkit.tasks.generation import (
    GeneratorConfig,
    build_generator,
    char_vocabulary,
    make_windows,
    sample_text,
    unigram_cross_entropy,
)

TINY = [
    "--max-chars",
    "3000",
    "--epochs",
    "1",
    "--units",
    "8",
    "--embedding-dim",
    "4",
    "--sequence-length",
    "16",
    "--length",
    "30",
]


def run_generate(tmp_path, *argv):
    code = main(["generate", "--runs-dir", str(tmp_path / "runs"), *argv])
    found = (tmp_path / "runs").glob("*-generate*") if (tmp_path / "runs").exists() else []
    return code, sorted(found)


def test_train_then_continue_a_prime_with_the_saved_model(tmp_path):
    code, runs = run_generate(tmp_path, *TINY)
    assert code == 0 and len(runs) == 1
    run_dir = runs[0]
    for name in (
        "config.toml",
        "metrics.json",
        "model.rnnkit",
        "vocabulary.json",
        "history.png",
        "sample.txt",
    ):
        assert (run_dir / name).stat().st_size > 0, name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["val_perplexity"] == pytest.approx(math.exp(metrics["val_cross_entropy"]))
    # One epoch on 2,700 characters: better than nothing, not better than a near-uniform guess.
    assert 1.0 < metrics["val_perplexity"] < 2 * metrics["vocabulary_size"]
    assert 1.0 < metrics["unigram_perplexity"] < metrics["vocabulary_size"]
    assert (metrics["train_chars"], metrics["val_chars"]) == (2700, 300)
    assert len((run_dir / "sample.txt").read_text()) == len("ROMEO.\n") + 30

    code, runs = run_generate(
        tmp_path,
        "--model",
        str(run_dir),
        "--prime",
        "To be",
        "--length",
        "25",
        "--temperature",
        "0.5",
    )
    assert code == 0 and len(runs) == 2
    sample = (runs[1] / "sample.txt").read_text()
    assert sample.startswith("To be") and len(sample) == 30
    assert json.loads((runs[1] / "metrics.json").read_text())["sample_chars"] == 30


def test_config_toml_sets_the_cell(tmp_path):
    config = tmp_path / "gen.toml"
    config.write_text('cell = "gru"\nlayers = 2\ndataset = "shakespeare/sonnets"\n')
    code, runs = run_generate(tmp_path, "--config", str(config), *TINY)
    assert code == 0
    saved = tomllib.loads((runs[0] / "config.toml").read_text())
    assert (saved["cell"], saved["layers"], saved["dataset"]) == ("gru", 2, "shakespeare/sonnets")
    assert json.loads((runs[0] / "metrics.json").read_text())["epochs_trained"] == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--text-file", "EMPTY"], "holds no text"),
        (["--text-file", "MISSING"], "no such file"),
        (["--model", "MISSING"], "--model: no model file"),
        (["--temperature", "0"], "--temperature: expected a positive number"),
        (["--dataset", "shakespeare/nothing"], "shakespeare/<work>"),
    ],
)
def test_bad_inputs_are_one_line_errors(tmp_path, capsys, argv, message):
    (tmp_path / "empty.txt").write_text("  \n")
    names = {"EMPTY": str(tmp_path / "empty.txt"), "MISSING": str(tmp_path / "missing")}
    code, runs = run_generate(tmp_path, *[names.get(arg, arg) for arg in argv])
    err = capsys.readouterr().err
    assert code == 2 and runs == []
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_windows_predict_the_next_character():
    inputs, targets = make_windows(np.arange(10), sequence_length=4)
    assert inputs.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert targets.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_unigram_cross_entropy_of_a_uniform_text_is_log_of_its_alphabet():
    ids = np.array([2, 3, 4, 5] * 50)
    entropy = unigram_cross_entropy(ids, ids, size=6)
    assert entropy == pytest.approx(math.log(4), rel=0.02)  # add-one smoothing costs a little


def test_a_tiny_temperature_always_picks_the_most_likely_character():
    vocabulary = char_vocabulary("abcab")
    model = build_generator(
        GeneratorConfig(units=4, embedding_dim=3, sequence_length=8), len(vocabulary)
    )
    samples = {
        sample_text(model, vocabulary, "ab", 12, 1e-4, np.random.default_rng(seed), 8)
        for seed in range(3)
    }
    assert len(samples) == 1
    hot = {
        sample_text(model, vocabulary, "ab", 12, 50.0, np.random.default_rng(seed), 8)
        for seed in range(3)
    }
    assert len(hot) == 3
    assert all(set(text) <= {"a", "b", "c"} for text in hot)  # no padding or <unk>
