"""Fixtures for the sequence-to-sequence tests: one torch thread, tiny models, the Keras peer."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from rnnkit.seq2seq import Seq2Seq  # noqa: E402

SRC_VOCAB, TGT_VOCAB = 11, 9


@pytest.fixture(autouse=True)
def _one_thread():
    """Step-by-step decoding is many small ops; extra threads only contend on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def keras():
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    return keras


def tiny_model(seed: int = 0, sharpen: float = 1.0, **options) -> Seq2Seq:
    """A small untrained model; ``sharpen`` scales the output layer so its choices are clear-cut."""
    torch.manual_seed(seed)
    options = {"embedding_dim": 6, "units": 12, "backend": "reference", **options}
    model = Seq2Seq(SRC_VOCAB, TGT_VOCAB, **options)
    with torch.no_grad():
        for weight in model.output_projection.parameters():
            weight.mul_(sharpen)
    return model


def source_batch(batch: int = 5, steps: int = 7, seed: int = 0) -> torch.Tensor:
    """Token ids in [3, SRC_VOCAB) with right padding of different lengths (row 0 unpadded)."""
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(3, SRC_VOCAB, (batch, steps), generator=generator)
    lengths = torch.randint(2, steps + 1, (batch,), generator=generator)
    lengths[0] = steps
    src[torch.arange(steps)[None, :] >= lengths[:, None]] = 0
    return src


def target_batch(batch: int = 5, steps: int = 6, seed: int = 1) -> torch.Tensor:
    """``tgt_in``: bos then token ids in [3, TGT_VOCAB)."""
    generator = torch.Generator().manual_seed(seed)
    tgt = torch.randint(3, TGT_VOCAB, (batch, steps), generator=generator)
    tgt[:, 0] = 1
    return tgt


def reverse_task(count: int = 48, length: int = 4, seed: int = 0):
    """``src``, ``tgt_in``, ``tgt_out`` for reversing sequences of ids in [3, TGT_VOCAB)."""
    generator = torch.Generator().manual_seed(seed)
    body = torch.randint(3, TGT_VOCAB, (count, length), generator=generator)
    target = body.flip(1)
    bos, eos = torch.ones(count, 1, dtype=torch.long), torch.full((count, 1), 2)
    return body, torch.cat([bos, target], 1), torch.cat([target, eos], 1)


def train(model: Seq2Seq, task, steps: int, learning_rate: float = 0.02) -> float:
    """Full-batch Adam with a plain torch loop; returns the last loss."""
    src, tgt_in, tgt_out = task
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    model.train()
    for _ in range(steps):
        logits = model([src, tgt_in])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return loss.item()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
