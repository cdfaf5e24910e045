"""``mididuet generate``: the reference notebook's last step, done with the live engine.

The primer is played to the real :class:`~..engine.engine.Engine` as a duet call, in
simulated time, and its answer is collected: the same listening, window, sampler,
voicing, pulse and velocity as ``mididuet run``, with no ports and no waiting. Without a
primer the engine plays solo from the model's own material. The result is a standard
MIDI file: the primer on one track, mididuet's answer on the next, in real time.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import mido

from ..engine.engine import Engine
from ..engine.observe import TokenLog
from ..engine.settings import MAX_ANSWER_TOKENS, EngineSettings
from ..engine.simulate import TimedMessage, run_simulation
from ..errors import MididuetError
from ..live.record import MIDIDUET, PLAYER, SessionRecorder
from ..music.midi import SUSTAIN
from ..music.midi_reader import MidiReadError, Note, read_performance
from ..music.units import NS_PER_S, bpm_to_ns, ms_to_ns
from ..play.pulse import MIN_BPM
from ..predict.bundle import ModelRunner, load_bundle

DEFAULT_SOLO_BPM = 120.0
NOTE_TYPES = frozenset({"note_on", "note_off"})  # what the answer keeps of what the engine sent
# Room after the call for the phrase gap and an answer at the slowest pulse the
# engine allows, so the simulation never stops mid-answer.
SLOWEST_PULSE_NS = bpm_to_ns(MIN_BPM)


class PrimerError(MididuetError):
    """A primer file that cannot be used."""


@dataclass
class Performance:
    """A call and mididuet's answer, each as ``(t_ns, message)`` note events."""

    call: list[TimedMessage]
    answer: list[TimedMessage]
    tokens: list[str]  # the tokens mididuet chose, in order

    @property
    def call_end_ns(self) -> int:
        return max((t for t, _ in self.call), default=0)


def events_from_midi(path: str | os.PathLike[str]) -> list[TimedMessage]:
    """A MIDI file's notes and sustain pedal as player events in real time (ns), from 0.

    Raises :class:`PrimerError` for an unreadable file or one without notes.
    """
    try:
        notes, pedals = read_performance(path)
    except MidiReadError as err:
        raise PrimerError(f"primer {err}") from None
    if not notes:
        raise PrimerError(f"primer {Path(path).name} has no notes to answer")
    return player_events(notes, pedals)


def player_events(notes: Sequence[Note], pedals: Sequence[tuple[float, bool]] = ()) -> list[TimedMessage]:
    """Notes (and pedal changes, ``(seconds, down)``) as a player's events in ns, the first
    note at 0; pedal changes before it are dropped."""
    first = min(n.start_s for n in notes)
    events: list[tuple[int, int, mido.Message]] = []
    for n in notes:
        on = int((n.start_s - first) * NS_PER_S)
        off = on + max(int(n.duration_s * NS_PER_S), 1)
        events.append((on, 2, mido.Message("note_on", note=n.pitch, velocity=n.velocity)))
        events.append((off, 0, mido.Message("note_off", note=n.pitch)))
    for seconds, down in pedals:
        if seconds >= first:
            events.append((int((seconds - first) * NS_PER_S), 1,
                           mido.Message("control_change", control=SUSTAIN, value=127 if down else 0)))
    events.sort(key=lambda e: (e[0], e[1]))
    return [(t, msg) for t, _, msg in events]


def perform(model: ModelRunner, settings: EngineSettings, call: Sequence[TimedMessage],
            tokens: int | None) -> Performance:
    """Play ``call`` as a duet phrase and collect an answer of ``tokens`` tokens.

    ``tokens`` None answers about as long as the call, as ``run`` does. With an empty call
    the engine plays ``tokens`` tokens solo instead. Deterministic for a given seed.
    Raises ``ValueError`` for a token count out of range.
    """
    if tokens is not None and not 1 <= tokens <= MAX_ANSWER_TOKENS:
        raise ValueError(f"tokens must be in range 1..{MAX_ANSWER_TOKENS}, got {tokens}")
    log = TokenLog()
    if not call:
        if tokens is None:
            raise ValueError("with no phrase to answer, say how many tokens to play")
        return Performance([], _solo(model, settings, tokens, log), log.tokens)
    duet = dataclasses.replace(settings, mode="duet", answer_tokens=tokens)

    def build(send: Callable[[mido.Message], None], now_ns: int) -> Engine:
        return Engine(model, duet, send, now_ns, observers=[log])

    slowest = max(SLOWEST_PULSE_NS, bpm_to_ns(duet.bpm) if duet.bpm else 0)  # --bpm may be slower
    encoding = model.info.expression if duet.rhythm == "expressive" else None
    longest = int(slowest * (encoding.longest_delay if encoding is not None else 1))  # a rest, slowed
    gap = max(ms_to_ns(duet.phrase_gap_ms), 2 * slowest)
    until = call[-1][0] + gap + ((tokens or MAX_ANSWER_TOKENS) + 2) * longest
    output = run_simulation(build, call, until)
    answer = [(t, msg) for t, msg in output if msg.type in NOTE_TYPES]
    return Performance(list(call), answer, log.tokens)


def _solo(model: ModelRunner, settings: EngineSettings, tokens: int, log: TokenLog) -> list[TimedMessage]:
    """``tokens`` solo tokens, then the last notes end on schedule (not cut at once)."""
    output: list[TimedMessage] = []
    now = 0

    def send(msg: mido.Message) -> None:
        output.append((now, msg))

    engine = Engine(model, dataclasses.replace(settings, mode="solo"), send, 0, observers=[log])
    while len(log.tokens) < tokens:
        deadline = engine.tick(now)
        if deadline is None:
            break
        if len(log.tokens) < tokens:
            now = max(deadline, now + 1)
    while (due := engine.ledger.next_due) is not None:
        now = due
        engine.ledger.release_due(due)
    return [(t, msg) for t, msg in output if msg.type in NOTE_TYPES]


def write_performance(performance: Performance, path: Path) -> Path:
    """A two-track standard MIDI file: the call (track 1), then mididuet's answer (track 2)."""
    path = Path(path)
    recorder = SessionRecorder(path.parent, name=path.name)
    events = [(t, PLAYER, m) for t, m in performance.call] + [(t, MIDIDUET, m) for t, m in performance.answer]
    for t_ns, track, msg in sorted(events, key=lambda e: (e[0], e[1])):
        recorder.record(track, msg, t_ns)
    return recorder.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--primer", type=Path, metavar="FILE.mid",
                        help="a MIDI file to answer (default: none; the model plays from its own material)")
    parser.add_argument("--tokens", type=int, default=64,
                        help=f"how many tokens (notes or chords) to generate, 1..{MAX_ANSWER_TOKENS} (default: 64)")
    parser.add_argument("--out", type=Path, default=Path("answer.mid"),
                        help="the MIDI file to write (default: answer.mid)")
    parser.add_argument("--model", type=Path, help="a model bundle (default: the shipped Chopin model)")


def run(args: argparse.Namespace, settings: EngineSettings) -> int:
    model = load_bundle(args.model)
    call = events_from_midi(args.primer) if args.primer else []
    if settings.bpm is None and not call:
        # Solo has no player to follow; with a primer the pulse follows it, as in `run`.
        settings = dataclasses.replace(settings, bpm=DEFAULT_SOLO_BPM)
    performance = perform(model, settings, call, args.tokens)
    try:
        path = write_performance(performance, args.out)
    except OSError as err:
        raise MididuetError(f"cannot write {args.out}: {err.strerror or err}") from err
    notes = sum(1 for _, m in performance.answer if m.type == "note_on")
    seconds = (max(t for t, _ in performance.answer) - (performance.answer[0][0])) / NS_PER_S
    source = f"answering {args.primer.name}" if args.primer else "solo, from the model's own material"
    print(f"wrote {path}: {len(performance.tokens)} tokens ({notes} notes, {seconds:.1f} s) {source}")
    return 0
