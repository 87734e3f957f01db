"""``TimeDistributed``: apply one layer, with one set of weights, to every timestep.

Example:
    >>> from rnnkit.layers import Dense
    >>> per_step = TimeDistributed(Dense(10, activation="softmax"))
    >>> per_step(np.zeros((2, 7, 4), "float32")).shape
    torch.Size([2, 7, 10])
"""

from __future__ import annotations

from torch import nn

from rnnkit import _checks
from rnnkit.layers.base import Layer


def deserialize(spec: dict, custom_objects: dict | None = None) -> nn.Module:
    """Rebuild a layer or cell from ``{"class_name": ..., "config": ...}``.

    Classes are looked up among rnnkit's layers and cells, classes registered with
    ``rnnkit.models.register_serializable``, and ``custom_objects``.
    """
    from rnnkit.models.registry import known_classes

    if not isinstance(spec, dict) or "class_name" not in spec:
        raise TypeError(
            f"layer: expected a Layer or a dict with 'class_name' and 'config', got {spec!r}"
        )
    cls = known_classes(custom_objects).get(spec["class_name"])
    if cls is None:
        raise ValueError(
            f"layer: unknown class_name {spec['class_name']!r}; expected a layer exported by "
            "rnnkit.layers, a class registered with rnnkit.models.register_serializable, or "
            "one given in custom_objects"
        )
    return cls.from_config(spec.get("config", {}))


class TimeDistributed(Layer):
    """Run ``layer`` on each step: inputs ``(B, T, ...)`` to outputs ``(B, T, ...layer's output)``.

    The steps are folded into the batch, so the wrapped layer sees ``(B*T, ...)`` once. The mask
    passes through; weights and counts are the wrapped layer's, in its Keras layout.
    """

    supports_masking = True

    def __init__(self, layer: Layer, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise TypeError(
                f"layer: expected an rnnkit Layer (e.g. Dense), got {type(layer).__name__}"
            )
        self.layer = layer
        if self.batch_input_shape is not None:
            self.build(self.batch_input_shape)
            self.built = True

    def build(self, input_shape) -> None:
        if len(input_shape) < 3:
            raise ValueError(
                f"inputs: expected a tensor of rank >= 3 (batch, timesteps, ...), "
                f"got shape {tuple(input_shape)}"
            )
        if not self.layer.built:
            self.layer.build((None, *tuple(input_shape)[2:]))
            self.layer.built = True

    def call(self, inputs, mask=None, training=None):
        inputs = _checks.as_tensor(inputs, "inputs")
        if inputs.dim() < 3:
            raise ValueError(
                f"inputs: expected a tensor of rank >= 3 (batch, timesteps, ...), "
                f"got shape {tuple(inputs.shape)}"
            )
        batch, steps = inputs.shape[0], inputs.shape[1]
        folded = inputs.reshape(batch * steps, *inputs.shape[2:])  # (B*T, ...)
        outputs = self.layer(folded, training=training)
        return outputs.reshape(batch, steps, *outputs.shape[1:])  # (B, T, ...)

    def compute_output_shape(self, input_shape):
        batch, steps, *rest = tuple(input_shape)
        inner = self.layer.compute_output_shape((None, *rest))
        return (batch, steps, *tuple(inner)[1:])

    def get_weights(self):
        return self.layer.get_weights()

    def set_weights(self, weights) -> None:
        self.layer.set_weights(weights)

    def get_config(self) -> dict:
        config = super().get_config()
        config["layer"] = {
            "class_name": type(self.layer).__name__,
            "config": self.layer.get_config(),
        }
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        config["layer"] = deserialize(config["layer"])
        return super().from_config(config)
