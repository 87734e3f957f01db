"""Run these tiny-tensor tests on one intra-op thread.

On 2 busy cores, ``F.layer_norm`` on a (2, 12) tensor takes milliseconds with two threads against
microseconds with one (thread hand-off dominates), which made the layer-norm gradchecks 100x slower.
The previous thread count is restored so other test packages are unaffected.
"""

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _single_intra_op_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
