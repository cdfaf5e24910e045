"""The seed's Conv1D "WaveNet", exactly as the reference notebook builds it (Keras 3)."""

from __future__ import annotations

import keras

from daemon.bundle import WINDOW

ARCHITECTURES = ("seed",)


def build_seed_model(vocab_size: int, window: int = WINDOW) -> keras.Model:
    """Embedding(V, 100) → three causal dilated Conv1D blocks → GlobalMaxPool → Dense → softmax."""
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(window,), dtype="int32", name="tokens"),
            layers.Embedding(vocab_size, 100),
            layers.Conv1D(64, 3, padding="causal", activation="relu"),
            layers.Dropout(0.2),
            layers.MaxPool1D(2),
            layers.Conv1D(128, 3, dilation_rate=2, padding="causal", activation="relu"),
            layers.Dropout(0.2),
            layers.MaxPool1D(2),
            layers.Conv1D(256, 3, dilation_rate=4, padding="causal", activation="relu"),
            layers.Dropout(0.2),
            layers.MaxPool1D(2),
            layers.GlobalMaxPool1D(),
            layers.Dense(256, activation="relu"),
            layers.Dense(vocab_size, activation="softmax"),
        ],
        name="seed_wavenet",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def build_model(arch: str, vocab_size: int) -> keras.Model:
    if arch == "seed":
        return build_seed_model(vocab_size)
    raise ValueError(f"arch must be one of {', '.join(ARCHITECTURES)}, got {arch!r}")
