"""The shared body of the torch.nn drop-ins.

The module holds plain parameters under torch.nn's names (``weight_ih_l0``, ``bias_hh_l1_reverse``,
...), binds each layer/direction's tensors to a reference cell as a
:class:`~rnnkit.cells.base.BoundCell`, and runs it with :func:`rnnkit.kernels.run_sequence`. There
is no flattened weight buffer to keep in sync: a bound cell is kept while its parameters are the
same objects, and the kernels check the tensors' layout and version on every call, so ``.to()``,
``.double()`` and ``load_state_dict`` need nothing special.

Internally every sequence is batch-first, ``(B, T, F)``; the caller's layout is restored on the
way out.
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from rnnkit._checks import lengths_to_mask
from rnnkit.cells.base import GATES, BoundCell, BuiltinCell, CellSpec, CellWeights
from rnnkit.kernels import native, run_sequence
from rnnkit.kernels.fused import native_call
from rnnkit.nn import _packing, _validation


def parameter_shapes(spec: CellSpec, bias: bool) -> dict[str, tuple[int, ...]]:
    """The shapes of one layer/direction's tensors, keyed by :class:`CellWeights` field.

    The fields are named as torch.nn names parameters, and are listed in its registration order
    with rnnkit's extras last; a parameter's name is the field plus ``_l{layer}[_reverse]``.
    """
    gate_rows, units = GATES[spec.family] * spec.hidden_size, spec.hidden_size
    shapes = {
        "weight_ih": (gate_rows, spec.input_size),
        "weight_hh": (gate_rows, spec.recurrent_size),
    }
    if bias:
        shapes["bias_ih"] = (gate_rows,)
        shapes["bias_hh"] = (gate_rows,)
    if spec.proj_size:
        shapes["weight_hr"] = (spec.proj_size, units)
    if spec.peephole:
        shapes["weight_peephole"] = (3, units)
    if spec.layer_norm:
        for name, width in (("ln_ih", gate_rows), ("ln_hh", gate_rows), ("ln_c", units)):
            shapes[f"{name}_weight"] = (width,)
            shapes[f"{name}_bias"] = (width,)
    return shapes


@dataclass
class _Batch:
    """A forward's input in rnnkit's layout plus what is needed to restore the caller's."""

    inputs: torch.Tensor  # (B, T, I)
    mask: torch.Tensor | None  # (B, T), True on real steps, right-padded
    lengths: torch.Tensor | None  # (B,)
    batched: bool
    packed: PackedSequence | None


class RNNBase(nn.Module):
    """Stacked, optionally bidirectional recurrence over a built-in rnnkit cell.

    Subclasses set ``cell_class`` and ``mode`` and define how the initial state ``hx`` is given and
    the final state returned (:meth:`_state_names`, :meth:`_pack_state`).
    """

    cell_class: type[BuiltinCell]
    mode: str

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        proj_size: int = 0,
        activation: str = "tanh",
        peephole: bool = False,
        layer_norm: bool = False,
        backend: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.input_size = _validation.check_positive_int(input_size, "input_size")
        self.hidden_size = _validation.check_positive_int(hidden_size, "hidden_size")
        self.num_layers = _validation.check_positive_int(num_layers, "num_layers")
        self.dropout = _validation.check_dropout(dropout, self.num_layers)
        self.proj_size = _validation.check_proj_size(proj_size, self.hidden_size)
        self.backend = _validation.check_backend(backend)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.peephole = bool(peephole)
        self.layer_norm = bool(layer_norm)
        self._activation = activation
        self._all_weights: list[list[str]] = []
        self._cells: dict[int, tuple[tuple, BoundCell]] = {}
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype: expected a floating-point torch.dtype (the parameters are "
                            f"trained), got {dtype!r}")
        factory = {"device": device, "dtype": dtype}
        for layer in range(self.num_layers):
            spec = self._layer_spec(layer)
            for direction in range(self.num_directions):
                names = []
                for field, shape in parameter_shapes(spec, self.bias).items():
                    name = self._parameter_name(field, layer, direction)
                    self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
                    names.append(name)
                self._all_weights.append(names)
        self.reset_parameters()

    # -- layout -------------------------------------------------------------------------------
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Width of each direction's ``h``: ``proj_size`` when projecting, else ``hidden_size``."""
        return self.proj_size or self.hidden_size

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """The parameters of each layer/direction, as torch.nn's ``all_weights``."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def _layer_spec(self, layer: int) -> CellSpec:
        input_size = self.input_size if layer == 0 else self.num_directions * self.output_size
        return CellSpec(
            family=self.cell_class.family,
            input_size=input_size,
            hidden_size=self.hidden_size,
            activation=self._activation,
            proj_size=self.proj_size,
            peephole=self.peephole,
            layer_norm=self.layer_norm,
            reset_after=True,
        )

    @staticmethod
    def _parameter_name(field: str, layer: int, direction: int) -> str:
        return f"{field}_l{layer}" + ("_reverse" if direction else "")

    def _bound_cell(self, layer: int, direction: int) -> BoundCell:
        """The layer/direction's cell, kept while its tensors are the same objects (a reassigned
        or parametrized parameter makes a new one)."""
        index = layer * self.num_directions + direction
        names = self._all_weights[index]
        # Straight from the parameter dict (getattr goes through Module.__getattr__); a
        # parametrized weight is not in it and is computed by getattr.
        try:
            tensors = tuple(map(self._parameters.__getitem__, names))
        except KeyError:
            tensors = tuple(map(functools.partial(getattr, self), names))
        cached = self._cells.get(index)
        if cached is not None and all(map(operator.is_, cached[0], tensors)):
            return cached[1]
        spec = self._layer_spec(layer)
        weights = CellWeights(**dict(zip(parameter_shapes(spec, self.bias), tensors, strict=True)))
        cell = BoundCell(self.cell_class, spec, weights)
        self._cells[index] = (tensors, cell)
        return cell

    def __getstate__(self):
        # The bound cells hold kernel state (arrays, modules) that is rebuilt on demand.
        state = dict(super().__getstate__())
        state["_cells"] = {}
        return state

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        self._cells = {}

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """torch.nn's init, uniform(-1/sqrt(H), 1/sqrt(H)), drawn in torch's parameter order.

        Layer-norm gains start at 1 and their shifts at 0, so a fresh layer norm is the identity
        normalisation.
        """
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name, parameter in self.named_parameters():
            if name.startswith("ln_"):
                parameter.fill_(1.0 if "_weight_" in name else 0.0)
            else:
                nn.init.uniform_(parameter, -bound, bound)

    def flatten_parameters(self) -> None:
        """Does nothing: kept so code written for torch.nn (``lstm.flatten_parameters()``) runs."""

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        defaults = {
            "num_layers": 1,
            "bias": True,
            "batch_first": False,
            "dropout": 0.0,
            "bidirectional": False,
            "proj_size": 0,
            "peephole": False,
            "layer_norm": False,
            "backend": "auto",
        }
        for name, default in defaults.items():
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)!r}"
        return text

    # -- forward ------------------------------------------------------------------------------
    def forward(self, input, hx=None, *, lengths=None):
        """Run the stack; see the subclass docstring for shapes.

        ``lengths (B,)`` is an rnnkit extension for right-padded batched input: each sequence stops
        at its length, ``h_n`` is taken at its last real step and padded outputs are zero.
        """
        if lengths is None and self._native_applies:
            result = self._native_forward(input, hx)
            if result is not None:
                return result
        batch = self._prepare_input(input, lengths)
        states = self._prepare_state(hx, batch)
        outputs, finals = self._run_layers(batch.inputs, states, batch.mask)
        return self._format_output(outputs, finals, batch)

    @property
    def _native_applies(self) -> bool:
        """Whether the whole forward may be one native call (one layer and direction, fused
        backend, the extension loaded); each call still checks its input, states and weights.
        Other modules' layers reach the native call through :func:`run_sequence`."""
        return (self.num_layers == 1 and not self.bidirectional and self.backend != "reference"
                and native.available())

    def _native_forward(self, input, hx):
        """The forward through :func:`rnnkit.kernels.fused.native_call`, or ``None`` when it does
        not apply (the general path then runs, and raises any error)."""
        if type(input) is not torch.Tensor or input.dim() != 3:
            return None
        state = None
        if hx is not None:  # a tensor, or LSTM's tuple (h, c); anything else raises below
            state = (hx,) if len(self._state_names()) == 1 else hx
            if type(state) is not tuple:
                return None
        inputs = input if self.batch_first else input.transpose(0, 1)
        result = native_call(self._bound_cell(0, 0), inputs, state)
        if result is None:
            return None
        outputs, *finals = result
        if not self.batch_first:
            outputs = outputs.transpose(0, 1)
        return outputs, self._pack_state(finals)

    def _prepare_input(self, input, lengths) -> _Batch:
        if isinstance(input, PackedSequence):
            return self._prepare_packed(input, lengths)
        weight = self.weight_ih_l0
        tensor = _validation.check_input(input, self.input_size, weight.dtype, self.batch_first)
        _validation.check_device(tensor, weight.device, "input")
        batched = tensor.dim() == 3
        if not batched:
            tensor = tensor.unsqueeze(0)  # (1, T, I)
        elif not self.batch_first:
            tensor = tensor.transpose(0, 1)  # (B, T, I)
        mask = None
        if lengths is not None:
            if not batched:
                raise ValueError("lengths: expected None with unbatched 2-D input")
            mask = lengths_to_mask(lengths, tensor.shape[0], tensor.shape[1], tensor.device)
        return _Batch(tensor, mask, lengths, batched, None)

    def _prepare_packed(self, packed: PackedSequence, lengths) -> _Batch:
        if lengths is not None:
            raise ValueError(
                "lengths: expected None with a PackedSequence input, which carries its own lengths"
            )
        weight = self.weight_ih_l0
        _validation.check_packed_data(packed.data, self.input_size, weight.dtype)
        _validation.check_device(packed.data, weight.device, "input")
        padded, lengths = _packing.unpack(packed)  # (B, T, I), (B,)
        mask = lengths_to_mask(lengths, padded.shape[0], padded.shape[1], padded.device)
        return _Batch(padded, mask, lengths, True, packed)

    def _prepare_state(self, hx, batch: _Batch) -> tuple[torch.Tensor, ...] | None:
        """The initial states as ``(L*D, B, size)`` tensors, or ``None`` (zeros) when ``hx`` is."""
        if hx is None:
            return None
        inputs = batch.inputs
        stacked = self.num_layers * self.num_directions
        sizes = self._state_sizes()
        checked = []
        given = self._unpack_state(hx)
        for tensor, name, size in zip(given, self._state_names(), sizes, strict=True):
            width = "hidden_size" if size == self.hidden_size else "proj_size"
            if batch.batched:
                expected = (stacked, inputs.shape[0], size)
                layout = f"(num_layers * num_directions, batch, {width})"
            else:
                expected, layout = (stacked, size), f"(num_layers * num_directions, {width})"
            tensor = _validation.check_hidden(tensor, name, expected, layout, inputs)
            checked.append(tensor if batch.batched else tensor.unsqueeze(1))
        return tuple(checked)

    def _run_layers(
        self,
        inputs: torch.Tensor,
        states: tuple[torch.Tensor, ...] | None,
        mask: torch.Tensor | None,
    ):
        """All layers and directions from ``states`` (each ``(L*D, B, s)``, or ``None`` for
        zeros); returns ``(outputs (B, T, D*H_out), finals (L*D, B, s))``.

        A single layer and direction adds no op to the graph beyond its kernel (no ``cat``; the
        kernel returns the finals as ``(1, B, s)``): at small sizes each op costs as much again
        in the backward pass.
        """
        if self.num_layers == 1 and not self.bidirectional:
            initial = None if states is None else tuple(state[0] for state in states)
            return self._run_direction(0, 0, inputs, initial, mask)
        finals: list[tuple[torch.Tensor, ...]] = []
        layer_input = inputs  # (B, T, I)
        for layer in range(self.num_layers):
            direction_outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                initial = None if states is None else tuple(state[index] for state in states)
                output, final = self._run_direction(layer, direction, layer_input, initial, mask)
                direction_outputs.append(output)
                finals.append(final)
            if len(direction_outputs) == 1:
                layer_input = direction_outputs[0]  # (B, T, H_out)
            else:
                layer_input = torch.cat(direction_outputs, dim=-1)  # (B, T, D*H_out)
            if layer < self.num_layers - 1:
                layer_input = self._between_layers(layer_input)
        stacked = tuple(torch.cat(kind, dim=0) for kind in zip(*finals, strict=True))
        return layer_input, stacked

    def _run_direction(
        self,
        layer: int,
        direction: int,
        inputs: torch.Tensor,
        state: tuple[torch.Tensor, ...] | None,
        mask: torch.Tensor | None,
    ):
        """One layer and direction: ``(outputs (B, T, H_out), finals)``, each final ``(1, B, s)``
        (a native call where one applies, with or without a mask; see
        :meth:`rnnkit.kernels.fused.BoundKernel.native_run`)."""
        # The reverse pass flips the time axis and the mask together: a right-padded sequence
        # becomes left-padded, and masked steps hold the initial state, so each sequence is read
        # backwards from its own last real step.
        reverse = direction == 1
        if reverse:
            inputs = inputs.flip(1)
            mask = None if mask is None else mask.flip(1)
        output, final = run_sequence(
            self._bound_cell(layer, direction),
            inputs,
            state,
            mask=mask,
            zero_output_for_mask=True,
            backend=self.backend,
            stacked=True,
        )
        return (output.flip(1) if reverse else output), final

    def _between_layers(self, outputs: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.dropout > 0):
            return outputs
        # Drawn over the time-major layout torch.nn uses for padded input, so a seeded run
        # reproduces its mask. (For PackedSequence torch draws over the packed data instead; the
        # distribution is the same, the draws are not.)
        time_major = outputs.transpose(0, 1).contiguous()  # (T, B, F)
        return F.dropout(time_major, self.dropout, training=True).transpose(0, 1)

    def _format_output(
        self, outputs: torch.Tensor, finals: tuple[torch.Tensor, ...], batch: _Batch
    ):
        if batch.packed is not None:
            outputs = _packing.repack(outputs, batch.lengths, batch.packed)
        elif not batch.batched:
            outputs = outputs.squeeze(0)  # (T, D*H_out)
            finals = tuple(final.squeeze(1) for final in finals)
        elif not self.batch_first:
            outputs = outputs.transpose(0, 1)  # (T, B, D*H_out)
        return outputs, self._pack_state(finals)

    # -- per-family state conventions ------------------------------------------------------
    def _state_sizes(self) -> tuple[int, ...]:
        return (self.output_size,)

    def _state_names(self) -> tuple[str, ...]:
        return ("hx",)

    def _unpack_state(self, hx) -> tuple:
        if not isinstance(hx, torch.Tensor):
            raise TypeError(
                f"hx: expected a torch.Tensor for {type(self).__name__}, got {type(hx).__name__}"
            )
        return (hx,)

    def _pack_state(self, finals: tuple[torch.Tensor, ...]):
        return finals[0]
