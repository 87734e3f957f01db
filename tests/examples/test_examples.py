"""Every seed program in examples/ runs under rnnkit and learns past its documented threshold.

Each case runs ``examples/<script>.py``'s ``main(epochs=...)`` with the epochs cut as listed and
checks the numbers it returns. examples/README.md gives each threshold's reason and the values
measured; a bound given as a function is relative to another result of the same run (for
example the majority-class rate of the same test set).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from ._runner import EXAMPLES, run_example

Bound = float | Callable[[dict], float]


@dataclass(frozen=True)
class Case:
    script: str
    epochs: int | None
    below: dict[str, Bound] = field(default_factory=dict)  # metric -> it must be smaller
    above: dict[str, Bound] = field(default_factory=dict)  # metric -> it must be larger
    equal: dict[str, int] = field(default_factory=dict)  # metric -> exact value
    marks: tuple = ()


def _above_majority(margin: float) -> Callable[[dict], float]:
    return lambda results: results["majority_rate"] + margin


def _fraction_of(metric: str, fraction: float) -> Callable[[dict], float]:
    return lambda results: fraction * results[metric]


def _plus(metric: str, margin: float) -> Callable[[dict], float]:
    return lambda results: results[metric] + margin


CASES = [
    # seed 000: noisy sine (noise variance 0.0039 after scaling); EarlyStopping ends at 10-19.
    Case("seed000_lstm_forecast", 10, below={"test_loss": 0.01}),
    Case("seed000_gru_forecast", 10, below={"test_loss": 0.01}),
    # seed 001: Keras's parameter counts, worked out by hand in the README.
    Case("seed001_stacked_summaries", None, equal={"lstm_params": 29_345, "gru_params": 22_305}),
    Case(
        "seed001_bidirectional_summaries",
        None,
        equal={"bi_lstm_params": 75_073, "bi_gru_params": 56_897},
    ),
    Case("seed001_lstm_vs_gru", 3, below={"lstm_val_loss": 0.02, "gru_val_loss": 0.02}),
    # The GRU sits at chance for 3-6 epochs before it finds the XOR (TF-Keras too: 4 epochs).
    Case(
        "seed001_xor_long_term",
        8,
        above={"lstm_val_accuracy": 0.9, "gru_val_accuracy": 0.9},
        marks=(pytest.mark.slow,),
    ),
    Case(
        "seed001_sentiment_imdb",
        1,
        above={"test_accuracy": _above_majority(0.08)},
        marks=(pytest.mark.slow,),
    ),
    Case("seed001_gru_forecasting", 3, below={"test_loss": 0.02}),
    Case(
        "seed001_choosing_lstm_gru",
        3,
        below={
            "lstm_val_loss_last": _fraction_of("val_target_variance", 1.1),
            "gru_val_loss_last": _fraction_of("val_target_variance", 1.1),
            "lstm_loss_last": lambda r: r["lstm_loss_first"],
            "gru_loss_last": lambda r: r["gru_loss_first"],
        },
    ),
    # seed 002: the seed reports 2.6e-06 and 3.9e-05 after 50 epochs.
    Case("seed002_sine_lstm", 2, below={"test_loss": 1e-3}, above={"predicted_value": -0.690}),
    Case("seed002_stacked_lstm_dropout", 2, below={"test_loss": 1e-3}),
    # seed 003
    Case("seed003_simple_rnn_regressor", 3, below={"val_loss": 0.01}),
    Case("seed003_lstm_regressor", 3, below={"val_loss": 0.01}),
    Case("seed003_gradient_clipping", 3, below={"val_loss": 0.01}),
    Case("seed003_sentiment_lstm", 1, above={"val_accuracy": _above_majority(0.08)}),
    Case(
        "seed003_text_classification_simple_rnn", 1, above={"val_accuracy": _above_majority(0.05)}
    ),
    # Taggers: the seed's 10 epochs; "prior" = padding right, tag frequencies elsewhere.
    Case(
        "seed003_pos_tagger",
        10,
        below={
            "loss": _fraction_of("train_prior_loss", 0.9),
            "val_loss": _fraction_of("val_prior_loss", 1.0),
        },
    ),
    Case(
        "seed003_ner_bilstm",
        10,
        below={
            "loss": _fraction_of("train_prior_loss", 0.8),
            "val_loss": _fraction_of("val_prior_loss", 0.95),
        },
        marks=(pytest.mark.slow,),
    ),
    Case(
        "seed003_many_to_many_repeat_vector",
        4,
        above={"val_accuracy": _plus("position_mode_accuracy", 0.1)},
    ),
    Case(
        "seed003_encoder_decoder",
        2,
        above={"val_accuracy": _plus("position_mode_accuracy", 0.05)},
        marks=(pytest.mark.slow,),
    ),
    Case("seed003_captioning", 2, above={"first_word_accuracy": 0.9}),
    Case(
        "seed003_weight_init",
        None,
        equal={"params": 2 * 64 + 64},
        below={"kernel_max": lambda r: r["glorot_limit"]},
    ),
    # seed 004: naive = repeating each step's last value for all 10 steps ahead.
    Case("seed004_lstm_time_distributed", 2, below={"val_loss": _fraction_of("naive_mse", 0.25)}),
    Case("seed004_rnn_lstm_cell", 2, below={"val_loss": _fraction_of("naive_mse", 0.25)}),
]


def _bound(bound: Bound, results: dict) -> float:
    return bound(results) if callable(bound) else bound


@pytest.mark.parametrize(
    "case", [pytest.param(case, id=case.script, marks=case.marks) for case in CASES]
)
def test_example_learns(case: Case) -> None:
    results = run_example(case.script, case.epochs)
    for metric, value in case.equal.items():
        assert results[metric] == value, f"{metric}: {results[metric]} != {value}"
    for metric, bound in case.below.items():
        limit = _bound(bound, results)
        assert results[metric] < limit, f"{metric}: {results[metric]:.4g} is not < {limit:.4g}"
    for metric, bound in case.above.items():
        limit = _bound(bound, results)
        assert results[metric] > limit, f"{metric}: {results[metric]:.4g} is not > {limit:.4g}"


def test_every_example_script_has_a_case() -> None:
    scripts = {path.stem for path in EXAMPLES.glob("seed*.py")}
    scripts.discard("seed000_worked_examples")  # prints a table; tests/cells/test_seed000.py
    assert scripts == {case.script for case in CASES}
