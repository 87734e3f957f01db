"""Fuzz the public layer API with random malformed calls, and their well-formed twins.

Every example makes one malformed call (one or two defects) and at least one well-formed call
drawn from the same strategy. Each call runs under a time limit (see :mod:`._harness`). The
assertions:

- no crash or hang: a malformed call raises ``ValueError``/``TypeError`` with a non-empty
  message that names a defective argument, and is never accepted silently;
- a well-formed call succeeds, with the documented shapes and finite outputs; a strided view
  gives the same outputs as its contiguous copy.

Each test counts its malformed calls and asserts its quota, so the total (>= 1000) holds also
when the tests are spread over xdist workers. The session summary prints the counts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

from . import _constructor_calls, _model_calls, _nn_calls, _recurrent_calls
from ._harness import assert_finite, attempt, tally_for, tensors_of

QUOTAS = {"recurrent": 420, "nn": 300, "constructors": 200, "embedding": 100, "models": 80}
assert sum(QUOTAS.values()) >= 1000


def fuzz_settings(examples: int):
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _call_layer(layer, call: dict):
    call = dict(call)
    inputs = call.pop("inputs")
    return lambda: layer(inputs, **call)


def test_recurrent_layer_calls(compiled_kernels):
    tally = tally_for("recurrent layers (LSTM/GRU/SimpleRNN/Bidirectional)")

    @fuzz_settings(QUOTAS["recurrent"])
    @given(plan=_recurrent_calls.recurrent_plans())
    def run(plan):
        rng = np.random.default_rng(plan.seed)
        layer = plan.make_layer()
        call = _recurrent_calls.well_formed_call(plan, rng)
        result = attempt(_call_layer(layer, call), tally, description=repr(plan))
        outputs = tensors_of(result)
        assert [tuple(t.shape) for t in outputs] == _recurrent_calls.expected_shapes(plan)
        assert all(t.dtype == torch.float32 for t in outputs)
        assert_finite(outputs, repr(plan))
        if plan.layout != "contiguous" and plan.deterministic:
            same = dict(call, inputs=_contiguous(call["inputs"]))
            again = tensors_of(attempt(_call_layer(layer, same), tally, description=repr(plan)))
            for got, expected in zip(outputs, again):
                torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        target = plan.make_layer() if plan.fresh else layer
        bad, names = _recurrent_calls.malformed_call(plan, rng, call)
        attempt(_call_layer(target, bad), tally, names=names, description=repr(plan))

    run()
    assert tally.malformed >= QUOTAS["recurrent"], str(tally)


def _contiguous(value):
    if isinstance(value, torch.Tensor):
        return value.detach().contiguous()
    return np.ascontiguousarray(value)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_nn_module_calls(compiled_kernels):
    tally = tally_for("rnnkit.nn drop-ins (LSTM/GRU/RNN)")

    @fuzz_settings(QUOTAS["nn"])
    @given(plan=_nn_calls.module_plans())
    def run(plan):
        rng = np.random.default_rng(plan.seed)
        module = plan.make_module()
        call = _nn_calls.well_formed_call(plan, rng)
        result = attempt(lambda: module(**call), tally, description=repr(plan))
        _nn_calls.check_outputs(plan, result)
        assert_finite(result, repr(plan))
        if plan.layout != "contiguous" and plan.extra != "packed" and not plan.training:
            same = dict(call, input=_contiguous(call["input"]))
            again = attempt(lambda: module(**same), tally, description=repr(plan))
            for got, expected in zip(tensors_of(result), tensors_of(again)):
                torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        bad, names = _nn_calls.malformed_call(plan, rng, call)
        attempt(lambda: module(**bad), tally, names=names, description=repr(plan))

    run()
    assert tally.malformed >= QUOTAS["nn"], str(tally)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_constructor_arguments(compiled_kernels):
    tally = tally_for("constructors (layers, Bidirectional, nn, Embedding, Dense, Dropout)")

    @fuzz_settings(QUOTAS["constructors"])
    @given(plan=_constructor_calls.constructor_plans())
    def run(plan):
        target, valid, bad_name, bad_value = plan
        rng = np.random.default_rng(0)
        built = attempt(
            lambda: _constructor_calls.construct(target, valid), tally, description=repr(plan)
        )
        inputs = _constructor_calls.sample_input(target, built, rng)
        output = attempt(lambda: built(inputs), tally, description=repr(plan))
        assert_finite(output, repr(plan))
        names = (bad_name, *_constructor_calls.ALIASES.get(bad_name, ()))
        attempt(
            lambda: _constructor_calls.construct(target, {**valid, bad_name: bad_value}),
            tally,
            names=names,
            description=repr(plan),
        )

    run()
    assert tally.malformed >= QUOTAS["constructors"], str(tally)


def test_embedding_calls():
    tally = tally_for("Embedding")

    @fuzz_settings(QUOTAS["embedding"])
    @given(plan=_model_calls.embedding_plans())
    def run(plan):
        rng = np.random.default_rng(plan.seed)
        layer = _model_calls.make_embedding(plan)
        ids = _model_calls.embedding_ids(plan, rng)
        output = attempt(lambda: layer(ids), tally, description=repr(plan))
        assert tuple(output.shape) == (*plan.shape, plan.output_dim)
        assert_finite(output, repr(plan))
        if plan.mask_zero:
            mask = attempt(lambda: layer.compute_mask(ids), tally, description=repr(plan))
            assert torch.equal(mask, torch.as_tensor(np.asarray(ids)) != 0)
        bad = _model_calls.bad_embedding_ids(plan, rng)
        attempt(lambda: layer(bad), tally, names=("inputs",), description=repr(plan))

    run()
    assert tally.malformed >= QUOTAS["embedding"], str(tally)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_model_calls(compiled_kernels):
    tally = tally_for("Sequential predict/evaluate/fit")
    models = _model_calls.build_models()

    @fuzz_settings(QUOTAS["models"])
    @given(plan=_model_calls.model_plans())
    def run(plan):
        rng = np.random.default_rng(plan["seed"])
        method = getattr(models[plan["model"]], plan["method"])
        call = _model_calls.model_call(plan, rng, None)
        result = attempt(lambda: method(**call), tally, description=repr(plan))
        if plan["method"] == "predict":
            assert result.shape == (plan["batch"], 1)
            assert np.isfinite(result).all()
        elif plan["method"] == "fit":
            assert all(np.isfinite(v).all() for v in result.history.values())
        else:
            assert np.isfinite(result)
        bad = _model_calls.model_call(plan, rng, plan["defect"])
        name = _model_calls.MODEL_DEFECTS[plan["defect"]]
        attempt(lambda: method(**bad), tally, names=(name,), description=repr(plan))

    run()
    assert tally.malformed >= QUOTAS["models"], str(tally)
