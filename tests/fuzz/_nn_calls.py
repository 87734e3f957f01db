"""Random calls to the torch.nn drop-ins (rnnkit.nn.LSTM, GRU, RNN).

As in :mod:`._recurrent_calls`: a well-formed ``forward`` (layout, unbatched or PackedSequence
input, ``hx``, ``lengths``) plus one or two defects in distinct slots (``input``, ``hx``,
``lengths``, ``kwarg``), each naming the argument its error must mention.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from rnnkit import nn as rnn_nn

from . import _inputs

EXTRAS = (None, "hx", "lengths", "packed")


@dataclass(frozen=True)
class ModulePlan:
    kind: str
    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    batch_first: bool
    proj_size: int
    backend: str
    training: bool
    batched: bool
    batch: int
    steps: int
    layout: str
    requires_grad: bool
    extra: str | None
    defects: tuple
    seed: int

    def make_module(self):
        options = dict(
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            batch_first=self.batch_first,
            backend=self.backend,
            dropout=0.3 if self.num_layers > 1 else 0.0,
        )
        if self.proj_size:
            options["proj_size"] = self.proj_size
        module = getattr(rnn_nn, self.kind)(self.input_size, self.hidden_size, **options)
        return module.train(self.training)

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    @property
    def stacked(self) -> int:
        return self.num_layers * (2 if self.bidirectional else 1)

    def state_shapes(self, batch: int | None = None) -> list[tuple[int, ...]]:
        batch = self.batch if batch is None else batch
        lead = (self.stacked, batch) if self.batched else (self.stacked,)
        sizes = [self.output_size, self.hidden_size] if self.kind == "LSTM" else [self.hidden_size]
        return [(*lead, size) for size in sizes]


@st.composite
def module_plans(draw) -> ModulePlan:
    kind = draw(st.sampled_from(("LSTM", "GRU", "RNN")))
    hidden = draw(st.integers(1, 4))
    proj = draw(st.integers(0, hidden - 1)) if kind == "LSTM" and hidden > 1 else 0
    batched = draw(st.booleans())
    extra = draw(st.sampled_from(EXTRAS if batched else (None, "hx")))
    batch = draw(st.integers(1 if extra == "packed" else 0, 3)) if batched else 1
    plan = dict(
        kind=kind,
        input_size=draw(st.integers(1, 3)),
        hidden_size=hidden,
        num_layers=draw(st.integers(1, 2)),
        bidirectional=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        proj_size=proj,
        backend=draw(st.sampled_from(("auto", "reference"))),
        training=draw(st.booleans()),
        batched=batched,
        batch=batch,
        steps=draw(st.integers(1, 4)),
        layout=draw(st.sampled_from(_inputs.LAYOUTS)),
        requires_grad=draw(st.booleans()),
        extra=extra,
        seed=draw(_inputs.seeds),
    )
    slots = draw(
        st.lists(
            st.sampled_from(("input", "hx", "lengths", "kwarg")),
            min_size=1,
            max_size=2,
            unique=True,
        )
    )
    defects = tuple(draw(_defect(slot, batched, min(batch, 1), extra)) for slot in sorted(slots))
    return ModulePlan(**plan, defects=defects)


# Cached: building hypothesis strategies costs more than drawing from them.
@functools.cache
def _defect(slot: str, batched: bool, batch: int, extra):
    if slot == "kwarg":
        return st.just(("kwarg", "unknown", "bogus_option"))
    if slot == "input":
        kinds = [
            ("rank", st.sampled_from((0, 1, 4, 5))),
            ("no_steps", st.none()),
            ("features", st.sampled_from((0, 1, 2, 5))),
            ("non_float", st.sampled_from(("t-int64", "t-int32", "t-bool", "t-complex64"))),
            ("dtype", st.sampled_from(("t64", "t16", "tbf16"))),
            ("meta", st.none()),
            ("not_array", st.sampled_from(_inputs.NOT_ARRAYS)),
        ]
        if extra == "packed":
            kinds.append(("packed_dtype", st.sampled_from((torch.int64, torch.float64))))
    elif slot == "hx":
        kinds = [
            ("hx_shape", st.sampled_from(("layers", "size", "rank"))),
            ("hx_type", st.sampled_from(("string", "numpy", "wrong-container"))),
            ("hx_dtype", st.sampled_from((torch.float64, torch.int64))),
            ("hx_meta", st.none()),
        ]
        if batched:
            kinds.append(("hx_batch", st.integers(1, 3)))
    else:
        kinds = [
            ("lengths_dtype", st.sampled_from(("float32", "bool", "complex64"))),
            ("lengths_shape", st.sampled_from(("longer", "column", "scalar"))),
            ("lengths_meta", st.none()),
        ]
        if batched and batch:
            kinds += [("lengths_high", st.integers(1, 4)), ("lengths_low", st.integers(-3, 0))]
        if not batched:
            kinds = [("lengths_unbatched", st.none())]
        elif extra == "packed":
            kinds = [("lengths_with_packed", st.none())]
    return st.one_of([st.tuples(st.just(n), p) for n, p in kinds]).map(lambda k: (slot, *k))


# -- materialising calls ----------------------------------------------------------------------
def _layout_shape(plan: ModulePlan, batch: int, steps: int, features: int) -> tuple:
    if not plan.batched:
        return (steps, features)
    return (batch, steps, features) if plan.batch_first else (steps, batch, features)


def well_formed_call(plan: ModulePlan, rng: np.random.Generator) -> dict:
    shape = _layout_shape(plan, plan.batch, plan.steps, plan.input_size)
    inputs = _inputs.floats(rng, shape, "t32", plan.layout, plan.requires_grad)
    call = {"input": inputs}
    lengths = rng.integers(1, plan.steps + 1, size=plan.batch)
    if plan.extra == "packed":
        batch_major = inputs if plan.batch_first else inputs.transpose(0, 1)
        call["input"] = pack_padded_sequence(
            batch_major, torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
        )
    elif plan.extra == "lengths":
        call["lengths"] = torch.from_numpy(lengths)
    elif plan.extra == "hx":
        states = [
            torch.from_numpy(rng.uniform(-1, 1, s).astype(np.float32)) for s in plan.state_shapes()
        ]
        call["hx"] = tuple(states) if plan.kind == "LSTM" else states[0]
    return call


def malformed_call(plan: ModulePlan, rng: np.random.Generator, call: dict):
    call, names = dict(call), []
    for slot, kind, parameter in plan.defects:
        if slot == "kwarg":
            call[parameter] = 1
            names.append(parameter)
        elif slot == "input":
            call["input"] = _bad_input(plan, rng, kind, parameter, call["input"])
            names.append("input")
        elif slot == "hx":
            call["hx"] = _bad_hx(plan, rng, kind, parameter)
            names.append("hx")
        else:
            call["lengths"] = _bad_lengths(plan, rng, kind, parameter)
            names.append("lengths")
    return call, tuple(names)


def _bad_input(plan: ModulePlan, rng, kind: str, parameter, valid):
    batch, steps, features = plan.batch, plan.steps, plan.input_size
    if kind == "rank":
        return torch.from_numpy(rng.uniform(-1, 1, tuple(rng.integers(1, 4, parameter))))
    if kind == "no_steps":
        return torch.zeros(_layout_shape(plan, batch, 0, features))
    if kind == "features":
        wrong = parameter if parameter != features else features + 1
        return torch.zeros(_layout_shape(plan, batch, steps, wrong))
    shape = _layout_shape(plan, batch, steps, features)
    if kind == "non_float":
        return _inputs.non_float(rng, shape, parameter)
    if kind == "dtype":
        return _inputs.floats(rng, shape, parameter)
    if kind == "meta":
        return _inputs.on_meta(shape)
    if kind == "packed_dtype":
        return PackedSequence(
            valid.data.to(parameter),
            valid.batch_sizes,
            valid.sorted_indices,
            valid.unsorted_indices,
        )
    return _inputs.not_an_array(parameter, shape)


def _bad_hx(plan: ModulePlan, rng, kind: str, parameter):
    shapes = plan.state_shapes()
    if kind == "hx_shape":
        index = {"layers": 0, "size": -1, "rank": None}[parameter]
        if index is None:
            shapes = [(1, *shape) for shape in shapes]
        else:
            shapes = [
                tuple(d + 1 if i == index % len(s) else d for i, d in enumerate(s)) for s in shapes
            ]
    elif kind == "hx_batch":
        shapes = plan.state_shapes(batch=plan.batch + parameter)
    dtype = parameter if kind == "hx_dtype" else torch.float32
    device = "meta" if kind == "hx_meta" else "cpu"
    states = [torch.zeros(shape, dtype=dtype, device=device) for shape in shapes]
    if kind == "hx_type":
        if parameter == "string":
            return "hidden"
        if parameter == "numpy":
            states = [s.numpy() for s in states]
        else:  # a list for GRU/RNN, a lone tensor for LSTM
            return states[0] if plan.kind == "LSTM" else states
    return tuple(states) if plan.kind == "LSTM" else states[0]


def _bad_lengths(plan: ModulePlan, rng, kind: str, parameter):
    batch, steps = plan.batch, plan.steps
    valid = rng.integers(1, steps + 1, size=max(batch, 1))[:batch]
    if kind in ("lengths_unbatched", "lengths_with_packed"):
        return torch.from_numpy(rng.integers(1, steps + 1, size=max(batch, 1)))
    if kind == "lengths_dtype":
        return torch.from_numpy(valid.astype(parameter))
    if kind == "lengths_shape":
        if parameter == "longer":
            return torch.ones(batch + 1, dtype=torch.int64)
        return torch.from_numpy(valid[:, None]) if parameter == "column" else torch.tensor(1)
    if kind == "lengths_meta":
        return _inputs.on_meta((batch,), torch.int64)
    valid[int(rng.integers(batch))] = steps + parameter if kind == "lengths_high" else parameter
    return torch.from_numpy(valid)


def check_outputs(plan: ModulePlan, result) -> None:
    """Output and final-state shapes of a well-formed forward, as torch.nn gives them."""
    output, state = result
    width = (2 if plan.bidirectional else 1) * plan.output_size
    if plan.extra == "packed":
        assert isinstance(output, PackedSequence)
        assert output.data.shape[-1] == width
    else:
        expected = _layout_shape(plan, plan.batch, plan.steps, width)
        assert tuple(output.shape) == expected, (tuple(output.shape), expected)
    states = list(state) if plan.kind == "LSTM" else [state]
    assert [tuple(s.shape) for s in states] == plan.state_shapes()
