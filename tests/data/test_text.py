"""pad_sequences against Keras, and the Tokenizer's indices, round trips, config and errors."""

import itertools
import json

import numpy as np
import pytest

from rnnkit.data import Tokenizer, pad_sequences

SIDES = ["pre", "post"]
RAGGED = [[1, 2, 3], [4, 5], [], [6, 7, 8, 9, 10]]


@pytest.fixture(scope="module")
def keras_pad():
    keras = pytest.importorskip("keras")
    return keras.utils.pad_sequences


def test_hand_checked_padding_and_truncation():
    rows = [[1, 2, 3], [4]]
    assert pad_sequences(rows, maxlen=2).tolist() == [[2, 3], [0, 4]]
    assert pad_sequences(rows, maxlen=2, padding="post", truncating="post").tolist() == [
        [1, 2],
        [4, 0],
    ]
    padded = pad_sequences(rows)
    assert padded.dtype == np.int32 and padded.tolist() == [[1, 2, 3], [0, 0, 4]]


@pytest.mark.peer
@pytest.mark.parametrize(("padding", "truncating"), list(itertools.product(SIDES, SIDES)))
@pytest.mark.parametrize("maxlen", [None, 1, 3, 5, 7])
@pytest.mark.parametrize("value", [0, -1])
def test_matches_keras_on_ragged_ints(keras_pad, padding, truncating, maxlen, value):
    kwargs = dict(maxlen=maxlen, padding=padding, truncating=truncating, value=value)
    ours, theirs = pad_sequences(RAGGED, **kwargs), keras_pad(RAGGED, **kwargs)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.peer
@pytest.mark.parametrize(("padding", "truncating"), list(itertools.product(SIDES, SIDES)))
def test_matches_keras_on_floats_vectors_and_arrays(keras_pad, padding, truncating):
    sides = dict(padding=padding, truncating=truncating)
    floats = [[0.5, 1.5, 2.5], [3.5]]
    vectors = [[[1, 2], [3, 4], [5, 6]], [[7, 8]], []]  # items of shape (2,)
    arrays = [np.arange(4), np.arange(2) + 10]
    cases = [
        (floats, dict(maxlen=2, dtype="float32", value=-0.5)),
        (floats, dict(maxlen=2)),  # floats cast to int32, as numpy casts
        (vectors, dict(maxlen=2)),
        (arrays, dict(maxlen=3, dtype="int64")),
        (np.array([[1, 2, 3], [4, 5, 6]]), dict(maxlen=2)),
    ]
    for sequences, kwargs in cases:
        ours, theirs = (
            pad_sequences(sequences, **kwargs, **sides),
            keras_pad(sequences, **kwargs, **sides),
        )
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.peer
def test_matches_keras_with_string_values(keras_pad):
    rows = [["a", "b"], ["c"]]
    ours = pad_sequences(rows, dtype=object, value="<pad>", padding="post")
    np.testing.assert_array_equal(
        ours, keras_pad(rows, dtype=object, value="<pad>", padding="post")
    )


@pytest.mark.peer
def test_maxlen_zero_matches_keras_where_keras_works(keras_pad):
    kwargs = dict(maxlen=0, truncating="post")
    assert pad_sequences(RAGGED, **kwargs).shape == keras_pad(RAGGED, **kwargs).shape == (4, 0)


def test_empty_input_gives_an_empty_batch():
    assert pad_sequences([]).shape == (0, 0)
    assert pad_sequences([], maxlen=3).shape == (0, 3)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (
            (RAGGED,),
            {"padding": "middle"},
            ValueError,
            r"padding: expected one of \('pre', 'post'\)",
        ),
        ((RAGGED,), {"truncating": "both"}, ValueError, "truncating: expected one of"),
        ((RAGGED,), {"maxlen": -1}, ValueError, "maxlen: expected an int >= 0, got -1"),
        ((RAGGED,), {"maxlen": 2.5}, TypeError, "maxlen: expected an int"),
        (("abc",), {}, TypeError, "sequences: expected a list of sequences, got str"),
        (([1, 2],), {}, TypeError, "sequences\\[0\\]: expected a list, tuple or array, got int"),
        (([[[1, 2]], [[1, 2, 3]]],), {}, ValueError, r"sequences\[1\]: expected items of shape"),
        ((RAGGED,), {"value": "x"}, ValueError, "value: expected a number for dtype int32"),
    ],
)
def test_pad_sequences_errors(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        pad_sequences(*args, **kwargs)


TEXTS = ["The cat sat.", "The dog sat on the mat!"]


def test_word_index_orders_by_count_then_first_appearance():
    tokenizer = Tokenizer().fit_on_texts(TEXTS)
    assert tokenizer.word_index == {"the": 1, "sat": 2, "cat": 3, "dog": 4, "on": 5, "mat": 6}
    assert tokenizer.texts_to_sequences(["The cat, a dog"]) == [[1, 3, 4]]  # "a" is dropped
    assert tokenizer.vocab_size == 7


def test_oov_token_takes_index_one_and_num_words_caps_indices():
    tokenizer = Tokenizer(num_words=4, oov_token="<unk>").fit_on_texts(TEXTS)
    assert [tokenizer.word_index[w] for w in ("<unk>", "the", "sat", "cat")] == [1, 2, 3, 4]
    assert tokenizer.vocab_size == 4
    assert tokenizer.texts_to_sequences(["the cat sat zebra"]) == [[2, 1, 3, 1]]
    assert tokenizer.sequences_to_texts([[0, 0, 2, 3, 9]]) == ["the sat <unk>"]


def test_word_round_trip_gives_the_normalised_text():
    tokenizer = Tokenizer().fit_on_texts(TEXTS)
    restored = tokenizer.sequences_to_texts(tokenizer.texts_to_sequences(TEXTS))
    assert restored == ["the cat sat", "the dog sat on the mat"]
    padded = pad_sequences(tokenizer.texts_to_sequences(TEXTS), padding="post")
    assert tokenizer.sequences_to_texts(padded) == restored  # padding zeros are skipped


def test_apostrophes_stay_inside_words():
    assert Tokenizer().tokenize("Don't STOP-now\tplease") == ["don't", "stop", "now", "please"]


def test_char_level_round_trip_is_exact():
    text = "To be,\nor not."
    tokenizer = Tokenizer(char_level=True, lower=False).fit_on_texts([text])
    assert tokenizer.word_index["o"] == 1 and tokenizer.word_index[" "] == 2  # by count
    assert tokenizer.sequences_to_texts(tokenizer.texts_to_sequences([text])) == [text]


def test_fitting_again_adds_counts():
    tokenizer = Tokenizer().fit_on_texts(["b a"]).fit_on_texts(["b c"])
    assert tokenizer.word_counts == {"b": 2, "a": 1, "c": 1}
    assert tokenizer.word_index == {"b": 1, "a": 2, "c": 3}


def test_config_survives_json():
    tokenizer = Tokenizer(num_words=5, oov_token="<unk>").fit_on_texts(TEXTS)
    rebuilt = Tokenizer.from_config(json.loads(json.dumps(tokenizer.to_config())))
    assert rebuilt.word_index == tokenizer.word_index
    assert rebuilt.texts_to_sequences(TEXTS) == tokenizer.texts_to_sequences(TEXTS)
    assert rebuilt.to_config() == tokenizer.to_config()


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda t: t.fit_on_texts("one text"), TypeError, "texts: expected a list of strings"),
        (lambda t: t.fit_on_texts(["ok", 3]), TypeError, r"texts\[1\]: expected a str, got int"),
        (lambda t: t.texts_to_sequences(["x"]), ValueError, "Tokenizer: expected fit_on_texts"),
        (lambda t: t.sequences_to_texts([[1]]), ValueError, "Tokenizer: expected fit_on_texts"),
    ],
)
def test_tokenizer_usage_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(Tokenizer())


def test_tokenizer_argument_errors():
    with pytest.raises(ValueError, match="num_words: expected an int >= 1, got 0"):
        Tokenizer(num_words=0)
    with pytest.raises(ValueError, match="num_words: expected at least 2 with an oov_token"):
        Tokenizer(num_words=1, oov_token="<unk>")
    with pytest.raises(TypeError, match="lower: expected a bool"):
        Tokenizer(lower="yes")
    with pytest.raises(TypeError, match=r"sequences\[0\]: expected integer indices, got float"):
        Tokenizer().fit_on_texts(TEXTS).sequences_to_texts([[1.5]])
