"""Subclassed models, and the Model API every kind of model shares (training hand-over too)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from models.conftest import assert_close, summary_of, summary_table, summary_total
from rnnkit.layers import LSTM, Dense, Input
from rnnkit.models import Model, Sequential


class Tagger(Model):
    """A bidirectional-free tagger: LSTM over the sequence, Dense per step."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.encoder = LSTM(6, return_sequences=True)
        self.head = Dense(3)

    def call(self, inputs, training=None):
        return self.head(self.encoder(inputs, training=training))


class Scaled(Model):
    """Layers kept in a plain list, plus a variable of the model's own."""

    def __init__(self, widths=(4, 2)):
        super().__init__()
        self.widths = tuple(widths)
        self.blocks = [Dense(width) for width in widths]
        self.scale = nn.Parameter(torch.full((1,), 2.0))

    def call(self, inputs):
        for block in self.blocks:
            inputs = block(inputs)
        return inputs * self.scale


def _series(seed=0):
    return np.random.default_rng(seed).standard_normal((2, 5, 3)).astype("float32")


def test_subclassed_model_builds_on_first_call_and_lists_its_layers():
    model = Tagger(name="tagger")
    assert not model.built and model.layers == [model.encoder, model.head]
    x = _series()
    assert_close(model(x), model.head(model.encoder(x)))
    assert model.built
    assert model.count_params() == 4 * 6 * (3 + 6 + 1) + 7 * 3


def test_build_from_batch_creates_weights_without_gradients():
    model = Tagger()
    model.build_from_batch(_series())
    assert model.built and len(model.get_weights()) == 5
    assert all(param.grad is None for param in model.parameters())
    assert not model.training


def test_layers_in_plain_lists_and_own_variables_are_tracked():
    model = Scaled()
    model(np.ones((2, 3), "float32"))
    names = {name for name, _ in model.named_parameters()}
    assert {"blocks.0.kernel", "blocks.1.kernel", "scale"} <= names
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(1,), (3, 4), (4,), (4, 2), (2,)]
    model.set_weights([np.full(w.shape, 0.5, "float32") for w in weights])
    assert model.scale.item() == 0.5


def test_summary_of_a_subclassed_model_has_unknown_shapes_and_totals():
    model = Tagger()
    model(_series())
    lines = summary_of(model)
    assert [(shape, count) for _, shape, count in summary_table(lines)] == [
        ("?", 240), ("?", 21)]
    assert summary_total(lines) == 261 and summary_total(lines, "Non-trainable") == 0
    model.head.trainable = False
    assert summary_total(summary_of(model), "Non-trainable") == 21


def test_a_mask_for_a_call_without_mask_parameter_is_refused():
    model = Tagger()
    with pytest.raises(TypeError, match="mask: Tagger.call takes no mask"):
        model(_series(), mask=np.ones((2, 5), bool))


def test_get_config_needs_an_override_when_init_takes_arguments():
    assert Tagger(name="t").get_config() == {"name": "t", "trainable": True}
    with pytest.raises(NotImplementedError, match=r"\['widths'\].*override get_config"):
        Scaled().get_config()


def test_a_subclass_cannot_pass_inputs_and_outputs():
    class Wrong(Model):
        def __init__(self):
            source = Input(shape=(2,))
            super().__init__(source, Dense(1)(source))

    with pytest.raises(TypeError, match="takes no inputs/outputs"):
        Wrong()


@pytest.fixture
def fake_loop(monkeypatch):
    """Stand-in for rnnkit.training.loop that records what the model hands over."""
    calls = []
    loop = types.ModuleType("rnnkit.training.loop")
    for name in ("compile_model", "fit", "evaluate", "predict", "train_on_batch",
                 "test_on_batch", "predict_on_batch"):
        setattr(loop, name, lambda *args, _name=name, **kwargs:
                calls.append((_name, args, kwargs)) or _name)
    import rnnkit.training

    monkeypatch.setitem(sys.modules, "rnnkit.training.loop", loop)
    monkeypatch.setattr(rnnkit.training, "loop", loop, raising=False)
    return calls


def test_training_methods_hand_over_to_the_training_loop(fake_loop):
    model = Sequential([Dense(1, input_shape=(2,))])
    x, y = np.zeros((4, 2), "float32"), np.zeros((4, 1), "float32")
    assert model.compile(optimizer="adam", loss="mse", metrics=["mae"]) == "compile_model"
    model.fit(x, y, epochs=2)
    model.evaluate(x, y, verbose=0)
    model.predict(x, batch_size=2)
    model.train_on_batch(x, y)
    model.test_on_batch(x, y)
    model.predict_on_batch(x)
    assert [(name, args[1:], kwargs) for name, args, kwargs in fake_loop] == [
        ("compile_model", ("adam", "mse", ["mae"], None), {}),
        ("fit", (x, y), {"epochs": 2}), ("evaluate", (x, y), {"verbose": 0}),
        ("predict", (x,), {"batch_size": 2}), ("train_on_batch", (x, y), {}),
        ("test_on_batch", (x, y), {}), ("predict_on_batch", (x,), {})]
    assert all(args[0] is model for _, args, _ in fake_loop)
    assert model.stop_training is False
