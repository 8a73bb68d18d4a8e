"""Tabular datasets with their feature spaces: breast cancer (real) and network flows (synthetic).

* `load_breast_cancer()`: scikit-learn's bundled Wisconsin diagnostic table
  (569 real records, 30 continuous measurements, offline), with
  `breast_cancer_space()`: bounds from the table (non-negative measurements,
  widened 5%) and the relations the table obeys by construction: each
  "worst" measurement (mean of the three largest cells) is at least the
  corresponding "mean" measurement.
* `make_flows()`: a **synthetic** network-flow generator shipped with the
  package (no download; not captured traffic), labelled benign (0) or attack
  (1, flooding/scanning behaviour), with `flows_space()` exercising every
  constraint type: integer packet counts, a one-hot protocol, derived byte
  and packet rates tied to their inputs by equality relations (with repairs),
  an inequality (SYN packets ≤ forward packets), immutable fields
  (destination port, hour of day) and one unbounded side (the rates).

Models read raw features (put a `keras.layers.Normalization` first).
"""

from __future__ import annotations

from typing import Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

_no_autograph = tf.autograph.experimental.do_not_convert  # no Python control flow on tensors here

from keras_adv.datasets._split import stratified_split
from keras_adv.domains.feature_space import FeatureSpace
from keras_adv.domains.relations import LessEqual, Relation

__all__ = ["load_breast_cancer", "breast_cancer_space", "make_flows", "flows_space", "FLOW_FEATURES", "split"]

Split = Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def split(x, y, test_fraction: float = 0.25, seed: int = 0) -> Split:
    """A stratified train/test split fixed by `seed` (the one the digits use too)."""
    return stratified_split(x, y, test_fraction, seed)


# ------------------------------------------------------------ breast cancer
def _breast_cancer_arrays():
    try:
        from sklearn.datasets import load_breast_cancer as _sk_load
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("The breast-cancer dataset needs scikit-learn: pip install scikit-learn.") from e
    data = _sk_load()
    return data.data.astype("float32"), data.target.astype("int64"), [str(n) for n in data.feature_names]


def load_breast_cancer(test_fraction: float = 0.25, seed: int = 0) -> Split:
    """scikit-learn's Wisconsin diagnostic breast-cancer table (569 records, 30 features; 0 = malignant, 1 = benign).

    Returns:
        `((x_train, y_train), (x_test, y_test))`, float32 raw measurements and
        int64 labels, stratified split fixed by `seed`.
    """
    x, y, _ = _breast_cancer_arrays()
    return split(x, y, test_fraction, seed)


def breast_cancer_space(*, immutable=(), margin: float = 0.05) -> FeatureSpace:
    """The breast-cancer feature space: bounds from the whole table widened by `margin`, "worst ≥ mean" relations.

    Args:
        immutable: features (names or indices) the attacker cannot change.
        margin: fraction of each feature's range added on both sides (lower
            bounds never below 0: the measurements are non-negative).
    """
    x, _, names = _breast_cancer_arrays()
    space = FeatureSpace.from_data(x, names=names, margin=margin, integer=np.zeros(x.shape[1], bool))
    worst_ge_mean = Relation(LessEqual(left=list(range(10)), right=list(range(20, 30))), kind="<=",
                             tolerance=0.0, name="worst >= mean")
    frozen = np.zeros(x.shape[1], bool)
    frozen[space._indices("immutable", list(immutable))] = True
    return FeatureSpace(lower=np.maximum(space.lower, 0.0), upper=space.upper, mutable=~frozen,
                        relations=[worst_ge_mean], names=names)


# -------------------------------------------------------------------- flows
FLOW_FEATURES = [
    "duration", "fwd_packets", "bwd_packets", "mean_packet_size", "total_bytes", "packets_per_s",
    "bytes_per_s", "syn_packets", "proto_tcp", "proto_udp", "proto_icmp", "dst_port", "hour",
]
_F = {name: i for i, name in enumerate(FLOW_FEATURES)}
_PORTS = np.array([22, 25, 53, 80, 123, 443, 445, 3389, 8080], dtype=np.float32)


@_no_autograph
def _packets(x):
    return x[:, _F["fwd_packets"]] + x[:, _F["bwd_packets"]]


@_no_autograph
def _set(x, j, value):
    n = len(FLOW_FEATURES)
    onehot = tf.one_hot(j, n, dtype=x.dtype)
    return x * (1.0 - onehot) + value[:, None] * onehot


@keras.saving.register_keras_serializable(package="keras_adv")
@_no_autograph
def flow_bytes_relation(x):
    """`total_bytes / (packets · mean_packet_size) − 1` (= 0)."""
    return x[:, _F["total_bytes"]] / (_packets(x) * x[:, _F["mean_packet_size"]]) - 1.0


@keras.saving.register_keras_serializable(package="keras_adv")
@_no_autograph
def flow_bytes_repair(x):
    return _set(x, _F["total_bytes"], _packets(x) * x[:, _F["mean_packet_size"]])


@keras.saving.register_keras_serializable(package="keras_adv")
@_no_autograph
def flow_packet_rate_relation(x):
    """`packets_per_s · duration / packets − 1` (= 0)."""
    return x[:, _F["packets_per_s"]] * x[:, _F["duration"]] / _packets(x) - 1.0


@keras.saving.register_keras_serializable(package="keras_adv")
@_no_autograph
def flow_packet_rate_repair(x):
    return _set(x, _F["packets_per_s"], _packets(x) / x[:, _F["duration"]])


@keras.saving.register_keras_serializable(package="keras_adv")
@_no_autograph
def flow_byte_rate_relation(x):
    """`bytes_per_s · duration / total_bytes − 1` (= 0)."""
    return x[:, _F["bytes_per_s"]] * x[:, _F["duration"]] / x[:, _F["total_bytes"]] - 1.0


@keras.saving.register_keras_serializable(package="keras_adv")
@_no_autograph
def flow_byte_rate_repair(x):
    return _set(x, _F["bytes_per_s"], x[:, _F["total_bytes"]] / x[:, _F["duration"]])


def flows_space() -> FeatureSpace:
    """The feature space of `make_flows` records (see the module docstring)."""
    inf = np.inf
    bounds = {
        "duration": (0.01, 600.0), "fwd_packets": (1, 5000), "bwd_packets": (0, 5000),
        "mean_packet_size": (40, 1500), "total_bytes": (40, 1.5e7), "packets_per_s": (0, inf),
        "bytes_per_s": (0, inf), "syn_packets": (0, 5000), "proto_tcp": (0, 1), "proto_udp": (0, 1),
        "proto_icmp": (0, 1), "dst_port": (0, 65535), "hour": (0, 23),
    }
    lower = np.array([bounds[f][0] for f in FLOW_FEATURES], np.float32)
    upper = np.array([bounds[f][1] for f in FLOW_FEATURES], np.float32)
    integer = np.isin(FLOW_FEATURES, ["fwd_packets", "bwd_packets", "syn_packets", "dst_port", "hour"])
    mutable = ~np.isin(FLOW_FEATURES, ["dst_port", "hour"])
    # budget scale: the typical range an attacker would shape, not the extreme bounds
    scale = np.ones(len(FLOW_FEATURES), np.float32)
    scale[[_F["duration"], _F["fwd_packets"], _F["bwd_packets"], _F["mean_packet_size"], _F["syn_packets"]]] = [
        30.0, 200.0, 200.0, 1460.0, 200.0]
    relations = [
        Relation(flow_bytes_relation, kind="==", tolerance=1e-4, repair=flow_bytes_repair,
                 outputs=[_F["total_bytes"]], name="total_bytes = packets x mean_packet_size"),
        Relation(flow_packet_rate_relation, kind="==", tolerance=1e-4, repair=flow_packet_rate_repair,
                 outputs=[_F["packets_per_s"]], name="packets_per_s = packets / duration"),
        Relation(flow_byte_rate_relation, kind="==", tolerance=1e-4, repair=flow_byte_rate_repair,
                 outputs=[_F["bytes_per_s"]], name="bytes_per_s = total_bytes / duration"),
        Relation(LessEqual(left=[_F["syn_packets"]], right=[_F["fwd_packets"]]), kind="<=", tolerance=0.0,
                 name="syn_packets <= fwd_packets"),
    ]
    return FeatureSpace(lower=lower, upper=upper, mutable=mutable, integer=integer,
                        categorical=[[_F["proto_tcp"], _F["proto_udp"], _F["proto_icmp"]]],
                        relations=relations, scale=scale, names=FLOW_FEATURES)


def make_flows(n: int = 4000, *, attack_fraction: float = 0.4, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Generates `n` SYNTHETIC network-flow records and labels (0 benign, 1 attack).

    Benign flows: longer, balanced forward/backward traffic, larger packets,
    few SYNs. Attack flows (floods and scans): short, forward-heavy, small
    packets, many SYNs; a third of them are "stealthy" and drawn from the
    benign ranges for some features, so the classes overlap. Derived features
    are computed exactly (float32), so every record satisfies `flows_space()`.

    Returns:
        `(x, y)`: float32 `(n, 13)` records (columns `FLOW_FEATURES`) and int64 labels.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"`n` must be a positive integer, got {n!r}.")
    if not 0.0 < attack_fraction < 1.0:
        raise ValueError(f"`attack_fraction` must be in (0, 1), got {attack_fraction!r}.")
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < attack_fraction).astype(np.int64)
    stealthy = (y == 1) & (rng.random(n) < 0.35)
    hostile = (y == 1) & ~stealthy
    duration = np.where(hostile, rng.lognormal(-0.5, 0.8, n), rng.lognormal(0.8, 1.0, n))
    fwd = np.where(hostile, rng.lognormal(3.6, 0.7, n), rng.lognormal(2.6, 0.8, n))
    ratio = np.where(y == 1, rng.uniform(0.0, 0.5, n), rng.uniform(0.4, 1.3, n))
    size = np.where(hostile, rng.uniform(40, 400, n), rng.uniform(150, 1300, n))
    syn_frac = np.where(y == 1, rng.uniform(0.2, 1.0, n), rng.uniform(0.0, 0.25, n))
    fwd = np.clip(np.round(fwd), 1, 5000)
    bwd = np.clip(np.round(fwd * ratio), 0, 5000)
    syn = np.minimum(np.round(fwd * syn_frac), fwd)
    duration = np.clip(duration, 0.01, 600.0)
    proto = np.where(y == 1, rng.choice(3, n, p=[0.8, 0.12, 0.08]), rng.choice(3, n, p=[0.65, 0.3, 0.05]))
    port = np.where(rng.random(n) < 0.8, rng.choice(_PORTS, n), rng.integers(1024, 65536, n))
    hour = rng.integers(0, 24, n)
    x = np.zeros((n, len(FLOW_FEATURES)), np.float32)
    x[:, _F["duration"]] = duration
    x[:, _F["fwd_packets"]] = fwd
    x[:, _F["bwd_packets"]] = bwd
    x[:, _F["mean_packet_size"]] = size
    x[:, _F["syn_packets"]] = syn
    x[np.arange(n), _F["proto_tcp"] + proto] = 1.0
    x[:, _F["dst_port"]] = port
    x[:, _F["hour"]] = hour
    x = flow_byte_rate_repair(flow_packet_rate_repair(flow_bytes_repair(tf.constant(x)))).numpy()
    return x.astype(np.float32), y


def load_flows(n: int = 4000, test_fraction: float = 0.25, seed: int = 0) -> Split:
    """`make_flows(n, seed=seed)` split into stratified train/test sets (SYNTHETIC data)."""
    x, y = make_flows(n, seed=seed)
    return split(x, y, test_fraction, seed)
