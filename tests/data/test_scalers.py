"""Scalers: values, per-feature behaviour, fit-on-train-only, constant series, configs, errors."""

import json

import numpy as np
import pytest

from rnnkit.data import MinMaxScaler, StandardScaler, get_scaler, scaler_from_config

SCALER_CLASSES = [MinMaxScaler, StandardScaler]


def test_minmax_values_and_feature_range():
    np.testing.assert_allclose(MinMaxScaler().fit_transform([2.0, 4.0, 6.0]), [0, 0.5, 1])
    scaled = MinMaxScaler(feature_range=(-1, 1)).fit_transform(np.array([2.0, 4.0, 6.0]))
    np.testing.assert_allclose(scaled, [-1, 0, 1])


def test_standard_values_use_population_std():
    scaler = StandardScaler().fit([1.0, 2.0, 3.0])
    assert scaler.mean_ == pytest.approx(2.0)
    assert scaler.scale_ == pytest.approx(np.sqrt(2 / 3))
    np.testing.assert_allclose(scaler.transform([1.0, 2.0, 3.0]), [-1.224744871, 0, 1.224744871])


def test_scaling_is_per_feature_on_the_last_axis():
    data = np.array([[0.0, 10.0], [5.0, 20.0], [10.0, 30.0]])
    minmax = MinMaxScaler().fit(data)
    np.testing.assert_array_equal(minmax.data_min_, [0, 10])
    np.testing.assert_allclose(minmax.transform(data), [[0, 0], [0.5, 0.5], [1, 1]])
    standard = StandardScaler().fit(data)
    expected = (data - data.mean(axis=0)) / data.std(axis=0)
    np.testing.assert_allclose(standard.transform(data), expected)
    windows = np.stack([data, data + 5])  # (2, 3, 2): stats pool over all leading axes
    np.testing.assert_array_equal(MinMaxScaler().fit(windows).data_max_, [15, 35])


@pytest.mark.parametrize("cls", SCALER_CLASSES)
def test_round_trip(cls):
    data = np.random.default_rng(1).normal(5.0, 3.0, size=(50, 3))
    scaler = cls().fit(data)
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(data)), data)


def test_fit_on_train_only_applies_train_parameters_to_test():
    train, test = np.arange(11.0), np.array([12.0, -2.0])
    scaler = MinMaxScaler().fit(train)
    np.testing.assert_allclose(scaler.transform(test), [1.2, -0.2])  # not clipped
    assert (scaler.data_min_, scaler.data_max_) == (0.0, 10.0)  # transform does not refit
    standard = StandardScaler()
    standard.fit_transform(train)
    standard.transform(test)
    assert standard.mean_ == pytest.approx(5.0)  # the train mean, not that of train + test


def test_univariate_fit_accepts_windows_and_forecasts_of_any_shape():
    scaler = StandardScaler().fit(np.arange(10.0))
    windows = np.arange(12.0).reshape(2, 3, 2)
    np.testing.assert_allclose(scaler.transform(windows), (windows - 4.5) / np.std(np.arange(10)))
    forecasts = np.ones((4, 3))
    assert scaler.inverse_transform(forecasts).shape == (4, 3)


@pytest.mark.parametrize("cls", SCALER_CLASSES)
def test_constant_series_never_divides_by_zero(cls):
    data = np.column_stack([np.full(5, 7.0), np.arange(5.0)])
    scaler = cls().fit(data)
    scaled = scaler.transform(data)
    assert np.isfinite(scaled).all()
    expected_constant = 0.0  # MinMax maps to feature_range[0]; Standard centres to 0
    np.testing.assert_array_equal(scaled[:, 0], expected_constant)
    np.testing.assert_allclose(scaler.inverse_transform(scaled), data)


def test_float32_stays_float32_and_ints_become_float64():
    scaler = MinMaxScaler().fit(np.arange(4.0))
    assert scaler.transform(np.arange(4, dtype=np.float32)).dtype == np.float32
    assert scaler.transform(np.arange(4)).dtype == np.float64


@pytest.mark.parametrize("cls", SCALER_CLASSES)
@pytest.mark.parametrize("method", ["transform", "inverse_transform"])
def test_transform_before_fit_is_refused(cls, method):
    with pytest.raises(ValueError, match=f"{cls.__name__}: expected fit"):
        getattr(cls(), method)(np.arange(3.0))


def test_reading_parameters_before_fit_is_refused():
    with pytest.raises(ValueError, match="before reading data_min_"):
        _ = MinMaxScaler().data_min_


def test_feature_count_mismatch_names_the_fitted_count():
    scaler = StandardScaler().fit(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"last axis of 2 features .* got shape \(4, 3\)"):
        scaler.transform(np.zeros((4, 3)))


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ([1.0, np.nan, 2.0], ValueError, "data: expected finite values"),
        (["a", "b"], TypeError, "data: expected numeric"),
        (np.zeros((0, 2)), ValueError, "data: expected at least one value"),
    ],
)
def test_bad_fit_data(data, error, message):
    with pytest.raises(error, match=message):
        MinMaxScaler().fit(data)


@pytest.mark.parametrize(
    ("feature_range", "error"), [((1, 0), ValueError), ((0, 0), ValueError), ("ab", TypeError)]
)
def test_bad_feature_range(feature_range, error):
    with pytest.raises(error, match="feature_range: expected"):
        MinMaxScaler(feature_range=feature_range)


@pytest.mark.parametrize("cls", SCALER_CLASSES)
def test_config_survives_json_and_reproduces_the_transform(cls):
    data = np.random.default_rng(2).uniform(-3, 9, size=(20, 2))
    scaler = cls().fit(data)
    config = json.loads(json.dumps(scaler.to_config()))
    for rebuilt in (cls.from_config(config), scaler_from_config(config)):
        assert type(rebuilt) is cls
        np.testing.assert_array_equal(rebuilt.transform(data), scaler.transform(data))
    unfitted = scaler_from_config(json.loads(json.dumps(cls().to_config())))
    assert not unfitted.fitted


def test_minmax_config_keeps_feature_range():
    config = json.loads(json.dumps(MinMaxScaler((-1, 1)).fit([0.0, 2.0]).to_config()))
    np.testing.assert_allclose(scaler_from_config(config).transform([1.0]), [0.0])


def test_from_config_refuses_another_class():
    with pytest.raises(ValueError, match="expected class_name 'StandardScaler'"):
        StandardScaler.from_config(MinMaxScaler().to_config())


def test_get_scaler():
    assert isinstance(get_scaler("minmax"), MinMaxScaler)
    assert isinstance(get_scaler("Standard"), StandardScaler)
    assert get_scaler("minmax", feature_range=(-1, 1)).feature_range == (-1.0, 1.0)
    with pytest.raises(ValueError, match=r"name: expected one of \('minmax', 'standard'\)"):
        get_scaler("robust")
    with pytest.raises(TypeError, match="name: expected a str"):
        get_scaler(None)
