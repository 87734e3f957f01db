"""Seq2Seq: shapes, source masking, scheduled sampling, training, config and saving."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.layers import LuongAttention
from rnnkit.seq2seq import (
    Seq2Seq,
    TeacherForcingSchedule,
    exponential_decay,
    greedy_decode,
    inverse_sigmoid_decay,
    linear_decay,
)

from .conftest import (
    SRC_VOCAB,
    TGT_VOCAB,
    reverse_task,
    source_batch,
    target_batch,
    tiny_model,
    train,
)

CONFIGS = {
    "lstm_bahdanau": {},
    "gru_luong": {"cell": "gru", "attention": "luong"},
    "lstm_bi_stacked": {"bidirectional": True, "encoder_layers": 2},
    "gru_bi_luong_concat": {"cell": "gru", "bidirectional": True,
                            "attention": LuongAttention("concat", units=5)},
    "lstm_no_attention": {"attention": None},
    "gru_no_feeding": {"cell": "gru", "input_feeding": False},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_logits_and_attention_shapes(name):
    model = tiny_model(**CONFIGS[name])
    src, tgt_in = source_batch(), target_batch()
    logits = model([src, tgt_in])
    assert logits.shape == (5, 6, TGT_VOCAB)
    if model.attention is None:
        with pytest.raises(ValueError, match="return_attention: this model has no attention"):
            model([src, tgt_in], return_attention=True)
        return
    _, weights = model([src, tgt_in], return_attention=True)
    assert weights.shape == (5, 6, 7)
    source_mask = (src != 0)[:, None, :].expand_as(weights)
    assert torch.all(weights[~source_mask] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(5, 6))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_extra_source_padding_changes_nothing(name):
    """The source mask reaches the encoder (both directions) and the attention."""
    model = tiny_model(**CONFIGS[name])
    src, tgt_in = source_batch(), target_batch()
    padded = torch.cat([src, torch.zeros(5, 4, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model([padded, tgt_in]), model([src, tgt_in]), atol=1e-6, rtol=0)


def test_numpy_inputs_give_the_same_logits_as_tensors():
    model = tiny_model()
    src, tgt_in = source_batch(), target_batch()
    torch.testing.assert_close(model([src.numpy(), tgt_in.numpy()]), model([src, tgt_in]))


def test_training_mode_with_full_teacher_forcing_and_no_dropout_is_deterministic():
    model = tiny_model()
    src, tgt_in = source_batch(), target_batch()
    torch.testing.assert_close(model([src, tgt_in], training=True), model([src, tgt_in]))


def test_dropout_acts_only_in_training():
    model = tiny_model(dropout=0.5)
    src, tgt_in = source_batch(), target_batch()
    torch.testing.assert_close(model([src, tgt_in]), model([src, tgt_in]))
    assert not torch.allclose(model([src, tgt_in], training=True), model([src, tgt_in]))


def test_without_teacher_forcing_the_decoder_feeds_its_own_argmax():
    """teacher_forcing=0 in training reproduces greedy decoding until the first eos."""
    model = tiny_model(seed=3, sharpen=4.0, teacher_forcing=0.0)
    src, tgt_in = source_batch(), target_batch(steps=6)
    predicted = model([src, tgt_in], training=True).argmax(-1)  # (B, T)
    greedy = greedy_decode(model, src, max_len=6).tokens
    for row in range(5):
        length = greedy.shape[1]
        if (greedy[row] == model.eos_id).any():
            length = int((greedy[row] == model.eos_id).nonzero()[0]) + 1
        assert torch.equal(predicted[row, :length], greedy[row, :length])
    # With teacher forcing the inputs are the gold tokens, so the predictions differ.
    model.teacher_forcing = 1.0
    assert not torch.equal(model([src, tgt_in], training=True).argmax(-1), predicted)


def test_scheduled_sampling_mixes_gold_and_predicted_tokens():
    model = tiny_model(seed=3, sharpen=4.0)
    src, tgt_in = source_batch(), target_batch()
    gold = model([src, tgt_in], training=True)
    model.teacher_forcing = 0.0
    own = model([src, tgt_in], training=True)
    model.teacher_forcing = 0.5
    torch.manual_seed(0)
    mixed = model([src, tgt_in], training=True)
    same_as_gold = torch.isclose(mixed, gold).all(-1).all(-1)
    same_as_own = torch.isclose(mixed, own).all(-1).all(-1)
    assert not same_as_gold.all() and not same_as_own.all()


def test_teacher_forcing_schedule_sets_the_probability_each_epoch():
    model = tiny_model()
    callback = TeacherForcingSchedule(linear_decay(4, floor=0.2))
    callback.set_model(model)
    seen = []
    for epoch in range(6):
        callback.on_epoch_begin(epoch)
        seen.append(model.teacher_forcing)
    np.testing.assert_allclose(seen, [1.0, 0.8, 0.6, 0.4, 0.2, 0.2])
    assert exponential_decay(0.5)(3) == 0.125
    decay = inverse_sigmoid_decay(5.0)
    values = [decay(epoch) for epoch in range(30)]
    assert values[0] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(values, values[1:], strict=False)) and values[-1] < 0.05
    too_high = TeacherForcingSchedule(lambda epoch: 1.5)
    too_high.set_model(model)
    with pytest.raises(ValueError, match=r"schedule\(0\): expected a probability"):
        too_high.on_epoch_begin(0)


@pytest.mark.parametrize("attention", ["bahdanau", None])
def test_a_tiny_model_overfits_sequence_reversal(attention):
    task = reverse_task()
    model = tiny_model(cell="gru", embedding_dim=8, units=32, attention=attention)
    assert train(model, task, steps=80) < 0.05
    src, _, tgt_out = task
    assert torch.equal(greedy_decode(model, src, max_len=6).tokens, tgt_out)


def test_compile_and_fit_train_the_model():
    from rnnkit.training.losses import SparseCategoricalCrossentropy
    from rnnkit.training.optimizers import Adam

    src, tgt_in, tgt_out = reverse_task(count=32)
    model = tiny_model(cell="gru", embedding_dim=8, units=32)
    model.compile(optimizer=Adam(learning_rate=0.02),
                  loss=SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit([src.numpy(), tgt_in.numpy()], tgt_out.numpy(), epochs=50,
                        batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.1 < history.history["loss"][0]
    assert model.predict([src.numpy(), tgt_in.numpy()], verbose=0).shape == (32, 5, TGT_VOCAB)


def test_compute_mask_marks_target_padding():
    model = tiny_model()
    tgt_in = torch.tensor([[1, 4, 5, 0], [1, 3, 0, 0]])
    expected = torch.tensor([[True, True, True, False], [True, True, False, False]])
    assert torch.equal(model.compute_mask([source_batch(2), tgt_in]), expected)


def test_save_and_load_model_round_trip(tmp_path):
    from rnnkit.models import load_model

    model = tiny_model(cell="gru", bidirectional=True,
                       attention=LuongAttention("concat", units=4), teacher_forcing=0.7)
    src, tgt_in = source_batch(), target_batch()
    model.save(tmp_path / "seq2seq.rnnkit")
    restored = load_model(tmp_path / "seq2seq.rnnkit")
    assert isinstance(restored, Seq2Seq)
    assert restored.get_config() == model.get_config()
    torch.testing.assert_close(restored([src, tgt_in]), model([src, tgt_in]))


@pytest.mark.parametrize("options, message", [
    ({"cell": "rnn"}, "cell: expected one of \\['gru', 'lstm'\\], got 'rnn'"),
    ({"attention": "dot"}, "attention: expected one of"),
    ({"units": 0}, "units: expected a positive integer, got 0"),
    ({"dropout": 1.0}, "dropout: expected a rate in \\[0, 1\\), got 1.0"),
    ({"teacher_forcing": 1.5}, "teacher_forcing: expected a probability in \\[0, 1\\], got 1.5"),
    ({"eos_id": TGT_VOCAB}, f"eos_id: expected a token id in \\[0, tgt_vocab={TGT_VOCAB}\\)"),
    ({"bidirectional": True, "attention": LuongAttention("dot")},
     "query: score='dot' expects the query width to equal the values' \\(24\\), got 12"),
    ({"backend": "gpu"}, "backend: expected one of"),
])
def test_constructor_errors_name_the_argument(options, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(**options)


def test_call_errors_name_the_argument():
    model = tiny_model()
    with pytest.raises(ValueError, match="inputs: expected a list \\[src"):
        model(source_batch())
    with pytest.raises(ValueError, match="tgt_in: expected batch size 5"):
        model([source_batch(), target_batch(batch=4)])
    with pytest.raises(ValueError, match=f"token ids in \\[0, input_dim\\) = \\[0, {SRC_VOCAB}\\)"):
        model([source_batch() + SRC_VOCAB, target_batch()])
    with pytest.raises(ValueError, match="src: expected a rank-2 tensor"):
        model([source_batch()[0], target_batch()[:1]])
