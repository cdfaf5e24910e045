"""A musician for soak runs: random but seeded playing, and a driver that streams it.

:func:`session` yields what a player does for as long as asked, in time order, lazily:
phrases of notes and chords, the sustain pedal, channel changes mid-phrase, odd input
(stray note-offs, velocity-0 note-ons, duplicate note-ons, clock, sysex, pitch bend,
aftertouch) and the engine's controls (temperature, mode: duet/jam/solo, mute, panic).

:func:`drive` is :func:`mididuet.daemon.engine.simulate.run_simulation` without its lists: that function
sorts all input up front and keeps every output message, which is right for a demo but
would make an hour's soak measure the harness's memory instead of the engine's. Here the
input is consumed as it comes and the output is checked as it goes (:class:`OutputCheck`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import mido
import numpy as np

from mididuet.daemon.engine.engine import Engine
from mididuet.daemon.engine.settings import EngineSettings
from mididuet.daemon.engine.simulate import SimulatedClock
from mididuet.daemon.music.units import NS_PER_MS as MS
from mididuet.daemon.music.units import NS_PER_S as SECOND

MODE_CC_VALUES = {"duet": 10, "jam": 60, "solo": 110}
TimedMessage = tuple[int, mido.Message]


def _phrase(rng: np.random.Generator, t: int) -> list[TimedMessage]:
    """3–14 tokens (a quarter of them chords) at a steady pace, maybe under the pedal."""
    events: list[TimedMessage] = []
    ioi = int(rng.integers(150, 500)) * MS
    pedal = rng.random() < 0.3
    if pedal:
        events.append((t, mido.Message("control_change", control=64, value=127)))
    channel = 0
    for i in range(int(rng.integers(3, 15))):
        onset = t + i * ioi
        if rng.random() < 0.1:
            channel = int(rng.integers(0, 16))  # the player switches channel mid-phrase
        root = int(rng.integers(48, 84))
        notes = [root] if rng.random() < 0.75 else [root, root + 4, root + 7]
        velocity = int(rng.integers(30, 120))
        held = int(ioi * rng.uniform(0.5, 1.2))
        for n, note in enumerate(notes):
            on = onset + n * int(rng.integers(0, 15)) * MS  # a hand spreads a chord a little
            events.append((on, mido.Message("note_on", channel=channel, note=note, velocity=velocity)))
            # Half the note-offs are note-ons with velocity 0, as many keyboards send them.
            off = (mido.Message("note_on", channel=channel, note=note, velocity=0) if rng.random() < 0.5
                   else mido.Message("note_off", channel=channel, note=note))
            events.append((on + held, off))
    if pedal:
        end = max(e[0] for e in events)
        events.append((end + 200 * MS, mido.Message("control_change", control=64, value=0)))
    return events


def _odd(rng: np.random.Generator, t: int) -> list[TimedMessage]:
    """Input a careful test forgets: stray offs, double ons, clock, sysex, bends."""
    note = int(rng.integers(21, 109))
    return [
        (t, mido.Message("note_off", note=int(rng.integers(0, 128)))),  # a note-off never preceded by its on
        (t + 5 * MS, mido.Message("note_on", note=note, velocity=0)),
        (t + 10 * MS, mido.Message("note_on", note=note, velocity=90)),
        (t + 20 * MS, mido.Message("note_on", note=note, velocity=70)),  # the same key again, no off between
        (t + 30 * MS, mido.Message("clock")),
        (t + 31 * MS, mido.Message("sysex", data=[0x7E, 0x7F, 0x06, 0x01])),
        (t + 40 * MS, mido.Message("pitchwheel", pitch=int(rng.integers(-8192, 8192)))),
        (t + 50 * MS, mido.Message("aftertouch", value=int(rng.integers(0, 128)))),
        (t + 60 * MS, mido.Message("polytouch", note=note, value=40)),
        (t + 400 * MS, mido.Message("note_off", note=note)),
    ]


def _control(rng: np.random.Generator, t: int, settings: EngineSettings) -> list[TimedMessage]:
    """One of the engine's controls; mute always comes back off, so the soak keeps playing."""
    kind = rng.choice(["temperature", "mode", "mute", "panic"], p=[0.35, 0.35, 0.15, 0.15])
    if kind == "temperature":
        return [(t, mido.Message("control_change", control=settings.cc_temperature, value=int(rng.integers(0, 128))))]
    if kind == "mode":
        mode = str(rng.choice(list(MODE_CC_VALUES)))
        return [(t, mido.Message("control_change", control=settings.cc_mode, value=MODE_CC_VALUES[mode]))]
    if kind == "mute":
        back = t + int(rng.integers(1, 5)) * SECOND
        return [(t, mido.Message("control_change", control=settings.cc_mute, value=127)),
                (back, mido.Message("control_change", control=settings.cc_mute, value=0))]
    return [(t, mido.Message("control_change", control=settings.cc_panic, value=127))]


def session(seed: int, length_ns: int, settings: EngineSettings) -> Iterator[TimedMessage]:
    """A player's messages for ``length_ns``, in time order, generated as they are consumed."""
    rng = np.random.default_rng(seed)
    t = 0
    while t < length_ns:
        roll = rng.random()
        if roll < 0.6:
            events = _phrase(rng, t)
        elif roll < 0.7:
            events = _odd(rng, t)
        elif roll < 0.9:
            events = _control(rng, t, settings)
        else:
            events = []  # the player listens for a while
        events.sort(key=lambda e: e[0])
        yield from events
        last = events[-1][0] if events else t
        t = last + int(rng.uniform(0.3, 3.0) * SECOND)  # room for a duet answer, sometimes not


class OutputCheck:
    """Watches what the engine sends, keeping only counters and the notes sounding now."""

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock = clock
        self.sounding: dict[tuple[int, int], int] = {}  # (channel, note) -> when it started
        self.note_ons = 0
        self.note_offs = 0
        self.restruck = 0  # a note-on for a note already sounding, without its note-off first
        self.longest_ns = 0
        self.messages = 0

    def __call__(self, msg: mido.Message) -> None:
        self.messages += 1
        now = self.clock.now_ns
        if msg.type == "note_on" and msg.velocity > 0:
            key = (msg.channel, msg.note)
            if key in self.sounding:
                self.restruck += 1
            self.sounding[key] = now
            self.note_ons += 1
        elif msg.type in ("note_on", "note_off"):
            started = self.sounding.pop((msg.channel, msg.note), None)
            if started is not None:
                self.note_offs += 1
                self.longest_ns = max(self.longest_ns, now - started)


def drive(engine: Engine, events: Iterator[TimedMessage], until_ns: int, clock: SimulatedClock,
          at: Callable[[int], None] | None = None, every_ns: int = 60 * SECOND) -> None:
    """Feed ``events`` and tick at every deadline up to ``until_ns``, as run_simulation does;
    ``at(t_ns)`` is called about every ``every_ns`` of simulated time (for measurements).
    Ends with :meth:`Engine.release_all`, as the daemon does when it stops."""
    upcoming = next(events, None)
    deadline = engine.tick(clock.now_ns)
    next_call = every_ns
    while True:
        next_input = upcoming[0] if upcoming is not None else None
        candidates = [t for t in (deadline, next_input) if t is not None]
        if not candidates or min(candidates) > until_ns:
            break
        clock.advance_to(min(candidates))
        while upcoming is not None and upcoming[0] <= clock.now_ns:
            engine.feed(upcoming[1], clock.now_ns)
            upcoming = next(events, None)
        deadline = engine.tick(clock.now_ns)
        if deadline is not None and deadline <= clock.now_ns:
            deadline = clock.now_ns + 1  # never spin on one instant
        if at is not None and clock.now_ns >= next_call:
            at(clock.now_ns)
            next_call += every_ns
    clock.advance_to(until_ns)
    engine.release_all()
