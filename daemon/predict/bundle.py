"""The model bundle: the one contract between the trainer and the daemon.

A bundle is a single ONNX file. Input ``tokens`` is int32 ``[batch, 32]``; output ``probs``
is float32 ``[batch, V]``, the softmax over the vocabulary. ``metadata_props`` carry what
the daemon needs to use it (see :data:`REQUIRED_METADATA`). :func:`load_bundle` checks all
of that and refuses anything else with a :class:`BundleError` that says what is wrong.

Only numpy and onnxruntime are used here, so the daemon starts fast and stays small.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MididuetError

FORMAT_VERSION = 1
WINDOW = 32
INPUT_NAME = "tokens"
OUTPUT_NAME = "probs"
PROBS_TOLERANCE = 1e-3  # |sum - 1| allowed for a float32 softmax over a few hundred tokens

META_FORMAT = "mididuet.format"
META_VOCABULARY = "mididuet.vocabulary"
META_WINDOW = "mididuet.window"
META_TRAINING = "mididuet.training"
REQUIRED_METADATA = (META_FORMAT, META_VOCABULARY, META_WINDOW, META_TRAINING)

SHIPPED_MODEL_NAME = "chopin.onnx"
SHIPPED_MODEL_PACKAGE = "mididuet.models"


class BundleError(MididuetError):
    """A model bundle that is missing, damaged, or does not honour the contract."""


def shipped_model_path() -> Path:
    """Where the Chopin model installed with the package lives."""
    return Path(str(resources.files(SHIPPED_MODEL_PACKAGE).joinpath(SHIPPED_MODEL_NAME)))


@dataclass(frozen=True)
class BundleInfo:
    """What a bundle says about itself."""

    path: Path
    vocabulary: tuple[str, ...]
    window: int
    format_version: int
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.vocabulary)

    def token_ids(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.vocabulary)}


def parse_metadata(path: Path, meta: dict[str, str]) -> BundleInfo:
    """Check a bundle's metadata strings and turn them into a :class:`BundleInfo`."""
    missing = [key for key in REQUIRED_METADATA if key not in meta]
    if missing:
        raise BundleError(
            f"{path}: not a mididuet model bundle: metadata lacks {', '.join(missing)} "
            "(export models with mididuet-train)"
        )
    try:
        version = int(meta[META_FORMAT])
    except ValueError:
        raise BundleError(f"{path}: {META_FORMAT} must be an integer, got {meta[META_FORMAT]!r}") from None
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format version {version}, this mididuet reads version {FORMAT_VERSION}; "
            "re-export the model with this version's mididuet-train"
        )
    try:
        vocabulary = json.loads(meta[META_VOCABULARY])
    except json.JSONDecodeError as err:
        raise BundleError(f"{path}: {META_VOCABULARY} is not valid JSON: {err}") from None
    if not (isinstance(vocabulary, list) and vocabulary and all(isinstance(t, str) for t in vocabulary)):
        raise BundleError(f"{path}: {META_VOCABULARY} must be a non-empty JSON list of token strings")
    if len(set(vocabulary)) != len(vocabulary):
        raise BundleError(f"{path}: {META_VOCABULARY} has duplicate tokens")
    try:
        window = int(meta[META_WINDOW])
    except ValueError:
        raise BundleError(f"{path}: {META_WINDOW} must be an integer, got {meta[META_WINDOW]!r}") from None
    if window != WINDOW:
        raise BundleError(f"{path}: window is {window} tokens; mididuet models use {WINDOW}")
    try:
        training = json.loads(meta[META_TRAINING])
    except json.JSONDecodeError as err:
        raise BundleError(f"{path}: {META_TRAINING} is not valid JSON: {err}") from None
    if not isinstance(training, dict):
        raise BundleError(f"{path}: {META_TRAINING} must be a JSON object")
    return BundleInfo(path, tuple(vocabulary), window, version, training)


class ModelRunner:
    """One onnxruntime session over a checked bundle: ``query`` a window, get probabilities.

    Created once at start and warmed with one query, so the first real prediction costs
    what every other one does. Not thread-safe: one caller at a time.
    """

    def __init__(self, path: str | os.PathLike[str], threads: int = 1) -> None:
        import onnxruntime as ort  # deferred: commands that need no model do not pay its import

        self.path = Path(path)
        if not self.path.is_file():
            raise BundleError(f"model file not found: {self.path}")
        options = ort.SessionOptions()
        # One thread: the default two-thread pool has the same median and a worse tail.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf types
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise BundleError(f"{self.path}: not a readable ONNX model ({first_line})") from err
        meta = dict(self._session.get_modelmeta().custom_metadata_map)
        self.info = parse_metadata(self.path, meta)
        self._check_signature()
        self._input = np.zeros((1, self.info.window), dtype=np.int32)
        probs = self.query(self._input[0])
        if probs.shape != (self.info.size,):
            raise BundleError(
                f"{self.path}: output '{OUTPUT_NAME}' has width {probs.shape[-1]} "
                f"but the vocabulary has {self.info.size} tokens"
            )
        # The contract says softmax: a model exported without it (logits), or one that
        # yields NaN, would otherwise play quietly wrong notes (the sampler takes any numbers).
        total = float(probs.sum())
        if not (np.isfinite(probs).all() and probs.min() >= 0.0 and abs(total - 1.0) <= PROBS_TOLERANCE):
            raise BundleError(
                f"{self.path}: output '{OUTPUT_NAME}' is not a probability distribution "
                f"(values {float(probs.min()):.3g}..{float(probs.max()):.3g}, sum {total:.4g}); "
                "export the model with its softmax"
            )

    def _check_signature(self) -> None:
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            names = [i.name for i in inputs]
            raise BundleError(f"{self.path}: expected one input named '{INPUT_NAME}', found {names}")
        if inputs[0].type != "tensor(int32)":
            raise BundleError(f"{self.path}: input '{INPUT_NAME}' must be int32, found {inputs[0].type}")
        shape = inputs[0].shape
        if len(shape) != 2 or shape[1] != self.info.window:
            raise BundleError(
                f"{self.path}: input '{INPUT_NAME}' must have shape [batch, {self.info.window}], found {shape}"
            )
        if OUTPUT_NAME not in [o.name for o in outputs]:
            names = [o.name for o in outputs]
            raise BundleError(f"{self.path}: expected an output named '{OUTPUT_NAME}', found {names}")
        out = next(o for o in outputs if o.name == OUTPUT_NAME)
        width = out.shape[-1] if len(out.shape) == 2 else None
        if isinstance(width, int) and width != self.info.size:
            raise BundleError(
                f"{self.path}: output '{OUTPUT_NAME}' has width {width} "
                f"but the vocabulary has {self.info.size} tokens"
            )

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return self.info.vocabulary

    def query(self, window: np.ndarray) -> np.ndarray:
        """Probabilities of the next token after ``window`` (32 ids). Blocks for one inference.

        Raises ``ValueError`` for a window of the wrong length or an id outside the
        vocabulary: onnxruntime would silently wrap -1 to the last token.
        """
        if window.shape != (self.info.window,):
            raise ValueError(f"window must hold {self.info.window} token ids, got shape {window.shape}")
        if window.size and (int(window.min()) < 0 or int(window.max()) >= self.info.size):
            raise ValueError(f"token ids must be in range 0..{self.info.size - 1}")
        self._input[0] = window
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: self._input})[0][0]

    def query_batch(self, windows: np.ndarray) -> np.ndarray:
        """Probabilities for a ``[batch, 32]`` array of ids (evaluation and tests)."""
        windows = np.ascontiguousarray(windows, dtype=np.int32)
        if windows.ndim != 2 or windows.shape[1] != self.info.window:
            raise ValueError(f"windows must have shape [batch, {self.info.window}], got {windows.shape}")
        if windows.size and (int(windows.min()) < 0 or int(windows.max()) >= self.info.size):
            raise ValueError(f"token ids must be in range 0..{self.info.size - 1}")
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: windows})[0]


def load_bundle(path: str | os.PathLike[str] | None = None) -> ModelRunner:
    """Open and check a bundle (the shipped Chopin model when ``path`` is None).

    Raises :class:`BundleError` with a message naming the problem.
    """
    return ModelRunner(shipped_model_path() if path is None else path)
