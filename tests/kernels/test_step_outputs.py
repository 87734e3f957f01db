"""The single-step kernel's outputs, on both of the step's paths: reused once free, and nothing
held ever overwritten.

The Python stepper hands out views of blocks of many steps, made a few steps long here, so that a
few dozen steps go through many of them; the native one alternates between two slots of one step.
"""

from __future__ import annotations

import io
import weakref

import pytest
import torch
import torch.utils.dlpack

from rnnkit import layers
from rnnkit.kernels import stepping
from rnnkit.kernels.stepping import STEP, TIMESTEP, TIMESTEP_SEQUENCE, fused_step

LAYERS = {"lstm": layers.LSTM, "gru": layers.GRU, "simple_rnn": layers.SimpleRNN}
FORMS = {"step": STEP, "timestep": TIMESTEP, "timestep_sequence": TIMESTEP_SEQUENCE}
HIDDEN, FEATURES, BATCH, STEPS = 5, 4, 2, 40


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch):
    monkeypatch.setattr(stepping, "BLOCK_ELEMENTS", 3 * BATCH * HIDDEN)  # 1 to 3 steps


def _layer(name):
    layer = LAYERS[name](HIDDEN)
    layer.build((BATCH, 1, FEATURES))
    layer.built = True
    generator = torch.Generator().manual_seed(21)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
    return layer


def _inputs(form):
    xs = torch.randn(STEPS, BATCH, FEATURES, generator=torch.Generator().manual_seed(22))
    return xs if form == STEP else xs[:, :, None]


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_a_stream_that_drops_its_states_reuses_two_blocks(name, form, step_path):
    layer = _layer(name)
    addresses = set()
    with torch.no_grad():
        state = None
        for x in _inputs(FORMS[form]):
            output, state = fused_step(layer.cell, x, state, FORMS[form])
            addresses.add(output.data_ptr())
    # Against 40 steps: two blocks of at most 3 steps (Python), or two slots of one (native).
    assert len(addresses) <= (2 if step_path == "native" else 6)


def _autograd(output, state):
    weight = torch.ones(HIDDEN, requires_grad=True)
    with torch.enable_grad():
        loss = (output.reshape(BATCH, HIDDEN) * weight).sum()
    return loss, weight


def _read_autograd(holder):
    loss, weight = holder
    loss.backward()
    return weight.grad


def _geometry(output):
    """Where ``output`` lies in its storage (a tensor on the storage would hold it)."""
    return output.storage_offset(), output.shape, output.stride()


def _read_slot_of_storage(storage, geometry):
    return None if storage is None else torch.empty(0).set_(storage, *geometry)


# What a user may keep of one step's result, and how to read what it sees.
HOLDERS = {
    "output": (lambda output, state: output, lambda holder, geometry: holder),
    "state list": (lambda output, state: state, lambda holder, geometry: holder[0]),
    "last state tensor": (lambda output, state: state[-1], lambda holder, geometry: holder),
    "row view": (lambda output, state: output[0], lambda holder, geometry: holder),
    "flat view": (lambda output, state: output.view(-1), lambda holder, geometry: holder),
    "detached": (lambda output, state: output.detach(), lambda holder, geometry: holder),
    "data": (lambda output, state: output.data, lambda holder, geometry: holder),
    "numpy": (
        lambda output, state: output.numpy(),
        lambda holder, geometry: torch.from_numpy(holder),
    ),
    "storage": (
        lambda output, state: output.untyped_storage(),
        lambda holder, geometry: _read_slot_of_storage(holder, geometry),
    ),
    "weak reference": (
        lambda output, state: weakref.ref(output),
        lambda holder, geometry: holder(),
    ),
    "weak storage reference": (
        lambda output, state: weakref.ref(output.untyped_storage()),
        lambda holder, geometry: _read_slot_of_storage(holder(), geometry),
    ),
    "dlpack": (
        lambda output, state: torch.utils.dlpack.to_dlpack(output),
        lambda holder, geometry: torch.from_dlpack(holder),
    ),
    "autograd": (_autograd, lambda holder, geometry: _read_autograd(holder)),
    "saved view": (
        lambda output, state: (output[1:], torch.save(output[1:], io.BytesIO())),
        lambda holder, geometry: holder[0],
    ),
}


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("holder", sorted(HOLDERS))
@pytest.mark.parametrize("name", ["lstm", "gru"])
@pytest.mark.usefixtures("step_path")
def test_what_a_user_keeps_is_never_written_again(name, holder, form):
    """Only the kept thing (and what it reaches) survives the step; the stream goes on for many
    blocks, which reuse what they can."""
    keep, read = HOLDERS[holder]
    layer = _layer(name)
    kept_at = 5
    with torch.no_grad():
        state = None
        for t, x in enumerate(_inputs(FORMS[form])):
            output, state = fused_step(layer.cell, x, state, FORMS[form])
            if t == kept_at:
                kept = keep(output, state)
                copy, state_copy = output.clone(), [s.clone() for s in state]
                expected = read(keep(copy, state_copy), _geometry(copy)).clone()
                geometry = _geometry(output)
            del output
        del state
        seen = read(kept, geometry)
    if seen is not None:  # None: a weak reference whose tensor is gone, so nothing sees it
        torch.testing.assert_close(seen, expected, rtol=0, atol=0)


def _write_in_place(output, state):
    output.mul_(2.0)


def _assign_data(output, state):
    state[0].data = torch.zeros_like(state[0])


def _share_memory(output, state):
    state[0].share_memory_()


def _reshape_in_place(output, state):
    state[-1].unsqueeze_(0)


def _resize_storage(output, state):
    output.untyped_storage().resize_(0)


CHANGES = {
    "write": _write_in_place,
    "data": _assign_data,
    "share_memory": _share_memory,
    "reshape": _reshape_in_place,
    "resize_storage": _resize_storage,
}


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.usefixtures("step_path")
def test_a_block_changed_then_dropped_is_not_reused(name, change):
    """Outputs changed through the API and then dropped (their block's memory moved, reshaped or
    written): the stream goes on from fresh blocks and stays equal to the cell's own step."""
    layer = _layer(name)
    xs = _inputs(STEP)
    with torch.no_grad():
        state, expected_state = (
            None,
            list(layer.cell.get_initial_state(BATCH, torch.float32, "cpu")),
        )
        for t, x in enumerate(xs):
            output, state = layer.step(x, state)
            expected_output, expected_state = layer.cell(x, tuple(expected_state))
            if isinstance(expected_state, torch.Tensor):
                expected_state = [expected_state]
            torch.testing.assert_close(output, expected_output, rtol=0, atol=1e-5)
            if t % 6 == 5:  # a step returned the state we now change; go on from a copy
                state = [s.clone() for s in state]
                CHANGES[change](output, layer.step(x, state)[1])
            del output


@pytest.mark.usefixtures("python_step_path")
def test_a_slot_just_taken_keeps_its_block():
    """A step of another thread that has just taken its slot holds none of its tensors yet: the
    steps that run meanwhile, through many blocks, must not hand that slot out again."""
    layer = _layer("gru")
    xs = _inputs(STEP)
    with torch.no_grad():
        layer.step(xs[0])
        pool = stepping._STEPPERS[id(layer.cell)].last[2]
        taken = next(pool.slots)  # what the other step holds, before it reads the slot
        state = None
        for x in xs:
            output, state = layer.step(x, state)
            assert output.data_ptr() != taken[3]


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.usefixtures("step_path")
def test_inference_mode_streams_as_no_grad_does(name):
    layer = _layer(name)
    xs = _inputs(STEP)
    results = []
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            state, outputs = None, []
            for x in xs:
                output, state = layer.step(x, state)
                outputs.append(output.clone())
        results.append(torch.stack(outputs))
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=0)
