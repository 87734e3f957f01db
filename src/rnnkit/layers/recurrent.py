"""Keras's ``SimpleRNN``, ``LSTM`` and ``GRU``: an :class:`RNN` over the matching built-in cell.

The constructors take Keras's arguments (with Keras's defaults) plus rnnkit's ``peephole``,
``layer_norm`` and ``proj_size`` for LSTM and ``backend`` for all. Weights move to and from Keras
with ``get_weights``/``set_weights`` unchanged.

Example:
    >>> layer = LSTM(16, return_sequences=True, return_state=True)
    >>> output, h, c = layer(np.random.rand(4, 10, 3).astype("float32"))
    >>> output.shape, h.shape
    (torch.Size([4, 10, 16]), torch.Size([4, 16]))
"""

from __future__ import annotations

from rnnkit import activations, initializers
from rnnkit.cells import GRUCell, LSTMCell, SimpleRNNCell
from rnnkit.cells.base import BuiltinCell
from rnnkit.layers import _keras_layout
from rnnkit.layers.rnn import RNN

_RUNNER_ARGS = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll",
                "zero_output_for_mask", "backend", "name", "input_shape", "input_dim",
                "batch_size", "trainable", "dtype")
_UNSUPPORTED = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
                "activity_regularizer", "kernel_constraint", "recurrent_constraint",
                "bias_constraint")


class _BuiltinRNN(RNN):
    """An RNN whose cell is built in: Keras weight layout, config round-trip, fused kernels."""

    cell_class: type[BuiltinCell]
    cell_options: tuple[str, ...] = ()

    def __init__(self, units: int, **kwargs) -> None:
        for name in _UNSUPPORTED:
            if kwargs.pop(name, None) is not None:
                raise ValueError(f"{name}: not supported by rnnkit; add a penalty to the loss "
                                 "or clip weights in a callback instead")
        runner_kwargs = {k: kwargs.pop(k) for k in _RUNNER_ARGS if k in kwargs}
        cell_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in self._cell_arguments()}
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) "
                            f"{sorted(kwargs)}")
        dtype = runner_kwargs.get("dtype")
        if dtype is not None:
            from rnnkit.layers.base import _torch_dtype
            cell_kwargs["dtype"] = _torch_dtype(dtype)
        super().__init__(self.cell_class(units, **cell_kwargs), **runner_kwargs)

    @classmethod
    def _cell_arguments(cls) -> tuple[str, ...]:
        return ("activation", "recurrent_activation", "use_bias", "kernel_initializer",
                "recurrent_initializer", "bias_initializer", "dropout", "recurrent_dropout",
                *cls.cell_options)

    @classmethod
    def from_config(cls, config: dict):
        return super(RNN, cls).from_config(config)

    @property
    def units(self) -> int:
        return self.cell.units

    def get_weights(self):
        return _keras_layout.keras_weights(self.cell) if self.cell.built else []

    def set_weights(self, weights) -> None:
        if not self.cell.built:
            raise ValueError(f"{self.name}: set_weights needs a built layer; call it on data "
                             "or give input_shape first")
        _keras_layout.set_keras_weights(self.cell, weights, self.name)

    def get_config(self) -> dict:
        cell = self.cell
        config = super().get_config()
        config.pop("cell", None)
        config.update(
            units=cell.units, activation=activations.name_of(cell.activation),
            recurrent_activation=activations.name_of(cell.recurrent_activation),
            use_bias=cell.use_bias,
            kernel_initializer=initializers.name_of(cell.kernel_initializer),
            recurrent_initializer=initializers.name_of(cell.recurrent_initializer),
            bias_initializer=initializers.name_of(cell.bias_initializer),
            dropout=cell.dropout, recurrent_dropout=cell.recurrent_dropout,
        )
        config.update({name: getattr(cell, name) for name in self.cell_options})
        if self.cell_class is SimpleRNNCell:
            config.pop("recurrent_activation")
        return config


class SimpleRNN(_BuiltinRNN):
    """Keras's ``SimpleRNN``: ``h_t = act(W x_t + U h_{t-1} + b)``. Output ``(B, units)``."""

    cell_class = SimpleRNNCell
    cell_options = ("recurrent_bias",)

    @classmethod
    def _cell_arguments(cls):
        return tuple(a for a in super()._cell_arguments() if a != "recurrent_activation")


class LSTM(_BuiltinRNN):
    """Keras's ``LSTM`` (gates i, f, c, o), plus rnnkit's ``peephole``, ``layer_norm``,
    ``proj_size``.

    Inputs ``(B, T, I)``; outputs ``(B, T, H)`` or ``(B, H)``; states ``[h (B, H), c (B, H)]``.
    """

    cell_class = LSTMCell
    cell_options = ("recurrent_bias", "unit_forget_bias", "peephole", "layer_norm", "proj_size")


class GRU(_BuiltinRNN):
    """Keras's ``GRU``; ``reset_after=True`` (default) is also PyTorch's and cuDNN's form."""

    cell_class = GRUCell
    cell_options = ("reset_after",)
