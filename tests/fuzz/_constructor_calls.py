"""Random constructor arguments: one valid argument set per layer or module, and one bad value.

Each target lists its arguments as ``name: (valid values, bad values)``. A plan draws a valid value
for every argument, then replaces one with a bad value; the error must name that argument (or, via
``ALIASES``, the shorter name the shared helper uses).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from hypothesis import strategies as st

from rnnkit import layers
from rnnkit import nn as rnn_nn

NOT_INTEGERS = (0, -1, -7, 2.5, True, "3", None)
BAD_RATES = (-0.1, 1.0, 1.5, math.nan, math.inf, -math.inf)
BAD_ACTIVATIONS = ("nope", "", "TANH", 3)
BAD_INITIALIZERS = ("nope", 3)
BAD_BACKENDS = ("cuda", "", None, "FUSED")

# The activation and initializer helpers name themselves, not the argument; see docs/errors.md.
ALIASES = {
    "recurrent_activation": ("activation",),
    "kernel_initializer": ("initializer",),
    "recurrent_initializer": ("initializer",),
    "bias_initializer": ("initializer",),
    "embeddings_initializer": ("initializer",),
}

_RECURRENT = {
    "units": ((1, 2, 4, np.int64(3)), NOT_INTEGERS),
    "activation": (("tanh", "sigmoid", "relu", "linear", None), BAD_ACTIVATIONS),
    "dropout": ((0.0, 0.25, 0.9), BAD_RATES),
    "recurrent_dropout": ((0.0, 0.5), BAD_RATES),
    "kernel_initializer": (("glorot_uniform", "orthogonal", "zeros"), BAD_INITIALIZERS),
    "recurrent_initializer": (("orthogonal", "glorot_normal"), BAD_INITIALIZERS),
    "bias_initializer": (("zeros", "ones"), BAD_INITIALIZERS),
    "backend": (("auto", "reference"), BAD_BACKENDS),
    "dtype": ((None, "float32", "float16", "bfloat16"), ("int32", "float8", 3)),
    "kernel_regularizer": ((None,), ("l2",)),
    "input_shape": (
        (None, (None, 2), (3, 2)),
        ((2,), (None, 0), (None, -1), (None, 2.5), (3, 2, 1), (0, 2), (1.5, 2)),
    ),
}
_GATED = {**_RECURRENT, "recurrent_activation": (("sigmoid", "hard_sigmoid"), BAD_ACTIVATIONS)}
_NN = {
    "input_size": ((1, 2, np.int64(2)), NOT_INTEGERS),
    "hidden_size": ((2, 3), NOT_INTEGERS),
    "num_layers": ((1, 2), NOT_INTEGERS),
    "dropout": ((0.0, 0.3, 1.0), (-0.1, 1.5, math.nan, "0.1", None)),
    "backend": (("auto", "reference"), BAD_BACKENDS),
}

TARGETS = {
    "LSTM": (layers.LSTM, {**_GATED, "proj_size": ((0, 1), (-1, "units", "units+1"))}),
    "GRU": (layers.GRU, _GATED),
    "SimpleRNN": (layers.SimpleRNN, _RECURRENT),
    "Bidirectional": (
        layers.Bidirectional,
        {
            "layer": (("lstm", "gru"), ("dense", "string", None, "bare-cell")),
            "merge_mode": (("concat", "sum", "mul", "ave", None), ("max", "", 3)),
            "backward_layer": ((None, "matching"), ("same-direction", "sequences-differ", "dense")),
        },
    ),
    "nn.LSTM": (rnn_nn.LSTM, {**_NN, "proj_size": ((0, 1), (-1, 3, 9, 1.5, "1"))}),
    "nn.GRU": (rnn_nn.GRU, _NN),
    "nn.RNN": (rnn_nn.RNN, {**_NN, "nonlinearity": (("tanh", "relu"), ("sigmoid", "", None))}),
    "Embedding": (
        layers.Embedding,
        {
            "input_dim": ((1, 5, 100), NOT_INTEGERS),
            "output_dim": ((1, 3), NOT_INTEGERS),
            "input_length": ((None, 3), (0, -2, 2.5)),
            "embeddings_initializer": (("uniform", "zeros", "glorot_uniform"), BAD_INITIALIZERS),
        },
    ),
    "Dense": (
        layers.Dense,
        {
            "units": ((1, 3), NOT_INTEGERS),
            "activation": ((None, "relu", "softmax"), BAD_ACTIVATIONS),
        },
    ),
    "Dropout": (layers.Dropout, {"rate": ((0.0, 0.5, 1.0), (-0.1, 1.5, math.nan, "0.5", None))}),
}


@st.composite
def constructor_plans(draw):
    """``(target, valid kwargs, bad argument name, bad value)``."""
    target = draw(st.sampled_from(sorted(TARGETS)))
    arguments = TARGETS[target][1]
    valid = {name: draw(st.sampled_from(good)) for name, (good, _) in arguments.items()}
    bad_name = draw(st.sampled_from(sorted(arguments)))
    bad_value = draw(st.sampled_from(arguments[bad_name][1]))
    if target == "LSTM":  # proj_size is valid only below units
        if bad_name == "units" or valid["proj_size"] >= valid["units"]:
            valid["proj_size"] = 0
        if bad_value in ("units", "units+1"):
            bad_value = int(valid["units"]) + (bad_value == "units+1")
    return target, valid, bad_name, bad_value


def construct(target: str, kwargs: dict):
    """Build ``target`` from plan-level ``kwargs`` (a few values are symbolic, resolved here)."""
    factory, _ = TARGETS[target]
    kwargs = {k: v for k, v in kwargs.items() if not (v is None and k in _OMIT_IF_NONE)}
    if target == "Bidirectional":
        return _bidirectional(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # dropout with num_layers=1
        if target.startswith("nn."):
            return factory(kwargs.pop("input_size"), kwargs.pop("hidden_size"), **kwargs)
        if target == "Embedding":
            return factory(kwargs.pop("input_dim"), kwargs.pop("output_dim"), **kwargs)
        if target == "Dropout":
            return factory(kwargs.pop("rate"))
        return factory(kwargs.pop("units"), **kwargs)


# Arguments whose "valid" None means "not given" (their constructors default them).
_OMIT_IF_NONE = ("input_shape", "kernel_regularizer", "input_length", "backward_layer")


def _bidirectional(kwargs: dict):
    inner = {
        "lstm": lambda: layers.LSTM(2, return_sequences=True),
        "gru": lambda: layers.GRU(2, return_sequences=True),
        "dense": lambda: layers.Dense(2),
        "string": lambda: "lstm",
        None: lambda: None,
        "bare-cell": lambda: layers.LSTM(2).cell,
    }
    layer = inner[kwargs["layer"]]()
    backward = {
        None: None,
        "matching": lambda: layers.GRU(2, return_sequences=True, go_backwards=True),
        "same-direction": lambda: layers.GRU(2, return_sequences=True),
        "sequences-differ": lambda: layers.GRU(2, go_backwards=True),
        "dense": lambda: layers.Dense(2),
    }[kwargs.get("backward_layer")]
    options = {"merge_mode": kwargs["merge_mode"]}
    if backward is not None:
        options["backward_layer"] = backward()
    return layers.Bidirectional(layer, **options)


def sample_input(target: str, built, rng: np.random.Generator):
    """A well-formed input for a constructed layer or module (None: nothing to call)."""
    if target == "Embedding":
        length = built.input_length or 3
        return rng.integers(0, built.input_dim, size=(2, length))
    if target.startswith("nn."):
        import torch

        return torch.from_numpy(rng.uniform(-1, 1, (3, 2, built.input_size)).astype(np.float32))
    if target in ("Dense", "Dropout"):
        return rng.uniform(-1, 1, (2, 3)).astype(np.float32)
    features = 2
    shape = getattr(built, "batch_input_shape", None)
    if shape is not None and shape[-1] is not None:
        features = shape[-1]
    steps = 3 if shape is None or shape[1] is None else shape[1]
    return rng.uniform(-1, 1, (2, steps, features)).astype(np.float32)
