"""One ``fit`` with checkpoints in its own process, for test_checkpoint's SIGKILL test.

    python checkpoint_worker.py CHECKPOINT_DIR RESULT [BLOCK_DIRECTORY BLOCK_FILE READY]

Trains a small LSTM with dropout, shuffling and ReduceLROnPlateau for 4 epochs with
``resume=True``, then writes its final weights to RESULT (safetensors; the history and the epochs
this process trained are JSON in the metadata). With the BLOCK_* arguments, the save of
BLOCK_FILE into the checkpoint BLOCK_DIRECTORY (say ``epoch-00002``) writes half of the file into
its temporary file, creates READY and sleeps: the test kills the process there.
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

from rnnkit import callbacks
from rnnkit.layers import LSTM, Dense, Dropout
from rnnkit.models import Sequential
from rnnkit.training import checkpoint_files
from rnnkit.utils import set_random_seed

EPOCHS = 4


def block_inside(directory: str, file: str, ready: Path) -> None:
    """Make the save of ``directory/file`` stop halfway through its temporary file."""
    original = checkpoint_files.atomic_write

    def atomic_write(path, write, overwrite):
        path = Path(path)
        if path.name != file or path.parent.name != directory:
            return original(path, write, overwrite)

        def write_half_then_wait(stream):
            buffer = io.BytesIO()
            write(buffer)
            stream.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            stream.flush()
            ready.touch()
            time.sleep(600)

        return original(path, write_half_then_wait, overwrite)

    checkpoint_files.atomic_write = atomic_write


def main(checkpoint_dir: str, result: str, *block: str) -> None:
    torch.set_num_threads(1)
    if block:
        block_inside(block[0], block[1], Path(block[2]))
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 5, 2)).astype("float32")
    y = x[:, :, 0].mean(1, keepdims=True)
    set_random_seed(0)
    model = Sequential([LSTM(6), Dropout(0.25), Dense(1)])
    model.compile("adam", "mse")
    trained = []
    record = callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs=None: trained.append(epoch))
    history = model.fit(
        x, y, epochs=EPOCHS, batch_size=7, verbose=0, checkpoint_dir=checkpoint_dir, resume=True,
        callbacks=[callbacks.ReduceLROnPlateau(monitor="loss", patience=1, min_delta=10.0), record])
    metadata = {"history": json.dumps(history.history), "trained": json.dumps(trained)}
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                                result, metadata=metadata)


if __name__ == "__main__":
    main(*sys.argv[1:])
