"""Character-level text generation: the pipeline behind ``rnnkit generate``.

The text is cut into windows of ``sequence_length + 1`` characters; the network reads the first
``sequence_length`` and predicts, at every step, the next character (many-to-many)::

    Embedding -> LSTM | GRU | SimpleRNN (return_sequences, x layers) -> Dense(characters, softmax)

The last ``val_fraction`` of the text is held out for validation. Validation perplexity is
``exp(mean cross-entropy per character)``: 1 is a perfect model, the size of the alphabet is a
uniform guess. It is reported next to the perplexity of the training text's character
frequencies (a unigram model), the bar any sequence model has to clear.

Sampling divides the log-probabilities by ``temperature`` before drawing: below 1 it picks
likely characters more often (safer, more repetitive text), above 1 it flattens the choice.

Example:
    >>> text = load_corpus("shakespeare")[:300_000]                           # doctest: +SKIP
    >>> result = run_generation(text, GeneratorConfig(epochs=10))             # doctest: +SKIP
    >>> sample_text(result.model, result.vocabulary, "ROMEO.", 200, 0.8, rng)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rnnkit.tasks._common import CELLS, recurrent_layer

UNK_TOKEN = "<unk>"
VOCABULARY_FILE = "vocabulary.json"
MODEL_FILE = "model.rnnkit"


@dataclass
class GeneratorConfig:
    """Hyperparameters of a generation run; the CLI's flags have the same names."""

    cell: str = "lstm"
    layers: int = 1
    units: int = 128
    embedding_dim: int = 32
    sequence_length: int = 64
    dropout: float = 0.0
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 3e-3
    patience: int = 3
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell: expected one of {CELLS}, got {self.cell!r}")


@dataclass
class GenerationResult:
    metrics: dict  # val_perplexity, val_cross_entropy, unigram_perplexity
    history: object
    model: object
    vocabulary: object  # Vocabulary of characters (0 = padding, 1 = unknown)
    sequence_length: int
    config: dict = field(default_factory=dict)


def char_vocabulary(text: str):
    """Every distinct character of ``text``, most frequent first, after padding and unknown."""
    from rnnkit.data import Vocabulary

    return Vocabulary.from_sequences([list(text)], unk_token=UNK_TOKEN)


def make_windows(ids: np.ndarray, sequence_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows: inputs ``(N, L)`` and next-character targets ``(N, L)``."""
    count = (len(ids) - 1) // sequence_length
    if count < 1:
        raise ValueError(
            f"text: {len(ids)} characters are fewer than sequence_length + 1 = "
            f"{sequence_length + 1}; give more text or a shorter sequence_length"
        )
    inputs = ids[: count * sequence_length].reshape(count, sequence_length)
    targets = ids[1 : count * sequence_length + 1].reshape(count, sequence_length)
    return inputs, targets


def build_generator(config: GeneratorConfig, num_chars: int):
    """The character model of the module docstring, compiled."""
    from rnnkit.layers import Dense, Embedding
    from rnnkit.models import Sequential
    from rnnkit.optimizers import Adam

    model = Sequential(name=f"{config.cell}_char_model")
    model.add(Embedding(num_chars, config.embedding_dim))
    for _ in range(config.layers):
        model.add(
            recurrent_layer(
                config.cell, config.units, return_sequences=True, dropout=config.dropout
            )
        )
    model.add(Dense(num_chars, activation="softmax"))
    model.build_from_batch(np.ones((1, config.sequence_length), np.int64))
    model.compile(
        optimizer=Adam(learning_rate=config.learning_rate, global_clipnorm=5.0),
        loss="sparse_categorical_crossentropy",
    )
    return model


def cross_entropy(model, inputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean ``-log p(next character)`` in nats over every predicted position."""
    probabilities = model.predict(inputs, verbose=0, batch_size=256)  # (N, L, V)
    picked = np.take_along_axis(probabilities, targets[..., None], axis=-1)[..., 0]  # (N, L)
    return float(-np.mean(np.log(np.clip(picked, 1e-12, None))))


def unigram_cross_entropy(train_ids: np.ndarray, val_ids: np.ndarray, size: int) -> float:
    """Cross-entropy of ``val_ids`` under the training character frequencies (add-one)."""
    counts = np.bincount(train_ids, minlength=size).astype(np.float64) + 1.0
    return float(-np.mean(np.log(counts[val_ids] / counts.sum())))


def run_generation(
    text: str, config: GeneratorConfig, verbose: int = 1, callbacks=None
) -> GenerationResult:
    """Train on the start of ``text``, select on its end, and report validation perplexity."""
    from rnnkit.callbacks import EarlyStopping

    if not 0.0 < config.val_fraction < 1.0:
        raise ValueError(f"val_fraction: expected a fraction in (0, 1), got {config.val_fraction}")
    cut = int(round(len(text) * (1.0 - config.val_fraction)))
    vocabulary = char_vocabulary(text[:cut])
    train_ids = np.asarray(vocabulary.encode(list(text[:cut])), np.int64)
    val_ids = np.asarray(vocabulary.encode(list(text[cut:])), np.int64)
    train, val = make_windows(train_ids, config.sequence_length), None
    try:
        val = make_windows(val_ids, config.sequence_length)
    except ValueError:
        raise ValueError(
            f"text: the validation part ({len(val_ids)} characters) is shorter "
            f"than sequence_length + 1 = {config.sequence_length + 1}; give more "
            "text, a larger val_fraction or a shorter sequence_length"
        ) from None
    model = build_generator(config, len(vocabulary))
    stop = EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    history = model.fit(
        *train,
        validation_data=val,
        epochs=config.epochs,
        batch_size=config.batch_size,
        verbose=verbose,
        callbacks=[stop, *(callbacks or [])],
    )
    val_entropy = cross_entropy(model, *val)
    unigram = unigram_cross_entropy(train_ids, val[1].reshape(-1), len(vocabulary))
    metrics = {
        "val_perplexity": float(np.exp(val_entropy)),
        "val_cross_entropy": val_entropy,
        "unigram_perplexity": float(np.exp(unigram)),
        "train_chars": len(train_ids),
        "val_chars": len(val_ids),
        "vocabulary_size": len(vocabulary),
    }
    return GenerationResult(
        metrics, history, model, vocabulary, config.sequence_length, asdict(config)
    )


def sample_text(
    model,
    vocabulary,
    prime: str,
    length: int,
    temperature: float,
    rng: np.random.Generator,
    sequence_length: int,
) -> str:
    """Continue ``prime`` by ``length`` characters drawn one at a time at ``temperature``.

    The model sees the last ``sequence_length`` characters, as in training. Padding and the
    unknown token are never drawn; characters of ``prime`` the vocabulary lacks read as unknown.
    """
    if temperature <= 0:
        raise ValueError(f"temperature: expected a positive number, got {temperature}")
    if not prime:
        raise ValueError("prime: expected at least one character, got ''")
    ids = vocabulary.encode(list(prime))
    reserved = vocabulary.num_reserved
    generated = []
    for _ in range(length):
        context = np.asarray([ids[-sequence_length:]], np.int64)  # (1, T)
        probabilities = np.asarray(model.predict_on_batch(context))[0, -1]  # (V,)
        logits = np.log(np.clip(probabilities[reserved:], 1e-12, None)) / temperature
        weights = np.exp(logits - logits.max())
        choice = reserved + int(rng.choice(len(weights), p=weights / weights.sum()))
        ids.append(choice)
        generated.append(vocabulary.tokens[choice])
    return prime + "".join(generated)


def save_generator(result_model, vocabulary, sequence_length: int, directory: Path) -> Path:
    """Write ``model.rnnkit`` and ``vocabulary.json`` into ``directory``; return the model path."""
    directory = Path(directory)
    result_model.save(directory / MODEL_FILE)
    payload = {"vocabulary": vocabulary.to_config(), "sequence_length": sequence_length}
    (directory / VOCABULARY_FILE).write_text(json.dumps(payload), encoding="utf-8")
    return directory / MODEL_FILE


def load_generator(path) -> tuple[object, object, int]:
    """``(model, vocabulary, sequence_length)`` from a run directory or its ``model.rnnkit``.

    The vocabulary is read from ``vocabulary.json`` next to the model file.
    """
    from rnnkit.data import Vocabulary
    from rnnkit.models import load_model

    path = Path(path)
    model_path = path / MODEL_FILE if path.is_dir() else path
    vocabulary_path = model_path.parent / VOCABULARY_FILE
    for name, file in (("model", model_path), ("vocabulary", vocabulary_path)):
        if not file.is_file():
            raise ValueError(
                f"--model: no {name} file {str(file)!r} (a generate run directory "
                f"holds {MODEL_FILE} and {VOCABULARY_FILE})"
            )
    try:
        payload = json.loads(vocabulary_path.read_text(encoding="utf-8"))
        vocabulary = Vocabulary.from_config(payload["vocabulary"])
        sequence_length = int(payload["sequence_length"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"--model: {vocabulary_path} is not a vocabulary file written by "
            f"rnnkit generate ({error})"
        ) from None
    return load_model(model_path), vocabulary, sequence_length
