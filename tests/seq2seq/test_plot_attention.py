"""The attention heatmap."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.plot.attention import attention


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_heatmap_shows_the_weights_under_token_labels(tmp_path):
    weights = np.random.default_rng(0).dirichlet(np.ones(9), size=6)  # (T_out, S) padded
    source, output = list("3 Mar 21"), list("2021-")
    figure = attention(weights, source, output)
    axes = figure.axes[0]
    np.testing.assert_array_equal(axes.images[0].get_array(), weights[:5, :8])
    assert [t.get_text() for t in axes.get_xticklabels()] == ["3", "␣", "M", "a", "r", "␣",
                                                              "2", "1"]
    assert [t.get_text() for t in axes.get_yticklabels()] == output
    path = attention(weights, source, output, path=tmp_path / "attention.png", title="dates")
    width, height = _png_size(path)
    assert width > 300 and height > 200


@pytest.mark.parametrize("weights, src, tgt, message", [
    (np.ones((2, 3, 4)), ["a"], ["b"], "weights: expected one example's"),
    (np.ones((3, 4)), list("abcde"), ["b"], "src_tokens: expected 1 to 4 tokens"),
    (np.ones((3, 4)), ["a"], [], "tgt_tokens: expected 1 to 3 tokens"),
])
def test_errors_name_the_argument(weights, src, tgt, message):
    with pytest.raises(ValueError, match=message):
        attention(weights, src, tgt)
