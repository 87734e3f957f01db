"""``LSTM``, ``GRU`` and ``RNN``: drop-in replacements for torch.nn's, run by rnnkit's cells.

Constructor arguments, parameter names and shapes, ``state_dict`` keys, initialisation and the
``forward(input, hx=None)`` contract are torch.nn's, so
``ours.load_state_dict(theirs.state_dict())`` works in both directions. The equations are those
of :mod:`rnnkit.cells` with PyTorch's conventions (two biases; GRU with ``reset_after=True``).

Shapes, with ``D = 2 if bidirectional else 1`` and ``H_out = proj_size or hidden_size``:

- ``input``: ``(T, B, I)``, or ``(B, T, I)`` with ``batch_first=True``, or unbatched ``(T, I)``, or
  a ``PackedSequence``;
- ``output``: ``(T, B, D*H_out)`` (``(B, T, D*H_out)`` batch-first, ``(T, D*H_out)`` unbatched),
  or a ``PackedSequence`` laid out like the input;
- ``h_n``: ``(num_layers*D, B, H_out)`` and, for LSTM, ``c_n``: ``(num_layers*D, B, hidden_size)``,
  without the ``B`` axis for unbatched input. ``h_0``/``c_0`` in ``hx`` have the same shapes.

rnnkit's additions: ``backend="auto"|"fused"|"reference"`` (see :mod:`rnnkit.kernels`), ``lengths=``
in ``forward`` for right-padded batches, and LSTM's ``peephole`` and ``layer_norm`` options.
"""

from __future__ import annotations

import torch

from rnnkit.cells import GRUCell, LSTMCell, SimpleRNNCell
from rnnkit.nn import _validation
from rnnkit.nn._base import RNNBase


class LSTM(RNNBase):
    """torch.nn.LSTM on rnnkit's :class:`~rnnkit.cells.LSTMCell`; returns ``(output, (h_n, c_n))``.

    ``peephole=True`` adds ``weight_peephole_l{k}`` ``(3, hidden_size)`` (rows i, f, o);
    ``layer_norm=True`` adds ``ln_ih_{weight,bias}_l{k}`` ``(4*hidden_size,)``,
    ``ln_hh_{weight,bias}_l{k}`` ``(4*hidden_size,)`` and ``ln_c_{weight,bias}_l{k}``
    ``(hidden_size,)``; both modules' state dicts then have these extra keys.

    Example:
        >>> lstm = LSTM(3, 5, num_layers=2, batch_first=True)
        >>> output, (h_n, c_n) = lstm(torch.zeros(4, 7, 3))
        >>> output.shape, h_n.shape, c_n.shape
        (torch.Size([4, 7, 5]), torch.Size([2, 4, 5]), torch.Size([2, 4, 5]))
    """

    cell_class = LSTMCell
    mode = "LSTM"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        peephole: bool = False,
        layer_norm: bool = False,
        backend: str = "auto",
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            proj_size=proj_size,
            peephole=peephole,
            layer_norm=layer_norm,
            backend=backend,
            device=device,
            dtype=dtype,
        )

    def _state_sizes(self) -> tuple[int, ...]:
        return (self.output_size, self.hidden_size)

    def _state_names(self) -> tuple[str, ...]:
        return ("hx[0] (h_0)", "hx[1] (c_0)")

    def _unpack_state(self, hx) -> tuple:
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            got = f"a sequence of {len(hx)}" if isinstance(hx, (tuple, list)) else type(hx).__name__
            raise TypeError(f"hx: expected a tuple (h_0, c_0) for LSTM, got {got}")
        return tuple(hx)

    def _pack_state(self, finals: tuple[torch.Tensor, ...]):
        return finals[0], finals[1]


class GRU(RNNBase):
    """torch.nn.GRU on rnnkit's :class:`~rnnkit.cells.GRUCell`; returns ``(output, h_n)``.

    The cell runs with ``reset_after=True`` and gates stacked ``r, z, n``, as torch.nn's.

    Example:
        >>> gru = GRU(3, 5, bidirectional=True)
        >>> output, h_n = gru(torch.zeros(7, 4, 3))
        >>> output.shape, h_n.shape
        (torch.Size([7, 4, 10]), torch.Size([2, 4, 5]))
    """

    cell_class = GRUCell
    mode = "GRU"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            backend=backend,
            device=device,
            dtype=dtype,
        )


class RNN(RNNBase):
    """torch.nn.RNN (Elman) on rnnkit's :class:`~rnnkit.cells.SimpleRNNCell`, with both biases.

    ``nonlinearity`` is ``"tanh"`` or ``"relu"`` and, as in torch.nn, the fourth positional
    argument. Returns ``(output, h_n)``.

    Example:
        >>> rnn = RNN(3, 5, 1, "relu")
        >>> output, h_n = rnn(torch.zeros(7, 3))
        >>> output.shape, h_n.shape
        (torch.Size([7, 5]), torch.Size([1, 5]))
    """

    cell_class = SimpleRNNCell

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
    ) -> None:
        self.nonlinearity = _validation.check_choice(
            nonlinearity, _validation.NONLINEARITIES, "nonlinearity"
        )
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            activation=nonlinearity,
            backend=backend,
            device=device,
            dtype=dtype,
        )

    @property
    def mode(self) -> str:
        return f"RNN_{self.nonlinearity.upper()}"

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.nonlinearity != "tanh":
            text += f", nonlinearity={self.nonlinearity!r}"
        return text
