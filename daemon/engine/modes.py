"""The engine's modes: when a performance starts, what it continues from, and when it ends.

- :class:`Duet`: the call ends after the phrase gap (``phrase_gap_ms``, or 1.5 × the
  player's median inter-onset time if longer) with no key and no pedal down; the answer,
  as many tokens as the call (or ``answer_tokens``), continues from a copy of the window,
  so the window stays the player's own. A new player note cuts the answer short.
- :class:`Jam`: from the player's first token, one token per pulse; the player's tokens
  and its own share the window. It stops after :data:`JAM_IDLE_PULSES` silent pulses.
- :class:`Solo`: one token per pulse from the primer, on its own; player tokens still
  join the window, so the musician can steer it.

A mode is told what happens (the engine calls its hooks) and starts or stops the engine's
performance through ``start`` and ``stop``; :class:`Engine` says what else it may use. The mechanism every
mode shares — deciding ahead, the pulse, the ledger — stays in :mod:`.engine`.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Protocol

from ..listen.listener import Listener, PlayedToken
from ..predict.window import Window
from .settings import EngineSettings

log = logging.getLogger("mididuet.engine")

PHRASE_GAP_IOI_FACTOR = 1.5  # a player who leaves long gaps inside a phrase gets a longer gap
JAM_IDLE_PULSES = 16
# A duet answer's first token is decided this long before the phrase's end: more than a
# decision with cold caches and the loop's guard (2 ms), and late enough that a player
# still playing rarely makes the engine decide for nothing (benchmarks/RESULTS.md).
ANSWER_LEAD_NS = 20_000_000
# A solo that starts while the engine is running (unmuted, or switched to) plays its first
# token this long after, decided ahead like every other token.
FIRST_TOKEN_LEAD_NS = 5_000_000


class Engine(Protocol):
    """What a mode sees of the engine (:class:`.engine.Engine`)."""

    settings: EngineSettings
    listener: Listener
    window: Window
    phrase_gap_ns: int
    now_ns: int
    playing: bool

    @property
    def mute(self) -> bool: ...

    @property
    def decided(self) -> bool: ...

    def start(self, first_ns: int) -> None: ...

    def stop(self, release: bool) -> None: ...

    def pulse_ns(self, now_ns: int) -> int: ...

    def regrid_first_onset(self, anchor_ns: int) -> None: ...


class Mode:
    """The default of every hook: nothing happens."""

    name: ClassVar[str]
    on_player_grid: ClassVar[bool] = False  # expressive onsets snap to the player's pulse grid
    # A performance begins after a pause that is the turn-taking's, not a rest in the music:
    # its first token's interval is left out of the rhythm the model reads (Window.push_played).
    starts_after_a_pause: ClassVar[bool] = False

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def enter(self, lead_ns: int) -> None:
        """The engine switched to this mode (nothing is playing); ``lead_ns``: how far
        ahead a performance that starts at once should play its first token."""

    def note_on(self) -> None:
        """The player pressed a key."""

    def token(self, played: PlayedToken) -> None:
        """A player token entered the window."""

    def tick(self, now_ns: int) -> None:
        """Before the tokens due at ``now_ns`` are played."""

    def may_play(self, now_ns: int, pulse_ns: int) -> bool:
        """False to stop instead of playing the token due now."""
        return True

    def after_token(self) -> bool:
        """A token was played; False ends the performance."""
        return True

    def decide_early(self, now_ns: int) -> bool:
        """While not playing: True to decide the first token of a performance now."""
        return False

    def deadlines(self) -> list[int | None]:
        """More times the engine must be ticked at."""
        return []

    def released(self) -> None:
        """Every note was released (panic, a mode change, a lost port)."""

    def unmuted(self) -> None:
        """Mute was switched off."""

    def stopped(self) -> None:
        """The performance under way ended."""

    def window(self) -> Window:
        """The window the next token is decided from and pushed to."""
        return self.engine.window


class Duet(Mode):
    name = "duet"
    starts_after_a_pause = True

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._answer_window: Window | None = None
        self._remaining = 0  # tokens left in the answer
        self._call_tokens = 0  # player tokens since the last answer began

    def note_on(self) -> None:
        if self.engine.playing:
            self.engine.stop(release=True)  # the player cuts in: the answer gives way at once

    def token(self, played: PlayedToken) -> None:
        self._call_tokens += 1

    def tick(self, now_ns: int) -> None:
        if not self.engine.playing:
            end = self.phrase_end_ns()
            if end is not None and now_ns >= end:
                self._start_answer(end)

    def after_token(self) -> bool:
        self._remaining -= 1
        return self._remaining > 0  # at 0, scheduled note-offs still end the last notes

    def decide_early(self, now_ns: int) -> bool:
        """The player silent and the phrase's end near: decide the answer's first token
        now, from the window as it is (a player token closing meanwhile discards it)."""
        if self.engine.mute:
            return False
        end = self.phrase_end_ns()
        return end is not None and now_ns >= end - ANSWER_LEAD_NS

    def deadlines(self) -> list[int | None]:
        engine = self.engine
        if engine.playing:
            return []
        end = self.phrase_end_ns()
        if end is not None and not engine.decided and not engine.mute:
            return [end, end - ANSWER_LEAD_NS]  # when to decide the answer's first token
        return [end]

    def released(self) -> None:
        self.engine.stop(release=False)

    def stopped(self) -> None:
        self._answer_window = None
        self._remaining = 0

    def window(self) -> Window:
        return self._answer_window if self._answer_window is not None else self.engine.window

    def phrase_end_ns(self) -> int | None:
        """When the call ends if nothing more is played, or None while it goes on."""
        listener = self.engine.listener
        if self._call_tokens == 0 or listener.busy() or listener.last_activity_ns is None:
            return None
        ioi = listener.median_ioi_ns() or 0
        return listener.last_activity_ns + max(self.engine.phrase_gap_ns, int(PHRASE_GAP_IOI_FACTOR * ioi))

    def _start_answer(self, at_ns: int) -> None:
        length = self.engine.settings.answer_tokens or self._call_tokens
        self._call_tokens = 0
        if self.engine.mute:
            return
        self._answer_window = self.engine.window.copy()
        self._remaining = length
        log.debug("answer of %d tokens", length)  # once an answer: what the call's tokens asked for
        self.engine.start(at_ns)


class Jam(Mode):
    name = "jam"
    on_player_grid = True

    def token(self, played: PlayedToken) -> None:
        engine = self.engine
        if not engine.playing and not engine.mute:
            engine.start(played.onset_ns + engine.pulse_ns(played.onset_ns))
        else:  # the first token was placed on the pulse known then (often none yet)
            engine.regrid_first_onset(played.onset_ns)

    def may_play(self, now_ns: int, pulse_ns: int) -> bool:
        listener = self.engine.listener
        last = listener.last_activity_ns
        idle = not listener.busy() and (last is None or now_ns - last > JAM_IDLE_PULSES * pulse_ns)
        return not idle


class Solo(Mode):
    name = "solo"

    def enter(self, lead_ns: int) -> None:
        if not self.engine.mute:
            self.engine.start(self.engine.now_ns + lead_ns)

    def unmuted(self) -> None:
        if not self.engine.playing:
            self.engine.start(self.engine.now_ns + FIRST_TOKEN_LEAD_NS)


MODES: dict[str, type[Mode]] = {mode.name: mode for mode in (Duet, Jam, Solo)}
