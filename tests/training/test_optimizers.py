"""Optimizer updates against TF-Keras's on the same weights and gradients."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rnnkit import optimizers

rng = np.random.default_rng(11)
WEIGHTS = [rng.normal(size=(3, 4)).astype("float32"), rng.normal(size=(4,)).astype("float32")]
# Three steps: gradients of ordinary, small (where epsilon placement matters) and large size.
GRADIENTS = [[rng.normal(size=w.shape).astype("float32") * scale for w in WEIGHTS]
             for scale in (1.0, 0.01, 5.0)]

CASES = [
    ("Adam", {}), ("Adam", {"amsgrad": True, "clipnorm": 0.5}),
    ("SGD", {}), ("SGD", {"momentum": 0.9}), ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("SGD", {"momentum": 0.5, "clipvalue": 0.3}),
    ("RMSprop", {}), ("RMSprop", {"clipnorm": 0.5}), ("RMSprop", {"clipvalue": 0.1}),
    ("RMSprop", {"momentum": 0.5, "centered": True, "global_clipnorm": 1.0}),
    ("Adagrad", {}), ("Adadelta", {"learning_rate": 1.0}), ("Adamax", {}), ("Nadam", {}),
    ("AdamW", {}), ("Adam", {"weight_decay": 0.1, "learning_rate": 0.01}),
]


def _keras_run(keras, name, kwargs):
    variables = [keras.Variable(w) for w in WEIGHTS]
    optimizer = getattr(keras.optimizers, name)(**kwargs)
    for grads in GRADIENTS:
        optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], variables))
    return [v.numpy() for v in variables]


def _our_run(name, kwargs):
    params = [torch.nn.Parameter(torch.tensor(w)) for w in WEIGHTS]
    optimizer = getattr(optimizers, name)(**kwargs)
    optimizer.build(params)
    for grads in GRADIENTS:
        for param, grad in zip(params, grads):
            param.grad = torch.tensor(grad)
        optimizer.step()
    return [p.detach().numpy() for p in params]


@pytest.mark.peer
@pytest.mark.parametrize(("name", "kwargs"), CASES,
                         ids=[f"{n}-{'-'.join(k) or 'default'}" for n, k in CASES])
def test_three_updates_match_keras(keras, name, kwargs):
    for ours, theirs in zip(_our_run(name, kwargs), _keras_run(keras, name, kwargs)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=5e-7)


@pytest.mark.peer
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta",
                                  "Adamax", "Nadam"])
def test_defaults_are_keras_defaults(keras, name):
    theirs = getattr(keras.optimizers, name)().get_config()
    ours = getattr(optimizers, name)().get_config()
    for key, value in ours.items():
        if key in theirs and key != "name":
            assert value == pytest.approx(theirs[key]), key


def test_learning_rate_schedule_is_called_with_the_step():
    seen = []

    def schedule(step):
        seen.append(step)
        return 0.1 / (step + 1)

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = optimizers.SGD(learning_rate=schedule)
    optimizer.build([param])
    for _ in range(3):
        param.grad = torch.ones(1)
        optimizer.step()
    assert seen[-3:] == [0, 1, 2]
    assert float(param.detach()) == pytest.approx(-(0.1 + 0.05 + 0.1 / 3))
    with pytest.raises(TypeError, match="schedule"):
        optimizer.learning_rate = 0.5


def test_learning_rate_is_settable_before_and_after_build():
    optimizer = optimizers.Adam(learning_rate=0.01)
    optimizer.learning_rate = 0.02
    optimizer.build([torch.nn.Parameter(torch.zeros(2))])
    assert optimizer.param_groups[0]["lr"] == 0.02
    optimizer.learning_rate = 0.005
    assert optimizer.learning_rate == 0.005 and optimizer.param_groups[0]["lr"] == 0.005


def test_state_dict_round_trip_continues_identically():
    def run(optimizer, param, steps):
        for step in range(steps):
            param.grad = torch.full_like(param, float(step + 1))
            optimizer.step()

    first = torch.nn.Parameter(torch.ones(3))
    optimizer = optimizers.Nadam()
    optimizer.build([first])
    run(optimizer, first, 2)
    second = torch.nn.Parameter(first.detach().clone())
    restored = optimizers.Nadam()
    restored.build([second])
    restored.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # as if saved to disk
    run(optimizer, first, 2)
    run(restored, second, 2)
    assert torch.equal(first, second)
    assert restored.iterations == 4


def test_at_most_one_clipping_argument():
    with pytest.raises(ValueError, match="clipnorm, clipvalue"):
        optimizers.Adam(clipnorm=1.0, clipvalue=0.5)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown name 'adamm'.*'adam'.*'rmsprop'"):
        optimizers.get("adamm")


def test_a_torch_optimizer_passes_through():
    torch_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    assert optimizers.get(torch_optimizer) is torch_optimizer
