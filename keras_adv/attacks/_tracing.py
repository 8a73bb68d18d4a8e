"""The attacks' `tf.function`s: one traced function per attack or model, traced without AutoGraph.

`own_tf_function` gives each traced function its own retracing count,
`call_function` one inference function per model (held weakly), `_compile`
an attack's step traced without AutoGraph (retraced with it when the code needs it).
"""

from __future__ import annotations

import functools
import weakref

import tensorflow as tf


def own_tf_function(python_fn, **kwargs):
    """`tf.function(python_fn, **kwargs)` whose retracing TensorFlow counts on its own.

    TensorFlow pools the retracing statistics of every `tf.function` made from
    the same code object: one traced function per attack or per model, built
    from one closure, looked like a single function retracing on every call,
    and the fifth (AutoAttack's members, an epsilon sweep, a transfer matrix of
    five models) logged "5 out of the last 5 calls ... triggered tf.function
    retracing" although each traced once. A `functools.partial` has no code
    object, so each function gets its own count; one that really retraces
    still warns. The graph keeps the Python function's name.
    """
    named = functools.partial(python_fn)
    named.__name__ = getattr(python_fn, "__name__", "function")
    return tf.function(named, **kwargs)


# One traced inference function per model, held weakly (a discarded model is freed: issue 13).
_CALL_FNS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def call_function(model):
    """`fn(x) -> model(x, training=False)`, traced once per model; the model is held weakly."""
    try:
        fn = _CALL_FNS.get(model)
    except TypeError:  # an unhashable / non-weakref-able callable
        return own_tf_function(lambda xb: model(xb, training=False), reduce_retracing=True)
    if fn is None:
        ref = weakref.ref(model)
        fn = own_tf_function(lambda xb: ref()(xb, training=False), reduce_retracing=True)
        _CALL_FNS[model] = fn
    return fn


def _compile(python_fn):
    """`tf.function(python_fn)` traced without AutoGraph, falling back to AutoGraph when needed.

    The attacks' loops are explicit `tf.while_loop`s, so AutoGraph's source
    conversion is pure cost: tracing without it is 5-20x faster (measured on
    a loaded 2-core CPU: PGD-10 6.4 s -> 0.9 s, APGD 9.3 s -> 0.8 s, Square
    6.6 s -> 0.4 s). A model or loss with Python control flow on tensors
    raises `OperatorNotAllowedInGraphError` when traced without AutoGraph; it
    is then traced with it, once.
    """
    return _AutoGraphFallback(python_fn)


class _AutoGraphFallback:
    """A `tf.function` without AutoGraph that retraces with AutoGraph when the code needs it."""

    def __init__(self, python_fn):
        self._python_fn = python_fn
        self._fn = own_tf_function(python_fn, reduce_retracing=True, autograph=False)
        self._converted = False

    def __call__(self, *args):
        if self._converted:
            return self._fn(*args)
        try:
            return self._fn(*args)
        except tf.errors.OperatorNotAllowedInGraphError:
            self._fn = own_tf_function(self._python_fn, reduce_retracing=True)
            self._converted = True
            return self._fn(*args)

    def __getattr__(self, name):  # e.g. experimental_get_tracing_count
        return getattr(self._fn, name)
