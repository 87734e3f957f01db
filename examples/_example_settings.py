"""What the seed example scripts share: the epoch override, headless figures and text data.

- ``epochs(seed_epochs, override)``: the seed's epoch count, cut by ``main(epochs=...)`` or by
  the ``RNNKIT_EXAMPLE_EPOCHS`` environment variable (a cut never raises the count), so that CI
  can run every example in a few minutes.
- ``figure_path(script, name)``: where a script saves the figure the seed ``plt.show()``-ed;
  ``RNNKIT_EXAMPLE_FIGURES`` (default ``examples/figures``).
- ``load_tweet_sentiment(num_words, seed)``: the offline stand-in for ``imdb.load_data``.

Nothing here imports TensorFlow or rnnkit's models, so a script's program can run under either.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

# Headless: every figure a seed shows is written to a PNG instead.
matplotlib.use("Agg")

import numpy as np  # noqa: E402

EPOCHS_VARIABLE = "RNNKIT_EXAMPLE_EPOCHS"
FIGURES_VARIABLE = "RNNKIT_EXAMPLE_FIGURES"


def epochs(seed_epochs: int, override: int | None = None) -> int:
    """``override`` if given, else ``min(seed_epochs, $RNNKIT_EXAMPLE_EPOCHS)``, else the seed's."""
    if override is None:
        text = os.environ.get(EPOCHS_VARIABLE, "").strip()
        if not text:
            return seed_epochs
        try:
            override = min(seed_epochs, int(text))
        except ValueError:
            raise ValueError(
                f"{EPOCHS_VARIABLE}: expected a positive integer, got {text!r}"
            ) from None
    if isinstance(override, bool) or not isinstance(override, int) or override < 1:
        raise ValueError(f"epochs: expected a positive integer, got {override!r}")
    return override


def figure_path(script: str, name: str) -> Path:
    """``<figures>/<script stem>_<name>.png``; the directory is created if needed."""
    directory = Path(os.environ.get(FIGURES_VARIABLE) or Path(__file__).parent / "figures")
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{Path(script).stem}_{name}.png"


def load_tweet_sentiment(num_words: int, seed: int = 0):
    """``imdb.load_data(num_words=...)``'s shape of result, from rnnkit's offline tweets.

    Negative and positive tweets only (label 1 = positive, 30 % of rows), shuffled with ``seed``
    and split in half like IMDB's 25,000/25,000. Each text becomes word indices from a tokenizer
    fitted on the training half (index 0 is left for padding, 1 for out-of-vocabulary words).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: lists of int lists and int64 label arrays.
    """
    from rnnkit.data import Tokenizer, load_text_classification

    frame = load_text_classification("tweet_sentiment")
    frame = frame[frame["label"] != "neutral"]
    order = np.random.default_rng(seed).permutation(len(frame))
    texts = frame["text"].to_numpy()[order]
    labels = (frame["label"].to_numpy()[order] == "positive").astype("int64")
    half = len(texts) // 2
    tokenizer = Tokenizer(num_words=num_words, oov_token="<unk>").fit_on_texts(texts[:half])
    sequences = tokenizer.texts_to_sequences(texts)
    return (sequences[:half], labels[:half]), (sequences[half:], labels[half:])


def sine_windows(timesteps: int, input_dim: int, count: int = 2500, seed: int = 0):
    """A small forecasting task for seeds that leave their data undefined.

    Each sample is ``timesteps`` steps of ``input_dim`` sines (frequencies 0.3, 0.45, ... rad per
    step, each with its own random phase, plus N(0, 0.05) noise); the label is the next clean
    value of the first sine. Predicting 0 scores MSE 0.5, repeating the last input about 0.05.

    Returns:
        ``(train_data, train_labels), (val_data, val_labels)``: float32 arrays of shapes
        ``(N, timesteps, input_dim)`` and ``(N, 1)``, split 80/20.
    """
    rng = np.random.default_rng(seed)
    frequencies = 0.3 + 0.15 * np.arange(input_dim)  # (D,)
    phases = rng.uniform(0, 2 * np.pi, (count, 1, input_dim))  # (N, 1, D)
    steps = np.arange(timesteps + 1)[None, :, None]  # (1, T + 1, 1)
    waves = np.sin(frequencies * steps + phases)  # (N, T + 1, D)
    data = waves[:, :-1] + rng.normal(0, 0.05, (count, timesteps, input_dim))
    labels = waves[:, -1, :1]  # (N, 1)
    split = int(0.8 * count)
    data, labels = data.astype("float32"), labels.astype("float32")
    return (data[:split], labels[:split]), (data[split:], labels[split:])


def load_wnut16(max_sequence_length: int, seed: int = 0) -> dict:
    """rnnkit's offline WNUT-16 tweets, as padded word indices and one-hot tags.

    Words are lower-cased; words seen once in training become ``<unk>``. Sentences are shuffled
    with ``seed``, split 80/20, then padded or cut at the end to ``max_sequence_length``
    (padding has word and tag index 0).

    Returns:
        a dict: ``train_data``/``val_data`` ``(N, L)`` int64, ``train_labels``/``val_labels``
        ``(N, L, num_tags)`` float32 one-hot, ``val_tags`` ``(N, L)`` tag indices,
        ``vocab_size``, ``num_tags``, ``outside_tag`` (the index of ``"O"``).
    """
    from rnnkit.data import Vocabulary, load_tagging, pad_sequences

    corpus = load_tagging("wnut16")["train"]
    order = np.random.default_rng(seed).permutation(len(corpus.tokens))
    words = [[word.lower() for word in corpus.tokens[i]] for i in order]
    tags = [corpus.tags[i] for i in order]
    split = int(0.8 * len(words))
    word_vocab = Vocabulary.from_sequences(words[:split], min_count=2, unk_token="<unk>")
    tag_vocab = Vocabulary.from_sequences(tags)

    def encode(vocab, rows):
        ids = [[vocab.index(t) if t in vocab else vocab.unk_index for t in row] for row in rows]
        return pad_sequences(
            ids, maxlen=max_sequence_length, padding="post", truncating="post", dtype="int64"
        )

    word_ids, tag_ids = encode(word_vocab, words), encode(tag_vocab, tags)
    one_hot = np.eye(len(tag_vocab), dtype="float32")[tag_ids]  # (N, L, num_tags)
    return {
        "train_data": word_ids[:split],
        "train_labels": one_hot[:split],
        "val_data": word_ids[split:],
        "val_labels": one_hot[split:],
        "val_tags": tag_ids[split:],
        "vocab_size": len(word_vocab),
        "num_tags": len(tag_vocab),
        "outside_tag": tag_vocab.index("O"),
    }


def tagging_scores(model, corpus: dict) -> dict:
    """How a tagger trained on ``load_wnut16``'s data does, against what tag frequencies give.

    On the validation half, over real tokens (padding, word index 0, left out):
    ``real_token_accuracy``; ``outside_rate``, what always answering ``"O"`` scores; and
    ``entity_token_recall``, the share of non-``"O"`` tags predicted right.
    ``train_prior_loss`` and ``val_prior_loss`` are the cross-entropies, averaged like Keras's over
    every position, of a tagger that gets padding right and otherwise answers the training tags'
    frequencies: a model below them has learned something from the words.
    """
    data, tags = corpus["val_data"], corpus["val_tags"]
    predicted = np.asarray(model.predict(data, verbose=0)).argmax(-1)  # (N, L)
    real = data != 0
    entity = real & (tags != corpus["outside_tag"])
    correct = predicted == tags
    train_tags = corpus["train_labels"].argmax(-1)  # (N, L)
    train_real = train_tags[corpus["train_data"] != 0]
    prior = np.bincount(train_real, minlength=corpus["num_tags"]) / len(train_real)
    return {
        "real_token_accuracy": float(correct[real].mean()),
        "outside_rate": float((tags[real] == corpus["outside_tag"]).mean()),
        "entity_token_recall": float(correct[entity].mean()),
        "train_prior_loss": float(-np.log(prior[train_real]).sum() / train_tags.size),
        "val_prior_loss": float(-np.log(prior[tags[real]]).sum() / tags.size),
    }


def generate_time_series(batch_size: int, n_steps: int) -> np.ndarray:
    """Géron's ``generate_time_series`` (Hands-On ML, ch. 15), the book seed 004's slides use.

    Two sines of random frequency and phase plus uniform noise: ``(batch_size, n_steps, 1)``
    float32, drawn from NumPy's global generator.
    """
    freq1, freq2, offsets1, offsets2 = np.random.rand(4, batch_size, 1)
    time = np.linspace(0, 1, n_steps)
    series = 0.5 * np.sin((time - offsets1) * (freq1 * 10 + 10))  # (B, T)
    series += 0.2 * np.sin((time - offsets2) * (freq2 * 20 + 20))
    series += 0.1 * (np.random.rand(batch_size, n_steps) - 0.5)
    return series[..., np.newaxis].astype(np.float32)


def ten_steps_ahead(count: int, n_steps: int = 50, seed: int = 0):
    """Géron's sequence-to-sequence forecasting data: at every step, the next 10 values.

    Returns:
        ``(X, Y, naive_mse)``: ``X (count, n_steps, 1)``, ``Y (count, n_steps, 10)`` with
        ``Y[:, t, k] = series[t + k + 1]``, and the MSE of repeating each step's last value.
    """
    np.random.seed(seed)
    series = generate_time_series(count, n_steps + 10)  # (N, T + 10, 1)
    X = series[:, :n_steps]
    Y = np.empty((count, n_steps, 10), np.float32)
    for step_ahead in range(1, 10 + 1):
        Y[..., step_ahead - 1] = series[:, step_ahead : step_ahead + n_steps, 0]
    naive_mse = float(np.mean((Y - X) ** 2))
    return X, Y, naive_mse
