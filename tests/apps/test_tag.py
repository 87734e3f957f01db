"""``rnnkit tag`` end to end on a tiny budget, and its pipeline's pieces."""

import json

import numpy as np
import pytest

from rnnkit.apps._common import tomllib
from rnnkit.cli import main
from rnnkit.data import Vocabulary
from rnnkit.models import load_model
from rnnkit.tasks.tagging import (
    TaggerConfig,
    build_tagger,
    encode,
    entity_scores,
    loss_weights,
    model_inputs,
    most_frequent_tag_baseline,
    predict_tags,
    read_conll,
    word_shape,
)

TINY = ["--epochs", "1", "--units", "4", "--embedding-dim", "4"]

CONLL = """Paris\tB-geo-loc
is\tO
nice\tO

Ada\tB-person
Lovelace\tI-person
wrote\tO
"""


def run_tag(tmp_path, *argv):
    code = main(["tag", "--runs-dir", str(tmp_path / "runs"), *argv])
    runs = sorted((tmp_path / "runs").glob("*-tag*")) if (tmp_path / "runs").exists() else []
    return code, runs


def test_default_dataset_writes_artifacts_and_metrics(tmp_path):
    code, runs = run_tag(tmp_path, "--limit", "150", *TINY)
    assert code == 0 and len(runs) == 1
    for name in (
        "config.toml",
        "metrics.json",
        "model.rnnkit",
        "vocabulary.json",
        "history.png",
        "entity_f1.png",
    ):
        assert (runs[0] / name).stat().st_size > 0, name
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    for key in ("entity_precision", "entity_recall", "entity_f1", "token_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0, key
        assert 0.0 <= metrics["baseline"][key] <= 1.0, key
    assert sum(metrics["split"].values()) == 150
    assert metrics["epochs_trained"] == 1
    vocabulary = json.loads((runs[0] / "vocabulary.json").read_text())
    tags = Vocabulary.from_config(vocabulary["tags"])
    assert tags.tokens[0] == "<pad>" and "O" in tags
    shapes = Vocabulary.from_config(vocabulary["shapes"])
    assert "Xx" in shapes and "@" in shapes
    model = load_model(runs[0] / "model.rnnkit")
    batch = [np.ones((2, 5), np.int64), np.ones((2, 5), np.int64)]
    assert model.predict(batch, verbose=0).shape == (2, 5, len(tags))


def test_conll_file_and_config_toml(tmp_path):
    data = tmp_path / "ner.txt"
    data.write_text((CONLL + "\n") * 10)
    config = tmp_path / "tag.toml"
    config.write_text(
        f'file = "{data}"\nbidirectional = false\ncell = "gru"\nword-shapes = false\n'
    )
    code, runs = run_tag(tmp_path, "--config", str(config), *TINY)
    assert code == 0
    saved = tomllib.loads((runs[0] / "config.toml").read_text())
    assert saved["bidirectional"] is False and saved["cell"] == "gru"
    layers = [type(layer).__name__ for layer in load_model(runs[0] / "model.rnnkit").layers]
    assert "GRU" in layers and "Bidirectional" not in layers and "Concatenate" not in layers
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert sum(metrics["split"].values()) == 20


@pytest.mark.parametrize(
    "content, message",
    [
        ("Paris\tB-geo-loc\nis\n", "line 2"),
        ("\n\n", "holds no sentences"),
    ],
)
def test_bad_file_is_a_one_line_error(tmp_path, capsys, content, message):
    data = tmp_path / "bad.txt"
    data.write_text(content)
    code, runs = run_tag(tmp_path, "--file", str(data))
    err = capsys.readouterr().err
    assert code == 2 and runs == []
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_read_conll_splits_sentences_on_blank_lines(tmp_path):
    data = tmp_path / "ner.txt"
    data.write_text("\n" + CONLL + "\n\n")
    tokens, tags = read_conll(data)
    assert tokens == [["Paris", "is", "nice"], ["Ada", "Lovelace", "wrote"]]
    assert tags == [["B-geo-loc", "O", "O"], ["B-person", "I-person", "O"]]


def test_entity_scores_count_whole_entities():
    gold = [["B-person", "I-person", "O", "B-geo-loc"]]
    guess = [["B-person", "O", "O", "B-geo-loc"]]  # the person is cut short: a wrong entity
    scores = entity_scores(gold, guess)
    assert scores["entity_precision"] == pytest.approx(0.5)
    assert scores["entity_recall"] == pytest.approx(0.5)
    assert scores["token_accuracy"] == pytest.approx(0.75)
    assert scores["per_type_f1"] == {"geo-loc": 1.0, "person": 0.0}


def test_padding_changes_no_prediction():
    words = Vocabulary(["ada", "wrote", "code"], unk_token="<unk>")
    shapes = Vocabulary(["Xx", "x"], unk_token="<unk>")
    tags = Vocabulary(["O", "B-person"])
    model = build_tagger(TaggerConfig(units=3, embedding_dim=4), len(words), len(tags), len(shapes))
    sentence = [["Ada", "wrote", "code"]]
    short = model.predict(model_inputs(sentence, words, shapes, 3, True), verbose=0)
    padded = model.predict(model_inputs(sentence, words, shapes, 9, True), verbose=0)
    np.testing.assert_allclose(padded[:, :3], short, rtol=1e-5, atol=1e-6)
    predicted = predict_tags(model, model_inputs(sentence, words, shapes, 9, True), [3], tags)
    assert len(predicted[0]) == 3 and "<pad>" not in predicted[0]


def test_loss_weights_skip_padding_and_favour_entities():
    tags = Vocabulary(["O", "B-person"])
    targets = encode([["O", "B-person"], ["O"]], tags, 3)
    np.testing.assert_array_equal(
        loss_weights(targets, tags, entity_weight=5.0), [[1, 5, 0], [1, 0, 0]]
    )


@pytest.mark.parametrize(
    "word, shape",
    [
        ("Paris", "Xx"),
        ("NASA", "X"),
        ("2016", "d"),
        ("@bob", "@"),
        ("#tbt", "#"),
        ("http://t.co/x", "url"),
        ("iPhone", "xXx"),
        ("McDonald's", "XxXx'"),
        ("#", "#"),
    ],
)
def test_word_shape(word, shape):
    assert word_shape(word) == shape


def test_baseline_uses_each_words_most_frequent_tag():
    train_tokens = [["Paris", "paris", "Paris"], ["in"]]
    train_tags = [["B-geo-loc", "O", "B-geo-loc"], ["O"]]
    predicted = most_frequent_tag_baseline(
        train_tokens, train_tags, [["PARIS", "in", "Rome"]], lowercase=True
    )
    assert predicted == [["B-geo-loc", "O", "O"]]
