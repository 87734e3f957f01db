"""Vocabulary: index order, encode/decode round trips, unknown tokens, config."""

import json

import pytest

from rnnkit.data import Vocabulary

TAGS = [["O", "B-loc", "O"], ["B-per", "O", "B-loc"]]


def test_from_sequences_orders_by_count_after_padding():
    tags = Vocabulary.from_sequences(TAGS)
    assert tags.tokens == ["<pad>", "O", "B-loc", "B-per"]
    assert tags.encode(["B-per", "O"]) == [3, 1]
    assert tags.decode([0, 0, 3, 1]) == ["B-per", "O"]
    assert tags.decode([0, 3], skip_pad=False) == ["<pad>", "B-per"]
    assert len(tags) == 4 and "B-loc" in tags and "I-loc" not in tags


def test_reserved_tokens_come_first():
    words = Vocabulary(["hello", "world"], unk_token="<unk>", specials=("<start>", "<end>"))
    assert words.tokens == ["<pad>", "<unk>", "<start>", "<end>", "hello", "world"]
    assert (words.pad_index, words.unk_index, words.num_reserved) == (0, 1, 4)
    assert words.encode(["hello", "moon"]) == [4, 1]


def test_min_count_and_max_size():
    vocabulary = Vocabulary.from_sequences(TAGS, min_count=2, unk_token="<unk>")
    assert vocabulary.tokens == ["<pad>", "<unk>", "O", "B-loc"]
    capped = Vocabulary.from_sequences(TAGS, max_size=3)
    assert capped.tokens == ["<pad>", "O", "B-loc"] and capped.index("B-loc") == 2


def test_config_survives_json():
    vocabulary = Vocabulary.from_sequences(TAGS, unk_token="<unk>", specials=("<s>",))
    rebuilt = Vocabulary.from_config(json.loads(json.dumps(vocabulary.to_config())))
    assert rebuilt == vocabulary and rebuilt.encode(["B-per", "?"]) == [5, 1]


def test_errors_name_what_went_wrong():
    tags = Vocabulary.from_sequences(TAGS)
    with pytest.raises(ValueError, match="token: expected one of the 4 tokens .* got 'I-per'"):
        tags.encode(["I-per"])
    with pytest.raises(ValueError, match=r"indices\[1\]: expected an index in \[0, 4\), got 4"):
        tags.decode([1, 4])
    with pytest.raises(TypeError, match="tokens: expected a list of tokens, got a str"):
        tags.encode("O")
    with pytest.raises(TypeError, match=r"sequences\[0\]: expected a list of tokens, got a str"):
        Vocabulary.from_sequences(["O B-loc"])
    with pytest.raises(ValueError, match="specials: expected distinct reserved tokens"):
        Vocabulary(specials=("<pad>",))
    with pytest.raises(ValueError, match=r"max_size: expected an int >= 2, got 1"):
        Vocabulary.from_sequences(TAGS, unk_token="<unk>", max_size=1)
    with pytest.raises(TypeError, match=r"tokens\[1\]: expected a str, got int"):
        Vocabulary(["a", 3])
