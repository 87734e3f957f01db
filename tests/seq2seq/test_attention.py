"""Attention layers: masked weights, shapes, key caching, errors, config, and Keras parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.layers import AdditiveAttention, Attention, BahdanauAttention, LuongAttention
from rnnkit.layers.attention import masked_softmax

BATCH, STEPS_Q, STEPS_S, DIM = 3, 4, 6, 5
# Row 0 sees every source step, row 1 the first three, row 2 only the last two (left padding).
SOURCE_MASK = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 1, 1]]).bool()

SOURCE_ATTENTIONS = {
    "bahdanau": lambda: BahdanauAttention(7),
    "bahdanau_no_bias": lambda: BahdanauAttention(7, use_bias=False),
    "luong_dot": lambda: LuongAttention("dot"),
    "luong_dot_scaled": lambda: LuongAttention("dot", scale=True),
    "luong_general": lambda: LuongAttention("general"),
    "luong_concat": lambda: LuongAttention("concat", units=3),
}
KERAS_ATTENTIONS = {
    "attention_dot": lambda: Attention(),
    "attention_dot_scaled": lambda: Attention(use_scale=True),
    "attention_concat": lambda: Attention(score_mode="concat"),
    "attention_concat_scaled": lambda: Attention(use_scale=True, score_mode="concat"),
    "additive": lambda: AdditiveAttention(),
    "additive_unscaled": lambda: AdditiveAttention(use_scale=False),
}


def _inputs(query_steps: int | None = STEPS_Q):
    generator = torch.Generator().manual_seed(0)
    shape = (BATCH, DIM) if query_steps is None else (BATCH, query_steps, DIM)
    query = torch.randn(shape, generator=generator)
    values = torch.randn(BATCH, STEPS_S, DIM, generator=generator) * 3
    return query, values


def _attend(name: str, layer, query, values, mask):
    if name in SOURCE_ATTENTIONS:
        return layer(query, values, mask=mask)
    return layer([query, values], mask=[None, mask], return_attention_scores=True)


ALL = {**SOURCE_ATTENTIONS, **KERAS_ATTENTIONS}


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("query_steps", [None, STEPS_Q], ids=["one_query", "query_sequence"])
def test_weights_sum_to_one_and_are_exactly_zero_on_padding(name, query_steps):
    query, values = _inputs(query_steps)
    context, weights = _attend(name, ALL[name](), query, values, SOURCE_MASK)
    lead = (BATCH,) if query_steps is None else (BATCH, query_steps)
    assert context.shape == (*lead, DIM)
    assert weights.shape == (*lead, STEPS_S)
    mask = SOURCE_MASK if query_steps is None else SOURCE_MASK[:, None, :].expand_as(weights)
    assert torch.all(weights[~mask] == 0.0)
    assert torch.all(weights[mask] > 0.0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(lead), atol=1e-6, rtol=0)
    torch.testing.assert_close(context, weights @ values if query_steps else
                               (weights[:, None] @ values)[:, 0])


@pytest.mark.parametrize("name", sorted(ALL))
def test_padded_values_get_no_gradient_and_change_nothing(name):
    query, values = _inputs()
    layer = ALL[name]()
    values.requires_grad_(True)
    context, _ = _attend(name, layer, query, values, SOURCE_MASK)
    context.sum().backward()
    assert torch.all(values.grad[~SOURCE_MASK] == 0.0)
    assert values.grad[SOURCE_MASK].abs().sum() > 0
    noisy = values.detach().clone()
    noisy[~SOURCE_MASK] = 1e4
    context_noisy, _ = _attend(name, layer, query, noisy, SOURCE_MASK)
    torch.testing.assert_close(context_noisy, context.detach())


def test_masked_softmax_gives_zero_weights_for_an_all_masked_row_and_no_nan():
    scores = torch.randn(2, 3, 4, dtype=torch.float16)
    mask = torch.tensor([[True, False, True, False], [False] * 4])
    weights = masked_softmax(scores, mask)
    assert not torch.isnan(weights).any()
    assert torch.all(weights[1] == 0)
    torch.testing.assert_close(weights[0].sum(-1).float(), torch.ones(3), atol=1e-3, rtol=0)


@pytest.mark.parametrize("name", sorted(SOURCE_ATTENTIONS))
def test_attend_with_cached_keys_matches_the_call(name):
    query, values = _inputs()
    layer = SOURCE_ATTENTIONS[name]()
    expected = layer(query, values, mask=SOURCE_MASK)
    keys = layer.project_keys(values)
    for step in range(STEPS_Q):
        context, weights = layer.attend(query[:, step], values, keys, SOURCE_MASK)
        torch.testing.assert_close(context, expected[0][:, step])
        torch.testing.assert_close(weights, expected[1][:, step])


def test_bahdanau_follows_seed_001s_formula():
    query, values = _inputs(None)
    layer = BahdanauAttention(7)
    context, weights = layer(query, values)
    hidden = torch.tanh(values @ layer.key_kernel + (query @ layer.query_kernel)[:, None]
                        + layer.bias)
    expected = torch.softmax(hidden @ layer.score_kernel, dim=-1)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(context, (expected[:, :, None] * values).sum(1))


def test_luong_general_score_is_query_times_kernel_times_value():
    query, values = _inputs(None)
    layer = LuongAttention("general")
    _, weights = layer(query, values)
    scores = torch.einsum("bd,ed,bse->bs", query, layer.key_kernel, values)
    torch.testing.assert_close(weights, torch.softmax(scores, dim=-1))


def test_query_mask_zeroes_the_output_and_is_passed_on():
    query, values = _inputs()
    query_mask = torch.tensor([[1, 1, 0, 0]] * BATCH).bool()
    layer = Attention()
    context = layer([query, values], mask=[query_mask, SOURCE_MASK])
    assert torch.all(context[:, 2:] == 0) and torch.all(context[:, :2] != 0)
    assert layer.compute_mask([query, values], [query_mask, SOURCE_MASK]) is query_mask


def test_causal_mask_blocks_later_positions():
    query, values = _inputs(STEPS_S)
    _, weights = Attention()([query, values], use_causal_mask=True, return_attention_scores=True)
    assert torch.all(weights.triu(1) == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(BATCH, STEPS_S))


def test_dropout_applies_only_in_training_and_follows_the_seed():
    query, values = _inputs()
    layer = Attention(dropout=0.5, seed=3)
    inference = layer([query, values], return_attention_scores=True, training=False)[1]
    torch.testing.assert_close(inference.sum(-1), torch.ones(BATCH, STEPS_Q))
    dropped = layer([query, values], return_attention_scores=True, training=True)[1]
    assert torch.any(dropped == 0) and not torch.equal(dropped, inference)
    again = Attention(dropout=0.5, seed=3)([query, values], return_attention_scores=True,
                                           training=True)[1]
    torch.testing.assert_close(again, dropped)


@pytest.mark.parametrize("name", sorted(ALL))
def test_config_round_trip_rebuilds_the_same_layer(name):
    layer = ALL[name]()
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("make, call, message", [
    (lambda: LuongAttention("cosine"), None, "score: expected one of"),
    (lambda: BahdanauAttention(0), None, "units: expected a positive integer, got 0"),
    (lambda: Attention(score_mode="add"), None, "score_mode: expected one of"),
    (lambda: Attention(dropout=1.0), None, "dropout: expected a rate in"),
    (lambda: LuongAttention("dot"), lambda layer: layer(torch.zeros(2, 4), torch.zeros(2, 3, 5)),
     "query: score='dot' expects the query width to equal the values' \\(5\\), got 4"),
    (lambda: BahdanauAttention(4),
     lambda layer: layer(torch.zeros(2, 5), torch.zeros(2, 3, 5), mask=torch.ones(2, 4)),
     "mask: expected shape .* \\(2, 3\\), got \\(2, 4\\)"),
    (lambda: BahdanauAttention(4), lambda layer: layer(torch.zeros(2, 5), torch.zeros(3, 3, 5)),
     "values: expected batch size 2"),
    (lambda: Attention(), lambda layer: layer(torch.zeros(2, 3, 5)),
     "inputs: Attention expects a list"),
    (lambda: Attention(), lambda layer: layer([torch.zeros(2, 3, 5)] * 2, mask=torch.ones(2, 3)),
     "mask: expected a list"),
])
def test_errors_name_the_argument(make, call, message):
    with pytest.raises(ValueError, match=message):
        layer = make()
        call(layer)


# -- Keras parity ---------------------------------------------------------------------------------
def _keras_inputs(rng, with_key: bool):
    query = rng.normal(size=(BATCH, STEPS_Q, DIM)).astype("float32")
    value = rng.normal(size=(BATCH, STEPS_S, DIM)).astype("float32")
    key = rng.normal(size=(BATCH, STEPS_S, DIM)).astype("float32")
    return [query, value, key] if with_key else [query, value]


@pytest.mark.peer
@pytest.mark.parametrize("name", sorted(KERAS_ATTENTIONS))
@pytest.mark.parametrize("with_key", [False, True], ids=["value_as_key", "separate_key"])
def test_matches_keras_with_copied_weights(keras, rng, name, with_key):
    ours = KERAS_ATTENTIONS[name]()
    config = {k: v for k, v in ours.get_config().items() if k not in ("name", "trainable")}
    theirs = getattr(keras.layers, type(ours).__name__)(**config)
    inputs = _keras_inputs(rng, with_key)
    query_mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], bool)
    # Every row keeps step 0: Keras leaves rows with nothing to attend to undefined.
    value_mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 0, 1, 1, 0]], bool)
    masks = [query_mask, value_mask]
    expected = theirs(inputs, mask=masks, return_attention_scores=True)
    ours(inputs, mask=masks)
    weights = [rng.uniform(0.5, 1.5, size=w.shape).astype("float32") for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(theirs.get_weights())
    assert ours.count_params() == theirs.count_params()
    for use_causal_mask in (False, True):
        expected = theirs(inputs, mask=masks, return_attention_scores=True,
                          use_causal_mask=use_causal_mask)
        got = ours(inputs, mask=masks, return_attention_scores=True,
                   use_causal_mask=use_causal_mask)
        for mine, peer in zip(got, expected, strict=True):
            np.testing.assert_allclose(mine.detach().numpy(), np.asarray(peer), atol=1e-5,
                                       rtol=0)


@pytest.mark.peer
def test_functional_model_with_attention_matches_keras(keras):
    import rnnkit.layers
    import rnnkit.models

    def build(layers, models):
        query_ids = layers.Input((None,), dtype="int32")
        value_ids = layers.Input((None,), dtype="int32")
        embed = layers.Embedding(12, DIM, mask_zero=True)
        attended = layers.Attention(use_scale=True)([embed(query_ids), embed(value_ids)])
        return models.Model([query_ids, value_ids], attended)

    theirs = build(keras.layers, keras)
    ours = build(rnnkit.layers, rnnkit.models)
    ours.set_weights(theirs.get_weights())
    ids = [np.array([[3, 4, 0, 0], [5, 6, 7, 0]]), np.array([[1, 2, 3, 0, 0], [4, 0, 0, 0, 0]])]
    got = ours(ids).detach().numpy()
    np.testing.assert_allclose(got, np.asarray(theirs(ids)), atol=1e-5, rtol=0)
    assert np.all(got[0, 2:] == 0)  # the query mask from Embedding(mask_zero=True) reached it


def test_functional_model_can_return_the_attention_scores():
    from rnnkit.layers import Input
    from rnnkit.models import Model

    query, value = Input((None, DIM)), Input((None, DIM))
    context, scores = Attention()([query, value], return_attention_scores=True)
    model = Model([query, value], [context, scores])
    outputs = model([np.zeros((2, 3, DIM), "float32"), np.zeros((2, 5, DIM), "float32")])
    assert [tuple(o.shape) for o in outputs] == [(2, 3, DIM), (2, 3, 5)]
