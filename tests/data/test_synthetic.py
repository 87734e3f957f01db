import numpy as np

from rnnkit.data.synthetic import xor_task


def test_xor_task_answer_depends_only_on_the_first_two_steps():
    x, y = xor_task(64, 9, seed=3)
    assert x.shape == (64, 9, 1) and y.shape == (64, 1)
    assert not x[:, 2:].any()
    np.testing.assert_array_equal(y[:, 0], np.logical_xor(x[:, 0, 0], x[:, 1, 0]))
    assert 0 < y.mean() < 1
    np.testing.assert_array_equal(xor_task(64, 9, seed=3)[0], x)
