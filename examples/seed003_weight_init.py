"""Seed 003, "Vanishing and Exploding Gradients", solution 3: a Dense(64) layer with an explicit
``glorot_uniform()`` kernel initializer, followed by ReLU.

The seed's program with its Keras imports changed to rnnkit's. The seed's block imports only
``glorot_uniform``; ``Sequential`` and ``Dense`` come from earlier blocks, and ``Activation`` is
used without any import (a ``NameError`` in Keras too), so it is imported here. ``input_dim`` is
left undefined by the seed; 2 stands in. Nothing is trained: ``main()`` builds the model and
returns its parameter count and the kernel's largest entry and standard deviation, to hold
against Glorot's limit ``sqrt(6 / (fan_in + fan_out))`` and ``limit / sqrt(3)``.
"""

import numpy as np

from rnnkit.initializers import glorot_uniform
from rnnkit.layers import Activation, Dense  # EDIT: Activation was never imported by the seed
from rnnkit.models import Sequential

input_dim = 2  # EDIT: the seed leaves input_dim undefined


# EDIT: the program sits in main() so tests can read its results.
# EDIT: epochs is unused (nothing is trained); kept so every script has the same main().
def main(epochs: int | None = None) -> dict:
    model = Sequential([
        Dense(64, input_shape=(input_dim,), kernel_initializer=glorot_uniform()),
        Activation('relu')
    ])

    # EDIT: return the results for tests.
    kernel = model.get_weights()[0]  # (input_dim, 64), Keras's orientation
    return {"params": model.count_params(), "kernel_max": float(np.abs(kernel).max()),
            "kernel_std": float(kernel.std()),
            "glorot_limit": float(np.sqrt(6 / (input_dim + 64)))}


if __name__ == "__main__":
    main()
