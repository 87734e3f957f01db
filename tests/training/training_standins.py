"""A stand-in for ``rnnkit.models.Model``: the interface the training loop relies on, and no more.

``model(x, training=...)``, ``built``/``build_from_batch``, ``get_weights``/``set_weights``,
``save``/``save_weights``, ``stop_training`` and ``modules()``, plus the Keras-named methods that
forward to :mod:`rnnkit.training`, as ``rnnkit.models.Model`` does.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rnnkit.layers import Layer
from rnnkit.training import loop


class StandInModel(nn.Module):
    """Layers applied in order; rnnkit layers receive ``training``, torch layers do not."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.built = False
        self.stop_training = False

    def forward(self, x, training=None):
        for layer in self.layers:
            x = layer(x, training=training) if isinstance(layer, Layer) else layer(x)
        self.built = True
        return x

    def build_from_batch(self, x) -> None:
        with torch.no_grad():
            self(x, training=False)

    def get_weights(self) -> list[np.ndarray]:
        return [p.detach().cpu().numpy().copy() for p in self.parameters()]

    def set_weights(self, weights) -> None:
        with torch.no_grad():
            for param, value in zip(self.parameters(), weights):
                param.copy_(torch.as_tensor(value))

    def save_weights(self, path) -> None:
        torch.save(self.state_dict(), path)

    def save(self, path) -> None:
        torch.save(self.state_dict(), path)

    # the Keras face the models package will give
    def compile(self, *args, **kwargs):
        return loop.compile_model(self, *args, **kwargs)

    def fit(self, x=None, y=None, **kwargs):
        return loop.fit(self, x, y, **kwargs)

    def evaluate(self, x=None, y=None, **kwargs):
        return loop.evaluate(self, x, y, **kwargs)

    def predict(self, x, **kwargs):
        return loop.predict(self, x, **kwargs)


class TwoOutputs(nn.Module):
    """Two heads on a shared input, for the multi-output paths."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.LazyLinear(1)
        self.second = nn.LazyLinear(3)

    def forward(self, x):
        return [self.first(x), torch.softmax(self.second(x), dim=-1)]
