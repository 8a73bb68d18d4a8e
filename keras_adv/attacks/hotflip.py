"""HotFlip: token substitutions ranked by one gradient through the embedding matrix."""

from __future__ import annotations

import contextlib
import weakref
from typing import Mapping, Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

from keras_adv import _compat
from keras_adv import norms as norms_lib
from keras_adv.attacks.attack import Attack
from keras_adv.attacks.inner_layer import LayerPerturbation, _all_layers, _mask_of, find_layer
from keras_adv.utils import data_checks
from keras_adv.utils.validation import check_number, is_number

__all__ = ["HotFlip", "TokenSubstitutions"]


class TokenSubstitutions(norms_lib.Norm):
    """The threat model of token attacks: the number of changed positions (an L0 count)."""

    name = "l0"
    p = 0.0

    def norm(self, x):
        x = tf.convert_to_tensor(x)
        flat = tf.reshape(x, [tf.shape(x)[0], -1])
        return tf.reduce_sum(tf.cast(tf.not_equal(flat, tf.zeros_like(flat)), tf.float32), axis=1)

    def normalize(self, g):
        raise NotImplementedError("Token substitutions have no gradient step; HotFlip ranks flips instead.")

    def project(self, delta, epsilon):
        raise NotImplementedError("Token substitutions are counted, not projected.")


@keras.saving.register_keras_serializable(package="keras_adv")
class HotFlip(Attack):
    """HotFlip token substitutions (Ebrahimi, Rao, Lowd & Dou 2018, "HotFlip:
    White-Box Adversarial Examples for Text Classification").

    Greedy, at most `max_substitutions` = k changed positions per sequence.
    Each step takes one gradient `g_t = ∂L/∂e_t` of the loss w.r.t. the
    embedded sequence and ranks every substitution `x_t: a → b` by its
    first-order gain `g_tᵀ(E_b − E_a)` (E the embedding matrix); the `top_k`
    best are then checked with an exact forward pass and the one that raises
    the loss most is applied (none if no candidate raises it). Positions are
    changed at most once, and an example stops once it is misclassified (on
    target when `targeted`). The tokens the Embedding masks (id 0 with
    `mask_zero=True`) are never changed nor introduced, whatever
    `protected_tokens` and `allowed_tokens` say; `protected_tokens` are
    never changed nor introduced either. The threat model is
    `TokenSubstitutions` (`norm.name == "l0"`): `evaluate_robustness` with
    `epsilons=[1, 2, 3]` (whole numbers) reports robust accuracy under ≤ k
    substitutions.

    Example:

    ```python
    attack = keras_adv.attacks.HotFlip(max_substitutions=2)
    ids_adv = attack(text_model, token_ids, labels)       # int token ids out
    report = keras_adv.evaluate_robustness(text_model, token_ids, labels,
                                           attacks={"hotflip": attack}, epsilons=[1, 2, 3])
    ```

    Args:
        max_substitutions: k ≥ 1 (an integer), the most positions changed per
            sequence: the attack's ε (default 1). `epsilon=` overrides it per
            call.
        epsilon: the same budget under the name every attack uses
            (`HotFlip(epsilon=2)` is `HotFlip(max_substitutions=2)`); giving
            both with different values is an error.
        layer: the `Embedding` layer (name or layer), also one held inside
            a custom layer (e.g. the `token_emb` of a token-and-position
            embedding); `None` finds the model's `keras.layers.Embedding`:
            its only one, or of several the one fed the input ids (found by
            one call on a probe sequence: a position embedding is fed
            positions); where that is ambiguous, an error asks for `layer=`.
        candidates: optional synonym table restricting each substitution
            `a → b` to `b ∈ candidates[a]`: a dict `{token: [ids]}` or an
            int array `(vocab, C)` padded with -1.
        allowed_tokens: optional ids (or a boolean mask over the
            vocabulary) that may be introduced; all others never are.
        protected_tokens: ids never changed nor introduced; default
            `(0, 1)`, `TextVectorization`'s padding and OOV tokens.
        top_k: candidates per step checked with an exact forward pass.
        check_inputs: check that `x` holds ids in `[0, input_dim)` of the
            Embedding (a `ValueError` naming `x` before any step).
        targeted, loss, seed, name: see `keras_adv.attacks.Attack`.

    HotFlip takes no `bounds` and no `norm` (its threat model is fixed: `"l0"`
    substitutions of token ids); both are refused with a `ValueError`. It
    evaluates (`evaluate_robustness`, `generate`); it is not a training
    attack of `AdversarialModel` (train with a continuous attack and
    `perturb_layer="embedding"`).

    The model's input must be token ids (`TextVectorization` outside the
    model, e.g. in the `tf.data` pipeline), padded to a dense `(batch,
    length)` tensor. Memory per step is about batch × length × vocabulary
    floats without a `candidates` table.
    """

    #: Works on integer token ids, not floating inputs in `bounds`.
    discrete_inputs = True

    def __init__(
        self,
        max_substitutions: Optional[int] = None,
        *,
        epsilon: Optional[int] = None,
        layer: Optional[str] = None,
        candidates: Union[None, Mapping[int, Sequence[int]], np.ndarray, Sequence[Sequence[int]]] = None,
        allowed_tokens: Union[None, Sequence[int], np.ndarray] = None,
        protected_tokens: Sequence[int] = (0, 1),
        top_k: int = 8,
        check_inputs: bool = True,
        targeted: bool = False,
        loss=None,
        seed: Optional[int] = None,
        name: Optional[str] = None,
        **kwargs,
    ):
        for key in ("bounds", "domain"):
            if key in kwargs:
                raise ValueError(
                    f"HotFlip takes no `{key}`: it substitutes token ids, which the Embedding's vocabulary "
                    "bounds (ids in [0, input_dim)). Restrict the replacements with `allowed_tokens=`, "
                    "`protected_tokens=` or `candidates=`."
                )
        norm = kwargs.pop("norm", None)
        if norm is not None and not (isinstance(norm, TokenSubstitutions)
                                     or (isinstance(norm, str) and norm.lower() == "l0")):
            raise ValueError(
                f"HotFlip takes no `norm` (got {norm!r}): its threat model is the number of substituted "
                "tokens (norm 'l0'). Set that budget with `max_substitutions=` (or `epsilon=`)."
            )
        if kwargs:
            raise TypeError(f"HotFlip got unexpected arguments: {sorted(kwargs)}.")
        if epsilon is not None:
            budget = check_number("epsilon", epsilon, minimum=1, integer=True)
            if max_substitutions is not None and check_number(
                    "max_substitutions", max_substitutions, minimum=1, integer=True) != budget:
                raise ValueError(
                    f"HotFlip got `max_substitutions`={max_substitutions!r} and `epsilon`={epsilon!r}: both "
                    "are the budget (the most substituted tokens per sequence); give one of them."
                )
            max_substitutions = budget
        k = check_number("max_substitutions", 1 if max_substitutions is None else max_substitutions,
                         minimum=1, integer=True)
        from keras_adv import domains

        # Token ids are non-negative integers; the norm placeholder is replaced below.
        super().__init__(epsilon=k, norm="l2", domain=domains.Box(0.0, float("inf")), targeted=targeted,
                         loss=loss, seed=seed, check_inputs=check_inputs, name=name)
        self.norm = TokenSubstitutions()
        self.max_substitutions = k
        if layer is not None and not isinstance(layer, str):
            layer = getattr(layer, "name", layer)
        if layer is not None and not isinstance(layer, str):
            raise TypeError(f"`layer` must be the name of an Embedding layer or None, got {layer!r}.")
        self.layer = layer
        self.candidates = _candidate_table(candidates)
        self.allowed_tokens = _token_list("allowed_tokens", allowed_tokens)
        if self.allowed_tokens == []:
            raise ValueError("`allowed_tokens` is empty: no token could be introduced, so HotFlip would change "
                             "nothing. Give the ids that may be introduced, or None for the whole vocabulary.")
        self.protected_tokens = _token_list("protected_tokens", protected_tokens) or []
        self.top_k = check_number("top_k", top_k, minimum=1, integer=True)
        self._perturbations = weakref.WeakKeyDictionary()
        self._token_lists_checked = None  # the vocabulary size `candidates` / `allowed_tokens` were checked for

    # ------------------------------------------------------------ checks
    def _validate_x(self, x, argument="x"):
        if isinstance(x, tf.RaggedTensor):
            raise TypeError(_RAGGED_MESSAGE.replace("`x`", f"`{argument}`"))
        if not tf.is_tensor(x):
            x = np.asarray(x)
            if x.dtype.kind in "USO":
                raise TypeError(_STRINGS_MESSAGE.replace("`x`", f"`{argument}`"))
            if not np.issubdtype(x.dtype, np.integer):
                raise TypeError(f"`{argument}` must be integer token ids for HotFlip, got dtype {x.dtype}.")
            x = tf.convert_to_tensor(x)
        if x.dtype == tf.string:
            raise TypeError(_STRINGS_MESSAGE.replace("`x`", f"`{argument}`"))
        if not x.dtype.is_integer:
            raise TypeError(f"`{argument}` must be integer token ids for HotFlip, got dtype {x.dtype.name}.")
        if x.shape.rank is not None and x.shape.rank != 2:
            raise ValueError(f"`{argument}` must be token ids of shape (batch, length), got shape {x.shape}.")
        return x

    def _perturbation(self, model, length=None):
        """The `LayerPerturbation` of the Embedding HotFlip flips (found once per model).

        `length` (the ids' static length, when known) sizes the probe call of
        a model whose input length is not fixed.
        """
        lp = self._perturbations.get(model)
        if lp is None:
            name = getattr(model, "name", model)
            _check_takes_ids(model)
            fed = None  # the Embeddings found fed the input ids by the probe (None: not probed, or it cannot run)
            if self.layer is None:
                layers = _all_layers(model)
                embeddings = [l for l in layers if isinstance(l, keras.layers.Embedding)]
                if not embeddings:
                    raise ValueError(
                        f"HotFlip attacks token ids through the model's keras.layers.Embedding, and model "
                        f"{name!r} has none (its layers: {[l.name for l in layers]}). HotFlip needs a text "
                        "model whose input is token ids embedded by an Embedding (in the model, in a nested "
                        "model or held by a custom layer)."
                    )
                if len(embeddings) > 1:
                    fed = self._embeddings_fed_the_input(model, embeddings, length)
                    if fed == []:
                        raise ValueError(_not_fed_message(model, embeddings))
                    embeddings = fed if fed is not None and len(fed) == 1 else embeddings
                if len(embeddings) > 1:
                    raise ValueError(
                        f"Model {name!r} has {len(embeddings)} Embedding layers ("
                        + ", ".join(f"{l.name!r} with input_dim={l.input_dim}" for l in embeddings)
                        + "): name the one that embeds the token ids (the vocabulary) with "
                        f"`layer=` (e.g. HotFlip(layer={embeddings[0].name!r}))."
                    )
                layer = embeddings[0]
            else:
                layer = find_layer(model, self.layer, argument="layer")
            if not isinstance(layer, keras.layers.Embedding) and not hasattr(layer, "embeddings"):
                raise TypeError(
                    f"`layer`={layer.name!r} is a {type(layer).__name__}, not an Embedding: HotFlip "
                    "needs the keras.layers.Embedding that embeds the token ids."
                )
            if fed is None and isinstance(layer, keras.layers.Embedding):
                # HotFlip reads the rows of the matrix at the *input* ids: sound only when the
                # Embedding looks up those very ids (no IntegerLookup, shift or hashing before it).
                fed = self._embeddings_fed_the_input(model, [layer], length)
            if fed is not None and all(l is not layer for l in fed):
                raise ValueError(_not_fed_message(model, [layer]))
            lp = LayerPerturbation(model, layer)
            self._perturbations[model] = lp
        return lp

    @staticmethod
    def _embeddings_fed_the_input(model, embeddings, length=None):
        """Of `embeddings`, those that receive the model's input ids as they are.

        A token-and-position embedding holds two Embeddings, the second fed
        positions (`arange(length)`), not the ids; a model that remaps the ids
        first (an `IntegerLookup`, a shift, hashing) feeds its Embedding other
        ids. One eager call on a probe sequence of ids (which is neither the
        positions nor constant) tells them apart. `None` when the model cannot
        be probed (several inputs, unknown layout, a call that fails), so the
        caller falls back to asking for `layer=` or trusting it.
        """
        inputs = getattr(model, "inputs", None) or []
        if len(inputs) > 1:
            return None
        shape = tuple(inputs[0].shape) if inputs else (None, None)
        if len(shape) != 2:
            return None
        length = shape[1] or length or 16
        dims = [getattr(layer, "input_dim", None) for layer in embeddings]
        if any(d is None for d in dims) or min(dims) < 3:
            return None
        # Ids counting down from the end, never 0 (often the padding id):
        # neither constant nor the positions 0, 1, 2, ...
        probe = (1 + (length - 1 - np.arange(length, dtype=np.int64)) % (min(dims) - 1))[None, :]
        if (probe == np.arange(length)).all() or (probe == probe.flat[0]).all():
            return None
        seen = {}

        def recorder(layer):
            def hook(out, args, kwargs):
                value = args[0] if args else kwargs.get("inputs")
                try:
                    value = np.asarray(value).astype(np.int64)
                except (TypeError, ValueError):  # symbolic (a build pass): nothing to compare
                    return out
                seen[id(layer)] = seen.get(id(layer), False) or (
                    value.shape == probe.shape and bool((value == probe).all()))
                return out
            return hook

        try:
            with tf.init_scope(), contextlib.ExitStack() as stack:
                for layer in embeddings:
                    stack.enter_context(_compat.intercept_layer_output(layer, recorder(layer)))
                model(tf.constant(probe, dtype=inputs[0].dtype if inputs else tf.int32), training=False)
        except Exception:  # a model this probe cannot run: fall back to asking for `layer=`
            return None
        if not any(id(layer) in seen for layer in embeddings):
            return None  # no layer ran eagerly on the probe (e.g. called inside a tf.function): unknown
        return [layer for layer in embeddings if seen.get(id(layer))]

    @staticmethod
    def _vocabulary_size(layer):
        dim = getattr(layer, "input_dim", None)
        if dim is None and hasattr(layer, "embeddings"):
            dim = layer.embeddings.shape[0]
        return None if dim is None else int(dim)

    def validate_token_ids(self, model, x, argument="x"):
        """Checks that `x` holds ids of the model's Embedding, `[0, input_dim)`; returns `x`.

        Eagerly a `ValueError` naming `argument` (`"x"`; `evaluate_robustness`
        passes `"data"`); inside a `tf.function` an assert with the same
        message (before the attack's first step).
        """
        x = self._validate_x(x, argument)
        lp = self._perturbation(model, x.shape[1] if x.shape.rank == 2 else None)
        vocab = self._vocabulary_size(lp.layer)
        if vocab is not None and self._token_lists_checked != vocab:  # once per vocabulary, not per batch
            self._check_token_lists(lp.layer.name, vocab)
            self._token_lists_checked = vocab
        if not self.check_inputs or vocab is None:
            return x
        if tf.executing_eagerly():
            data_checks.check_token_ids(argument, x, lp.layer.name, vocab)
            return x
        ok = tf.reduce_all((x >= 0) & (x < tf.cast(vocab, x.dtype)))
        check = tf.debugging.Assert(ok, [data_checks.token_ids_message(argument, lp.layer.name, vocab), "min/max id:",
                                         tf.reduce_min(x), tf.reduce_max(x)])
        with tf.control_dependencies([check]):
            return tf.identity(x)

    def _check_token_lists(self, layer_name, vocab):
        """`candidates` and `allowed_tokens` must hold ids of the vocabulary: a `ValueError` naming them.

        An id >= `input_dim` has no embedding: it was silently never tried, so a table built for
        another (larger) vocabulary turned the attack into a no-op.
        """
        lists = [("allowed_tokens", self.allowed_tokens or [])]
        if self.candidates is not None:
            table = np.asarray(self.candidates, np.int64)
            used = (table >= 0).any(axis=1)  # rows with at least one replacement: their keys are tokens
            lists += [("candidates", sorted(set(np.flatnonzero(used).tolist())
                                            | set(table[table >= 0].tolist())))]
        for argument, ids in lists:
            bad = [i for i in ids if i >= vocab]
            if bad:
                shown = ", ".join(str(i) for i in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
                raise ValueError(
                    f"`{argument}` holds {len(bad)} token id(s) outside [0, {vocab}), the vocabulary of the "
                    f"Embedding {layer_name!r} (input_dim={vocab}): {shown}. They have no embedding and "
                    "would never be tried; build the list with the vectorizer the model was built with."
                )

    @staticmethod
    def _validate_budget(epsilon):
        """The per-call budget k as an int32 tensor: a whole number of substitutions, ≥ 0."""
        def message(value):
            return (f"`epsilon`={value!r}: HotFlip's budget is a whole number of substituted tokens "
                    "(the l0 threat model); give an integer >= 0.")

        value = epsilon
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value[()]
        elif tf.is_tensor(value) and tf.executing_eagerly() and value.shape.rank == 0:
            value = value.numpy().item()
        if is_number(value):
            check_number("epsilon", value, minimum=0.0)
            if not float(value).is_integer():
                raise ValueError(message(value))
            return tf.constant(int(value), tf.int32)
        value = tf.convert_to_tensor(value)
        if value.shape.rank not in (None, 0):
            raise ValueError(f"`epsilon` must be a scalar, got shape {value.shape}.")
        as_float = tf.cast(value, tf.float32)
        ok = tf.reduce_all((as_float >= 0.0) & tf.equal(as_float, tf.round(as_float)))  # NaN fails too
        check = tf.debugging.Assert(ok, [message("a tensor"), "got", value])
        with tf.control_dependencies([check]):
            return tf.cast(tf.round(as_float), tf.int32)

    # -------------------------------------------------------------- call
    def __call__(self, model, x, y, *, epsilon=None, seed=None, loss=None):
        """Returns token ids with at most k substitutions per sequence (k = `epsilon` or `max_substitutions`)."""
        from keras_adv import losses as losses_lib

        x = self.validate_token_ids(model, x)
        y = self._validate_y(y, x)
        self._check_labels_fit(model, y)
        k = self._validate_budget(self.max_substitutions if epsilon is None else epsilon)
        loss_fn = losses_lib.per_example(loss if loss is not None else self.loss) or losses_lib.crossentropy
        with losses_lib.outputs_from_logits(losses_lib.infer_from_logits(model)):
            return tf.stop_gradient(self._flip(model, x, y, k, loss_fn))

    def perturb(self, model, x, y, epsilon, seed, loss_fn):
        return self._flip(model, x, y, tf.cast(epsilon, tf.int32), loss_fn)

    def _token_masks(self, vocab, layer):
        """(allowed as a replacement, protected) boolean vectors over the vocabulary.

        Tokens the layer masks (`Embedding(mask_zero=True)`: id 0) are never
        introduced, whatever `allowed_tokens` says; their positions are never
        changed (the mask excludes them from the ranking).
        """
        def mask_of(ids):
            ids = [i for i in ids if 0 <= i]
            if not ids:
                return tf.zeros([vocab], tf.bool)
            ids = tf.constant(ids, tf.int32)
            ids = tf.boolean_mask(ids, ids < vocab)
            return tf.scatter_nd(ids[:, None], tf.ones_like(ids, tf.bool), [vocab])

        protected = mask_of(self.protected_tokens)
        allowed = tf.ones([vocab], tf.bool) if self.allowed_tokens is None else mask_of(self.allowed_tokens)
        kept = _mask_of(layer, (tf.range(vocab)[None, :],), {})  # False for the ids the layer masks
        if kept is not None and kept.shape.rank == 2:
            allowed = allowed & tf.reshape(kept, [vocab])
        return allowed & ~protected, protected

    def _flip(self, model, x, y, k, loss_fn):
        lp = self._perturbation(model, x.shape[1] if x.shape.rank == 2 else None)
        lp.ensure_built(x)  # a subclassed model before its first call: creates the embedding matrix
        table = lp.layer.embeddings
        emb = tf.cast(tf.convert_to_tensor(table), tf.float32)
        vocab = tf.shape(emb)[0]
        introducible, protected = self._token_masks(vocab, lp.layer)
        x_orig = tf.cast(x, tf.int32)
        length = tf.shape(x_orig)[1]
        m = self.top_k
        neg_inf = tf.constant(-np.inf, tf.float32)
        if self.candidates is not None:
            cand_table = tf.constant(np.asarray(self.candidates, np.int32))
            rows = tf.shape(cand_table)[0]
            cand_table = tf.pad(cand_table, [[0, tf.maximum(vocab - rows, 0)], [0, 0]], constant_values=-1)
            cand = tf.gather(cand_table, x_orig)                                   # (B, T, C)
            cand = tf.where(cand < vocab, cand, -1)

        def step(i, x_cur, changed):
            grad, objective, outputs, e, mask = lp.gradient(self, x_cur, y, loss_fn)
            done = self.is_successful(outputs, y)
            g_dot_e = tf.reduce_sum(grad * e, axis=-1)                            # (B, T)
            pos_ok = (mask[..., 0] > 0) & ~changed & ~tf.gather(protected, x_cur)
            if self.candidates is None:
                scores = tf.einsum("btd,vd->btv", grad, emb) - g_dot_e[..., None]
                ok = (pos_ok[..., None] & introducible[None, None, :]
                      & tf.not_equal(tf.range(vocab)[None, None, :], x_cur[..., None]))
                width = vocab
                tokens_of = lambda flat_idx: flat_idx % width  # noqa: E731
            else:
                safe = tf.maximum(cand, 0)
                scores = tf.einsum("btd,btcd->btc", grad, tf.gather(emb, safe)) - g_dot_e[..., None]
                ok = (pos_ok[..., None] & (cand >= 0) & tf.gather(introducible, safe)
                      & tf.not_equal(cand, x_cur[..., None]))
                width = tf.shape(cand)[-1]
                flat_cand = tf.reshape(cand, [tf.shape(cand)[0], -1])
                tokens_of = lambda flat_idx: tf.gather(flat_cand, flat_idx, batch_dims=1)  # noqa: E731
            scores = tf.where(ok, scores, neg_inf)
            flat = tf.reshape(scores, [tf.shape(scores)[0], -1])
            top_scores, top_idx = tf.math.top_k(flat, k=tf.minimum(m, tf.shape(flat)[1]))
            top_pos = top_idx // width                                            # (B, m)
            top_tok = tokens_of(top_idx)                                          # (B, m)
            # Exact check of the m candidates: one batched forward pass.
            one_hot = tf.one_hot(top_pos, length, on_value=True, off_value=False, dtype=tf.bool)  # (B,m,T)
            x_try = tf.where(one_hot, top_tok[..., None], x_cur[:, None, :])
            mm = tf.shape(x_try)[1]
            flat_try = tf.reshape(x_try, [-1, length])
            out_try = model(tf.cast(flat_try, x.dtype), training=False)
            obj_try = self.objective(loss_fn, tf.repeat(y, mm, axis=0), out_try)
            obj_try = tf.reshape(obj_try, [-1, mm])
            obj_try = tf.where(tf.math.is_finite(top_scores), obj_try, neg_inf)
            best = tf.argmax(obj_try, axis=1, output_type=tf.int32)
            best_obj = tf.gather(obj_try, best, batch_dims=1)
            improve = (best_obj > objective) & ~done
            x_best = tf.gather(x_try, best, batch_dims=1)
            pos_best = tf.gather(top_pos, best, batch_dims=1)
            x_cur = tf.where(improve[:, None], x_best, x_cur)
            changed = changed | (improve[:, None] & tf.one_hot(pos_best, length, on_value=True,
                                                                 off_value=False, dtype=tf.bool))
            return i + 1, x_cur, changed

        _, x_adv, _ = tf.while_loop(
            lambda i, *_: i < k, step,
            (tf.constant(0), x_orig, tf.zeros_like(x_orig, tf.bool)),
        )
        return tf.cast(x_adv, x.dtype)

    # ------------------------------------------------------ serialization
    def get_config(self):
        return {
            "max_substitutions": self.max_substitutions,
            "layer": self.layer,
            "candidates": self.candidates,
            "allowed_tokens": self.allowed_tokens,
            "protected_tokens": list(self.protected_tokens),
            "top_k": self.top_k,
            "check_inputs": self.check_inputs,
            "targeted": self.targeted,
            "loss": None if self.loss is None else keras.saving.serialize_keras_object(self.loss),
            "seed": self.seed,
            "name": self.name,
        }


_RAGGED_MESSAGE = (
    "`x` is a tf.RaggedTensor: HotFlip needs token ids of shape (batch, length). Pad the sequences "
    "first, e.g. `x.to_tensor()` (0 is padding), as `TextVectorization(output_sequence_length=...)` does."
)

_STRINGS_MESSAGE = (
    "`x` holds strings: HotFlip substitutes token ids. Vectorize outside the model "
    "(ids = vectorizer(texts)) and attack the classifier that takes the ids."
)


def _check_takes_ids(model):
    """A model whose input is strings (`TextVectorization` inside) cannot be given ids: a `TypeError` saying so."""
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) == 1 and tf.as_dtype(inputs[0].dtype) == tf.string:
        raise TypeError(
            f"Model {getattr(model, 'name', model)!r} takes strings (its input {inputs[0].name!r} is tf.string: "
            "it vectorizes inside, e.g. with a TextVectorization layer), and HotFlip substitutes token ids, "
            "which that model cannot be given. Attack the classifier that takes the ids: build the model with "
            "its input at the Embedding (keras.Input((length,), dtype='int32') -> Embedding -> ...; "
            "keras_adv.models.presets.text_classifier without `vectorizer=`), copy the weights over, and pass "
            "the ids `vectorizer(texts)`."
        )


def _not_fed_message(model, layers):
    """The error for Embeddings that do not look up the model's input ids as they are."""
    names = ", ".join(repr(layer.name) for layer in layers)
    return (
        f"HotFlip ranks substitutions with the rows of the Embedding matrix at the input ids, but in model "
        f"{getattr(model, 'name', model)!r} the Embedding {names} is not fed the model's input ids as they are "
        "(a layer before it changes them: an IntegerLookup, a shift, hashing, ...), so the ranking would use "
        "the wrong rows and report a robustness that is not there. Attack a model whose input feeds the "
        "Embedding directly: move the id mapping into the data pipeline (ids = lookup(ids)) and give HotFlip "
        "the model from the Embedding on, with those mapped ids."
    )


def _token_list(name, tokens):
    """A sorted list of token ids from ids or a boolean mask (None stays None)."""
    if tokens is None:
        return None
    arr = np.asarray(tokens)
    if arr.dtype == bool:
        arr = np.flatnonzero(arr)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"`{name}` must be a list of token ids or a boolean mask over the vocabulary, got {tokens!r}.")
    if arr.size and arr.min() < 0:
        raise ValueError(f"`{name}` must hold non-negative token ids, got {tokens!r}.")
    return sorted(int(t) for t in arr)


def _candidate_table(candidates):
    """A JSON-able (rows, C) table of replacement ids padded with -1, or None."""
    if candidates is None:
        return None
    if isinstance(candidates, Mapping):
        if not candidates:
            raise ValueError("`candidates` is empty.")
        keys = [int(k) for k in candidates]
        if min(keys) < 0:
            raise ValueError("`candidates` keys must be non-negative token ids.")
        width = max(1, max(len(list(v)) for v in candidates.values()))
        table = np.full((max(keys) + 1, width), -1, np.int64)
        for key, values in candidates.items():
            values = [int(v) for v in values]
            table[int(key), :len(values)] = values
    else:
        table = np.asarray(candidates)
        if table.ndim != 2 or not np.issubdtype(table.dtype, np.integer):
            raise ValueError(
                "`candidates` must be a dict {token: [replacement ids]} or an integer array "
                f"(vocab, C) padded with -1, got shape {table.shape} and dtype {table.dtype}."
            )
    return table.astype(np.int64).tolist()
