"""A token <-> index table for pre-split tokens: tags, characters, words of parallel text."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rnnkit.data._arrays import positive_int


class Vocabulary:
    """Maps tokens to consecutive indices and back, with padding at index 0.

    The index order is: ``pad_token`` (0), then ``unk_token`` if given, then ``specials``
    (for example ``("<start>", "<end>")`` for a decoder), then ``tokens`` in the order given,
    each token once.

    Args:
        tokens: the ordinary tokens.
        pad_token: the token at index 0, which ``decode`` skips by default.
        unk_token: the token unknown tokens are encoded as; ``None`` makes them an error.
        specials: extra reserved tokens placed right after padding (and ``unk_token``).

    Example:
        >>> tags = Vocabulary.from_sequences([["O", "B-loc"], ["O"]])
        >>> tags.encode(["B-loc", "O"]), len(tags)
        ([2, 1], 3)
    """

    def __init__(
        self,
        tokens: Iterable[str] = (),
        pad_token: str = "<pad>",
        unk_token: str | None = None,
        specials: Sequence[str] = (),
    ) -> None:
        self.pad_token = _check_token(pad_token, "pad_token")
        self.unk_token = None if unk_token is None else _check_token(unk_token, "unk_token")
        self.specials = tuple(_check_token(s, f"specials[{i}]") for i, s in enumerate(specials))
        reserved = (
            [self.pad_token] + ([self.unk_token] if self.unk_token else []) + list(self.specials)
        )
        if len(set(reserved)) != len(reserved):
            raise ValueError(f"specials: expected distinct reserved tokens, got {reserved}")
        self._index: dict[str, int] = {}
        self._tokens: list[str] = []
        for position, token in enumerate([*reserved, *tokens]):
            token = _check_token(token, f"tokens[{position - len(reserved)}]")
            if token not in self._index:
                self._index[token] = len(self._tokens)
                self._tokens.append(token)

    @classmethod
    def from_sequences(
        cls,
        sequences: Iterable[Iterable[str]],
        min_count: int = 1,
        max_size: int | None = None,
        **kwargs,
    ) -> Vocabulary:
        """Build from token lists: most frequent first (ties by first appearance).

        ``min_count`` drops rarer tokens; ``max_size`` caps ``len(vocabulary)``, reserved tokens
        included. Other keyword arguments go to the constructor.
        """
        min_count = positive_int(min_count, "min_count")
        counts: dict[str, int] = {}
        for row, sequence in enumerate(sequences):
            if isinstance(sequence, str):
                raise TypeError(
                    f"sequences[{row}]: expected a list of tokens, got a str (split it first)"
                )
            for token in sequence:
                counts[token] = counts.get(token, 0) + 1
        # sorted() is stable, so equal counts keep their first-appearance order.
        ranked = sorted(
            (token for token, count in counts.items() if count >= min_count),
            key=lambda token: -counts[token],
        )
        vocabulary = cls(ranked, **kwargs)
        if max_size is not None:
            max_size = positive_int(max_size, "max_size", minimum=vocabulary.num_reserved)
            del vocabulary._tokens[max_size:]
            vocabulary._index = {token: i for i, token in enumerate(vocabulary._tokens)}
        return vocabulary

    @property
    def num_reserved(self) -> int:
        """Padding, unknown and special tokens: the indices below this are not ordinary tokens."""
        return 1 + (self.unk_token is not None) + len(self.specials)

    @property
    def pad_index(self) -> int:
        return 0

    @property
    def unk_index(self) -> int | None:
        return None if self.unk_token is None else 1

    @property
    def tokens(self) -> list[str]:
        """All tokens in index order (a copy)."""
        return list(self._tokens)

    def index(self, token: str) -> int:
        """The index of ``token``; unknown tokens give ``unk_index`` or a ``ValueError``."""
        found = self._index.get(token)
        if found is not None:
            return found
        if self.unk_token is not None:
            return 1
        raise ValueError(
            f"token: expected one of the {len(self)} tokens in the vocabulary, got {token!r} "
            f"(pass unk_token to map unknown tokens)"
        )

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Token list -> index list."""
        if isinstance(tokens, str):
            raise TypeError("tokens: expected a list of tokens, got a str (split it first)")
        return [self.index(token) for token in tokens]

    def decode(self, indices: Iterable[int], skip_pad: bool = True) -> list[str]:
        """Index list -> token list (padding dropped unless ``skip_pad=False``)."""
        decoded = []
        for position, index in enumerate(indices):
            index = int(index)
            if not 0 <= index < len(self._tokens):
                raise ValueError(
                    f"indices[{position}]: expected an index in [0, {len(self._tokens)}), "
                    f"got {index}"
                )
            if index == 0 and skip_pad:
                continue
            decoded.append(self._tokens[index])
        return decoded

    def to_config(self) -> dict:
        """A JSON-serialisable dict; ``from_config`` rebuilds the same indices."""
        return {
            "pad_token": self.pad_token,
            "unk_token": self.unk_token,
            "specials": list(self.specials),
            "tokens": self._tokens[self.num_reserved :],
        }

    @classmethod
    def from_config(cls, config: dict) -> Vocabulary:
        if not isinstance(config, dict):
            raise TypeError(f"config: expected a dict, got {type(config).__name__}")
        return cls(
            config.get("tokens", ()),
            pad_token=config.get("pad_token", "<pad>"),
            unk_token=config.get("unk_token"),
            specials=config.get("specials", ()),
        )

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.to_config() == other.to_config()

    def __repr__(self) -> str:
        return (
            f"Vocabulary(size={len(self)}, pad_token={self.pad_token!r}, "
            f"unk_token={self.unk_token!r})"
        )


def _check_token(token, name: str) -> str:
    if not isinstance(token, str):
        raise TypeError(f"{name}: expected a str, got {type(token).__name__}")
    if not token:
        raise ValueError(f"{name}: expected a non-empty str, got ''")
    return token
