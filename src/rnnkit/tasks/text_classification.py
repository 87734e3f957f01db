"""Many-to-one text classification: the pipeline behind ``rnnkit classify``.

Texts become word ids with a :class:`rnnkit.data.Tokenizer` fit on the training part only, padded
at the end and masked (``Embedding(mask_zero=True)``), so the recurrent layer's last state is the
one after the last real word. The network is seed 001's sentiment model::

    Embedding(mask_zero=True) -> SpatialDropout -> LSTM | GRU | SimpleRNN (optionally
    Bidirectional) -> Dropout -> Dense(classes, softmax)      (Dense(1, sigmoid) for two classes)

Rows are shuffled with a seed and split train | val | test (stratified by label by default).
Validation loss selects the epoch (early stopping with the best weights restored), and the test
part is scored with accuracy and macro-F1 next to a TF-IDF + logistic-regression baseline from
scikit-learn trained on the same training rows.

Example:
    >>> frame = load_text_classification("tweet_sentiment")                # doctest: +SKIP
    >>> result = run_classification(frame.text, frame.label, ClassifierConfig(), seed=0)
    >>> result.metrics["accuracy"], result.baseline["accuracy"]            # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from rnnkit.tasks._common import CELLS, IndexSplit, random_split, recurrent_layer

OOV_TOKEN = "<oov>"


@dataclass
class ClassifierConfig:
    """Hyperparameters of a classification run; the CLI's flags have the same names."""

    cell: str = "lstm"
    bidirectional: bool = False
    units: int = 64
    embedding_dim: int = 64
    vocab_size: int = 20000
    min_count: int = 2
    max_length: int = 40
    dropout: float = 0.5
    spatial_dropout: float = 0.3
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 2
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    stratify: bool = True

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell: expected one of {CELLS}, got {self.cell!r}")
        for name in ("dropout", "spatial_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}: expected a rate in [0, 1), got {getattr(self, name)}")


@dataclass
class ClassificationResult:
    metrics: dict  # accuracy, macro_f1 of the network on the test part
    baseline: dict  # the same for TF-IDF + logistic regression
    classes: list[str]
    y_true: np.ndarray  # (N_test,) class indices
    y_pred: np.ndarray  # (N_test,)
    baseline_pred: np.ndarray  # (N_test,)
    history: object
    model: object
    tokenizer: object
    split: IndexSplit
    config: dict = field(default_factory=dict)

    def confusion(self, predictions: np.ndarray) -> np.ndarray:
        """``(C, C)`` counts: row = true class, column = predicted class."""
        from sklearn.metrics import confusion_matrix

        return confusion_matrix(self.y_true, predictions, labels=range(len(self.classes)))


def encode_labels(labels) -> tuple[np.ndarray, list[str]]:
    """String labels -> ``(N,)`` int64 indices into the sorted class names."""
    labels = np.asarray([str(label) for label in labels])
    classes = sorted(set(labels.tolist()))
    if len(classes) < 2:
        raise ValueError(f"labels: expected at least 2 classes, got {classes}")
    return np.searchsorted(classes, labels).astype(np.int64), classes


def fit_tokenizer(texts, config: ClassifierConfig):
    """A word tokenizer over the training texts, keeping words seen ``min_count`` times."""
    from rnnkit.data import Tokenizer

    counts = Tokenizer(oov_token=OOV_TOKEN).fit_on_texts(texts).word_counts
    frequent = sum(1 for count in counts.values() if count >= config.min_count)
    return Tokenizer(
        num_words=min(config.vocab_size, frequent + 2),  # + padding and OOV
        oov_token=OOV_TOKEN,
    ).fit_on_texts(texts)


def encode_texts(tokenizer, texts, max_length: int) -> np.ndarray:
    """Texts -> ``(N, max_length)`` int64 ids, cut and padded at the end (0 = padding)."""
    from rnnkit.data import pad_sequences

    return pad_sequences(
        tokenizer.texts_to_sequences(list(texts)),
        maxlen=max_length,
        padding="post",
        truncating="post",
        dtype="int64",
    )


def build_classifier(config: ClassifierConfig, vocab_size: int, num_classes: int):
    """Seed 001's sentiment network (see the module docstring), compiled."""
    from rnnkit.layers import Dense, Dropout, Embedding
    from rnnkit.models import Sequential
    from rnnkit.optimizers import Adam

    binary = num_classes == 2
    model = Sequential(
        [
            Embedding(vocab_size, config.embedding_dim, mask_zero=True),
            # One draw per sequence and feature: whole embedding channels are dropped.
            Dropout(config.spatial_dropout, noise_shape=(None, 1, None)),
            recurrent_layer(config.cell, config.units, config.bidirectional),
            Dropout(config.dropout),
            Dense(1 if binary else num_classes, activation="sigmoid" if binary else "softmax"),
        ],
        name=f"{config.cell}_classifier",
    )
    model.build_from_batch(np.ones((1, config.max_length), np.int64))
    model.compile(
        optimizer=Adam(learning_rate=config.learning_rate),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def predict_classes(model, ids: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices ``(N,)`` for word ids ``(N, L)``: argmax, or probability >= 0.5 for two."""
    probabilities = model.predict(ids, verbose=0, batch_size=256)  # (N, C) or (N, 1)
    if num_classes == 2:
        return (probabilities[:, 0] >= 0.5).astype(np.int64)
    return probabilities.argmax(-1)


def scores(y_true, y_pred) -> dict[str, float]:
    """Accuracy and macro-F1 (the unweighted mean of the per-class F1s)."""
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def tfidf_baseline(train_texts, train_labels, test_texts) -> np.ndarray:
    """Word uni- and bigram TF-IDF (sublinear) + logistic regression; the test predictions."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    features = vectorizer.fit_transform(train_texts)
    # The fit is mostly sparse products; extra BLAS threads only contend (2x slower measured).
    with threadpool_limits(limits=1):
        classifier = LogisticRegression(max_iter=1000).fit(features, train_labels)
    return classifier.predict(vectorizer.transform(test_texts))


def run_classification(
    texts, labels, config: ClassifierConfig, seed: int = 0, verbose: int = 1, callbacks=None
) -> ClassificationResult:
    """Split, train with early stopping on validation loss, score the test part and the baseline."""
    from rnnkit.callbacks import EarlyStopping

    texts = np.asarray([str(text) for text in texts], dtype=object)
    y, classes = encode_labels(labels)
    if len(texts) != len(y):
        raise ValueError(f"labels: expected {len(texts)} labels (one per text), got {len(y)}")
    split = random_split(
        len(texts),
        config.val_fraction,
        config.test_fraction,
        seed,
        labels=y if config.stratify else None,
    )
    tokenizer = fit_tokenizer(list(texts[split.train]), config)
    ids = {
        name: encode_texts(tokenizer, texts[part], config.max_length)
        for name, part in (("train", split.train), ("val", split.val), ("test", split.test))
    }
    model = build_classifier(config, tokenizer.vocab_size, len(classes))
    stop = EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    history = model.fit(
        ids["train"],
        y[split.train],
        validation_data=(ids["val"], y[split.val]),
        epochs=config.epochs,
        batch_size=config.batch_size,
        verbose=verbose,
        callbacks=[stop, *(callbacks or [])],
    )
    y_pred = predict_classes(model, ids["test"], len(classes))
    baseline_pred = tfidf_baseline(texts[split.train], y[split.train], texts[split.test])
    y_true = y[split.test]
    return ClassificationResult(
        scores(y_true, y_pred),
        scores(y_true, baseline_pred),
        classes,
        y_true,
        y_pred,
        baseline_pred,
        history,
        model,
        tokenizer,
        split,
        asdict(config),
    )


def read_csv_texts(path, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    """The text and label columns of a CSV file, as strings.

    Raises ``ValueError`` naming the problem: a missing or unreadable file, a missing column (with
    the available ones), no rows, or the first row whose text or label is empty.
    """
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise ValueError(f"--csv: no such file {str(path)!r}") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"--csv: {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise ValueError(f"--csv: {path} is not a readable CSV file ({first_line})") from None
    for flag, name in (("--text-column", text_column), ("--label-column", label_column)):
        if name not in frame.columns:
            raise ValueError(
                f"{flag}: no column {name!r} in {path}; columns are {list(map(str, frame.columns))}"
            )
    if frame.empty:
        raise ValueError(f"--csv: {path} has a header but no rows")
    for flag, name in (("--text-column", text_column), ("--label-column", label_column)):
        blank = frame[name].str.strip() == ""
        if blank.any():
            raise ValueError(
                f"{flag}: row {int(blank.to_numpy().argmax()) + 2} of {path} has "
                f"an empty value in column {name!r}"
            )
    return frame[text_column].tolist(), frame[label_column].tolist()
