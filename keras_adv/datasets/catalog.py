"""`keras_adv.datasets.load`: image classification datasets scaled to the attack bounds.

Every dataset is returned as float32 images in [0, 1] (the default `bounds` of
every keras_adv attack) with integer class labels, so attacks, presets and the
command line need no preprocessing code:

```python
import keras_adv as ka

x_train, y_train = ka.datasets.load("mnist", "train")          # numpy arrays
test_ds = ka.datasets.load("cifar10", "test", batch_size=128)   # tf.data.Dataset of (x, y)
```

`"digits"` (scikit-learn's bundled 8×8 handwritten digits) works offline and
is the default everywhere; the others come from TensorFlow Datasets and are
downloaded to `data_dir` (default `~/tensorflow_datasets`) on first use.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, Optional, Tuple, Union

import numpy as np

__all__ = ["DatasetInfo", "DatasetUnavailableError", "available", "info", "load"]


class DatasetUnavailableError(RuntimeError):
    """A TensorFlow Datasets dataset is neither prepared locally nor downloadable from here."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model for a dataset needs to know, without loading it.

    Attributes:
        name: the `load()` name.
        input_shape: `(height, width, channels)` of one image.
        num_classes: number of classes (labels are `0 .. num_classes-1`).
        source: `"scikit-learn"` (offline) or `"tfds"` (TensorFlow Datasets).
        tfds_name: the TensorFlow Datasets name, for `"tfds"` datasets.
        description: one line for `--help` and `keras-adv list`.
    """

    name: str
    input_shape: Tuple[int, int, int]
    num_classes: int
    source: str
    tfds_name: Optional[str] = None
    description: str = ""


_CATALOG: Dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo("digits", (8, 8, 1), 10, "scikit-learn", None,
                    "8x8 handwritten digits bundled with scikit-learn (1,797 images, offline)"),
        DatasetInfo("mnist", (28, 28, 1), 10, "tfds", "mnist", "28x28 handwritten digits (70,000 images)"),
        DatasetInfo("fashion_mnist", (28, 28, 1), 10, "tfds", "fashion_mnist",
                    "28x28 Zalando clothing images (70,000 images)"),
        DatasetInfo("kmnist", (28, 28, 1), 10, "tfds", "kmnist", "28x28 Kuzushiji (cursive Japanese) characters"),
        DatasetInfo("cifar10", (32, 32, 3), 10, "tfds", "cifar10", "32x32 colour images, 10 classes (60,000)"),
        DatasetInfo("cifar100", (32, 32, 3), 100, "tfds", "cifar100", "32x32 colour images, 100 classes (60,000)"),
        DatasetInfo("svhn", (32, 32, 3), 10, "tfds", "svhn_cropped", "32x32 street-view house numbers"),
    )
}


def available():
    """The dataset names `load()` accepts."""
    return sorted(_CATALOG)


def info(name: str) -> DatasetInfo:
    """The `DatasetInfo` of `name` (no download). Raises `ValueError` listing valid names."""
    if not isinstance(name, str) or name.lower() not in _CATALOG:
        raise ValueError(
            f"Unknown dataset {name!r}. Available datasets: {', '.join(available())}."
        )
    return _CATALOG[name.lower()]


def _scale(image, label):
    import tensorflow as tf

    return tf.cast(image, tf.float32) / 255.0, tf.cast(label, tf.int64)


def load(
    name: str = "digits",
    split: str = "train",
    *,
    batch_size: Optional[int] = None,
    shuffle: bool = False,
    limit: Optional[int] = None,
    data_dir: Optional[str] = None,
    download: bool = True,
    seed: int = 0,
) -> Union[Tuple[np.ndarray, np.ndarray], "tf.data.Dataset"]:  # noqa: F821
    """Loads a classification dataset as float32 images in [0, 1] and int64 labels.

    Args:
        name: one of `available()`: `"digits"` (offline), `"mnist"`,
            `"fashion_mnist"`, `"kmnist"`, `"cifar10"`, `"cifar100"`, `"svhn"`.
        split: `"train"` or `"test"`; TensorFlow Datasets slicing such as
            `"train[:10%]"` works for the tfds datasets.
        batch_size: `None` (default) returns numpy arrays `(x, y)` holding the
            whole split in memory; an integer returns a `tf.data.Dataset` of
            `(x, y)` batches (streamed, prefetched).
        shuffle: shuffle the examples (seeded by `seed`).
        limit: keep only the first `limit` examples (after shuffling).
        data_dir: TensorFlow Datasets directory (default `~/tensorflow_datasets`).
        download: whether TensorFlow Datasets may download missing data.
        seed: the shuffle seed (the digits train/test split is fixed).

    Returns:
        `(x, y)` numpy arrays with `x` of shape `(N, H, W, C)`, float32 in
        [0, 1], and `y` int64 classes of shape `(N,)`; or, with `batch_size`,
        a `tf.data.Dataset` yielding such batches.

    Raises:
        ValueError: unknown `name` or `split`, or a bad `batch_size`/`limit`.
        DatasetUnavailableError: a TensorFlow Datasets dataset that is not
            prepared under `data_dir` (or `TFDS_DATA_DIR`) and cannot be
            downloaded from here (no network): raised at once, nothing written.
    """
    meta = info(name)
    for arg, value in (("batch_size", batch_size), ("limit", limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"`{arg}` must be a positive integer or None, got {value!r}.")
    if not isinstance(split, str):
        raise ValueError(f"`split` must be a string such as 'train' or 'test', got {split!r}.")

    if meta.source == "scikit-learn":
        return _load_digits(split, batch_size=batch_size, shuffle=shuffle, limit=limit, seed=seed)
    return _load_tfds(meta, split, batch_size=batch_size, shuffle=shuffle, limit=limit,
                      data_dir=data_dir, download=download, seed=seed)


def _load_digits(split, *, batch_size, shuffle, limit, seed):
    from keras_adv.datasets.digits import load_digits

    if split not in ("train", "test"):
        raise ValueError(f"`split` for 'digits' must be 'train' or 'test', got {split!r}.")
    (x_train, y_train), (x_test, y_test) = load_digits()  # the fixed, stratified 75/25 split
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(x))
        x, y = x[order], y[order]
    if limit is not None:
        x, y = x[:limit], y[:limit]
    if batch_size is None:
        return x, y
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).prefetch(tf.data.AUTOTUNE)


# Any answer from this host (even an HTTP error) means downloads can be tried; tfds fetches from
# several hosts, this one first (its prepared-dataset bucket).
_PROBE_URL = "https://storage.googleapis.com/tfds-data/"


def _download_problem(timeout: float = 5.0) -> Optional[str]:
    """None when the download host answers; otherwise why not (one phrase). Honours HTTP(S)_PROXY."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(_PROBE_URL, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError) as e:
        return str(getattr(e, "reason", e))
    return None


def _ensure_available(tfds, meta, data_dir, download):
    """Fails fast, in one line and before anything is written, when the data can be neither read nor fetched.

    Without this, a machine with no network waits ~3.5 minutes on TensorFlow
    Datasets' download retries and ends in a `requests` traceback.
    """
    import logging

    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)  # "Variant folder ... has no dataset_info.json": it is not there yet
    try:
        builder = tfds.builder(meta.tfds_name, data_dir=data_dir)
        prepared = builder.is_prepared()
    finally:
        absl_logger.setLevel(level)
    if prepared:
        return
    if getattr(type(builder).download_and_prepare, "__module__", "").startswith("tensorflow_datasets.testing"):
        return  # inside `tfds.testing.mock_data`: nothing is downloaded
    where = data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")
    hint = (f"put a prepared copy under {where} (the `data_dir` argument, or the TFDS_DATA_DIR environment "
            f"variable; default ~/tensorflow_datasets) or use the offline dataset 'digits'")
    if not download:
        raise DatasetUnavailableError(f"dataset {meta.name!r} is not prepared under {where} and `download=False`; "
                                      + hint + ".")
    problem = _download_problem()
    if problem is not None:
        raise DatasetUnavailableError(
            f"dataset {meta.name!r} needs a one-time download by TensorFlow Datasets and the internet is not "
            f"reachable from here ({problem}); {hint}.")
    try:
        import importlib_resources  # noqa: F401  (tfds needs it to prepare a dataset; a keras-adv dependency)
    except ImportError:
        raise DatasetUnavailableError(f"preparing {meta.name!r} with TensorFlow Datasets needs the package "
                                      "importlib_resources: pip install importlib_resources") from None


def _load_tfds(meta, split, *, batch_size, shuffle, limit, data_dir, download, seed):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    _ensure_available(tfds, meta, data_dir, download)
    ds = tfds.load(meta.tfds_name, split=split, as_supervised=True, data_dir=data_dir,
                   download=download, shuffle_files=shuffle,
                   read_config=tfds.ReadConfig(shuffle_seed=seed) if shuffle else None)
    if shuffle:
        ds = ds.shuffle(10_000, seed=seed, reshuffle_each_iteration=False)
    if limit is not None:
        ds = ds.take(limit)
    ds = ds.map(_scale, num_parallel_calls=tf.data.AUTOTUNE)
    if batch_size is not None:
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    xs, ys = [], []
    for xb, yb in tfds.as_numpy(ds.batch(4096)):
        xs.append(xb)
        ys.append(yb)
    if not xs:
        raise ValueError(f"Split {split!r} of {meta.name!r} is empty.")
    return np.concatenate(xs), np.concatenate(ys)
