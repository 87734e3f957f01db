"""``rnnkit classify`` end to end on a tiny budget, and its pipeline's pieces."""

import json

import numpy as np
import pytest

from rnnkit.apps._common import tomllib
from rnnkit.cli import main
from rnnkit.models import load_model
from rnnkit.tasks.text_classification import ClassifierConfig, encode_texts, fit_tokenizer

TINY = [
    "--limit",
    "300",
    "--epochs",
    "1",
    "--units",
    "4",
    "--embedding-dim",
    "4",
    "--max-length",
    "12",
    "--vocab-size",
    "400",
]


def run_classify(tmp_path, *argv):
    code = main(["classify", "--runs-dir", str(tmp_path / "runs"), *argv])
    runs = sorted((tmp_path / "runs").glob("*-classify*")) if (tmp_path / "runs").exists() else []
    return code, runs


def test_default_dataset_writes_artifacts_and_metrics(tmp_path):
    code, runs = run_classify(tmp_path, *TINY)
    assert code == 0 and len(runs) == 1
    run_dir = runs[0]
    for name in (
        "config.toml",
        "metrics.json",
        "model.rnnkit",
        "tokenizer.json",
        "history.png",
        "confusion.png",
    ):
        assert (run_dir / name).stat().st_size > 0, name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "baseline_accuracy", "baseline_macro_f1"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["classes"] == ["negative", "neutral", "positive"]
    assert sum(metrics["split"].values()) == 300
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.shape == (3, 3) and confusion.sum() == metrics["split"]["test"]
    assert np.trace(confusion) / confusion.sum() == pytest.approx(metrics["accuracy"])
    model = load_model(run_dir / "model.rnnkit")
    assert model.predict(np.ones((2, 12), np.int64), verbose=0).shape == (2, 3)


def test_csv_with_two_classes_uses_a_sigmoid_output(tmp_path):
    rows = [("good great fine", "pos"), ("bad awful poor", "neg")] * 30
    csv = tmp_path / "reviews.csv"
    csv.write_text("review,sentiment\n" + "".join(f"{t},{s}\n" for t, s in rows))
    code, runs = run_classify(
        tmp_path,
        "--csv",
        str(csv),
        "--text-column",
        "review",
        "--label-column",
        "sentiment",
        "--epochs",
        "1",
        "--units",
        "4",
    )
    assert code == 0
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["classes"] == ["neg", "pos"]
    assert metrics["baseline_accuracy"] == 1.0  # the words give the label away
    model = load_model(runs[0] / "model.rnnkit")
    assert model.predict(np.ones((1, 40), np.int64), verbose=0).shape == (1, 1)


@pytest.mark.parametrize(
    "content, message",
    [
        ("text,label\nhello,pos\n", "--label-column: no column 'sentiment'"),
        ("", "is empty"),
        ("text,sentiment\n", "has a header but no rows"),
        ("text,sentiment\nhi,pos\n,neg\n", "row 3"),
    ],
)
def test_bad_csv_is_a_one_line_error(tmp_path, capsys, content, message):
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    code, runs = run_classify(tmp_path, "--csv", str(csv), "--label-column", "sentiment")
    err = capsys.readouterr().err
    assert code == 2 and runs == []
    assert message in err and "Traceback" not in err
    assert err.startswith("rnnkit classify: error:") and err.count("\n") == 1


def test_missing_csv_file_is_a_user_error(tmp_path, capsys):
    code, _ = run_classify(tmp_path, "--csv", str(tmp_path / "nope.csv"))
    assert code == 2 and "no such file" in capsys.readouterr().err


def test_config_file_sets_flags(tmp_path):
    config = tmp_path / "small.toml"
    config.write_text('units = 3\ncell = "gru"\nlimit = 200\nepochs = 1\nmax-length = 8\n')
    code, runs = run_classify(tmp_path, "--config", str(config), "--embedding-dim", "4")
    assert code == 0
    saved = tomllib.loads((runs[0] / "config.toml").read_text())
    assert (saved["units"], saved["cell"], saved["embedding_dim"]) == (3, "gru", 4)
    gru = load_model(runs[0] / "model.rnnkit").layers[2]
    assert type(gru).__name__ == "GRU" and gru.units == 3


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["classify", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "--csv" in out and "--bidirectional" in out and "--limit" not in out


def test_tokenizer_keeps_words_seen_min_count_times_and_pads_at_the_end():
    texts = ["the cat sat", "the dog sat", "a bird"]
    tokenizer = fit_tokenizer(texts, ClassifierConfig(min_count=2))
    assert tokenizer.vocab_size == 4  # padding, OOV, "the", "sat"
    ids = encode_texts(tokenizer, ["the bird sat", "the"], max_length=4)
    assert ids.tolist() == [[2, 1, 3, 0], [2, 0, 0, 0]]
