"""Random calls to the Keras-face recurrent layers (LSTM, GRU, SimpleRNN, Bidirectional).

A :class:`RecurrentPlan` is one well-formed call (layer options, input shape, form and layout, and
an optional mask, lengths or initial state) plus one or two *defects*, each in its own slot:
``inputs``, ``extras`` (mask / lengths / initial_state) or ``kwarg``. The malformed call is the
well-formed one with the defects applied; each defect knows which argument its error must name.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st

from rnnkit import layers

from . import _inputs

KINDS = ("LSTM", "GRU", "SimpleRNN")
EXTRAS = (None, "mask", "lengths", "state")


@dataclass(frozen=True)
class RecurrentPlan:
    kind: str
    bidirectional: bool
    units: int
    options: tuple  # sorted (name, value) pairs for the constructor
    training: bool
    batch: int
    steps: int
    features: int
    form: str
    layout: str
    requires_grad: bool
    extra: str | None
    extra_form: str
    fresh: bool  # the malformed call goes to a new, unbuilt layer
    defects: tuple  # ((slot, kind, parameter), ...)
    seed: int

    def make_layer(self):
        layer = getattr(layers, self.kind)(self.units, **dict(self.options))
        return layers.Bidirectional(layer) if self.bidirectional else layer

    @property
    def state_sizes(self) -> tuple[int, ...]:
        per_direction = (self.units, self.units) if self.kind == "LSTM" else (self.units,)
        return per_direction * (2 if self.bidirectional else 1)

    @property
    def deterministic(self) -> bool:
        rates = dict(self.options)
        return not (self.training and (rates.get("dropout") or rates.get("recurrent_dropout")))


# -- strategies ---------------------------------------------------------------------------------
@st.composite
def recurrent_plans(draw) -> RecurrentPlan:
    kind = draw(st.sampled_from(KINDS))
    units, batch = draw(st.integers(1, 4)), draw(st.integers(0, 3))
    steps, features = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    options = {
        "return_sequences": draw(st.booleans()),
        "return_state": draw(st.booleans()),
        "go_backwards": draw(st.booleans()),
        "backend": draw(st.sampled_from(("auto", "reference"))),
        "dropout": draw(st.sampled_from((0.0, 0.3))),
        "recurrent_dropout": draw(st.sampled_from((0.0, 0.3))),
    }
    form = draw(st.sampled_from(tuple(_inputs.FLOAT_FORMS)))
    fresh = draw(st.booleans())
    plan = dict(
        kind=kind,
        bidirectional=draw(st.booleans()),
        units=units,
        options=tuple(sorted(options.items())),
        training=draw(st.booleans()),
        batch=batch,
        steps=steps,
        features=features,
        form=form,
        layout=draw(st.sampled_from(_inputs.LAYOUTS)),
        requires_grad=form.startswith("t") and draw(st.booleans()),
        extra=draw(st.sampled_from(EXTRAS)),
        extra_form=draw(
            st.sampled_from(
                ("bool", "int", "float", *_inputs.INTEGER_DTYPES, "np32", "np64", "t32", "t64")
            )
        ),
        fresh=fresh,
        seed=draw(_inputs.seeds),
    )
    slots = draw(
        st.lists(
            st.sampled_from(("inputs", "extras", "kwarg")), min_size=1, max_size=2, unique=True
        )
    )
    defects = tuple(draw(_defect(slot, min(batch, 1), fresh)) for slot in sorted(slots))
    return RecurrentPlan(**plan, defects=defects)


# Cached: building hypothesis strategies costs more than drawing from them.
@functools.cache
def _defect(slot: str, batch: int, fresh: bool):
    if slot == "kwarg":
        return st.just(("kwarg", "unknown", "bogus_option"))
    if slot == "inputs":
        kinds = [
            st.tuples(st.just("rank"), st.sampled_from((0, 1, 2, 4, 5))),
            st.tuples(st.just("no_steps"), st.none()),
            st.tuples(st.just("non_float"), st.sampled_from(_inputs.NON_FLOAT_FORMS)),
            st.tuples(st.just("not_array"), st.sampled_from(_inputs.NOT_ARRAYS)),
            st.tuples(st.just("meta"), st.none()),
            st.tuples(st.just("overflow"), st.booleans()),
        ]
        if not fresh:  # a built layer knows its feature size
            kinds.append(st.tuples(st.just("features"), st.sampled_from((0, 1, 2, 5))))
        else:
            kinds.append(st.tuples(st.just("no_features"), st.none()))
        return st.one_of(kinds).map(lambda kind: ("inputs", *kind))
    mask = [
        ("mask_batch", st.integers(1, 3)),
        ("mask_steps", st.sampled_from((-1, 1, 2))),
        ("mask_rank", st.sampled_from((1, 3))),
        ("mask_complex", st.none()),
        ("mask_meta", st.none()),
        ("mask_type", st.sampled_from(_inputs.NOT_ARRAYS[1:4])),
    ]
    lengths = [
        ("lengths_dtype", st.sampled_from(("float32", "float64", "bool", "complex64"))),
        ("lengths_shape", st.sampled_from(("longer", "column", "scalar"))),
        ("lengths_meta", st.none()),
        ("lengths_type", st.sampled_from(("string",))),
        ("mask_and_lengths", st.none()),
    ]
    state = [
        ("state_count", st.sampled_from((-1, 1, 2))),
        ("state_batch", st.integers(1, 3)),
        ("state_units", st.sampled_from((-1, 1, 3))),
        ("state_rank", st.sampled_from((1, 3))),
        ("state_non_float", st.sampled_from(("np-int64", "t-int32", "t-bool"))),
        ("state_type", st.sampled_from(("string", "number", "dict", "tensor"))),
        ("state_meta", st.none()),
        ("state_overflow", st.none()),
    ]
    if batch:  # value defects need at least one value
        mask.append(("mask_values", st.sampled_from((2.0, 0.5, -1.0, float("nan")))))
        lengths += [("lengths_high", st.integers(1, 4)), ("lengths_low", st.integers(-3, 0))]
    choices = [st.tuples(st.just(name), parameter) for name, parameter in mask + lengths + state]
    return st.one_of(choices).map(lambda kind: ("extras", *kind))


# -- materialising calls ----------------------------------------------------------------------
def well_formed_call(plan: RecurrentPlan, rng: np.random.Generator) -> dict:
    """The keyword arguments of the well-formed call (``inputs`` included)."""
    shape = (plan.batch, plan.steps, plan.features)
    call = {
        "inputs": _inputs.floats(rng, shape, plan.form, plan.layout, plan.requires_grad),
        "training": plan.training,
    }
    if plan.extra == "mask":
        call["mask"] = _mask(rng, plan.batch, plan.steps, plan.extra_form)
    elif plan.extra == "lengths":
        dtype = plan.extra_form if plan.extra_form in _inputs.INTEGER_DTYPES else "int64"
        call["lengths"] = _inputs.integers(rng.integers(1, plan.steps + 1, plan.batch), dtype)
    elif plan.extra == "state":
        form = plan.extra_form if plan.extra_form in ("np32", "np64", "t32", "t64") else "np32"
        call["initial_state"] = [
            _inputs.floats(rng, (plan.batch, size), form) for size in plan.state_sizes
        ]
    return call


def _mask(rng, batch: int, steps: int, form: str):
    values = rng.integers(0, 2, size=(batch, steps))
    if form == "bool":
        return values.astype(bool)
    if form == "float":
        return values.astype(np.float32)
    return values.astype(form if form in _inputs.INTEGER_DTYPES else "int64")


def malformed_call(plan: RecurrentPlan, rng: np.random.Generator, call: dict):
    """``call`` with the plan's defects applied; returns ``(call, argument names)``."""
    call, names = dict(call), []
    for slot, kind, parameter in plan.defects:
        if slot == "kwarg":
            call[parameter] = 1
            names.append(parameter)
        elif slot == "inputs":
            call["inputs"] = _bad_inputs(plan, rng, kind, parameter)
            names.append("inputs")
        else:
            names.extend(_apply_extra_defect(plan, rng, call, kind, parameter))
    return call, tuple(names)


def _bad_inputs(plan: RecurrentPlan, rng, kind: str, parameter):
    batch, steps, features = plan.batch, plan.steps, plan.features
    if kind == "rank":
        return rng.uniform(-1, 1, size=tuple(rng.integers(1, 4, parameter))).astype(np.float32)
    if kind == "no_steps":
        return np.zeros((batch, 0, features), np.float32)
    if kind == "no_features":
        return np.zeros((batch, steps, 0), np.float32)
    if kind == "features":
        wrong = parameter if parameter != features else features + 1
        return _inputs.floats(rng, (batch, steps, wrong), plan.form)
    if kind == "non_float":
        return _inputs.non_float(rng, (batch, steps, features), parameter)
    if kind == "not_array":
        return _inputs.not_an_array(parameter, (batch, steps, features))
    if kind == "meta":
        return _inputs.on_meta((batch, steps, features))
    return _inputs.overflowing(rng, (max(batch, 1), steps, features), torch_tensor=parameter)


def _apply_extra_defect(plan: RecurrentPlan, rng, call: dict, kind: str, parameter):
    batch, steps = plan.batch, plan.steps
    if kind.startswith("mask"):
        call.pop("lengths", None)
        if kind == "mask_and_lengths":
            call["mask"] = np.ones((batch, steps), bool)
            call["lengths"] = np.full(batch, steps)
            return ["mask", "lengths"]
        call["mask"] = _bad_mask(rng, batch, steps, kind, parameter)
        return ["mask"]
    if kind.startswith("lengths"):
        call.pop("mask", None)
        call["lengths"] = _bad_lengths(rng, batch, steps, kind, parameter)
        return ["lengths"]
    call["initial_state"] = _bad_state(plan, rng, kind, parameter)
    return ["initial_state"]


def _bad_mask(rng, batch: int, steps: int, kind: str, parameter):
    if kind == "mask_batch":
        return np.ones((batch + parameter, steps), bool)
    if kind == "mask_steps":
        return np.ones(
            (batch, max(steps + parameter, 0) if parameter < 0 else steps + parameter), bool
        )
    if kind == "mask_rank":
        return np.ones((batch,) if parameter == 1 else (batch, steps, 1), bool)
    if kind == "mask_complex":
        return np.ones((batch, steps), np.complex64)
    if kind == "mask_meta":
        return _inputs.on_meta((batch, steps), torch.bool)
    if kind == "mask_type":
        return _inputs.not_an_array(parameter)
    values = rng.integers(0, 2, size=(batch, steps)).astype(np.float64)
    values.flat[int(rng.integers(values.size))] = parameter
    return values


def _bad_lengths(rng, batch: int, steps: int, kind: str, parameter):
    valid = rng.integers(1, steps + 1, size=batch)
    if kind == "lengths_dtype":
        return valid.astype(parameter)
    if kind == "lengths_shape":
        if parameter == "longer":
            return np.ones(batch + 1, np.int64)
        return valid[:, None] if parameter == "column" else np.int64(1)
    if kind == "lengths_meta":
        return _inputs.on_meta((batch,), torch.int64)
    if kind == "lengths_type":
        return "12"
    valid[int(rng.integers(batch))] = steps + parameter if kind == "lengths_high" else parameter
    return valid


def _bad_state(plan: RecurrentPlan, rng, kind: str, parameter):
    batch, sizes = plan.batch, plan.state_sizes

    def states(batch=batch, extra_units=0, rank=2):
        made = []
        for size in sizes:
            shape = {1: (size,), 2: (batch, size + extra_units), 3: (1, batch, size)}[rank]
            made.append(rng.uniform(-1, 1, size=shape).astype(np.float32))
        return made

    if kind == "state_count":
        made = states()
        return made[:parameter] if parameter < 0 else made + states()[:parameter]
    if kind == "state_batch":
        return states(batch=batch + parameter)
    if kind == "state_units":
        return states(extra_units=parameter if sizes[0] + parameter > 0 else 1)
    if kind == "state_rank":
        return states(rank=parameter)
    if kind == "state_non_float":
        return [_inputs.non_float(rng, (batch, size), parameter) for size in sizes]
    if kind == "state_type":
        if parameter == "tensor" and len(sizes) == 1:  # one tensor is a valid single state
            return "one state"
        return {
            "string": "state",
            "number": 3,
            "dict": {"h": 1},
            "tensor": torch.zeros(len(sizes), batch, sizes[0]),
        }[parameter]
    if kind == "state_meta":
        return [_inputs.on_meta((batch, size)) for size in sizes]
    made = states()
    made[0] = _inputs.overflowing(rng, (max(batch, 1), sizes[0]), torch_tensor=False)
    return made if batch else [_inputs.overflowing(rng, (1, size), False) for size in sizes]


def expected_shapes(plan: RecurrentPlan) -> list[tuple[int, ...]]:
    """Shapes of the well-formed call's outputs, flattened: output then states."""
    options = dict(plan.options)
    width = plan.units * (2 if plan.bidirectional else 1)
    output = (plan.batch, plan.steps, width) if options["return_sequences"] else (plan.batch, width)
    if not options["return_state"]:
        return [output]
    return [output] + [(plan.batch, size) for size in plan.state_sizes]
