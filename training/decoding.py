"""``mididuet-train decoding``: how a bundle sounds in solo mode, measured over long runs.

For each decoding setting the daemon offers, solo runs of 2,000 tokens are generated with
the daemon's own engine (:func:`mididuet.daemon.engine.simulate.generate_tokens`: its window, primer,
sampler and loop guard) for several seeds, and scored:

- **loop rate**: the share of tokens that sit inside a loop — a pattern of 1–4 tokens
  repeated more than 4 times back to back (the daemon issue's definition) — and how many
  runs contain one at all;
- **distinct tokens** used in the run (of the vocabulary's V);
- **pitch-class JS distance**: the Jensen–Shannon distance (base 2, 0 = same, 1 = disjoint)
  between the run's pitch-class histogram and the corpus's (a chord counts each of its
  pitch classes once).

Rows marked "no guard" run the same engine with its sampler's loop guard off, to show what
the model itself does (with a format-2 bundle's features as the engine derives them: a
window of unknown features would be music the model never saw). A reference row scores
2,000-token stretches of the corpus's own held-out pieces (in-vocabulary tokens), for scale.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mididuet.daemon.engine.settings import DEFAULT_MEMORY, EngineSettings
from mididuet.daemon.engine.simulate import generate_tokens
from mididuet.daemon.music.tokens import token_pitch_classes
from mididuet.daemon.predict.bundle import ModelRunner
from mididuet.daemon.predict.sampler import MAX_PATTERN, MAX_REPEATS

from .distance import js_distance

RUN_TOKENS = 2000
SEEDS = 5


@dataclass(frozen=True)
class Decoding:
    label: str
    sampling: str
    temperature: float = 1.0
    top_p: float = EngineSettings.top_p
    guard: bool = True

    @property
    def is_default(self) -> bool:
        """The daemon's own: its sampling (and, for top-p, its mass), temperature and guard."""
        daemon = EngineSettings()
        return (self.guard and self.sampling == daemon.sampling and self.temperature == daemon.temperature
                and (self.sampling != "top-p" or self.top_p == daemon.top_p))

    def name(self) -> str:
        return f"{self.label} (daemon default)" if self.is_default else self.label


DECODINGS = (
    Decoding("greedy (the notebook's)", "greedy"),
    Decoding("temperature 1.0", "temperature", temperature=1.0),
    Decoding("temperature 1.0, no guard", "temperature", temperature=1.0, guard=False),
    Decoding("temperature 0.7", "temperature", temperature=0.7),
    Decoding("top-p 0.9, T 1.0", "top-p", temperature=1.0, top_p=0.9),
    Decoding("top-p 0.9, T 1.0, no guard", "top-p", temperature=1.0, top_p=0.9, guard=False),
    Decoding("top-p 0.95, T 1.0", "top-p", temperature=1.0, top_p=0.95),
    Decoding("top-p 0.95, T 1.0, no guard", "top-p", temperature=1.0, top_p=0.95, guard=False),
)


def loop_mask(tokens: Sequence[object], max_pattern: int = MAX_PATTERN, max_repeats: int = MAX_REPEATS) -> np.ndarray:
    """True for each token inside a stretch where a 1..max_pattern-token pattern repeats > max_repeats times."""
    n = len(tokens)
    mask = np.zeros(n, dtype=bool)
    for length in range(1, max_pattern + 1):
        run = 0  # consecutive i with tokens[i] == tokens[i - length]
        for i in range(length, n + 1):
            if i < n and tokens[i] == tokens[i - length]:
                run += 1
                continue
            if 1 + run // length > max_repeats:  # the stretch i-run-length .. i-1 is a loop
                mask[i - run - length:i] = True
            run = 0
    return mask


def pitch_class_histogram(tokens: Iterable[str]) -> np.ndarray:
    counts = np.zeros(12)
    for token in tokens:
        for pc in set(token_pitch_classes(token)):
            counts[pc] += 1
    return counts


@dataclass
class RunScore:
    loop_share: float
    has_loop: bool
    distinct: int
    js: float


def score_run(tokens: Sequence[str], corpus_pcs: np.ndarray) -> RunScore:
    mask = loop_mask(tokens)
    return RunScore(float(mask.mean()) if len(tokens) else 0.0, bool(mask.any()), len(set(tokens)),
                    js_distance(pitch_class_histogram(tokens), corpus_pcs))


def generate(model: ModelRunner, decoding: Decoding, count: int, seed: int,
             memory: float = DEFAULT_MEMORY) -> list[str]:
    """A solo run through the daemon's engine: its window (with a format-2 bundle's features
    as it derives them), the session memory at ``memory``, the sampler and, unless the
    setting drops it, the loop guard."""
    settings = EngineSettings(sampling=decoding.sampling, temperature=decoding.temperature,
                              top_p=decoding.top_p, seed=seed, memory=memory)
    return generate_tokens(model, count, settings, guard=decoding.guard)


def summarise(label: str, scores: Sequence[RunScore], vocab_size: int | None) -> str:
    share = np.array([s.loop_share for s in scores])
    distinct = np.array([s.distinct for s in scores])
    js = np.array([s.js for s in scores])
    of = f" of {vocab_size}" if vocab_size else ""
    return (f"| {label} | {len(scores)} | {share.mean():.1%} | {sum(s.has_loop for s in scores)}/{len(scores)} "
            f"| {distinct.mean():.0f}{of} | {js.mean():.3f} ± {js.std():.3f} |")


HEADER = ("| model · decoding | runs | tokens in loops | runs with a loop | distinct tokens | "
          "pitch-class JS distance to the corpus |\n|---|---:|---:|---:|---:|---:|")


def reference_rows(corpus_tokens: Sequence[Sequence[str]], held_out: Sequence[Sequence[str]],
                   count: int, vocabulary: Sequence[str]) -> list[RunScore]:
    """Stretches of ``count`` tokens of the held-out pieces themselves, scored like the runs.

    Only tokens in the model's vocabulary are kept, as the daemon's window keeps them, so
    "distinct tokens" compares like with like.
    """
    corpus_pcs = pitch_class_histogram(t for piece in corpus_tokens for t in piece)
    known = set(vocabulary)
    stream = [t for piece in held_out for t in piece if t in known]
    return [score_run(stream[i:i + count], corpus_pcs) for i in range(0, len(stream) - count + 1, count)]


def decoding_table(models: Sequence[Path], data: Path, count: int = RUN_TOKENS, seeds: int = SEEDS,
                   progress: bool = True, memory: float = DEFAULT_MEMORY) -> str:
    """The Markdown decoding table for ``models`` over the corpus at ``data``, the session
    memory at ``memory`` (the daemon's default: what it plays, it remembers)."""
    from .dataset import split_pieces
    from .train import load_corpus, log

    lines = [HEADER]
    corpus = None
    for path in models:
        model = ModelRunner(path)
        facts = model.info.training
        if corpus is None:
            corpus = load_corpus(data, facts.get("reader", "mido"))
            corpus_pcs = pitch_class_histogram(t for p in corpus.pieces for t in p.tokens)
            _, val = split_pieces(corpus.pieces, facts.get("val_fraction", 0.2), facts.get("seed", 42))
            ref = reference_rows([p.tokens for p in corpus.pieces], [p.tokens for p in val], count,
                                 model.vocabulary)
            lines.append(summarise(f"the corpus itself: held-out pieces in {count}-token stretches", ref,
                                   model.info.size))
        from .quality import configuration_name

        name = f"{path.name} ({configuration_name(facts)})"
        for decoding in DECODINGS:
            runs = 1 if decoding.sampling == "greedy" else seeds  # greedy is deterministic
            scores = [score_run(generate(model, decoding, count, seed, memory), corpus_pcs) for seed in range(runs)]
            lines.append(summarise(f"{name} · {decoding.name()}", scores, model.info.size))
            if progress:
                log(lines[-1])
    return "\n".join(lines)
