"""Suite-wide settings: quiet TensorFlow (a test-only peer) and a fixed seed per test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # keep TF's plain float path for parity
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# Tests use tiny tensors; with the test runner's workers on 2 cores, extra intra-op threads only
# oversubscribe the machine (up to hundreds of times slower under load).
torch.set_num_threads(1)

# The GEMMs over all steps run in pieces where OpenBLAS has a small-matrix kernel
# (rnnkit.kernels._blas): the suite runs that code on every machine, as on the AVX-512 one of CI.
os.environ.setdefault("RNNKIT_BLAS_SMALL_GEMM", "1")

# The step GEMMs run on MKL's packed weights wherever MKL is found, whichever path this machine
# would time faster (rnnkit.kernels._mkl.packed_is_faster): the suite tests the same paths on
# every machine, OpenBLAS's where a test asks for it (tests/kernels/_harness.py).
from rnnkit.kernels import _mkl  # noqa: E402

_mkl.PREFERENCE = True


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture(scope="session")
def keras():
    """The Keras 3 peer on TensorFlow, single-threaded; tests using it skip if it can't import."""
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised earlier in the session
        pass
    return keras


@pytest.fixture
def rng():
    return np.random.default_rng(0)
