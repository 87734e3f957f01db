"""fit/evaluate/predict: History, validation split, weights, data forms, errors, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from training_standins import StandInModel, TwoOutputs

from rnnkit import optimizers
from rnnkit.layers import LSTM
from rnnkit.training import loop
from rnnkit.utils import set_random_seed

rng = np.random.default_rng(5)
X = rng.normal(size=(40, 6, 2)).astype("float32")
Y = (X[:, :, 0].mean(1, keepdims=True) > 0).astype("float32")  # (40, 1) binary labels


def small_model():
    return StandInModel(LSTM(4), nn.LazyLinear(1), nn.Sigmoid())


class Recorder(nn.Module):
    """Passes inputs through and records the sample ids (x[:, 0, 0]) it sees, by mode."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = {True: [], False: []}

    def forward(self, x):
        self.seen[self.training].append(x[:, 0, 0].tolist())
        return x


def test_history_has_keras_keys_epochs_params_and_model():
    model = small_model()
    model.compile("adam", "binary_crossentropy", metrics=["accuracy", "mae"])
    history = model.fit(X, Y, epochs=3, batch_size=8, validation_split=0.25, verbose=0)
    assert list(history.history) == ["loss", "accuracy", "mae", "val_loss", "val_accuracy",
                                     "val_mae"]
    assert all(len(values) == 3 for values in history.history.values())
    assert all(isinstance(v, float) for values in history.history.values() for v in values)
    assert history.epoch == [0, 1, 2]
    assert history.params == {"verbose": 0, "epochs": 3, "steps": 4}
    assert history.model is model and model.history is history


@pytest.mark.peer
def test_history_keys_match_keras(keras):
    reference = keras.Sequential([keras.Input((6, 2)), keras.layers.LSTM(4),
                                  keras.layers.Dense(1, activation="sigmoid")])
    reference.compile("adam", "binary_crossentropy", metrics=["accuracy", "mae"])
    theirs = reference.fit(X, Y, epochs=1, batch_size=20, validation_split=0.25, verbose=0)
    model = small_model()
    model.compile("adam", "binary_crossentropy", metrics=["accuracy", "mae"])
    ours = model.fit(X, Y, epochs=1, batch_size=20, validation_split=0.25, verbose=0)
    assert sorted(ours.history) == sorted(theirs.history)


def test_validation_split_takes_the_last_fraction_before_shuffling():
    ids = np.arange(20, dtype="float32")
    x = np.repeat(ids[:, None, None], 3, axis=1).repeat(2, axis=2)  # x[i, :, :] == i
    recorder = Recorder()
    model = StandInModel(recorder, nn.Flatten(), nn.LazyLinear(1))
    model.compile("sgd", "mse")
    model.fit(x, ids, epochs=2, batch_size=4, validation_split=0.3, verbose=0)
    validated = sorted(v for batch in recorder.seen[False] for v in batch)
    trained = [v for batch in recorder.seen[True][1:] for v in batch]  # [0] is the build pass
    assert validated == sorted(list(range(14, 20)) * 2)
    assert sorted(trained) == sorted(list(range(14)) * 2)
    assert trained[:14] != sorted(trained[:14])  # shuffled


def test_evaluate_returns_keras_forms_and_weights_batches_by_size():
    model = small_model()
    model.compile("sgd", "mse", metrics=["mae"])
    with torch.no_grad():
        prediction = model(torch.from_numpy(X), training=False).numpy()
    expected_mse = float(((prediction - Y) ** 2).mean())
    expected_mae = float(np.abs(prediction - Y).mean())
    loss, mae = model.evaluate(X, Y, batch_size=7, verbose=0)  # last batch holds 5
    assert loss == pytest.approx(expected_mse, rel=1e-5)
    assert mae == pytest.approx(expected_mae, rel=1e-5)
    assert model.evaluate(X, Y, verbose=0, return_dict=True) == pytest.approx(
        {"loss": expected_mse, "mae": expected_mae}, rel=1e-5)
    model.compile("sgd", "mse")
    assert isinstance(model.evaluate(X, Y, verbose=0), float)


def test_predict_is_batched_numpy_in_eval_mode_without_gradients():
    model = StandInModel(LSTM(4), nn.Dropout(0.5), nn.LazyLinear(2))
    model.train()
    prediction = model.predict(X, batch_size=7, verbose=0)
    assert isinstance(prediction, np.ndarray) and prediction.dtype == np.float32
    assert prediction.shape == (40, 2)
    # Equal to rounding, not bit for bit: a step GEMM's blocking, and with it the order of its
    # sums, may depend on how many rows it has (as MKL's does), as in torch.nn and Keras.
    np.testing.assert_allclose(prediction, model.predict(X, batch_size=40, verbose=0),
                               rtol=1e-6, atol=1e-6)
    assert model.training  # restored
    model.eval()
    np.testing.assert_allclose(prediction, model(torch.from_numpy(X)).detach().numpy(),
                               rtol=1e-6)


def test_sample_weight_and_class_weight_are_equivalent():
    class_weight = {0: 0.5, 1: 3.0}
    weights = np.where(Y[:, 0] == 1, 3.0, 0.5).astype("float32")
    results = []
    for kwargs in ({"class_weight": class_weight}, {"sample_weight": weights}):
        set_random_seed(1)
        model = small_model()
        model.compile("adam", "binary_crossentropy")
        results.append(model.fit(X, Y, batch_size=8, epochs=2, verbose=0, **kwargs)
                       .history["loss"])
    assert results[0] == results[1]
    set_random_seed(1)
    model = small_model()
    model.compile("adam", "binary_crossentropy")
    assert model.fit(X, Y, batch_size=8, epochs=2, verbose=0).history["loss"] != results[0]


def test_zero_sample_weights_exclude_samples_from_the_update():
    model = small_model()
    model.compile("sgd", "mse")
    model.build_from_batch(torch.from_numpy(X[:1]))
    before = model.get_weights()
    model.fit(X, Y, sample_weight=np.zeros(40, "float32"), epochs=1, verbose=0)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("wrap", ["dataset", "loader"])
def test_torch_dataset_and_dataloader_inputs(wrap):
    data = TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
    source = data if wrap == "dataset" else DataLoader(data, batch_size=10)
    model = small_model()
    model.compile("adam", "mse", metrics=["mae"])
    history = model.fit(source, batch_size=10, epochs=2, verbose=0, validation_data=source)
    assert history.params["steps"] == 4
    assert set(history.history) == {"loss", "mae", "val_loss", "val_mae"}
    assert model.evaluate(source, verbose=0)[0] == pytest.approx(history.history["val_loss"][-1],
                                                                 rel=1e-6)


def test_steps_per_epoch_continues_through_the_data():
    recorder = Recorder()
    model = StandInModel(recorder, nn.Flatten(), nn.LazyLinear(1))
    model.compile("sgd", "mse")
    x = np.repeat(np.arange(10, dtype="float32")[:, None, None], 2, axis=1)
    model.fit(x, np.zeros(10, "float32"), batch_size=4, epochs=2, steps_per_epoch=2,
              shuffle=False, verbose=0)
    seen = recorder.seen[True][1:]
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [0, 1, 2, 3]]


def test_pandas_inputs():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(rng.normal(size=(30, 3)))
    model = StandInModel(nn.LazyLinear(1))
    model.compile("sgd", "mse")
    history = model.fit(frame, pd.Series(rng.normal(size=30)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_several_outputs_are_named_and_weighted():
    model = StandInModel(nn.Flatten(), TwoOutputs())
    labels = rng.integers(0, 3, 40)
    y = [rng.normal(size=(40, 1)).astype("float32"), labels]
    model.compile("sgd", ["mse", "sparse_categorical_crossentropy"], loss_weights=[2.0, 0.5],
                  metrics=[[], ["accuracy"]])
    history = model.fit(X, y, epochs=1, verbose=0)
    assert list(history.history) == ["loss", "output_2_accuracy", "output_1_loss",
                                     "output_2_loss"]
    logs = model.evaluate(X, y, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(2.0 * logs["output_1_loss"] + 0.5 * logs["output_2_loss"],
                                         rel=1e-5)
    model.output_names = ["value", "kind"]
    model.compile("sgd", {"value": "mse", "kind": "sparse_categorical_crossentropy"},
                  metrics={"kind": "accuracy"})
    assert list(model.evaluate(X, {"value": y[0], "kind": y[1]}, verbose=0, return_dict=True)) \
        == ["loss", "kind_accuracy", "value_loss", "kind_loss"]


def test_initial_epoch_and_validation_freq():
    model = small_model()
    model.compile("sgd", "mse")
    history = model.fit(X, Y, epochs=5, initial_epoch=1, validation_split=0.2,
                        validation_freq=2, verbose=0)
    assert history.epoch == [1, 2, 3, 4]
    assert len(history.history["loss"]) == 4 and len(history.history["val_loss"]) == 2


def test_on_batch_methods():
    model = small_model()
    model.compile(optimizers.SGD(0.1), "mse", metrics=["mae"])
    loss, mae = loop.train_on_batch(model, X[:8], Y[:8])
    assert model.optimizer.iterations == 1 and loss > 0 and mae > 0
    logs = loop.test_on_batch(model, X[:8], Y[:8], return_dict=True)
    assert set(logs) == {"loss", "mae"}
    output = loop.predict_on_batch(model, X[:8])
    assert isinstance(output, np.ndarray) and output.shape == (8, 1)


# -- errors ------------------------------------------------------------------------------------
def test_fit_before_compile():
    with pytest.raises(RuntimeError, match="compile"):
        small_model().fit(X, Y, verbose=0)


def test_length_mismatch_names_both_sizes():
    model = small_model()
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"x: 40, y: 39"):
        model.fit(X, Y[:39], verbose=0)


@pytest.mark.parametrize(("target", "value", "pattern"), [
    ("x", np.nan, r"x: contains NaN at index \(7, 2, 1\)"),
    ("y", np.inf, r"y: contains an infinite value at index \(7, 0\)"),
])
def test_nan_or_inf_in_data_names_the_array_and_index(target, value, pattern):
    x, y = X.copy(), Y.copy()
    if target == "x":
        x[7, 2, 1] = value
    else:
        y[7, 0] = value
    model = small_model()
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=pattern):
        model.fit(x, y, verbose=0)


def test_wrong_feature_count_surfaces_the_layer_error():
    model = small_model()
    model.compile("sgd", "mse")
    model.fit(X, Y, verbose=0)
    with pytest.raises(ValueError, match=r"features \(last axis\) = 2, got 3"):
        model.fit(np.zeros((4, 6, 3), "float32"), np.zeros((4, 1), "float32"), verbose=0)


def test_unknown_loss_fails_at_compile():
    with pytest.raises(ValueError, match="unknown name 'mean_sqaured_error'"):
        small_model().compile("adam", "mean_sqaured_error")


def test_class_weight_with_sample_weight_is_refused():
    model = small_model()
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="class_weight, sample_weight"):
        model.fit(X, Y, class_weight={0: 1.0}, sample_weight=np.ones(40), verbose=0)


# -- determinism -----------------------------------------------------------------------------------
def _seeded_run(seed: int) -> list[torch.Tensor]:
    set_random_seed(seed)
    model = StandInModel(LSTM(8, dropout=0.2, recurrent_dropout=0.1), nn.Dropout(0.3),
                         nn.LazyLinear(1))
    model.compile("adam", "mse")
    model.fit(X, Y, epochs=2, batch_size=8, validation_split=0.2, verbose=0)
    return [p.detach().clone() for p in model.parameters()]


def test_set_random_seed_makes_fit_reproducible_bit_for_bit():
    first, second = _seeded_run(123), _seeded_run(123)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.equal(first[0], _seeded_run(124)[0])


def test_seed_002_program_runs_on_rnnkit_models():
    """Seed 002 as written (Sequential, LSTM(50), Dense(1), adam, mse), on fewer samples."""
    models = pytest.importorskip("rnnkit.models")
    layers = pytest.importorskip("rnnkit.layers")
    if not hasattr(models, "Sequential") or not hasattr(layers, "Dense"):
        pytest.skip("rnnkit.models.Sequential / rnnkit.layers.Dense not available yet")
    set_random_seed(0)
    series = np.sin(np.linspace(0, 100, 1000))
    series = (series - series.min()) / (series.max() - series.min())
    x = np.array([series[i:i + 10] for i in range(len(series) - 11)])[..., None]
    y = series[10:-1]
    model = models.Sequential([LSTM(50, input_shape=(10, 1)), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mean_squared_error")
    history = model.fit(x[:400], y[:400], epochs=3, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss = model.evaluate(x[800:], y[800:], verbose=0)
    assert isinstance(loss, float) and loss < history.history["loss"][0]
    prediction = model.predict(x[-1].reshape(1, 10, 1), verbose=0)
    assert isinstance(prediction, np.ndarray) and prediction.shape == (1, 1)
