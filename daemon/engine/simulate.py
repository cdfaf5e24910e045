"""Simulated time: drive an :class:`~.engine.Engine` without ports or sleeps.

A :class:`SimulatedClock` jumps from one moment to the next: the next input event or the
deadline the engine returned, whichever comes first. Everything the engine sends is
collected with the simulated time it was sent at. The same events, settings and seed
always give the same output, which is what tests, soak runs and ``mididuet demo`` need.

    events = phrase([(0, 60), (500, 62), (1000, [60, 64, 67])])
    output = run_simulation(lambda send, now: Engine(model, settings, send, now), events, 5 * NS_PER_S)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import mido

from ..music.units import NS_PER_MS
from ..predict.bundle import ModelRunner
from .engine import Engine
from .observe import TokenLog
from .settings import EngineSettings

TimedMessage = tuple[int, mido.Message]
EngineFactory = Callable[[Callable[[mido.Message], None], int], Engine]


class SimulatedClock:
    """A monotonic ns clock that only moves when told; pass ``clock.now`` as a Stats clock."""

    def __init__(self, start_ns: int = 0) -> None:
        self.now_ns = start_ns

    def now(self) -> int:
        return self.now_ns

    def advance_to(self, t_ns: int) -> None:
        self.now_ns = max(self.now_ns, t_ns)


def phrase(notes: Iterable[tuple[float, int | Sequence[int]]], duration_ms: float = 300.0,
           velocity: int = 80, channel: int = 0, start_ms: float = 0.0) -> list[TimedMessage]:
    """Player events for ``(onset_ms, note or notes)`` pairs, each held ``duration_ms``.

    A list of notes at one onset is a chord (all its note-ons at the same time). Times
    are ``start_ms`` + onset, in ns, and the result is sorted (note-offs first at a tie).
    """
    events: list[tuple[int, int, mido.Message]] = []
    for onset_ms, pitches in notes:
        group = [pitches] if isinstance(pitches, int) else list(pitches)
        on_ns = int((start_ms + onset_ms) * NS_PER_MS)
        off_ns = on_ns + int(duration_ms * NS_PER_MS)
        for pitch in group:
            events.append((on_ns, 1, mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)))
            events.append((off_ns, 0, mido.Message("note_off", channel=channel, note=pitch)))
    events.sort(key=lambda e: (e[0], e[1]))
    return [(t, msg) for t, _, msg in events]


def run_simulation(engine: Engine | EngineFactory, events: Iterable[TimedMessage], until_ns: int,
                   clock: SimulatedClock | None = None) -> list[TimedMessage]:
    """Feed ``events`` (sorted by time) and tick at every deadline up to ``until_ns``.

    ``engine`` is a factory ``(send, now_ns) -> Engine`` (its output is then collected
    here) or an engine already built around a ``send`` of your own (the return value is
    then empty). At the end, :meth:`Engine.release_all` is called at ``until_ns``, as
    the daemon does when it stops. Returns ``(t_ns, message)`` in the order sent.
    """
    clock = clock or SimulatedClock()
    output: list[TimedMessage] = []

    def send(msg: mido.Message) -> None:
        output.append((clock.now_ns, msg))

    built = engine if isinstance(engine, Engine) else engine(send, clock.now_ns)
    pending = sorted(events, key=lambda e: e[0])
    i = 0
    deadline = built.tick(clock.now_ns)
    while True:
        next_input = pending[i][0] if i < len(pending) else None
        candidates = [t for t in (deadline, next_input) if t is not None]
        if not candidates or min(candidates) > until_ns:
            break
        clock.advance_to(min(candidates))
        while i < len(pending) and pending[i][0] <= clock.now_ns:
            built.feed(pending[i][1], clock.now_ns)
            i += 1
        deadline = built.tick(clock.now_ns)
        if deadline is not None and deadline <= clock.now_ns:
            deadline = clock.now_ns + 1  # an engine must move on; never spin on one instant
    clock.advance_to(until_ns)
    built.release_all()
    return output


def generate_tokens(model: ModelRunner, count: int, settings: EngineSettings | None = None,
                    primer: list[str] | None = None, guard: bool = True) -> list[str]:
    """``count`` tokens as solo mode plays them (same window, sampler and guard), fast.

    Runs an :class:`Engine` in solo mode in simulated time at a fixed 120 BPM and
    returns the tokens it chose; ``settings`` give the sampling and the seed. Without the
    loop ``guard``, what the model itself does.
    """
    base = settings or EngineSettings()
    solo = EngineSettings(**{**vars(base), "mode": "solo", "bpm": 120.0, "follow_clock": False})
    log = TokenLog()
    tokens = log.tokens
    engine = Engine(model, solo, lambda msg: None, 0, primer=primer, observers=[log])
    engine.sampler.guard = guard
    now = 0
    while len(tokens) < count:
        deadline = engine.tick(now)
        if deadline is None:
            break
        now = max(deadline, now + 1)
    return tokens[:count]
