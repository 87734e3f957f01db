"""Compiled training steps for ``fit`` (Keras's ``compile(jit_compile=...)``); see
docs/training.md.

With ``jit_compile="auto"`` (the default) or ``True``, ``fit`` runs each batch's whole training
step (forward, loss, backward, optimizer update) as compiled array code when the model and its
compile settings have a compiled version, and the torch step otherwise. The arrays share memory
with the torch parameters and the optimizer's state, so everything else (callbacks, checkpoints,
``predict``) sees the same weights either way. :mod:`.trainer` says what is supported.
"""

from pathlib import Path

from rnnkit.kernels import _cache, _numba

# Before the modules below are imported: their compiled functions call the kernels' (see
# rnnkit.kernels._cache), so their cache's stamp includes the kernels'.
_cache.share_stamp(Path(__file__).parent, depends_on=(Path(_numba.__file__).parent,))

from rnnkit.training.jit.trainer import CompiledTrainer, plan  # noqa: E402

__all__ = ["CompiledTrainer", "plan"]
