"""Per-feature scalers with JSON configs, so a saved model can carry the scaler it was trained with.

The feature axis is the last axis. A scaler fitted on a 1-D series treats every value as one
feature and then accepts arrays of any shape (windows ``(N, window, 1)``, forecasts
``(N, horizon)``...). A scaler fitted on ``(..., F)`` data requires a last axis of size ``F``.

Fit on the training part only, then transform the validation and test parts with the same
parameters; values outside the training range are not clipped.
"""

from __future__ import annotations

import numbers

import numpy as np

from rnnkit.data._arrays import check_finite, float_array, one_of


class _Scaler:
    """Fit/transform plumbing; subclasses define ``_fit_params``, ``_forward`` and ``_inverse``."""

    _param_names: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.n_features_: int | None = None
        self._params: dict[str, np.ndarray] | None = None

    @property
    def fitted(self) -> bool:
        return self._params is not None

    def fit(self, data) -> _Scaler:
        """Learn per-feature parameters from ``data (T,)`` or ``(..., F)``; returns ``self``."""
        values = self._check_data(data, "data", fitting=True)
        if values.size == 0:
            raise ValueError(f"data: expected at least one value to fit on, got {values.shape}")
        axes = tuple(range(values.ndim)) if values.ndim == 1 else tuple(range(values.ndim - 1))
        self._params = self._fit_params(values.astype(np.float64), axes)
        self.n_features_ = None if values.ndim == 1 else int(values.shape[-1])
        return self

    def transform(self, data) -> np.ndarray:
        """Scale ``data``; same shape out, float dtype kept (integers become float64)."""
        values = self._check_data(data, "data")
        return self._forward(values).astype(values.dtype, copy=False)

    def fit_transform(self, data) -> np.ndarray:
        return self.fit(data).transform(data)

    def inverse_transform(self, data) -> np.ndarray:
        """Undo ``transform``: ``inverse_transform(transform(x)) == x`` up to rounding."""
        values = self._check_data(data, "data")
        return self._inverse(values).astype(values.dtype, copy=False)

    def to_config(self) -> dict:
        """A JSON-serialisable dict; ``from_config`` rebuilds an equal scaler, fitted or not."""
        config = {"class_name": type(self).__name__, **self._init_config()}
        config["n_features"] = self.n_features_
        config["params"] = (
            None
            if self._params is None
            else {key: np.asarray(value).tolist() for key, value in self._params.items()}
        )
        return config

    @classmethod
    def from_config(cls, config: dict) -> _Scaler:
        if not isinstance(config, dict):
            raise TypeError(f"config: expected a dict, got {type(config).__name__}")
        if config.get("class_name") != cls.__name__:
            raise ValueError(
                f"config: expected class_name {cls.__name__!r}, got {config.get('class_name')!r}"
            )
        init = {key: config[key] for key in cls._init_keys() if key in config}
        scaler = cls(**init)
        params = config.get("params")
        if params is not None:
            if set(params) != set(cls._param_names):
                raise ValueError(
                    f"config['params']: expected keys {sorted(cls._param_names)}, "
                    f"got {sorted(params)}"
                )
            scaler._params = {key: np.asarray(params[key], dtype=np.float64) for key in params}
            scaler.n_features_ = config.get("n_features")
        return scaler

    def _require(self, key: str) -> np.ndarray:
        if self._params is None:
            raise ValueError(
                f"{type(self).__name__}: expected fit() to be called before reading {key}_, "
                f"got an unfitted scaler"
            )
        return self._params[key]

    def _check_data(self, data, name: str, fitting: bool = False) -> np.ndarray:
        if not fitting and self._params is None:
            raise ValueError(
                f"{type(self).__name__}: expected fit() to be called before transform or "
                f"inverse_transform, got an unfitted scaler"
            )
        values = float_array(data, name)
        check_finite(values, name)
        if not fitting and self.n_features_ is not None:
            if values.ndim == 0 or values.shape[-1] != self.n_features_:
                raise ValueError(
                    f"{name}: expected a last axis of {self.n_features_} features (the fitted "
                    f"number), got shape {values.shape}"
                )
        return values

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self._init_config().items())
        return f"{type(self).__name__}({settings})"

    def _init_config(self) -> dict:
        return {}

    @classmethod
    def _init_keys(cls) -> tuple[str, ...]:
        return ()


def _nonzero(scale: np.ndarray) -> np.ndarray:
    """Replace zero spreads by 1 so a constant feature maps to a constant, never to inf/NaN."""
    return np.where(scale == 0.0, 1.0, scale)


class MinMaxScaler(_Scaler):
    """``x -> lo + (x - data_min) / (data_max - data_min) * (hi - lo)``, per feature.

    A constant feature (``data_max == data_min``) maps to ``lo``, and back to the constant.

    Example:
        >>> MinMaxScaler().fit_transform(np.array([2.0, 4.0, 6.0])).tolist()
        [0.0, 0.5, 1.0]
    """

    _param_names = ("data_min", "data_max")

    def __init__(self, feature_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__()
        self.feature_range = _check_feature_range(feature_range)

    @property
    def data_min_(self) -> np.ndarray:
        return self._require("data_min")

    @property
    def data_max_(self) -> np.ndarray:
        return self._require("data_max")

    def _fit_params(self, values: np.ndarray, axes: tuple[int, ...]) -> dict[str, np.ndarray]:
        return {"data_min": values.min(axis=axes), "data_max": values.max(axis=axes)}

    def _forward(self, values: np.ndarray) -> np.ndarray:
        low, high = self.feature_range
        data_min, data_range = self._params["data_min"], self._range()
        return low + (values - data_min) / data_range * (high - low)

    def _inverse(self, values: np.ndarray) -> np.ndarray:
        low, high = self.feature_range
        return self._params["data_min"] + (values - low) / (high - low) * self._range()

    def _range(self) -> np.ndarray:
        return _nonzero(self._params["data_max"] - self._params["data_min"])

    def _init_config(self) -> dict:
        return {"feature_range": list(self.feature_range)}

    @classmethod
    def _init_keys(cls) -> tuple[str, ...]:
        return ("feature_range",)


class StandardScaler(_Scaler):
    """``x -> (x - mean) / std`` per feature (population std, ``ddof=0``).

    A constant feature (``std == 0``) is only centred: it maps to 0 and back to the constant.
    """

    _param_names = ("mean", "scale")

    @property
    def mean_(self) -> np.ndarray:
        return self._require("mean")

    @property
    def scale_(self) -> np.ndarray:
        return self._require("scale")

    def _fit_params(self, values: np.ndarray, axes: tuple[int, ...]) -> dict[str, np.ndarray]:
        return {"mean": values.mean(axis=axes), "scale": _nonzero(values.std(axis=axes))}

    def _forward(self, values: np.ndarray) -> np.ndarray:
        return (values - self._params["mean"]) / self._params["scale"]

    def _inverse(self, values: np.ndarray) -> np.ndarray:
        return values * self._params["scale"] + self._params["mean"]


SCALERS = {"minmax": MinMaxScaler, "standard": StandardScaler}


def get_scaler(name: str, **kwargs) -> MinMaxScaler | StandardScaler:
    """A new, unfitted scaler by name: ``"minmax"`` or ``"standard"``; ``kwargs`` go to it."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    one_of(name.lower(), "name", tuple(SCALERS))
    return SCALERS[name.lower()](**kwargs)


def scaler_from_config(config: dict) -> MinMaxScaler | StandardScaler:
    """Rebuild any scaler from its ``to_config()`` dict, choosing the class by ``class_name``."""
    if not isinstance(config, dict):
        raise TypeError(f"config: expected a dict, got {type(config).__name__}")
    classes = {cls.__name__: cls for cls in SCALERS.values()}
    one_of(config.get("class_name"), "config['class_name']", tuple(classes))
    return classes[config["class_name"]].from_config(config)


def _check_feature_range(feature_range) -> tuple[float, float]:
    valid = (
        isinstance(feature_range, (tuple, list))
        and len(feature_range) == 2
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in feature_range)
    )
    if not valid:
        raise TypeError(
            f"feature_range: expected a pair (min, max) of numbers, got {feature_range!r}"
        )
    low, high = float(feature_range[0]), float(feature_range[1])
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"feature_range: expected finite min < max, got {feature_range!r}")
    return low, high
