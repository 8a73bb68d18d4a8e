"""Text classification data: TensorFlow Datasets corpora, a synthetic task, semi-supervised mixing.

```python
import keras_adv as ka

# A real corpus (downloads on first use): token ids and the fitted vectorizer.
(x_train, y_train), vectorizer = ka.datasets.load_text("imdb_reviews", "train", sequence_length=256)
x_test, y_test = ka.datasets.load_text("imdb_reviews", "test", vectorizer=vectorizer)

# The synthetic task with a known decision rule (offline, seconds).
task = ka.datasets.synthetic_text(2000, seed=0)
task.x, task.y, task.label_of(task.x)      # ids, labels, the rule itself
```
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple

import numpy as np

from keras_adv.datasets.catalog import _ensure_available

__all__ = ["TEXT_DATASETS", "load_text", "SyntheticText", "synthetic_text", "with_unlabeled"]

#: `load_text` names → (TensorFlow Datasets name, number of classes). All are
#: loaded `as_supervised` (text, label).
TEXT_DATASETS: Dict[str, Tuple[str, int]] = {
    "imdb_reviews": ("imdb_reviews", 2),
    "ag_news": ("ag_news_subset", 4),
    "yelp_polarity": ("yelp_polarity_reviews", 2),
    "sst2": ("glue/sst2", 2),
}


def load_text(
    name: str = "imdb_reviews",
    split: str = "train",
    *,
    vectorizer=None,
    max_tokens: int = 20_000,
    sequence_length: int = 256,
    vectorize: bool = True,
    batch_size: Optional[int] = None,
    limit: Optional[int] = None,
    data_dir: Optional[str] = None,
    download: bool = True,
):
    """Loads a text classification corpus from TensorFlow Datasets.

    Args:
        name: one of `TEXT_DATASETS` (`"imdb_reviews"`, `"ag_news"`,
            `"yelp_polarity"`, `"sst2"`).
        split: a tfds split, e.g. `"train"`, `"test"`, `"train[:10%]"`.
        vectorizer: a `keras.layers.TextVectorization` already adapted (pass
            the one returned for the training split when loading the test
            split). `None` adapts a new one on this split.
        max_tokens: vocabulary size of a new vectorizer (index 0 is padding,
            1 the OOV token).
        sequence_length: length of the padded/truncated id sequences.
        vectorize: `False` returns the raw strings (for a model with
            `TextVectorization` inside) and no vectorizer is built.
        batch_size: `None` returns numpy arrays; an integer a batched
            `tf.data.Dataset` of `(x, y)`.
        limit: keep only the first `limit` examples.
        data_dir, download: passed to `tfds.load`.

    Returns:
        `(x, y)` (numpy, or a dataset with `batch_size`) when `vectorizer` is
        given or `vectorize=False`; otherwise `((x, y), vectorizer)` with the
        newly adapted vectorizer. `x` holds int64 ids of shape
        `(N, sequence_length)` (or strings), `y` int64 labels.
    """
    import keras
    import tensorflow as tf
    import tensorflow_datasets as tfds

    if not isinstance(name, str) or name.lower() not in TEXT_DATASETS:
        raise ValueError(f"Unknown text dataset {name!r}. Available: {', '.join(sorted(TEXT_DATASETS))}.")
    for arg, value in (("batch_size", batch_size), ("limit", limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"`{arg}` must be a positive integer or None, got {value!r}.")
    for arg, value in (("max_tokens", max_tokens), ("sequence_length", sequence_length)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{arg}` must be a positive integer, got {value!r}.")
    if vectorizer is not None and not isinstance(vectorizer, keras.layers.TextVectorization):
        raise TypeError(f"`vectorizer` must be a keras.layers.TextVectorization, got {type(vectorizer).__name__}.")

    tfds_name, _ = TEXT_DATASETS[name.lower()]
    _ensure_available(tfds, name.lower(), tfds_name, data_dir, download,
                      offline="keras_adv.datasets.synthetic_text (synthetic, offline)")
    ds = tfds.load(tfds_name, split=split, as_supervised=True, data_dir=data_dir, download=download)
    if limit is not None:
        ds = ds.take(limit)
    ds = ds.map(lambda text, label: (text, tf.cast(label, tf.int64)))
    new_vectorizer = None
    if vectorize and vectorizer is None:
        new_vectorizer = vectorizer = keras.layers.TextVectorization(
            max_tokens=max_tokens, output_mode="int", output_sequence_length=sequence_length)
        vectorizer.adapt(ds.map(lambda text, label: text).batch(1024))
    if vectorize:
        ds = ds.batch(1024).map(lambda text, label: (tf.cast(vectorizer(text), tf.int64), label)).unbatch()
    if batch_size is not None:
        out = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    else:
        from keras_adv.datasets.catalog import _as_arrays

        out = _as_arrays(ds, split, name)
    return (out, new_vectorizer) if new_vectorizer is not None else out


@dataclasses.dataclass
class SyntheticText:
    """A synthetic sentiment task whose decision rule is known exactly.

    Tokens: 0 padding, 1 OOV (unused), `positive` and `negative` marker
    tokens, the rest distractors. The label is 1 when a sequence holds more
    positive than negative markers (`label_of`); distractors carry no
    information. Substitutions that touch neither markers nor padding
    (`protected_tokens` for `keras_adv.attacks.HotFlip`) therefore never
    change the true label, so robust accuracy under ≤ k such substitutions
    is well defined.
    """

    x: np.ndarray
    y: np.ndarray
    vocab_size: int
    positive: np.ndarray
    negative: np.ndarray

    @property
    def protected_tokens(self):
        """Padding, OOV and every marker: what a label-preserving attack may not touch."""
        return [0, 1] + [int(t) for t in self.positive] + [int(t) for t in self.negative]

    def label_of(self, x) -> np.ndarray:
        """The decision rule: 1 iff #positive markers > #negative markers."""
        x = np.asarray(x)
        pos = np.isin(x, self.positive).sum(1)
        neg = np.isin(x, self.negative).sum(1)
        return (pos > neg).astype(np.int64)


def synthetic_text(
    num_examples: int = 2000,
    *,
    vocab_size: int = 1000,
    min_length: int = 12,
    max_length: int = 32,
    markers_per_class: int = 5,
    margin: int = 1,
    max_other: int = 2,
    seed: int = 0,
) -> SyntheticText:
    """Builds the synthetic sentiment task (documented as synthetic: no real text).

    Each sequence has a random length in `[min_length, max_length]`, padded
    with 0 to `max_length`. It holds `m` markers of the other class (m
    uniform in 0..`max_other`) and `m + margin` of its own class at random
    positions; the other positions are distractors drawn uniformly. The label
    is the class with more markers, so a model must count, and the true label
    survives any change of fewer than `margin / 2` markers.

    Args:
        num_examples: number of sequences (classes balanced in expectation).
        vocab_size: vocabulary size including padding, OOV and markers.
        min_length, max_length: sequence length range.
        markers_per_class: number of distinct marker tokens per class.
        margin: own-class markers minus other-class markers (≥ 1).
        max_other: the most other-class markers in a sequence.
        seed: the numpy seed (the task is deterministic given it).
    """
    if vocab_size < 2 + 2 * markers_per_class + 2:
        raise ValueError(f"`vocab_size` must leave room for markers and distractors, got {vocab_size}.")
    if not 1 <= min_length <= max_length:
        raise ValueError(f"Need 1 <= min_length <= max_length, got {min_length}, {max_length}.")
    if margin < 1 or max_other < 0:
        raise ValueError(f"Need margin >= 1 and max_other >= 0, got {margin}, {max_other}.")
    if 2 * max_other + margin > min_length:
        raise ValueError(f"{2 * max_other + margin} markers do not fit in sequences of {min_length} tokens.")
    rng = np.random.default_rng(seed)
    positive = np.arange(2, 2 + markers_per_class)
    negative = np.arange(2 + markers_per_class, 2 + 2 * markers_per_class)
    first_distractor = 2 + 2 * markers_per_class
    x = np.zeros((num_examples, max_length), np.int32)
    y = rng.integers(0, 2, num_examples).astype(np.int64)
    for i in range(num_examples):
        length = int(rng.integers(min_length, max_length + 1))
        row = rng.integers(first_distractor, vocab_size, length)
        n_other = int(rng.integers(0, max_other + 1))
        n_own = n_other + margin
        own, other = (positive, negative) if y[i] == 1 else (negative, positive)
        slots = rng.choice(length, size=n_own + n_other, replace=False)
        row[slots[:n_own]] = rng.choice(own, n_own)
        row[slots[n_own:]] = rng.choice(other, n_other)
        x[i, :length] = row
    task = SyntheticText(x=x, y=y, vocab_size=vocab_size, positive=positive, negative=negative)
    assert np.array_equal(task.label_of(x), y)
    return task


def with_unlabeled(x_labeled, y_labeled, x_unlabeled, *, placeholder_label: int = 0,
                   shuffle: bool = True, seed: int = 0):
    """Mixes labeled and unlabeled examples for `objective="vat"`.

    Returns `(x, y, sample_weight)`: unlabeled examples get the placeholder
    label and weight 0, so the supervised term ignores them while the VAT
    term uses every example. Pass them as `model.fit(x, y, sample_weight=w)`.
    `x` has a dtype that holds both inputs unchanged: the longer string
    width of two string arrays, the wider of two integer (token id) types,
    else `x_labeled`'s dtype.
    """
    x_labeled, x_unlabeled = np.asarray(x_labeled), np.asarray(x_unlabeled)
    y_labeled = np.asarray(y_labeled)
    if len(x_labeled) != len(y_labeled):
        raise ValueError(f"`x_labeled` and `y_labeled` differ in length: {len(x_labeled)} vs {len(y_labeled)}.")
    if x_labeled.shape[1:] != x_unlabeled.shape[1:]:
        raise ValueError(
            f"`x_unlabeled` examples must have the shape of `x_labeled`'s: {x_unlabeled.shape[1:]} "
            f"vs {x_labeled.shape[1:]}.")
    x = np.concatenate([x_labeled, x_unlabeled.astype(_common_dtype(x_labeled.dtype, x_unlabeled.dtype))])
    y = np.concatenate([y_labeled, np.full((len(x_unlabeled),) + y_labeled.shape[1:], placeholder_label,
                                           y_labeled.dtype)])
    w = np.concatenate([np.ones(len(x_labeled), np.float32), np.zeros(len(x_unlabeled), np.float32)])
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(x))
        x, y, w = x[order], y[order], w[order]
    return x, y, w


def _common_dtype(labeled, unlabeled):
    """The dtype of the mixed inputs: nothing truncated (strings) or wrapped around (token ids)."""
    text = [d.kind in "USO" for d in (labeled, unlabeled)]
    if any(text):
        if not all(text):
            raise TypeError(
                f"`x_labeled` ({labeled}) and `x_unlabeled` ({unlabeled}) must both be strings or both be "
                "numbers (e.g. both token ids from the same vectorizer)."
            )
        return np.result_type(labeled, unlabeled)  # the longer of two string widths
    if labeled.kind in "iu" and unlabeled.kind in "iu":
        wider = np.result_type(labeled, unlabeled)
        return wider if wider.kind in "iu" else np.dtype(np.int64)  # (int64 with uint64 would be float)
    return labeled
