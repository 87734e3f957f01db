"""``Bidirectional``: a forward and a backward sequence layer, merged.

Built by composition: the backward layer is a copy of ``layer`` reading the sequence from its end
(``go_backwards`` flipped), or the ``backward_layer`` given. With ``return_sequences`` the backward
outputs are flipped back into input order and masked steps output zeros, as Keras does.

Example:
    >>> from rnnkit.layers import LSTM
    >>> bi = Bidirectional(LSTM(8, return_sequences=True), merge_mode="concat")
    >>> bi(np.zeros((2, 5, 3), "float32")).shape
    torch.Size([2, 5, 16])
"""

from __future__ import annotations

import copy

import torch

from rnnkit.layers.base import Layer
from rnnkit.layers.rnn import RNN

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _merge(mode, forward: torch.Tensor, backward: torch.Tensor):
    if mode == "concat":
        return torch.cat([forward, backward], dim=-1)
    if mode == "sum":
        return forward + backward
    if mode == "mul":
        return forward * backward
    if mode == "ave":
        return (forward + backward) / 2
    return [forward, backward]


def _reversed_copy(layer: RNN) -> RNN:
    """A fresh layer like ``layer`` reading the other way, with its own newly drawn weights."""
    if hasattr(layer, "get_config") and hasattr(layer, "units"):
        config = layer.get_config()
        config.update(go_backwards=not layer.go_backwards,
                      name=f"backward_{layer.name}")
        config.pop("batch_input_shape", None)
        return type(layer).from_config(config)
    clone = copy.deepcopy(layer)
    clone.go_backwards = not layer.go_backwards
    clone.name = f"backward_{layer.name}"
    if hasattr(clone.cell, "reset_parameters"):
        clone.cell.reset_parameters()
    return clone


class Bidirectional(Layer):
    """Run ``layer`` forwards and backwards and merge with ``merge_mode``.

    ``merge_mode`` is "concat" (default), "sum", "mul", "ave" or None (return both). With
    ``return_state`` the result is ``[output, *forward_states, *backward_states]``.
    """

    supports_masking = True

    def __init__(self, layer: RNN, merge_mode: str | None = "concat",
                 backward_layer: RNN | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(layer, RNN):
            raise TypeError(f"layer: expected an RNN layer (LSTM, GRU, SimpleRNN or RNN(cell)), "
                            f"got {type(layer).__name__}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode: expected one of {MERGE_MODES}, got {merge_mode!r}")
        backward = backward_layer if backward_layer is not None else _reversed_copy(layer)
        if not isinstance(backward, RNN):
            raise TypeError(f"backward_layer: expected an RNN layer, got {type(backward).__name__}")
        if backward_layer is not None and backward.go_backwards == layer.go_backwards:
            raise ValueError("backward_layer: expected go_backwards opposite to layer's "
                             f"({not layer.go_backwards}), got {backward.go_backwards}")
        for attribute in ("return_sequences", "return_state"):
            if getattr(backward, attribute) != getattr(layer, attribute):
                raise ValueError(f"backward_layer: expected {attribute}="
                                 f"{getattr(layer, attribute)} like layer")
        self.forward_layer = layer
        self.backward_layer = backward
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        for sublayer in (self.forward_layer, self.backward_layer):
            sublayer.zero_output_for_mask = self.return_sequences
        if self.batch_input_shape is not None:
            self.build(self.batch_input_shape)
            self.built = True

    def build(self, input_shape) -> None:
        for sublayer in (self.forward_layer, self.backward_layer):
            if not sublayer.built:
                sublayer.build(tuple(input_shape))
                sublayer.built = True

    def call(self, inputs, mask=None, training=None, initial_state=None, lengths=None):
        forward_state = backward_state = None
        if initial_state is not None:
            wanted = 2 * len(self.forward_layer.state_size)
            if not isinstance(initial_state, (list, tuple)):
                # list() would split a tensor along its batch axis into "states".
                raise TypeError(f"initial_state: expected a list of {wanted} tensors (forward "
                                f"states then backward states), got {type(initial_state).__name__}")
            initial_state = list(initial_state)
            if len(initial_state) != wanted:
                raise ValueError(f"initial_state: expected {wanted} tensors (forward states then "
                                 f"backward states), got {len(initial_state)}")
            half = wanted // 2
            forward_state, backward_state = initial_state[:half], initial_state[half:]
        options = {"mask": mask, "training": training, "lengths": lengths}
        forward = self.forward_layer(inputs, initial_state=forward_state, **options)
        backward = self.backward_layer(inputs, initial_state=backward_state, **options)
        states = []
        if self.return_state:
            forward, *forward_states = forward
            backward, *backward_states = backward
            states = forward_states + backward_states
        if self.return_sequences:
            backward = backward.flip(1)
        output = _merge(self.merge_mode, forward, backward)
        if self.return_state:
            merged = output if isinstance(output, list) else [output]
            return merged + states
        return output

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.merge_mode is None:
            output_mask = [output_mask, output_mask]
        if self.return_state:
            masks = output_mask if isinstance(output_mask, list) else [output_mask]
            return masks + [None] * (2 * len(self.forward_layer.state_size))
        return output_mask

    def compute_output_shape(self, input_shape):
        forward = self.forward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            forward, *states = forward
            states = states * 2
        if self.merge_mode == "concat":
            forward = (*forward[:-1], forward[-1] * 2)
        output = [forward, forward] if self.merge_mode is None else [forward]
        return output + states if (self.return_state or self.merge_mode is None) else forward

    def get_weights(self):
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def set_weights(self, weights) -> None:
        weights = list(weights)
        count = len(self.forward_layer.get_weights())
        if len(weights) != 2 * count:
            raise ValueError(f"{self.name}: set_weights expected {2 * count} arrays (forward "
                             f"then backward), got {len(weights)}")
        self.forward_layer.set_weights(weights[:count])
        self.backward_layer.set_weights(weights[count:])

    def reset_states(self) -> None:
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    def get_config(self) -> dict:
        config = super().get_config()
        config["merge_mode"] = self.merge_mode
        config["layer"] = {"class_name": type(self.forward_layer).__name__,
                           "config": self.forward_layer.get_config()}
        config["backward_layer"] = {"class_name": type(self.backward_layer).__name__,
                                    "config": self.backward_layer.get_config()}
        return config

    @classmethod
    def from_config(cls, config: dict):
        from rnnkit.layers.wrappers import deserialize

        config = dict(config)
        config["layer"] = deserialize(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize(config["backward_layer"])
        return super().from_config(config)
