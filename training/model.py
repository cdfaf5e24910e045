"""The networks: the seed's Conv1D "WaveNet" exactly as the notebook builds it, and a real one.

- ``seed``: the reference notebook's model (DESIGN.md), kept exactly. Its max-pooling
  halves the sequence three times, so the last convolution sees a summary of 4 positions
  and GlobalMaxPool forgets where anything was.
- ``wavenet``: the WaveNet paper's block — gated (tanh ⊙ sigmoid), dilated, causal
  convolutions with residual and skip connections — with kernel 2 and dilations
  1, 2, 4, 8, 16, so the last position's receptive field is exactly the 32-token window.
  Being causal and unpooled, it predicts the next token at *every* position, and is
  trained that way (32 targets per forward pass); the exported model reads only the last
  position, so the bundle contract ([batch, 32] → [batch, V]) is unchanged.

Both are composed from stock Keras layers (functional API), and tf2onnx converts them as
they are. With an :class:`~mididuet.daemon.music.expression.Encoding` both also read the
window's rhythm and dynamics and predict how the next token is played (:mod:`.heads`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import keras

from mididuet.daemon.music.expression import Encoding
from mididuet.daemon.predict.bundle import WINDOW

from . import ARCHITECTURES
from .heads import (
    add_features,
    compile_expressive,
    copy_features,
    copy_own_layers,
    export_heads,
    head_outputs,
    own_columns,
    own_hidden,
)

WAVENET_DILATIONS = (1, 2, 4, 8, 16)  # kernel 2: receptive field 1 + sum = 32 tokens
WAVENET_EMBEDDING = 64
WAVENET_CHANNELS = 64  # residual stream
WAVENET_SKIP = 128
WAVENET_HEAD = 256
WAVENET_DROPOUT = 0.2
WAVENET_EXPRESSION_CHANNELS = 48  # the heads' stack: narrower, since decisions must stay fast
WAVENET_EXPRESSION_SKIP = 96
WAVENET_EXPRESSION_HEAD = 128
SEED_HIDDEN = 256  # the width of the seed's last Dense, which its softmax and heads read
SEED_DROPOUT = 0.2


@dataclass
class Network:
    """What the trainer needs: the model to fit, how its targets look, and the model to export."""

    fit: keras.Model  # the model ``fit`` trains
    per_position: bool  # True: ``fit`` predicts at every position, targets are [batch, 32]
    to_export: Callable[[], keras.Model]  # [batch, 32] ids → [batch, V], the trained weights
    encoding: Encoding | None = None  # the expressive heads' classes, when it has them
    head_weights: Mapping[str, float] | None = None  # overrides of the heads' training loss weights
    head_smoothing: Mapping[str, float] | None = None  # heads trained toward their classes' neighbours too

    def export(self) -> keras.Model:
        return self.to_export()

    def compile(self, learning_rate: float = 1e-3) -> None:
        """A fresh optimizer (the start, and fine-tuning after pre-training)."""
        if self.encoding is None:
            compile_model(self.fit, learning_rate)
        else:
            compile_expressive(self.fit, self.encoding, learning_rate, self.head_weights, self.head_smoothing)


def compile_model(model: keras.Model, learning_rate: float = 1e-3) -> None:
    """Adam and sparse cross-entropy, as the seed (a fresh optimizer for fine-tuning)."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )


def _seed_trunk(hidden: str | None = None) -> list[keras.layers.Layer]:
    """The seed's layers between its embedding and its softmax: three causal dilated Conv1D
    blocks → GlobalMaxPool → Dense 256 (named ``hidden`` when given)."""
    layers = keras.layers
    return [
        layers.Conv1D(64, 3, padding="causal", activation="relu"), layers.Dropout(SEED_DROPOUT), layers.MaxPool1D(2),
        layers.Conv1D(128, 3, dilation_rate=2, padding="causal", activation="relu"), layers.Dropout(SEED_DROPOUT),
        layers.MaxPool1D(2),
        layers.Conv1D(256, 3, dilation_rate=4, padding="causal", activation="relu"), layers.Dropout(SEED_DROPOUT),
        layers.MaxPool1D(2), layers.GlobalMaxPool1D(), layers.Dense(SEED_HIDDEN, activation="relu", name=hidden),
    ]


def build_seed_model(vocab_size: int, window: int = WINDOW) -> keras.Model:
    """Embedding(V, 100) → three causal dilated Conv1D blocks → GlobalMaxPool → Dense → softmax."""
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(window,), dtype="int32", name="tokens"),
            layers.Embedding(vocab_size, 100),
            *_seed_trunk(),
            layers.Dense(vocab_size, activation="softmax"),
        ],
        name="seed_wavenet",
    )
    compile_model(model)
    return model


def build_expressive_seed(vocab_size: int, encoding: Encoding, conditioned: bool = True,
                          window: int = WINDOW) -> Network:
    """The seed's network, reading the window's features and with the heads on its Dense 256
    (not compiled: :func:`build_network` compiles it with the heads' losses)."""
    layers = keras.layers
    tokens = keras.Input(shape=(window,), dtype="int32", name="tokens")
    features = keras.Input(shape=(window, len(encoding.features)), dtype="int32", name="features")
    next_token = keras.Input(shape=(), dtype="int32", name="next_tokens")
    trunk = _seed_trunk(hidden="hidden")
    embedding = layers.Embedding(vocab_size, 100, name="embedding")
    x = add_features(embedding(tokens), features, encoding, 100)
    for layer in trunk:
        x = layer(x)
    probs = layers.Dense(vocab_size, activation="softmax", name="probs")(x)
    own = _own_heads(x, features, encoding, SEED_HIDDEN, SEED_DROPOUT)
    fit = keras.Model([tokens, features, next_token],
                      {"probs": probs, **head_outputs(x, next_token, vocab_size, encoding, conditioned, own)},
                      name="seed_expressive")
    return Network(fit=fit, per_position=False, encoding=encoding,
                   to_export=lambda: _seed_export(fit, trunk, embedding, encoding, window))


def _seed_export(fit: keras.Model, trunk: list, embedding: keras.layers.Layer, encoding: Encoding,
                 window: int) -> keras.Model:
    """The trained seed with every token's head rows: (tokens, features) → probs, heads."""
    tokens = keras.Input(shape=(window,), dtype="int32", name="tokens")
    features = keras.Input(shape=(window, len(encoding.features)), dtype="int32", name="features")
    x = embedding(tokens)
    for k, name in enumerate(encoding.trunk_features):
        x = x + fit.get_layer(f"feature_{name}")(features[:, :, k])
    for layer in trunk:
        x = layer(x)
    own = _own_heads(x, features, encoding, SEED_HIDDEN)
    outputs = {"probs": fit.get_layer("probs")(x), **export_heads(x, fit, encoding, own)}
    model = keras.Model([tokens, features], outputs, name="seed_expressive")
    copy_own_layers(model, fit, encoding)
    return model


def _own_heads(h: Any, features: Any, encoding: Encoding, width: int, dropout: float = 0.0,
               every_position: bool = False) -> dict[str, Any]:
    """The heads that read their own hidden layer with their own features (none before
    version 4): those of the last position of ``features``, or of ``every_position``."""
    own = {}
    for layer, first, count in own_columns(encoding):
        columns = features[:, :, first:first + count] if every_position else features[:, -1, first:first + count]
        own[layer.head] = own_hidden(h, columns, encoding, layer, width, dropout)
    return own


@dataclass(frozen=True)
class Stack:
    """The sizes of one gated residual stack, and the prefix of its layers' names."""

    prefix: str = ""
    channels: int = WAVENET_CHANNELS
    skip: int = WAVENET_SKIP
    head: int = WAVENET_HEAD


TRUNK = Stack()
# The heads' own stack, beside the token's: the heads then do not compete with the token
# for the trunk, and learn what the token does not need (docs/model-quality.md).
EXPRESSION = Stack("expr_", WAVENET_EXPRESSION_CHANNELS, WAVENET_EXPRESSION_SKIP, WAVENET_EXPRESSION_HEAD)


def _stack(embedded: Any, stack: Stack) -> Any:
    """1×1 projection → 5 gated residual blocks (dilations 1..16) → skips → head (training graph)."""
    layers = keras.layers
    p, c = stack.prefix, stack.channels
    x = layers.Dense(c, name=f"{p}input_projection")(embedded)
    gated = []
    for i, dilation in enumerate(WAVENET_DILATIONS):
        conv = {"kernel_size": 2, "dilation_rate": dilation, "padding": "causal"}
        filt = layers.Conv1D(c, activation="tanh", name=f"{p}block{i}_filter", **conv)(x)
        gate = layers.Conv1D(c, activation="sigmoid", name=f"{p}block{i}_gate", **conv)(x)
        z = layers.Multiply(name=f"{p}block{i}_gated")([filt, gate])
        z = layers.Dropout(WAVENET_DROPOUT, name=f"{p}block{i}_dropout")(z)
        gated.append(z)
        if i < len(WAVENET_DILATIONS) - 1:  # the last block's residual output would feed nothing
            x = layers.Add(name=f"{p}block{i}_residual")([x, layers.Dense(c, name=f"{p}block{i}_res")(z)])
    skip = layers.Dense(stack.skip, activation="relu", name=f"{p}skip")(layers.Concatenate(name=f"{p}skips")(gated))
    h = layers.Dense(stack.head, activation="relu", name=f"{p}head")(skip)
    return layers.Dropout(WAVENET_DROPOUT, name=f"{p}head_dropout")(h)


def build_wavenet(vocab_size: int, window: int = WINDOW, encoding: Encoding | None = None,
                  conditioned: bool = True) -> Network:
    """Embedding → 1×1 projection → 5 gated residual blocks (dilations 1..16) → skips → head.

    Each block: z = tanh(W_f ∗ x) ⊙ σ(W_g ∗ x) (kernel 2, dilated, causal), then a 1×1
    residual back into x and a 1×1 skip; the skips are summed (one Dense over the
    concatenated blocks is the same sum), rectified, and read by the head. Trained
    causally at every position; exported by :func:`_wavenet_last_position`. With an
    ``encoding``, the embedding also holds the window's features, and a second, narrower
    stack (:data:`EXPRESSION`) over the same embedding feeds the heads. Not compiled:
    :func:`build_network` compiles it with the heads' losses.
    """
    if window != 2 ** len(WAVENET_DILATIONS):
        raise ValueError(f"the wavenet's receptive field is {2 ** len(WAVENET_DILATIONS)} tokens, not {window}")
    layers = keras.layers
    tokens = keras.Input(shape=(window,), dtype="int32", name="tokens")
    inputs = [tokens]
    x = layers.Embedding(vocab_size, WAVENET_EMBEDDING, name="embedding")(tokens)
    if encoding is not None:
        features = keras.Input(shape=(window, len(encoding.features)), dtype="int32", name="features")
        inputs.append(features)
        x = add_features(x, features, encoding, WAVENET_EMBEDDING)
    probs = layers.Dense(vocab_size, activation="softmax", name="probs")(_stack(x, TRUNK))
    if encoding is None:
        fit = keras.Model(tokens, probs, name="wavenet_every_position")
    else:
        next_tokens = keras.Input(shape=(window,), dtype="int32", name="next_tokens")
        h = _stack(x, EXPRESSION)
        heads = head_outputs(h, next_tokens, vocab_size, encoding, conditioned,
                             _own_heads(h, features, encoding, EXPRESSION.head, WAVENET_DROPOUT,
                                        every_position=True))
        fit = keras.Model([*inputs, next_tokens], {"probs": probs, **heads}, name="wavenet_every_position")
    return Network(fit=fit, per_position=True, encoding=encoding,
                   to_export=lambda: _wavenet_last_position(fit, vocab_size, window, encoding))


def _last_position_stack(x: Any, fit: keras.Model, stack: Stack, window: int, weights: dict[str, list],
                         project: bool) -> Any:
    """One stack of the trained wavenet over 2-D rows ``x`` (``[batch × window, width]``),
    computing only the last position; the layers' trained weights go into ``weights``.
    ``project``: apply the input projection here (else it is folded into the embeddings)."""
    layers = keras.layers
    p, c = stack.prefix, stack.channels
    if project:
        x = layers.Dense(c, name=f"{p}input_projection")(x)
        weights[f"{p}input_projection"] = fit.get_layer(f"{p}input_projection").get_weights()
    lasts = []
    length = window
    for i in range(len(WAVENET_DILATIONS)):
        length //= 2
        # Two consecutive kept rows side by side: [x(p − d), x(p)], a kernel-2 window.
        pairs = keras.ops.reshape(x, (-1, 2 * c))
        filt = layers.Dense(c, activation="tanh", name=f"{p}block{i}_filter")(pairs)
        gate = layers.Dense(c, activation="sigmoid", name=f"{p}block{i}_gate")(pairs)
        z = layers.Multiply(name=f"{p}block{i}_gated")([filt, gate])
        lasts.append(keras.ops.reshape(z, (-1, length * c))[:, -c:])  # each sequence's last position
        for part in ("filter", "gate"):
            kernel, bias = fit.get_layer(f"{p}block{i}_{part}").get_weights()  # kernel [2, C, C]
            weights[f"{p}block{i}_{part}"] = [kernel.reshape(2 * c, c), bias]
        if i < len(WAVENET_DILATIONS) - 1:
            res = layers.Dense(c, name=f"{p}block{i}_res")(z)
            x = layers.Add(name=f"{p}block{i}_residual")([pairs[:, c:], res])  # x(p) for the kept p
            weights[f"{p}block{i}_res"] = fit.get_layer(f"{p}block{i}_res").get_weights()
    skip = layers.Dense(stack.skip, activation="relu", name=f"{p}skip")(layers.Concatenate(name=f"{p}skips")(lasts))
    for name in (f"{p}skip", f"{p}head"):
        weights[name] = fit.get_layer(name).get_weights()
    return layers.Dense(stack.head, activation="relu", name=f"{p}head")(skip)


def _wavenet_last_position(fit: keras.Model, vocab_size: int, window: int,
                           encoding: Encoding | None = None) -> keras.Model:
    """The trained wavenet computing only what the last position's prediction needs.

    The last output depends, in the block with dilation d, on positions 31, 31−2d, … only.
    A kernel-2 convolution dilated by d over those is a kernel-2, stride-2 convolution
    over the positions the previous block kept — and that is a matrix product after
    reshaping [L, C] to [L/2, 2C]. So each block is a few MatMuls over 16, 8, 4, 2, 1
    positions instead of convolutions over 5 × 32; the skips are read at the last
    position; all of it on 2-D tensors. Without heads the input projection is folded into
    the embedding table. Same weights, same numbers (the trainer checks both models agree
    before exporting), in far fewer ONNX nodes and faster than the seed per prediction
    (docs/model-quality.md).
    """
    layers = keras.layers
    tokens = keras.Input(shape=(window,), dtype="int32", name="tokens")
    emb = fit.get_layer("embedding").get_weights()[0]
    weights: dict[str, list] = {"probs": fit.get_layer("probs").get_weights()}
    if encoding is None:
        proj_w, proj_b = fit.get_layer("input_projection").get_weights()
        embedding = layers.Embedding(vocab_size, WAVENET_CHANNELS, name="embedding")
        # Rows are (sequence, position) pairs, positions consecutive within a sequence. Staying
        # 2-D keeps every Dense a single MatMul + Add in onnxruntime: on 3-D tensors tf2onnx
        # wraps each one in Shape → Gather → Concat → Reshape chains that cost more than the maths.
        x = keras.ops.reshape(embedding(tokens), (-1, WAVENET_CHANNELS))
        h = _last_position_stack(x, fit, TRUNK, window, weights, project=False)
        model = keras.Model(tokens, layers.Dense(vocab_size, activation="softmax", name="probs")(h), name="wavenet")
        embedding.set_weights([emb @ proj_w + proj_b])
    else:
        features = keras.Input(shape=(window, len(encoding.features)), dtype="int32", name="features")
        embedding = layers.Embedding(vocab_size, WAVENET_EMBEDDING, name="embedding")
        embedded = add_features(embedding(tokens), features, encoding, WAVENET_EMBEDDING)
        x = keras.ops.reshape(embedded, (-1, WAVENET_EMBEDDING))
        h = _last_position_stack(x, fit, TRUNK, window, weights, project=True)
        h_expression = _last_position_stack(x, fit, EXPRESSION, window, weights, project=True)
        probs = layers.Dense(vocab_size, activation="softmax", name="probs")(h)
        own = _own_heads(h_expression, features, encoding, EXPRESSION.head)
        model = keras.Model([tokens, features], {"probs": probs, **export_heads(h_expression, fit, encoding, own)},
                            name="wavenet")
        embedding.set_weights([emb])
        copy_features(model, fit, encoding)
    for name, values in weights.items():
        model.get_layer(name).set_weights(values)
    return model


def build_network(arch: str, vocab_size: int, encoding: Encoding | None = None, conditioned: bool = True,
                  head_weights: Mapping[str, float] | None = None,
                  head_smoothing: Mapping[str, float] | None = None) -> Network:
    """The network for ``arch``, with the expressive heads when given their ``encoding``
    (``head_weights``: overrides of their training loss weights; ``head_smoothing``: each
    smoothed head's ε, :mod:`.smoothing`); raises ``ValueError`` for an unknown name or head."""
    if arch == "seed" and encoding is None:
        model = build_seed_model(vocab_size)
        return Network(fit=model, per_position=False, to_export=lambda: model)
    if arch == "seed":
        net = build_expressive_seed(vocab_size, encoding, conditioned)
    elif arch == "wavenet":
        net = build_wavenet(vocab_size, encoding=encoding, conditioned=conditioned)
    else:
        raise ValueError(f"arch must be one of {', '.join(ARCHITECTURES)}, got {arch!r}")
    # Compiled here, once, so the builders need not carry the heads' losses.
    net.head_weights, net.head_smoothing = head_weights, head_smoothing
    net.compile()
    return net


def build_model(arch: str, vocab_size: int) -> keras.Model:
    """The exported model for ``arch`` ([batch, 32] ids → [batch, V] probabilities)."""
    return build_network(arch, vocab_size).export()
