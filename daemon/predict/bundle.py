"""The model bundle: the one contract between the trainer and the daemon.

A bundle is a single ONNX file; ``metadata_props`` carry what the daemon needs to use it
(:data:`REQUIRED_METADATA`). Two formats:

- **1** (the seed's): input ``tokens`` int32 ``[batch, 32]``; output ``probs`` float32
  ``[batch, V]``, the softmax over the vocabulary.
- **2** (expressive): ``tokens`` stays the first input and ``probs`` the first output. A
  second input ``features`` int32 ``[batch, 32, F]`` holds each window token's classes
  (one per head, then (version 3) what sounds at its onset, then (version 4) how loud it
  and the 7 tokens before it were against the level after it, then (version 5) how long
  each of the 8 tokens before it sounded, or has sounded so far, in the order the metadata
  declares: class + 1, 0 unknown), and two more outputs per head
  ``h``: ``h`` float32 ``[batch, C]``, the window's logits over that head's classes, and
  ``h.by_token`` float32 ``[V, C]``, what each token adds to them. Should token ``t`` be
  the one played, the head's distribution is ``softmax(h + h.by_token[t])``
  (:meth:`Prediction.head`). ``mididuet.expression`` declares the features, the heads and
  every class (:class:`..music.expression.Encoding`), so a reader needs nothing else.

The heads are factored so because the daemon needs one token's row of each: a softmax
over every token's ``[V, C]`` in the graph cost ~30% of each call
(``benchmarks/RESULTS.md``). The tables are constant, fetched once at load.

:func:`load_bundle` checks all of that and refuses anything else with a
:class:`BundleError` that names the rule it breaks. Only numpy and onnxruntime are used
here, so the daemon starts fast and stays small.
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
from ..music.expression import Encoding

FORMAT_VERSIONS = (1, 2)
EXPRESSIVE_FORMAT = 2
WINDOW = 32
INPUT_NAME = "tokens"
FEATURES_NAME = "features"
OUTPUT_NAME = "probs"
TABLE_SUFFIX = ".by_token"  # format 2: head h's per-token logits are the output h + TABLE_SUFFIX
PROBS_TOLERANCE = 1e-3  # |sum - 1| allowed for a float32 softmax over a few hundred classes

META_FORMAT = "mididuet.format"
META_VOCABULARY = "mididuet.vocabulary"
META_WINDOW = "mididuet.window"
META_TRAINING = "mididuet.training"
META_EXPRESSION = "mididuet.expression"  # format 2
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
    expression: Encoding | None = None  # format 2: the heads' classes

    @property
    def size(self) -> int:
        return len(self.vocabulary)

    def token_ids(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.vocabulary)}


def softmax(logits: np.ndarray) -> np.ndarray:
    """The softmax over the last axis, in float64."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted, dtype=np.float64)
    return e / e.sum(axis=-1, keepdims=True)


def by_token(context: np.ndarray, table: np.ndarray) -> np.ndarray:
    """A head's distribution for every token at once: ``context [batch, C]`` and
    ``table [V, C]`` give ``[batch, V, C]`` (offline: evaluation and checks)."""
    return softmax(context[:, None, :] + table[None, :, :]).astype(np.float32)


@dataclass(frozen=True)
class Prediction:
    """One window's prediction: the next token's probabilities ``[V]`` and, for format 2,
    each head's logits ``[C]`` for the window and the bundle's per-token tables."""

    probs: np.ndarray
    heads: dict[str, np.ndarray]
    tables: dict[str, np.ndarray] = field(default_factory=dict)
    # The heads' logits end to end, in ``heads``' order, each head's a view of it (a
    # bundle's prediction): :class:`.heads.HeadSampler` reads them without concatenating.
    logits: np.ndarray | None = None

    def head(self, name: str, token_id: int) -> np.ndarray:
        """Head ``name``'s distribution over its classes if token ``token_id`` is played."""
        return softmax(self.heads[name] + self.tables[name][token_id])


def _json(path: Path, meta: dict[str, str], key: str) -> Any:
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError as err:
        raise BundleError(f"{path}: {key} is not valid JSON: {err}") from None


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
    if version not in FORMAT_VERSIONS:
        raise BundleError(
            f"{path}: bundle format version {version}, this mididuet reads versions "
            f"{', '.join(map(str, FORMAT_VERSIONS))}; re-export the model with this version's mididuet-train"
        )
    vocabulary = _json(path, meta, META_VOCABULARY)
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
    training = _json(path, meta, META_TRAINING)
    if not isinstance(training, dict):
        raise BundleError(f"{path}: {META_TRAINING} must be a JSON object")
    expression = None
    if version == EXPRESSIVE_FORMAT:
        if META_EXPRESSION not in meta:
            raise BundleError(f"{path}: a format-2 bundle must declare its heads in {META_EXPRESSION}")
        declared = _json(path, meta, META_EXPRESSION)
        try:
            expression = Encoding.from_metadata(declared if isinstance(declared, dict) else {})
        except ValueError as err:
            raise BundleError(f"{path}: {META_EXPRESSION}: {err}") from None
    elif META_EXPRESSION in meta:
        raise BundleError(f"{path}: {META_EXPRESSION} is only allowed in format {EXPRESSIVE_FORMAT} "
                          f"(this is {version})")
    return BundleInfo(path, tuple(vocabulary), window, version, training, expression)


def open_session(path: Path, threads: int = 1) -> Any:
    """An onnxruntime session over the ONNX file at ``path``, as the daemon runs it (no
    contract checked yet); :class:`BundleError` when the file is missing or unreadable."""
    import onnxruntime as ort  # deferred: commands that need no model do not pay its import

    if not path.is_file():
        raise BundleError(f"model file not found: {path}")
    options = ort.SessionOptions()
    # One thread: the default two-thread pool has the same median and a worse tail.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf types
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BundleError(f"{path}: not a readable ONNX model ({first_line})") from err


class ModelRunner:
    """One onnxruntime session over a checked bundle: ``query`` a window, get probabilities;
    ``predict`` a window with its features, get the heads too.

    Created once at start and warmed with one query, so the first real prediction costs
    what every other one does. Not thread-safe: one caller at a time.
    """

    def __init__(self, path: str | os.PathLike[str], threads: int = 1) -> None:
        self.path = Path(path)
        self._session = open_session(self.path, threads)
        meta = dict(self._session.get_modelmeta().custom_metadata_map)
        self.info = parse_metadata(self.path, meta)
        self.heads: tuple[str, ...] = self.info.expression.heads if self.info.expression else ()
        self.features: tuple[str, ...] = self.info.expression.features if self.info.expression else ()
        self._check_signature()
        self._input = np.zeros((1, self.info.window), dtype=np.int32)
        self._features = np.zeros((1, self.info.window, len(self.features)), dtype=np.int32)
        self._outputs = [OUTPUT_NAME, *self.heads]
        self.tables: dict[str, np.ndarray] = {}
        if self.heads:
            fetched = self._session.run([name + TABLE_SUFFIX for name in self.heads],
                                        {INPUT_NAME: self._input, FEATURES_NAME: self._features})
            self.tables = dict(zip(self.heads, fetched, strict=True))
        # Warmed and checked through a plain call: bound outputs would take the metadata's
        # shapes on trust, and a graph that disagrees would fail in onnxruntime, not here.
        feeds = {INPUT_NAME: self._input, **({FEATURES_NAME: self._features} if self.heads else {})}
        probs, *logits = (values[0] for values in self._session.run(self._outputs, feeds))
        warm = Prediction(probs, dict(zip(self.heads, logits, strict=True)), self.tables)
        self._check_distribution(OUTPUT_NAME, warm.probs, (self.info.size,))
        for name, logits in warm.heads.items():
            assert self.info.expression is not None
            classes = self.info.expression.size(name)
            self._check_logits(name, logits, (classes,))
            self._check_logits(name + TABLE_SUFFIX, self.tables[name], (self.info.size, classes))
            with np.errstate(over="ignore", invalid="ignore"):  # the overflow is what this looks for
                finite = bool(np.isfinite(by_token(logits[None], self.tables[name])).all())
            if not finite:
                raise BundleError(f"{self.path}: head '{name}' plus its table overflows: no distribution for "
                                  "some token (logits too large)")
        sizes = [self.tables[name].shape[1] for name in self.heads]
        ends = np.cumsum(sizes, dtype=int).tolist()
        self._parts = [(name, end - size, end) for name, size, end in zip(self.heads, sizes, ends, strict=True)]
        self._binding, self._bound, self._values = self._bind()

    def _bind(self) -> tuple[Any, list[np.ndarray], list[Any]]:
        """One window's inputs and outputs bound to arrays kept for the session's life, so a
        prediction skips onnxruntime's per-call conversion of feeds and fetches
        (benchmarks/RESULTS.md). The inputs are read where :meth:`predict` writes them:
        an OrtValue over a CPU numpy array shares its memory. Returns the binding, the
        arrays it writes (``probs``, then every head's logits end to end) and every OrtValue
        (kept alive with the binding)."""
        import onnxruntime as ort

        binding = self._session.io_binding()
        values = []
        for name, array in ((INPUT_NAME, self._input), (FEATURES_NAME, self._features))[:1 + bool(self.heads)]:
            values.append(ort.OrtValue.ortvalue_from_numpy(array))
            binding.bind_ortvalue_input(name, values[-1])
        # The heads' outputs are bound to consecutive parts of one array: a prediction copies
        # them all at once, laid end to end as HeadSampler reads them.
        logits = np.zeros(self._parts[-1][2] if self._parts else 0, np.float32)
        bound = [np.zeros((1, self.info.size), np.float32),
                 *(logits[start:end].reshape(1, end - start) for _, start, end in self._parts)]
        for name, array in zip(self._outputs, bound, strict=True):
            values.append(ort.OrtValue.ortvalue_from_numpy(array))
            binding.bind_ortvalue_output(name, values[-1])
        return binding, [bound[0], logits], values

    def _check_distribution(self, name: str, values: np.ndarray, shape: tuple[int, ...]) -> None:
        """An output the contract says is a softmax must be one: a model exported without it
        (logits), or one that yields NaN, would otherwise play quietly wrong notes."""
        if values.shape != shape:
            raise BundleError(f"{self.path}: output '{name}' has shape {list(values.shape)} but the metadata "
                              f"says {list(shape)} (vocabulary {self.info.size} tokens)")
        totals = values.sum(axis=-1)
        if not (np.isfinite(values).all() and values.min() >= 0.0 and np.abs(totals - 1.0).max() <= PROBS_TOLERANCE):
            raise BundleError(
                f"{self.path}: output '{name}' is not a probability distribution "
                f"(values {float(values.min()):.3g}..{float(values.max()):.3g}, sum {float(totals.flat[0]):.4g}); "
                "export the model with its softmax"
            )

    def _check_logits(self, name: str, values: np.ndarray, shape: tuple[int, ...]) -> None:
        if values.shape != shape:
            raise BundleError(f"{self.path}: output '{name}' has shape {list(values.shape)} but the metadata "
                              f"says {list(shape)}")
        if not np.isfinite(values).all():
            raise BundleError(f"{self.path}: output '{name}' holds values that are not finite (NaN or inf)")

    def _check_signature(self) -> None:
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        expected = [INPUT_NAME, FEATURES_NAME] if self.heads else [INPUT_NAME]
        if [i.name for i in inputs] != expected:
            names = [i.name for i in inputs]
            what = f"inputs named {expected}" if self.heads else f"one input named '{INPUT_NAME}'"
            raise BundleError(f"{self.path}: expected {what} (format {self.info.format_version}), found {names}")
        for given, rank, extra in zip(inputs, (2, 3), ([], [len(self.features)]), strict=False):
            if given.type != "tensor(int32)":
                raise BundleError(f"{self.path}: input '{given.name}' must be int32, found {given.type}")
            shape = given.shape
            if len(shape) != rank or shape[1] != self.info.window or list(shape[2:]) != extra:
                want = ", ".join(["batch", str(self.info.window), *map(str, extra)])
                raise BundleError(f"{self.path}: input '{given.name}' must have shape [{want}], found {shape}")
        names = [o.name for o in outputs]
        if OUTPUT_NAME not in names or (self.heads and names[0] != OUTPUT_NAME):
            raise BundleError(f"{self.path}: expected '{OUTPUT_NAME}' as the first output, found {names}")
        missing = [head for head in self.heads if head not in names]
        if missing:
            raise BundleError(f"{self.path}: {META_EXPRESSION} declares heads {missing} that are not outputs {names}")
        shapes = {out.name: out.shape for out in outputs}
        types = {out.name: out.type for out in outputs}
        width = shapes[OUTPUT_NAME][-1] if len(shapes[OUTPUT_NAME]) == 2 else None
        if isinstance(width, int) and width != self.info.size:
            raise BundleError(f"{self.path}: output '{OUTPUT_NAME}' has width {width} "
                              f"but the vocabulary has {self.info.size} tokens")
        for head in self.heads:
            assert self.info.expression is not None
            classes = self.info.expression.size(head)
            shape = shapes[head]
            if len(shape) == 3:
                raise BundleError(f"{self.path}: head '{head}' has the [batch, V, C] layout of an earlier "
                                  f"format-2 export; rewrite it with: mididuet-train simplify --model {self.path}")
            if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != classes):
                raise BundleError(f"{self.path}: head '{head}' must have shape [batch, {classes}] (its classes' "
                                  f"logits), found {shape}")
            if head + TABLE_SUFFIX not in shapes:
                raise BundleError(f"{self.path}: head '{head}' has no output '{head}{TABLE_SUFFIX}' (each token's "
                                  f"logits for it, [{self.info.size}, {classes}])")
            table = shapes[head + TABLE_SUFFIX]
            if table != [self.info.size, classes]:  # fixed: fetched once, it cannot depend on the window
                raise BundleError(f"{self.path}: output '{head}{TABLE_SUFFIX}' must have shape "
                                  f"[{self.info.size}, {classes}] (vocabulary × its classes), found {table}")
            for name in (head, head + TABLE_SUFFIX):
                if types[name] != "tensor(float)":
                    raise BundleError(f"{self.path}: output '{name}' must be float32, found {types[name]}")

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return self.info.vocabulary

    @property
    def expressive(self) -> bool:
        return bool(self.heads)

    def _check_ids(self, ids: np.ndarray) -> None:
        # int32 (the window's own ids): one reduction, a negative id is above any vocabulary
        # read as unsigned; a decision makes this check on every prediction.
        if ids.dtype == np.int32:
            wrong = ids.size and int(ids.view(np.uint32).max()) >= self.info.size
        else:
            wrong = ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.info.size)
        if wrong:
            raise ValueError(f"token ids must be in range 0..{self.info.size - 1}")

    def _check_features(self, features: np.ndarray) -> None:
        """Offline callers' features must be classes of the bundle's encoding: the graph
        gathers them from one stacked table, where a class out of range would read another
        feature's row, not fail."""
        assert self.info.expression is not None
        width = len(self.features)
        highs = np.array([self.info.expression.feature_size(name) for name in self.features])
        if features.shape[1:] != (self.info.window, width) or features.min(initial=0) < 0 or \
                (features.reshape(-1, width) >= highs).any():
            raise ValueError(f"features must have shape [batch, {self.info.window}, {width}] with each "
                             f"column below its feature's size {highs.tolist()}")

    def query(self, window: np.ndarray) -> np.ndarray:
        """Probabilities of the next token after ``window`` (32 ids). Blocks for one inference.

        Raises ``ValueError`` for a window of the wrong length or an id outside the
        vocabulary: onnxruntime would silently wrap -1 to the last token. A format-2
        bundle is asked with every feature unknown.
        """
        return self.predict(window, None).probs

    def predict(self, window: np.ndarray, features: np.ndarray | None) -> Prediction:
        """The next token's probabilities and (format 2) each head's logits, after ``window``
        (32 ids) with its ``features`` (``[32, F]`` classes + 1, as the window derives them;
        None: all unknown)."""
        if window.shape != (self.info.window,):
            raise ValueError(f"window must hold {self.info.window} token ids, got shape {window.shape}")
        self._check_ids(window)
        self._input[0] = window
        if self.heads:
            self._features[0] = 0 if features is None else features
        self._session.run_with_iobinding(self._binding)
        # Copies: the bound arrays are written again by the next call.
        probs, logits = (values.copy() for values in self._bound)
        return Prediction(probs[0], {name: logits[start:end] for name, start, end in self._parts}, self.tables,
                          logits if self._parts else None)

    def query_batch(self, windows: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """Probabilities for a ``[batch, 32]`` array of ids (evaluation and tests)."""
        return self.predict_batch(windows, features)[OUTPUT_NAME]

    def predict_batch(self, windows: np.ndarray, features: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """``probs`` and (format 2) every head's ``[batch, V, C]`` distributions for a
        ``[batch, 32]`` array of ids and their ``[batch, 32, F]`` features (None: all unknown)."""
        windows = np.asarray(windows)
        if windows.ndim != 2 or windows.shape[1] != self.info.window:
            raise ValueError(f"windows must have shape [batch, {self.info.window}], got {windows.shape}")
        self._check_ids(windows)  # before the cast, which would wrap an id beyond int32
        windows = np.ascontiguousarray(windows, dtype=np.int32)
        feeds = {INPUT_NAME: windows}
        if self.heads:
            if features is not None:
                self._check_features(np.asarray(features))  # before the cast, as the ids
            feeds[FEATURES_NAME] = (np.zeros((*windows.shape, len(self.features)), np.int32) if features is None
                                    else np.ascontiguousarray(features, dtype=np.int32))
        results = dict(zip(self._outputs, self._session.run(self._outputs, feeds), strict=True))
        return results | {name: by_token(results[name], self.tables[name]) for name in self.heads}


def load_bundle(path: str | os.PathLike[str] | None = None) -> ModelRunner:
    """Open and check a bundle (the shipped Chopin model when ``path`` is None).

    Raises :class:`BundleError` with a message naming the problem.
    """
    return ModelRunner(shipped_model_path() if path is None else path)
