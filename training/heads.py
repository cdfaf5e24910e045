"""The expressive parts of a network: the features the trunk reads, the heads it feeds.

- **Features in**: each window token's classes — delay, length, velocity and voicing,
  class + 1, 0 unknown (:mod:`mididuet.daemon.music.expression`) — are embedded and
  added to the token's embedding, so the trunk sees the rhythm and dynamics it is to
  continue.
- **Heads out**: one softmax per attribute, read from the trunk's last hidden layer.
  A head is *conditioned on the token* it describes: its logits are the context's
  (``Dense`` of the hidden layer) plus a learned row of the token (``Embedding(V, C)``),
  so a chord's voicing and a single note's length each get their own bias. In training
  the row is that of the true next token (each position's target); the exported Keras
  model computes every token's row at once, ``[batch, V, C]``, which the export's graph
  rewrite factors back into the context's logits and the constant table
  (:func:`.graph.factor_heads`); the daemon adds the row of the token it sampled, so one
  onnxruntime call decides everything. Unconditioned heads
  (``conditioned=False``, to measure what the conditioning is worth) export the same
  shape with an all-zero table.
- **The velocity's and the length's own layers** (encoding versions 4 and 5): the velocity
  head reads, instead, a ReLU layer over the same hidden layer and the loud features of
  the position it predicts from (:func:`own_hidden`): the last 8 tokens' exact loudness
  against the level the next velocity is measured from; the length head, one over the
  known features: the last 8 tokens' lengths, or how long they have sounded, as they stand
  when the next token is decided.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import keras

from mididuet.daemon.music.expression import KNOWN, LOUD, Encoding

from .expression import IGNORE
from .loss_weights import training_weights
from .smoothing import checked_smoothing, smoothed_crossentropy

OWN_EMBEDDING = 8  # per feature, into a head's own hidden layer


@dataclass(frozen=True)
class OwnLayer:
    """A head's own hidden layer, over the shared hidden layer and the features only it reads."""

    head: str
    prefix: str  # of its layers' names: PREFIX_embedding and PREFIX_hidden hold its weights
    features: tuple[str, ...]


# In column order, after the trunk's. Read by every head, the loud features had cost the
# others a little (docs/model-quality.md).
OWN_LAYERS = (OwnLayer("velocity", "loud", LOUD), OwnLayer("length", "known", KNOWN))


def own_columns(encoding: Encoding) -> Iterator[tuple[OwnLayer, int, int]]:
    """Each own layer the encoding has, with its columns' first index and count."""
    first = len(encoding.trunk_features)
    for layer in OWN_LAYERS:
        count = sum(name in layer.features for name in encoding.features)
        if count:
            yield layer, first, count
            first += count


def feature_sizes(encoding: Encoding) -> dict[str, int]:
    """Each trunk feature's vocabulary: its classes, the unknown index 0 (and held)."""
    return {name: encoding.feature_size(name) for name in encoding.trunk_features}


def add_features(x: Any, features: Any, encoding: Encoding, width: int) -> Any:
    """``x`` (token embeddings ``[batch, T, width]``) plus each trunk feature's embedding."""
    layers = keras.layers
    for k, (name, size) in enumerate(feature_sizes(encoding).items()):
        embedded = layers.Embedding(size, width, name=f"feature_{name}")(features[:, :, k])
        x = layers.Add(name=f"with_{name}")([x, embedded])
    return x


def own_hidden(h: Any, columns: Any, encoding: Encoding, layer: OwnLayer, width: int, dropout: float = 0.0) -> Any:
    """A head's own hidden layer (the velocity's from version 4, the length's from 5): the
    heads' hidden ``h`` (``[..., H]``) beside the layer's feature ``columns`` (``[..., K]``)
    at the same positions, each embedded (one stacked table, each column offset to its
    rows), through one ReLU layer, so the head can weigh the last tokens against each other
    and the context. The trunk cannot give the head these: fed to it, the window's
    velocities and levels (banded or exact) had moved the velocity by nothing, and a window
    token's features are frozen at its onset, before the lengths the known ones report have
    ended (docs/model-quality.md)."""
    layers = keras.layers
    p = layer.prefix
    flat = StackedEmbedding(columns.shape[-1], encoding.feature_size(layer.features[0]), OWN_EMBEDDING,
                            name=f"{p}_embedding")(columns)
    hidden = layers.Dense(width, activation="relu", name=f"{p}_hidden")(layers.Concatenate(name=f"{p}_with")([h, flat]))
    return layers.Dropout(dropout, name=f"{p}_dropout")(hidden) if dropout else hidden


class StackedEmbedding(keras.layers.Layer):
    """``count`` integer columns ``[..., count]``, each embedded in its own table of ``size``
    rows, side by side: ``[..., count × width]``. The tables are one weight, each column
    shifted to its rows, so the export is one Gather, not ``count``."""

    def __init__(self, count: int, size: int, width: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.count, self.size, self.width = count, size, width

    def build(self, input_shape: Any) -> None:
        self.table = self.add_weight(shape=(self.count * self.size, self.width), initializer="uniform",
                                     name="embeddings")

    def call(self, columns: Any) -> Any:
        rows = columns + keras.ops.arange(self.count, dtype="int32") * self.size
        embedded = keras.ops.take(self.table, rows, axis=0)
        return keras.ops.reshape(embedded, (-1, *columns.shape[1:-1], self.count * self.width))

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (*input_shape[:-1], self.count * self.width)


def head_outputs(h: Any, next_tokens: Any, vocab_size: int, encoding: Encoding, conditioned: bool,
                 own: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The training heads: for each attribute, its softmax given the token each position
    is told of (``next_tokens``, the targets, in training); ``own``: heads that read their
    own hidden layer instead of ``h`` (:func:`own_hidden`)."""
    layers = keras.layers
    outputs = {}
    for name in encoding.heads:
        logits = layers.Dense(encoding.size(name), name=f"{name}_context")((own or {}).get(name, h))
        table = layers.Embedding(vocab_size, encoding.size(name), name=f"{name}_token", trainable=conditioned,
                                 embeddings_initializer="zeros")
        logits = layers.Add(name=f"{name}_logits")([logits, table(next_tokens)])
        outputs[name] = layers.Activation("softmax", name=name)(logits)
    return outputs


class EveryToken(keras.layers.Layer):
    """A head's softmax for every token at once: ``context [batch, C]`` plus the token
    table ``[V, C]`` gives ``[batch, V, C]``."""

    def __init__(self, table: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._table = table  # the trained Embedding(V, C) weights, copied in

    def build(self, input_shape: Any) -> None:
        self.table = self.add_weight(shape=self._table.shape, initializer="zeros", trainable=False, name="table")
        self.table.assign(self._table)

    def call(self, context: Any) -> Any:
        return keras.ops.softmax(keras.ops.expand_dims(context, 1) + keras.ops.expand_dims(self.table, 0), axis=-1)


def export_heads(h: Any, fit: keras.Model, encoding: Encoding, own: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The exported heads on hidden ``h`` (``[batch, H]``), with the fit model's weights;
    ``own`` as in :func:`head_outputs`."""
    outputs = {}
    for name in encoding.heads:
        context = fit.get_layer(f"{name}_context")
        dense = keras.layers.Dense(encoding.size(name), name=f"{name}_context")
        logits = dense((own or {}).get(name, h))
        dense.set_weights(context.get_weights())
        outputs[name] = EveryToken(fit.get_layer(f"{name}_token").get_weights()[0], name=name)(logits)
    return outputs


def copy_features(model: keras.Model, fit: keras.Model, encoding: Encoding, fold: Any = None) -> None:
    """Give ``model``'s feature embeddings the trained ones (``fold``: a matrix each is
    multiplied by, as the wavenet's export folds its input projection into the tables),
    and its own layers theirs."""
    for name in encoding.trunk_features:
        (table,) = fit.get_layer(f"feature_{name}").get_weights()
        model.get_layer(f"feature_{name}").set_weights([table if fold is None else table @ fold])
    copy_own_layers(model, fit, encoding)


def copy_own_layers(model: keras.Model, fit: keras.Model, encoding: Encoding) -> None:
    """Give ``model``'s own layers of the heads (:func:`own_hidden`) the trained weights
    (none before version 4)."""
    for layer, _, _ in own_columns(encoding):
        for name in (f"{layer.prefix}_embedding", f"{layer.prefix}_hidden"):
            model.get_layer(name).set_weights(fit.get_layer(name).get_weights())


def compile_expressive(model: keras.Model, encoding: Encoding, learning_rate: float = 1e-3,
                       head_weights: Mapping[str, float] | None = None,
                       head_smoothing: Mapping[str, float] | None = None) -> None:
    """Adam; sparse cross-entropy for the token and each head (targets of ``IGNORE`` left
    out: voicing for single notes, delay before a pulse is known), the heads weighed by
    :func:`training_weights`; a head in ``head_smoothing`` is trained toward its class's
    neighbours too (:mod:`.smoothing`)."""
    losses: dict[str, Any] = {"probs": keras.losses.SparseCategoricalCrossentropy()}
    weights = {"probs": 1.0, **training_weights(head_weights, encoding)}
    smoothing = checked_smoothing(head_smoothing, encoding.heads)
    for name in encoding.heads:
        epsilon = smoothing.get(name, 0.0)
        losses[name] = (smoothed_crossentropy(encoding.size(name), epsilon, IGNORE) if epsilon
                        else keras.losses.SparseCategoricalCrossentropy(ignore_class=IGNORE))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=losses, loss_weights=weights,
                  metrics={"probs": ["sparse_categorical_accuracy"]})
