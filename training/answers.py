"""``mididuet-train answers``: mididuet's duet answers against what Chopin wrote next.

For each held-out piece of a bundle's split, phrases of :data:`PHRASE_TOKENS` tokens are
cut from the performance (notes, velocities and the sustain pedal, in real time). Each is
played to the real engine as a duet call, in simulated time, once with the pulse rhythm
and once expressive (each phrase with its own seed, the same for both), and the answer is
measured beside the tokens that really come next in the piece. Everything is measured the
same way, by the daemon's own :class:`~mididuet.daemon.listen.listener.Listener` run over
the notes (onsets grouped into tokens, lengths with the pedal applied: Chopin's as the
piece pedals them, to its next lift, even after the excerpt's last key; the call played
to the engine lifts it at its end, as a player's must for the answer to begin):

- **IOI-ratio histogram distance**: the Jensen–Shannon distance (base 2) between the
  histogram of successive IOI ratios (log2, in bins centred on the equal ratio) and
  Chopin's continuations' (for the Chopin column: the calls, Chopin too, against the
  continuations, the same number of phrases on each side: the floor);
- **nPVI** of the IOIs (the normalised pairwise variability index; 0 is a metronome);
- **velocity sd** within an excerpt; **articulation**: each token's sounding length ÷ the
  time to the next onset (capped at 4); **notes per onset**;
- **a two-sample test**: a logistic regression on each excerpt's rhythm, articulation,
  dynamics and texture features, trained to tell real continuations from answers; its
  5-fold cross-validated accuracy (0.5: indistinguishable), the folds grouped by phrase (a
  continuation and the answer to the same call are never on both sides of a split:
  alike, they would teach the classifier the wrong label), averaged over
  :data:`SHUFFLES` shuffles of the folds. Real against real (the calls, which are Chopin
  too, against the continuations) shows the floor.
- **motif reuse**: the share of the answer's token 3-grams that occur in its call, beside
  Chopin's own rate between a phrase and the next;
- **tempo against the call**: the share of IOIs longer than 4 × the call's median IOI, and
  the mean sounding length ÷ that median. Articulation is a length over an IOI; these two
  say which of the two parts falls short.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mididuet.daemon.engine.settings import EngineSettings
from mididuet.daemon.listen.listener import Listener
from mididuet.daemon.music.midi_reader import Note, read_performance
from mididuet.daemon.music.units import NS_PER_S
from mididuet.daemon.offline.generate import perform, player_events
from mididuet.daemon.predict.bundle import ModelRunner

from .distance import js_distance

PHRASE_TOKENS = 16
STEP_TOKENS = 32  # a phrase every this many tokens of a piece
MAX_ARTICULATION = 4.0
SLOW_IOI = 4  # an IOI this many times the call's median is a long wait (a rest, a fermata)
# log2 IOI ratios from 1/8 to 8, in quarter-octave bins centred on 0, ±1/4, …: a bin edge
# at 0 split Chopin's near-equal IOIs (the tempo map's rubato: a median 0.4% either way)
# from the grid's exact repeats, a difference no one hears, and the test told them by it.
RATIO_BINS = np.linspace(-3.125, 3.125, 26)
CHORD_WINDOW_S = 0.02  # the measuring listener's: the corpus's chords are exact, answers' too
SEED = 1
SHUFFLES = 10  # of the two-sample test's folds: one shuffle's accuracy moves by about ±0.015
PHRASE_SEEDS = 100_000  # a run's phrases' seeds: seed × this + the phrase's index (a piece set has far fewer)
ANSWER_SETTINGS = ("seed", "sampling", "temperature", "top_p", "rhythm_temperature", "legato", "memory")


@dataclass
class Excerpt:
    """Tokens as measured: onsets and lengths (s), loudest velocities, notes, tokens."""

    onsets: list[float] = field(default_factory=list)
    lengths: list[float] = field(default_factory=list)
    velocities: list[int] = field(default_factory=list)
    notes: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)


def measure(events: Sequence[tuple[int, Any]]) -> Excerpt:
    """Run the daemon's listener over note (and pedal) events: the tokens it hears."""
    listener = Listener(int(CHORD_WINDOW_S * NS_PER_S))
    played: list[Any] = []
    lengths: dict[int, int] = {}
    for t, msg in sorted(events, key=lambda e: e[0]):
        token = listener.flush(t)
        if token is not None:
            played.append(token)
        if msg.type == "note_on" and msg.velocity > 0:
            token = listener.note_on(msg.note, msg.velocity, t)
            if token is not None:
                played.append(token)
        elif msg.type in ("note_on", "note_off"):
            listener.note_off(msg.note, t)
        elif msg.type == "control_change" and msg.control == 64:
            listener.pedal(msg.value, t)
        lengths.update(listener.take_ended())
    end = max(t for t, _ in events) + NS_PER_S
    token = listener.flush(end)
    if token is not None:
        played.append(token)
    listener.pedal(0, end)
    for pitch in list(listener.held):
        listener.note_off(pitch, end)
    lengths.update(listener.take_ended())
    return Excerpt([p.onset_ns / NS_PER_S for p in played], [lengths.get(p.onset_ns, 0) / NS_PER_S for p in played],
                   [p.velocity for p in played], [len(p.pitches) for p in played], [p.token for p in played])


def npvi(iois: Sequence[float]) -> float:
    pairs = [(a, b) for a, b in itertools.pairwise(iois) if a > 0 and b > 0]
    return 100 * float(np.mean([abs(a - b) / ((a + b) / 2) for a, b in pairs])) if pairs else 0.0


def iois_of(e: Excerpt) -> list[float]:
    return [b - a for a, b in zip(e.onsets, e.onsets[1:], strict=False)]


def ratios_of(e: Excerpt) -> list[float]:
    iois = iois_of(e)
    return [math.log2(b / a) for a, b in itertools.pairwise(iois) if a > 0 and b > 0]


def articulation_of(e: Excerpt) -> list[float]:
    return [min(length / ioi, MAX_ARTICULATION) for length, ioi in zip(e.lengths, iois_of(e), strict=False) if ioi > 0]


FEATURE_NAMES = (*(f"IOI-ratio bin {i - 12:+d}/4 octave" for i in range(len(RATIO_BINS) - 1)), "nPVI",
                 "IOI-ratio sd", "mean |IOI ratio|", "equal successive IOIs", "velocity sd", "velocity range",
                 "articulation mean", "articulation sd", "notes per onset", "share of chords")


def features(e: Excerpt) -> np.ndarray:
    """What the two-sample test sees of an excerpt (:data:`FEATURE_NAMES`): rhythm,
    articulation, dynamics, texture."""
    hist, _ = np.histogram(np.clip(ratios_of(e), -3, 3), bins=RATIO_BINS)
    hist = hist / max(hist.sum(), 1)
    art = articulation_of(e) or [0.0]
    ratios = ratios_of(e) or [0.0]
    return np.array([*hist, npvi(iois_of(e)), float(np.std(ratios)), float(np.mean(np.abs(ratios))),
                     float(np.mean(np.isclose(ratios, 0, atol=0.05))), float(np.std(e.velocities)),
                     float(np.ptp(e.velocities)) if e.velocities else 0.0, float(np.mean(art)), float(np.std(art)),
                     float(np.mean(e.notes)), float(np.mean(np.array(e.notes) > 1))])


def ioi_ratio_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Jensen–Shannon distance (base 2) between the IOI-ratio histograms of two sets (an
    empty set's histogram is uniform)."""
    p, _ = np.histogram(np.clip(a, -3, 3), bins=RATIO_BINS)
    q, _ = np.histogram(np.clip(b, -3, 3), bins=RATIO_BINS)
    return js_distance(p + 1e-9, q + 1e-9)


def two_sample_accuracy(a: Sequence[Excerpt], b: Sequence[Excerpt], shuffles: int = SHUFFLES,
                        threads: int | None = 1) -> float:
    """5-fold cross-validated accuracy of a logistic regression telling ``a`` from ``b``,
    where ``a[i]`` and ``b[i]`` come from the same phrase: the folds keep each pair on one
    side (grouped), and the accuracy is the mean over ``shuffles`` shuffles of them.
    ``threads``: BLAS's threads for the fits (None: the libraries' own)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    n = min(len(a), len(b))
    x = np.stack([features(e) for e in [*a[:n], *b[:n]]])
    y = np.array([0] * n + [1] * n)
    phrase = np.concatenate([np.arange(n), np.arange(n)])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    # A few hundred rows: BLAS's threads only wait on each other, and on a busy machine the
    # test took several times as long with them (benchmarks/RESULTS.md, bench_two_sample).
    with threadpool_limits(threads):
        return float(np.mean([np.mean(cross_val_score(model, x, y, groups=phrase,
                                                      cv=StratifiedGroupKFold(5, shuffle=True, random_state=seed)))
                              for seed in range(shuffles)]))


def feature_separation(a: Sequence[Excerpt], b: Sequence[Excerpt]) -> dict[str, float]:
    """Each two-sample feature alone: the area under its ROC curve telling ``b`` from ``a``,
    folded so that 0.5 is no help and 1 a perfect split."""
    from sklearn.metrics import roc_auc_score

    x = np.stack([features(e) for e in [*a, *b]])
    y = np.array([0] * len(a) + [1] * len(b))
    found = {}
    for name, column in zip(FEATURE_NAMES, x.T, strict=True):
        if np.ptp(column) > 0:
            auc = float(roc_auc_score(y, column))
            found[name] = max(auc, 1 - auc)
    return found


def trigram_reuse(answer: Sequence[str], call: Sequence[str]) -> float:
    """The share of the answer's token 3-grams that occur in the call."""
    grams = [tuple(answer[i:i + 3]) for i in range(len(answer) - 2)]
    known = {tuple(call[i:i + 3]) for i in range(len(call) - 2)}
    return float(np.mean([g in known for g in grams])) if grams else 0.0


@dataclass
class Phrase:
    call_events: list[tuple[int, Any]]
    call: Excerpt
    continuation: Excerpt


def phrases(path: Path, tokens: int = PHRASE_TOKENS, step: int = STEP_TOKENS) -> list[Phrase]:
    """A piece's phrases: the call's events (notes and pedal, in ns) and, measured, the call
    and the ``tokens`` tokens that follow it."""
    notes, pedals = read_performance(path)
    onsets = sorted({n.start_beats for n in notes})
    by_onset: dict[Any, list[Note]] = {}
    for n in notes:
        by_onset.setdefault(n.start_beats, []).append(n)
    found = []
    for i in range(0, len(onsets) - 2 * tokens, step):
        call_notes = [n for onset in onsets[i:i + tokens] for n in by_onset[onset]]
        next_notes = [n for onset in onsets[i + tokens:i + 2 * tokens] for n in by_onset[onset]]
        call_events = player_events(call_notes, _pedals_within(pedals, call_notes))
        found.append(Phrase(call_events,
                            measure(player_events(call_notes, _pedals_within(pedals, call_notes, to_lift=True))),
                            measure(player_events(next_notes, _pedals_within(pedals, next_notes, to_lift=True)))))
    return found


def _pedals_within(pedals: Sequence[tuple[float, bool]], notes: Sequence[Note],
                   to_lift: bool = False) -> list[tuple[float, bool]]:
    """The pedal as it is while ``notes`` are played: down at their start if it was, its
    changes until the last note ends, and up at the end (a call must end for the answer);
    ``to_lift``: up where the piece lifts it next instead, so that the excerpt's last
    notes ring as long as they do in the piece."""
    start = min(n.start_s for n in notes)
    end = max(n.start_s + n.duration_s for n in notes)
    before = [down for t, down in pedals if t < start]
    within = [(t, down) for t, down in pedals if start <= t < end]
    lift = end
    if to_lift and (within[-1][1] if within else bool(before and before[-1])):
        lift = next((t for t, down in pedals if t >= end and not down), end)
    return [*([(start, True)] if before and before[-1] else []), *within, (lift, False)]


def answer(model: ModelRunner, settings: EngineSettings, phrase: Phrase) -> Excerpt:
    performance = perform(model, settings, phrase.call_events, PHRASE_TOKENS)
    return measure(performance.answer) if performance.answer else Excerpt()


def phrase_settings(settings: EngineSettings, index: int) -> EngineSettings:
    """The settings phrase ``index`` is answered with: its own seed (``seed`` ×
    :data:`PHRASE_SEEDS` + index, so that runs with other seeds share none). One seed for
    every phrase would give every answer the same random draws, token by token, so the
    figures would measure one sequence of draws, not the sampling; the daemon's own
    generator runs on from one answer to the next."""
    if settings.seed is None:
        return settings
    return dataclasses.replace(settings, seed=settings.seed * PHRASE_SEEDS + index)


def call_pulse(call: Excerpt) -> float | None:
    """The call's median IOI (s), what its answer's and continuation's time is held to."""
    iois = [i for i in iois_of(call) if i > 0]
    return float(np.median(iois)) if iois else None


def summary(excerpts: Sequence[Excerpt], reference: Sequence[Excerpt],
            calls: Sequence[Excerpt]) -> dict[str, float]:
    """The figures of ``excerpts`` (each following the call beside it) against ``reference``."""
    ratios = [r for e in excerpts for r in ratios_of(e)]
    ref = [r for e in reference for r in ratios_of(e)]
    held = [(e, pulse) for e, c in zip(excerpts, calls, strict=True) if (pulse := call_pulse(c))]
    return {"ioi_ratio_js": ioi_ratio_distance(ratios, ref),
            "npvi": float(np.mean([npvi(iois_of(e)) for e in excerpts])),
            "velocity_sd": float(np.mean([np.std(e.velocities) for e in excerpts if e.velocities])),
            "articulation": float(np.mean([a for e in excerpts for a in articulation_of(e)])),
            "notes_per_onset": float(np.mean([n for e in excerpts for n in e.notes])),
            "slow_iois": float(np.mean([i > SLOW_IOI * pulse for e, pulse in held for i in iois_of(e)])),
            "length_per_call_pulse": float(np.mean([n / pulse for e, pulse in held for n in e.lengths]))}


def training_pieces(model: ModelRunner, data: Path) -> list[str]:
    """The pieces under ``data`` the bundle did not hold out (nor, trained on a development
    split, leave out): where settings are tuned, so that the held-out table is not."""
    from .corpus import find_midi_files

    facts = model.info.training
    held_out = {*(facts.get("val_pieces") or []), *(facts.get("excluded_pieces") or [])}
    names = [str(path.relative_to(data)) for path in find_midi_files(Path(data))]
    return [name for name in names if name not in held_out]


def evaluate_answers(model_path: Path, data: Path, runs: Sequence[EngineSettings] = (EngineSettings(seed=SEED),),
                     pieces: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The answers' figures on the bundle's held-out pieces (or ``pieces`` under ``data``),
    one result per run's settings; the phrases are read and Chopin's column measured once."""
    model = ModelRunner(model_path)
    names = list(pieces or model.info.training.get("val_pieces") or [])
    if not names:
        raise ValueError(f"{model_path}: no held-out pieces recorded; name the pieces to use")
    found = [p for name in names for p in phrases(Path(data) / name)]
    real = [p.continuation for p in found]
    calls = [p.call for p in found]
    chopin = {**summary(real, real, calls), "two_sample_accuracy": two_sample_accuracy(real, calls),
              "ioi_ratio_js": ioi_ratio_distance([r for e in calls for r in ratios_of(e)],
                                                 [r for e in real for r in ratios_of(e)]),
              "trigram_reuse": float(np.mean([trigram_reuse(p.continuation.tokens, p.call.tokens) for p in found]))}
    results = []
    for base in runs:
        columns = {"pulse": dataclasses.replace(base, rhythm="pulse"), "expressive": base}
        result: dict[str, Any] = {"pieces": len(names), "phrases": len(found), "phrase_tokens": PHRASE_TOKENS,
                                  "expressive_bundle": model.expressive,
                                  "settings": {k: getattr(base, k) for k in ANSWER_SETTINGS}, "chopin": dict(chopin)}
        for name, s in columns.items():
            excerpts = [answer(model, phrase_settings(s, i), p) for i, p in enumerate(found)]
            result[name] = {**summary(excerpts, real, calls),
                            "two_sample_accuracy": two_sample_accuracy(real, excerpts),
                            "feature_separation": feature_separation(real, excerpts),
                            "trigram_reuse": float(np.mean([trigram_reuse(e.tokens, p.call.tokens)
                                                            for e, p in zip(excerpts, found, strict=True)]))}
        results.append(result)
    return results


ROWS = (("IOI-ratio histogram distance (JS, base 2; lower is closer to Chopin)", "ioi_ratio_js", "{:.3f}"),
        ("nPVI of the IOIs", "npvi", "{:.1f}"), ("velocity sd within an excerpt", "velocity_sd", "{:.1f}"),
        ("mean articulation (sounding ÷ IOI, ≤ 4)", "articulation", "{:.2f}"),
        ("notes per onset", "notes_per_onset", "{:.2f}"),
        ("two-sample accuracy against real continuations (0.5: indistinguishable)", "two_sample_accuracy", "{:.3f}"),
        ("token 3-grams of the answer found in its call", "trigram_reuse", "{:.1%}"),
        (f"IOIs longer than {SLOW_IOI} × the call's median IOI", "slow_iois", "{:.1%}"),
        ("mean sounding length ÷ the call's median IOI", "length_per_call_pulse", "{:.2f}"))


SEED_ROWS = (("two-sample accuracy", "two_sample_accuracy", "{:.3f}"), ("nPVI", "npvi", "{:.1f}"),
             ("velocity sd", "velocity_sd", "{:.1f}"), ("articulation", "articulation", "{:.2f}"),
             ("IOI-ratio distance", "ioi_ratio_js", "{:.3f}"), ("long waits", "slow_iois", "{:.1%}"),
             ("length ÷ call IOI", "length_per_call_pulse", "{:.2f}"))


def format_seeds(results: Sequence[dict[str, Any]]) -> str:
    """The expressive answers of several seeds, a row each, their mean, and Chopin's."""
    names = [label for label, _, _ in SEED_ROWS]
    lines = ["| seed | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for result in results:
        lines.append(f"| {result['settings']['seed']} | " + " | ".join(
            fmt.format(result["expressive"][key]) for _, key, fmt in SEED_ROWS) + " |")
    lines.append("| **mean** | " + " | ".join(
        fmt.format(float(np.mean([r["expressive"][key] for r in results]))) for _, key, fmt in SEED_ROWS) + " |")
    chopin = results[0]["chopin"]
    lines.append("| Chopin | " + " | ".join(fmt.format(chopin[key]) for _, key, fmt in SEED_ROWS) + " |")
    settings = {k: v for k, v in results[0]["settings"].items() if k != "seed"}
    lines.append("")
    lines.append(f"{results[0]['phrases']} phrases of {results[0]['phrase_tokens']} tokens from "
                 f"{results[0]['pieces']} pieces, each phrase with a seed of its own (seed × {PHRASE_SEEDS:,} + its "
                 "index); Chopin's two-sample accuracy and distance are the floor (calls against continuations); "
                 f"the two-sample folds are grouped by phrase, the accuracy the mean of {SHUFFLES} shuffles. Settings: "
                 + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in settings.items()) + ".")
    return "\n".join(lines)


def format_answers(result: dict[str, Any]) -> str:
    """The Markdown table: Chopin, mididuet with the pulse rhythm, mididuet expressive."""
    lines = ["| measure | Chopin (real continuations) | mididuet, pulse rhythm | mididuet, expressive |",
             "|---|---:|---:|---:|"]
    for label, key, fmt in ROWS:
        if key not in result["chopin"]:  # figures stored by an older mididuet-train
            continue
        lines.append(f"| {label} | " + " | ".join(fmt.format(result[col][key])
                                                   for col in ("chopin", "pulse", "expressive")) + " |")
    lines.append("")
    lines.append(f"{result['phrases']} phrases of {result['phrase_tokens']} tokens from {result['pieces']} held-out "
                 "pieces. Chopin's distance and two-sample accuracy are the calls (Chopin too) against the "
                 f"continuations; its reuse is the continuation's 3-grams found in the call. The two-sample folds "
                 f"are grouped by phrase, the accuracy the mean of {SHUFFLES} shuffles.")
    separation = result["expressive"].get("feature_separation")
    if separation:
        best = sorted(separation.items(), key=lambda item: -item[1])[:3]
        lines.append("The features that tell the expressive answers from Chopin's best, each alone (area under "
                     "the ROC curve; 0.5: no help): " + ", ".join(f"{name} {auc:.2f}" for name, auc in best) + ".")
    settings = result.get("settings")
    if settings:
        lines.append("Settings: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in settings.items()) + ".")
    return "\n".join(lines)
