"""The implementations the benchmark times: each is a ``Contender`` whose ``run()`` does one
forward and backward pass over fixed data, with everything else (building, data) done up front."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

import rnnkit.layers
import rnnkit.nn

# The variants benchmarked. torch.nn has no peephole or layer-norm LSTM: those are compared with
# rnnkit's reference path, a plain PyTorch loop over the cell (one torch op per gate and step).
VARIANTS = {
    "lstm": {"family": "lstm", "options": {}},
    "gru": {"family": "gru", "options": {}},
    "rnn": {"family": "rnn", "options": {}},
    "lstm_peephole": {"family": "lstm", "options": {"peephole": True}},
    "lstm_layernorm": {"family": "lstm", "options": {"layer_norm": True}},
}
TORCH_NN = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
RNNKIT_NN = {"lstm": rnnkit.nn.LSTM, "gru": rnnkit.nn.GRU, "rnn": rnnkit.nn.RNN}
RNNKIT_LAYERS = {"lstm": rnnkit.layers.LSTM, "gru": rnnkit.layers.GRU,
                 "rnn": rnnkit.layers.SimpleRNN}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


@dataclass
class Contender:
    name: str
    run: Callable[[], None]
    clock: str = "thread"  # CPU time of the calling thread; "process" for TF (see run.py)
    threads: int | None = None  # torch threads for its samples; None: the run's (see run.py)


def gemm_flops(family: str, batch: int, steps: int, features: int, hidden: int) -> float:
    """GEMM floating-point operations of one forward and backward pass (elementwise excluded).

    Forward: ``x W^T`` and ``h U^T`` per step, ``2 B T G H (I + H)``. Backward, with inputs that
    need no gradient (the usual first layer): ``dW`` and ``dU`` (the same again) plus ``dh``
    per step, ``2 B T G H H``.
    """
    width = GATES[family] * hidden
    forward = 2.0 * batch * steps * width * (features + hidden)
    return 2.0 * forward + 2.0 * batch * steps * width * hidden


def _zero_grads(module) -> None:
    for parameter in module.parameters():
        parameter.grad = None


def module_contender(name: str, module: torch.nn.Module, x: torch.Tensor) -> Contender:
    def run():
        _zero_grads(module)
        output, _ = module(x)
        output.sum().backward()

    return Contender(name, run)


def _keras_face_contender(name: str, layer, x: torch.Tensor) -> Contender:
    def run():
        _zero_grads(layer)
        output = layer(x, training=True)
        output.sum().backward()

    return Contender(name, run)


def torch_contenders(variant: str, batch: int, steps: int, features: int, hidden: int,
                     seed: int = 0, threads: int = 1) -> list[Contender]:
    """rnnkit (fused), and torch.nn where it has the cell, else rnnkit's reference loop. With
    more than one thread the peer runs on one thread as well (``torch.nn@1``, ``loop@1``): small
    problems run faster on one, and a speedup is taken against the peer's faster setting."""
    spec = VARIANTS[variant]
    family, options = spec["family"], spec["options"]
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, features, generator=generator)
    contenders = []
    fused = RNNKIT_NN[family](features, hidden, batch_first=True, backend="fused", **options)
    contenders.append(module_contender("rnnkit", fused, x))
    if family in TORCH_NN and not options:
        reference = TORCH_NN[family](features, hidden, batch_first=True)
        contenders.append(module_contender("torch.nn", reference, x))
    else:
        loop = RNNKIT_NN[family](features, hidden, batch_first=True, backend="reference",
                                 **options)
        contenders.append(module_contender("loop", loop, x))
    if threads > 1:
        peer = contenders[-1]
        contenders.append(Contender(f"{peer.name}@1", peer.run, peer.clock, threads=1))
    return contenders


def keras_face_contender(variant: str, batch: int, steps: int, features: int, hidden: int,
                         seed: int = 0) -> Contender:
    """rnnkit's Keras face (``rnnkit.layers``), to set beside TF-Keras."""
    spec = VARIANTS[variant]
    family, options = spec["family"], spec["options"]
    x = torch.randn(batch, steps, features, generator=torch.Generator().manual_seed(seed))
    layer = RNNKIT_LAYERS[family](hidden, return_sequences=True, **options)
    layer(x[:1, :1])  # build
    return _keras_face_contender("rnnkit.layers", layer, x)


_TF = None


def tensorflow(threads: int):
    """TensorFlow configured for ``threads`` intra-op threads, or ``None`` if not installed."""
    global _TF
    if _TF is not None:
        return _TF or None
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        _TF = tf
    except Exception:  # noqa: BLE001  (not installed, or a broken install: skip the column)
        _TF = False
    return _TF or None


def keras_contender(variant: str, batch: int, steps: int, features: int, hidden: int,
                    threads: int, seed: int = 0) -> Contender | None:
    """TF-Keras's layer, forward and backward in one ``tf.function`` (a compiled graph)."""
    spec = VARIANTS[variant]
    if spec["options"]:
        return None  # Keras has no peephole or layer-norm LSTM
    tf = tensorflow(threads)
    if tf is None:
        return None
    import keras

    layer_class = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU,
                   "rnn": keras.layers.SimpleRNN}[spec["family"]]
    layer = layer_class(hidden, return_sequences=True)
    x = tf.constant(np.random.default_rng(seed).standard_normal((batch, steps, features),
                                                                np.float32))
    layer(x[:1, :1])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=True))
        return tape.gradient(loss, layer.trainable_variables)

    def run():
        grads = step()
        grads[0].numpy()  # wait for the result

    return Contender("tf.keras", run, clock="process")
