"""Random calls to ``Embedding`` and to ``Sequential.predict/evaluate/fit``.

Embedding plans draw token ids in many dtypes and layouts, with one defect (out-of-range,
non-whole, NaN/inf, wrong dtype, meta, not an array, wrong input_length). Model plans draw a small
compiled model, a method and well-formed data, with one defect in ``x``, ``y`` or ``batch_size``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st

from rnnkit import layers
from rnnkit.models import Sequential

from . import _inputs

ID_FORMS = (
    "int64",
    "int32",
    "int16",
    "uint8",
    "uint16",
    "float32",
    "float64",
    "t-int64",
    "t-int32",
)
ID_DEFECTS = (
    "negative",
    "too_large",
    "huge",
    "fraction",
    "nan",
    "inf",
    "bool",
    "complex",
    "meta",
    "not_array",
    "input_length",
)


@dataclass(frozen=True)
class EmbeddingPlan:
    input_dim: int
    output_dim: int
    mask_zero: bool
    input_length: int | None
    shape: tuple
    form: str
    defect: str
    seed: int


@st.composite
def embedding_plans(draw) -> EmbeddingPlan:
    shape = tuple(draw(st.lists(st.integers(0, 3), min_size=1, max_size=3)))
    fixed_length = len(shape) >= 2 and shape[1] >= 1 and draw(st.booleans())
    defects = ID_DEFECTS if fixed_length else ID_DEFECTS[:-1]  # the last needs input_length
    return EmbeddingPlan(
        input_dim=draw(st.integers(1, 300)),
        output_dim=draw(st.integers(1, 4)),
        mask_zero=draw(st.booleans()),
        input_length=shape[1] if fixed_length else None,
        shape=shape,
        form=draw(st.sampled_from(ID_FORMS)),
        defect=draw(st.sampled_from(defects)),
        seed=draw(_inputs.seeds),
    )


def embedding_ids(plan: EmbeddingPlan, rng: np.random.Generator):
    """Well-formed ids of the plan's shape and form (narrow dtypes cap the vocabulary)."""
    top = min(plan.input_dim, 127 if plan.form in ("int16", "uint8") else plan.input_dim)
    values = rng.integers(0, top, size=plan.shape)
    if plan.form.startswith("t-"):
        return torch.from_numpy(values).to(getattr(torch, plan.form[2:]))
    return values.astype(plan.form)


def bad_embedding_ids(plan: EmbeddingPlan, rng: np.random.Generator):
    """Ids with the plan's defect; always at least one value, so value defects show."""
    shape = tuple(max(d, 1) for d in plan.shape)
    values = rng.integers(0, plan.input_dim, size=shape).astype(np.float64)
    spot = int(rng.integers(values.size))
    replacement = {
        "negative": -1,
        "too_large": plan.input_dim,
        "huge": 1e30,
        "fraction": 0.5,
        "nan": np.nan,
        "inf": np.inf,
    }
    if plan.defect in replacement:
        values.flat[spot] = replacement[plan.defect]
        integral = plan.defect in ("negative", "too_large")
        return values.astype(np.int64) if integral else values
    if plan.defect == "bool":
        return values > 0
    if plan.defect == "complex":
        return values.astype(np.complex64)
    if plan.defect == "meta":
        return _inputs.on_meta(shape, torch.int64)
    if plan.defect == "not_array":
        return _inputs.not_an_array(("string", "object-array", "ragged-list")[spot % 3], shape)
    wrong = (*shape[:1], (plan.input_length or shape[1]) + 1, *shape[2:])  # input_length
    return rng.integers(0, plan.input_dim, size=wrong)


def make_embedding(plan: EmbeddingPlan):
    return layers.Embedding(
        plan.input_dim, plan.output_dim, mask_zero=plan.mask_zero, input_length=plan.input_length
    )


# -- Sequential ----------------------------------------------------------------------------------
MODELS = ("lstm", "embedding-gru", "bidirectional")
METHODS = ("predict", "evaluate", "fit")
MODEL_DEFECTS = {
    "x_nan": "x",
    "x_inf": "x",
    "x_rank": "inputs",
    "x_integers": "inputs",
    "x_no_steps": "inputs",
    "x_features": "inputs",
    "x_string": "x",
    "x_none": "x",
    "x_overflow": "x",
    "y_nan": "y",
    "y_samples": "y",
    "batch_size_zero": "batch_size",
    "batch_size_fraction": "batch_size",
}
FEATURES = 2
VOCABULARY = 10


def build_models() -> dict:
    """One compiled, built model per kind (built so that feature mismatches are defects)."""
    made = {
        "lstm": Sequential([layers.LSTM(3), layers.Dense(1)]),
        "embedding-gru": Sequential(
            [layers.Embedding(VOCABULARY, 3, mask_zero=True), layers.GRU(3), layers.Dense(1)]
        ),
        "bidirectional": Sequential([layers.Bidirectional(layers.SimpleRNN(2)), layers.Dense(1)]),
    }
    for name, model in made.items():
        model.compile("adam", "mse")
        model.predict(model_x(name, np.random.default_rng(0), 2, 3), verbose=0)
    return made


@st.composite
def model_plans(draw):
    method = draw(st.sampled_from(METHODS))
    defects = sorted(MODEL_DEFECTS)
    if method == "predict":
        defects = [d for d in defects if not d.startswith("y_")]
    return dict(
        model=draw(st.sampled_from(MODELS)),
        method=method,
        batch=draw(st.integers(1, 4)),
        steps=draw(st.integers(1, 4)),
        batch_size=draw(st.sampled_from((None, 1, 3))),
        defect=draw(st.sampled_from(defects)),
        seed=draw(_inputs.seeds),
    )


def model_x(model: str, rng: np.random.Generator, batch: int, steps: int):
    if model == "embedding-gru":
        return rng.integers(0, VOCABULARY, size=(batch, steps))
    return rng.uniform(-1, 1, size=(batch, steps, FEATURES)).astype(np.float32)


def model_call(plan: dict, rng: np.random.Generator, defect: str | None) -> dict:
    """The keyword arguments of ``model.<method>``, with ``defect`` applied when given."""
    x = model_x(plan["model"], rng, plan["batch"], plan["steps"])
    call = {"x": x, "batch_size": plan["batch_size"], "verbose": 0}
    if plan["method"] != "predict":
        call["y"] = rng.uniform(-1, 1, size=(plan["batch"], 1)).astype(np.float32)
    if defect is not None:
        _apply_model_defect(plan, rng, call, defect)
    return call


def _apply_model_defect(plan: dict, rng, call: dict, defect: str) -> None:
    x, embedding = call["x"], plan["model"] == "embedding-gru"
    if defect in ("x_nan", "x_inf"):
        x = x.astype(np.float64)
        x.flat[int(rng.integers(x.size))] = np.nan if defect == "x_nan" else np.inf
    elif defect == "x_rank" or (defect == "x_features" and embedding):
        x = x[..., None] if embedding else x[:, :, 0]  # ids (B, T, 1) feed the GRU rank 4
    elif defect == "x_integers":
        x = x + 0.5 if embedding else (x > 0).astype(np.int64)  # fractional ids, or integers
    elif defect == "x_no_steps":
        x = x[:, :0]
    elif defect == "x_features":
        x = np.concatenate([x, x], axis=-1)
    elif defect == "x_overflow":
        x = x.astype(np.float64)
        x.flat[0] = 1e300
    elif defect in ("x_string", "x_none"):
        x = "data" if defect == "x_string" else None
    elif defect == "y_nan":
        call["y"] = call["y"].copy()
        call["y"][0, 0] = np.nan
    elif defect == "y_samples":
        call["y"] = call["y"][:-1] if len(call["y"]) > 1 else np.zeros((2, 1), np.float32)
    elif defect == "batch_size_zero":
        call["batch_size"] = 0
    else:
        call["batch_size"] = 1.5
    call["x"] = x
