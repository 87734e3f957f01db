"""How fast the layer-norm LSTM could be if its normalisations cost nothing: an upper bound.

With ``--free``, the layer-norm row functions of ``rnnkit.kernels._rows`` (``layer_norm_row``,
its backward and ``row_moments``) are replaced by copies before any kernel is compiled, so the
fused layer-norm LSTM computes wrong results at the cost of everything but its normalisations.
The rest of the arguments go to ``bench/run.py``. Run it on the Python path with a numba cache
of its own, alternating with the real code in the same minutes::

    for free in "" --free "" --free; do
        RNNKIT_NATIVE=0 NUMBA_CACHE_DIR=/tmp/bound$free .venv/bin/python bench/layer_norm_bound.py \
            $free --small --variants lstm_peephole,lstm_layernorm --no-keras --no-step \
            --budget 2 --large-threads --out /tmp/bound$free-$RANDOM.json
    done

and compare the layer-norm LSTM's geometric mean with the peephole LSTM's of the same run.
"""

from __future__ import annotations

import os
import runpy
import sys


def free_normalisations() -> None:
    """Swap the layer-norm row functions for copies (before the loops that call them compile)."""
    if os.environ.get("RNNKIT_NATIVE", "1") != "0":
        raise SystemExit("--free patches the Python path's kernels: run with RNNKIT_NATIVE=0")
    if not os.environ.get("NUMBA_CACHE_DIR"):
        raise SystemExit("--free needs a NUMBA_CACHE_DIR of its own: numba's cache would keep "
                         "the wrong kernels")
    if any(name in sys.modules for name in ("rnnkit.kernels._lstm_gate_major",
                                            "rnnkit.kernels._lstm_loops")):
        raise SystemExit("--free must patch the rows before the LSTM's loops are imported")
    from rnnkit.kernels import _rows
    from rnnkit.kernels._numba import jit

    @jit
    def layer_norm_row(x, eps, x_hat):
        for j in range(x.size):
            x_hat[j] = x[j]
        return x[0] - x[0] + 1

    @jit
    def layer_norm_row_backward(d_y, x_hat, rstd, weight, d_x, d_weight, d_bias):
        for j in range(d_y.size):
            d_x[j] = d_y[j]

    @jit
    def row_moments(x):
        return x[0], 0.0, 1.0

    _rows.layer_norm_row = layer_norm_row
    _rows.layer_norm_row_backward = layer_norm_row_backward
    _rows.row_moments = row_moments


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if "--free" in arguments:
        arguments.remove("--free")
        free_normalisations()
    sys.argv = [os.path.join(os.path.dirname(__file__), "run.py"), *arguments]
    runpy.run_path(sys.argv[0], run_name="__main__")
